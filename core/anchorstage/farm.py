# SPDX-License-Identifier: GPL-3.0-or-later
"""Render-farm jobs: Open Job Description (OpenJD) job bundles for a scene folder or a .blend.

:func:`write_openjd_bundle` writes a job bundle folder that ``openjd run`` executes locally and
``deadline bundle submit`` sends to AWS Deadline Cloud::

    JOB_DIR/template.json           jobtemplate-2023-09 + TASK_CHUNKING: one step, its frames a
                                    CHUNK[INT] task parameter split into contiguous chunks
    JOB_DIR/parameter_values.json   this job's values (Deadline Cloud's bundle format)
    JOB_DIR/asset_references.json   the inputs (scene folder + camera list, or the .blend) and
                                    the output folder, for Deadline Cloud's job attachments
    JOB_DIR/openjd_parameters.json  the same values as a plain map, for ``openjd run -p file://...``
    JOB_DIR/output/                 the frames, unless another output folder is given

Two engines, each a thin caller of an existing entry point, each resumable (a re-run of a chunk
renders only the frames that are not complete) and each writing a frame complete-or-absent:

* ``cli``: ``anchorstage export SCENE_DIR --cameras CAMS --out OUT --frames A-B --skip-existing``
  (frames ``render.NNNN.exr`` + ``frame_NNNN/``, see :mod:`anchorstage.export`).
* ``blender``: ``blender -b FILE.blend --python-expr <BLENDER_ENTRY> -- --frames A-B --out OUT
  --skip-existing``: the add-on's batch renders the chunk with the ANCHORSTAGE engine into
  ``frame_NNNN.exr`` (Blender's own multilayer EXR), each frame to a temporary name then renamed.

See docs/farm.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence

from .atomic import atomic_file, ensure_writable_dir
from .errors import InputError, OutputError

__all__ = ["ENGINES", "BLENDER_ENTRY", "BUNDLE_FILES", "openjd_template", "write_openjd_bundle", "check_template",
           "guess_engine"]

ENGINES = ("cli", "blender")
BUNDLE_FILES = ("template.json", "parameter_values.json", "asset_references.json", "openjd_parameters.json")
SPECIFICATION = "jobtemplate-2023-09"
_PATH_PARAMS = ("SceneDir", "CameraList", "BlendFile", "OutputDir")

#: What ``blender --python-expr`` runs on a worker: find the installed AnchorStage extension
#: (enabling it if the worker's preferences have not), then hand the arguments after ``--`` to its
#: farm entry (the batch, then exit with its status: 0 done, 2 bad input, 1 internal error). One line, no file:
#: a Flamenco or Deadline worker needs nothing but Blender with the extension installed.
BLENDER_ENTRY = (
    "import sys, importlib, addon_utils; "
    "n = [m.__name__ for m in addon_utils.modules(refresh=True) if m.__name__.rsplit('.', 1)[-1] == 'anchorstage']; "
    "n or sys.exit('AnchorStage farm: error: the AnchorStage extension is not installed in this Blender'); "
    "addon_utils.check(n[0])[1] or addon_utils.enable(n[0], default_set=True); "
    "importlib.import_module(n[0] + '.farm').main(sys.argv[sys.argv.index('--') + 1:])"
)


def guess_engine(source: str | os.PathLike) -> str:
    """``"blender"`` for a ``.blend`` file, ``"cli"`` for anything else (a scene folder)."""
    return "blender" if str(source).lower().endswith(".blend") else "cli"


def _param(name: str, type_: str, description: str, default: Any = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "type": type_, "description": description, **extra}
    if default is not None:
        d["default"] = default
    return d


def _path_param(name: str, kind: str, flow: str, description: str, label: str) -> dict[str, Any]:
    control = {("FILE", "IN"): "CHOOSE_INPUT_FILE", ("DIRECTORY", "IN"): "CHOOSE_DIRECTORY",
               ("DIRECTORY", "OUT"): "CHOOSE_DIRECTORY"}[(kind, flow)]
    return {"name": name, "type": "PATH", "objectType": kind, "dataFlow": flow, "description": description,
            "userInterface": {"control": control, "label": label}}


def _frames_params(frames: str, chunk: int) -> list[dict[str, Any]]:
    return [
        _param("Frames", "STRING", "Frames to render, an OpenJD range such as 1-240", frames, minLength=1,
               userInterface={"control": "LINE_EDIT", "label": "Frames"}),
        _param("ChunkSize", "INT", "Frames per task (contiguous chunks)", chunk, minValue=1,
               userInterface={"control": "SPIN_BOX", "label": "Chunk size"}),
    ]


def _chunked_frames() -> dict[str, Any]:
    return {"taskParameterDefinitions": [{
        "name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
        # CONTIGUOUS: each task gets one "A-B" range, which is what --frames takes.
        "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"},
    }]}


def openjd_template(engine: str, *, name: str, frames: str = "1-240", chunk: int = 10,
                    defaults: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The job template (a JSON-ready dict) for an engine.

    Args:
        engine: ``"cli"`` (export a scene folder) or ``"blender"`` (render a .blend).
        name: the job's name.
        frames: default of the ``Frames`` parameter (an OpenJD range expression, e.g. ``1-240``).
        chunk: default of the ``ChunkSize`` parameter (frames per task).
        defaults: defaults for the other parameters, by name (OpenJD allows PATH defaults only
            relative to the template's folder, inside it).

    Returns:
        The template; its one step is named ``Export`` (cli) or ``Render`` (blender).
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    defaults = dict(defaults or {})
    common_tail = ["--frames", "{{Task.Param.Frame}}", "--out", "{{Param.OutputDir}}", "--skip-existing",
                   "--device", "{{Param.Device}}"]
    device = _param("Device", "STRING", "Where to compute: auto (CUDA when available), cpu or cuda",
                    defaults.pop("Device", "auto"), allowedValues=["auto", "cpu", "cuda"])
    output = _path_param("OutputDir", "DIRECTORY", "OUT", "Folder the frames are written to", "Output folder")
    if engine == "cli":
        from .export import PRESETS
        from .passes import PASSES

        params = [
            _path_param("SceneDir", "DIRECTORY", "IN", "AnchorStage scene folder (anchorstage reconstruct)", "Scene folder"),
            _path_param("CameraList", "FILE", "IN", "Camera list JSON: one camera per frame", "Camera list"),
            output, *_frames_params(frames, chunk),
            _param("Preset", "STRING", "File layout of the frames", defaults.pop("Preset", "blender"),
                   allowedValues=list(PRESETS)),
            _param("Passes", "STRING", "Comma-separated passes", defaults.pop("Passes", ",".join(PASSES)), minLength=1),
            device,
            _param("AnchorStageCommand", "STRING", "The anchorstage command on the workers",
                   defaults.pop("AnchorStageCommand", "anchorstage"), minLength=1),
        ]
        step = {"name": "Export", "parameterSpace": _chunked_frames(), "script": {"actions": {"onRun": {
            "command": "{{Param.AnchorStageCommand}}",
            "args": ["export", "{{Param.SceneDir}}", "--cameras", "{{Param.CameraList}}", "--preset", "{{Param.Preset}}",
                     "--passes", "{{Param.Passes}}", *common_tail]}}}}
        description = ("Renders an AnchorStage scene folder from a camera list with `anchorstage export`, one "
                       "contiguous chunk of frames per task; frames already complete are kept.")
    else:
        params = [
            _path_param("BlendFile", "FILE", "IN", "Blender file with an AnchorStage stage and an animated camera",
                        "Blend file"),
            output, *_frames_params(frames, chunk), device,
            _param("BlenderCommand", "STRING", "The Blender executable on the workers (the AnchorStage extension "
                   "installed)", defaults.pop("BlenderCommand", "blender"), minLength=1),
        ]
        step = {"name": "Render", "parameterSpace": _chunked_frames(), "script": {"actions": {"onRun": {
            "command": "{{Param.BlenderCommand}}",
            "args": ["-b", "{{Param.BlendFile}}", "--python-exit-code", "1", "--python-expr", BLENDER_ENTRY, "--",
                     *common_tail]}}}}
        description = ("Renders a .blend with the ANCHORSTAGE engine in Blender (background), one contiguous chunk "
                       "of frames per task, into multilayer EXRs; frames already complete are kept.")
    for p in params:
        if p["name"] in defaults:
            p["default"] = defaults.pop(p["name"])
    if defaults:
        raise InputError(f"unknown {engine} job parameter(s): {', '.join(sorted(defaults))}")
    return {"specificationVersion": SPECIFICATION, "extensions": ["TASK_CHUNKING"], "name": name,
            "description": description, "parameterDefinitions": params, "steps": [step]}


def check_template(template: dict[str, Any], values: Optional[dict[str, Any]] = None) -> Optional[str]:
    """Validate a template (and job parameter values) with ``openjd-model`` when it is installed.

    Returns:
        The openjd-model version that accepted it, or None when openjd-model is not installed.

    Raises:
        InputError: openjd-model rejects the template or the values (its message).
    """
    try:
        from importlib.metadata import version

        from openjd.model import DecodeValidationError, create_job, decode_job_template, preprocess_job_parameters
    except ImportError:
        return None
    try:
        tmpl = decode_job_template(template=template, supported_extensions=["TASK_CHUNKING"])
        if values is not None:
            here = Path.cwd()
            typed = preprocess_job_parameters(job_template=tmpl, job_parameter_values={k: str(v) for k, v in values.items()},
                                              job_template_dir=here, current_working_dir=here)
            create_job(job_template=tmpl, job_parameter_values=typed)
    except (DecodeValidationError, ValueError) as e:
        raise InputError(f"the job template does not validate: {e}") from None
    return version("openjd-model")


def _camera_frames(cameras: Path, first: int, last: int) -> None:
    """Every frame of the range must have a camera, or its chunk could never complete."""
    from .export import load_camera_list

    have = {f for f, _ in load_camera_list(cameras)}
    missing = [f for f in range(first, last + 1) if f not in have]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"camera list {str(cameras)!r} has no camera for frame(s) {shown} of {first}-{last}")


def _check_scene_dir(scene: Path) -> None:
    from .scene import FORMAT_VERSION, is_scene_dir

    where = f"scene folder {str(scene)!r}"
    if not scene.is_dir():
        raise InputError(f"{where} does not exist" if not scene.exists() else f"{where} is not a folder")
    if not is_scene_dir(scene):
        raise InputError(f"{where} is not an AnchorStage scene (no scene.json)")
    try:
        doc = json.loads((scene / "scene.json").read_text(encoding="utf-8"))
        version = doc["format_version"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{where}: scene.json cannot be read: {e}") from None
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise InputError(f"{where}: scene format_version {version!r} is not one this AnchorStage reads")


def write_openjd_bundle(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    frames: tuple[int, int],
    chunk: int = 10,
    engine: Optional[str] = None,
    cameras: Optional[str | os.PathLike] = None,
    output: Optional[str | os.PathLike] = None,
    preset: str = "blender",
    passes: Optional[Sequence[str]] = None,
    device: str = "auto",
    command: Optional[str] = None,
    name: Optional[str] = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write an OpenJD job bundle that renders ``frames`` of a scene folder or a .blend in chunks.

    Args:
        source: a scene folder (engine ``cli``) or a ``.blend`` file (engine ``blender``).
        out_dir: the job bundle folder to write (created).
        frames: inclusive (first, last) frame range.
        chunk: frames per task (the last task may get fewer).
        engine: ``"cli"`` or ``"blender"``; by default from ``source`` (:func:`guess_engine`).
        cameras: camera list JSON (engine ``cli``, required): one camera per frame of the range.
        output: the folder the frames go to (default ``out_dir/output``).
        preset: export preset (engine ``cli``).
        passes: passes to export (engine ``cli``; default all).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` on the workers.
        command: the ``anchorstage`` (cli) or ``blender`` (blender) executable on the workers.
        name: the job's name (default from the source and the frames).
        force: overwrite the bundle files of an existing bundle in ``out_dir`` (the output is kept).

    Returns:
        ``{"bundle": Path, "template": dict, "values": dict, "step": str, "tasks": int,
        "checked_with": openjd-model version or None}``.

    Raises:
        InputError: a missing or wrong source, frames without a camera, a bad range, chunk or engine.
        OutputError: ``out_dir`` already holds a job bundle (without ``force``) or cannot be written.
    """
    src = Path(source).expanduser().resolve()
    engine = engine or guess_engine(src)
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    first, last = (int(frames[0]), int(frames[1]))
    if last < first:
        raise InputError(f"frame range {first}-{last}: the last frame comes before the first")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"--chunk must be a whole number of frames, at least 1 (got {chunk!r})")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda (got {device!r})")
    values: dict[str, Any] = {"Frames": f"{first}-{last}", "ChunkSize": chunk, "Device": device}
    inputs_files: list[str] = []
    inputs_dirs: list[str] = []
    if engine == "cli":
        from .export import PRESETS
        from .passes import PASSES, check_passes

        if src.suffix.lower() == ".blend":
            raise InputError(f"{str(src)!r} is a .blend file: use --engine blender (the cli engine exports a scene folder)")
        _check_scene_dir(src)
        if cameras is None:
            raise InputError("--cameras is required with the cli engine (a camera list with a camera per frame)")
        cams = Path(cameras).expanduser().resolve()
        _camera_frames(cams, first, last)
        if preset not in PRESETS:
            raise InputError(f"--preset must be one of {', '.join(PRESETS)} (got {preset!r})")
        chosen = check_passes(",".join(passes), "--passes") if passes else PASSES
        values.update({"SceneDir": str(src), "CameraList": str(cams), "Preset": preset, "Passes": ",".join(chosen),
                       "AnchorStageCommand": command or "anchorstage"})
        inputs_dirs.append(str(src))
        inputs_files.append(str(cams))
    else:
        if cameras is not None:
            raise InputError("--cameras is for the cli engine; the blender engine renders the .blend's own camera")
        if src.is_dir():
            raise InputError(f"{str(src)!r} is a folder: use --engine cli for a scene folder (blender renders a .blend)")
        if src.suffix.lower() != ".blend":
            raise InputError(f"blend file {str(src)!r} must end in .blend")
        if not src.is_file():
            raise InputError(f"blend file {str(src)!r} does not exist")
        values.update({"BlendFile": str(src), "BlenderCommand": command or "blender"})
        inputs_files.append(str(src))
    bundle = Path(out_dir).expanduser().resolve()
    out = Path(output).expanduser().resolve() if output is not None else bundle / "output"
    values["OutputDir"] = str(out)
    if bundle.exists() and not bundle.is_dir():
        raise OutputError(f"job bundle folder {str(bundle)!r} is a file")
    existing = [f for f in BUNDLE_FILES if (bundle / f).exists()]
    if existing and not force:
        raise OutputError(f"job bundle folder {str(bundle)!r} already holds a job ({existing[0]}); pass --force to "
                          "replace the bundle files (frames already in the output folder are kept)")
    job_name = name or f"AnchorStage {src.stem} {first}-{last}"
    defaults = {k: v for k, v in values.items() if k not in ("Frames", "ChunkSize") and k not in _PATH_PARAMS}
    for k in _PATH_PARAMS:  # OpenJD takes PATH defaults only relative to, and inside, the template's folder
        if k in values and Path(values[k]).is_relative_to(bundle):
            defaults[k] = Path(values[k]).relative_to(bundle).as_posix()
    template = openjd_template(engine, name=job_name, frames=values["Frames"], chunk=chunk, defaults=defaults)
    checked = check_template(template, values)
    ensure_writable_dir(bundle, "job bundle folder")
    ensure_writable_dir(out, "output folder")
    docs = {
        "template.json": template,
        "parameter_values.json": {"parameterValues": [{"name": k, "value": v} for k, v in values.items()]},
        "asset_references.json": {"assetReferences": {
            "inputs": {"filenames": inputs_files, "directories": inputs_dirs},
            "outputs": {"directories": [str(out)]}, "referencedPaths": []}},
        # The same values as a plain map, for `openjd run ... -p file://JOB_DIR/openjd_parameters.json`.
        "openjd_parameters.json": {k: str(v) for k, v in values.items()},
    }
    for fname, doc in docs.items():
        with atomic_file(bundle / fname, f"job bundle file {fname}") as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tasks = -(-(last - first + 1) // chunk)
    return {"bundle": bundle, "template": template, "values": values, "step": template["steps"][0]["name"],
            "tasks": tasks, "checked_with": checked}
