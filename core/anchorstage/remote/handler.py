# SPDX-License-Identifier: GPL-3.0-or-later
"""The remote worker's handler: the stages that want a GPU behind the RunPod serverless contract.

``handler(job)`` takes a job ``{"id": ..., "input": {"task": TASK, ...}}`` and returns the task's output
(a dict) or ``{"error": MESSAGE}``, as RunPod's SDK expects; it is a coroutine that runs the work on a
thread, so the SDK's server keeps answering while a job runs. Jobs run one at a time (one GPU).

=================  ==========================================  ==============================================
task               input (besides ``task``)                    output ``files`` (base64)
=================  ==========================================  ==============================================
``generate``       ``conditioning`` (folder), ``settings``      ``generated.exr/.png``, ``generated_mask.png``,
                   (steps, guidance_scale, controlnet_scale,    ``generation.json``
                   ip_adapter_scale, max_side)
``refresh``        ``scene`` (folder), ``camera`` (camera       ``witness.exr/.png``, ``void_map.png``,
                   JSON), ``locks``, ``inpaint``, ``prompt``,   ``locks.png``, ``confidence.json``, ...
                   ``steps``, ``seed``
``depth``          ``photo`` (file), ``camera`` (optional)      ``depth.exr`` (``Z`` metres, inf = sky),
                                                                ``confidence.exr`` (``Y``)
``reconstruct``    ``photo``, ``depth`` (file, optional),       the scene folder (``scene.json``, ``splats.ply``,
                   ``camera``, ``max_splats``                   ...)
``render``         ``scene`` (folder) or ``splats`` (file),     ``frame.exr`` (Blender-named multilayer)
                   ``camera``, ``passes``
=================  ==========================================  ==============================================

Files travel in the request (:mod:`anchorstage.remote.payload`), are written into a temporary folder of
the worker's own and read back through the validated readers; nothing in a request names a path on the
worker, and the models are the worker's own (:class:`WorkerConfig`: ``anchorstage serve`` flags or the
environment), never a request's. Every refusal is one line naming the input.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ..errors import AnchorStageError, Cancelled, InputError, report_bug
from ..exr import write_channels
from .payload import decode_file, decode_folder, encode_folder, encoded_size

__all__ = ["TASKS", "WorkerConfig", "configure", "worker_config", "handler", "run_job", "check_input", "job_state",
           "cancel_job", "jobs_summary"]

#: Tasks and the input keys each takes (besides ``task``).
TASKS: dict[str, tuple[str, ...]] = {
    "generate": ("conditioning", "settings"),
    "refresh": ("scene", "camera", "locks", "inpaint", "prompt", "steps", "seed"),
    "depth": ("photo", "camera"),
    "reconstruct": ("photo", "depth", "camera", "max_splats"),
    "render": ("scene", "splats", "camera", "passes"),
}
_PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".exr", ".heic", ".heif")
_DEPTH_SUFFIXES = (".npy", ".exr", ".png")
_SPLAT_SUFFIXES = (".ply", ".splat", ".spz")
_PROGRESS_EVERY_S = 1.0  # RunPod progress updates at most this often


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class WorkerConfig:
    """What the worker runs with (never taken from a request).

    Attributes:
        models: the generation / diffusion models (:func:`anchorstage.diffusion.model_set`).
        memory: precision and memory savers.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        backend: render backend.
        depth_model: depth model id or folder (None: the documented default).
    """

    models: Any = None
    memory: Any = None
    device: str = "auto"
    backend: str = "auto"
    depth_model: Optional[str] = None

    @classmethod
    def from_environment(cls) -> "WorkerConfig":
        """Models from the environment (:data:`anchorstage.diffusion.MODEL_ENV`), ``ANCHORSTAGE_WORKER_DEVICE``
        and ``ANCHORSTAGE_DEPTH_MODEL``."""
        from ..diffusion import MemorySettings, model_set

        return cls(models=model_set(), memory=MemorySettings(), device=os.environ.get("ANCHORSTAGE_WORKER_DEVICE", "auto"),
                   depth_model=os.environ.get("ANCHORSTAGE_DEPTH_MODEL") or None)


_CONFIG: list[Optional[WorkerConfig]] = [None]


def configure(config: WorkerConfig) -> None:
    """Set the worker's configuration (``anchorstage serve`` does, from its flags)."""
    if not isinstance(config, WorkerConfig):
        raise InputError(f"worker configuration must be a WorkerConfig (got {type(config).__name__})")
    _CONFIG[0] = config


def worker_config() -> WorkerConfig:
    if _CONFIG[0] is None:
        _CONFIG[0] = WorkerConfig.from_environment()
    return _CONFIG[0]


# ---------------------------------------------------------------------------------------------- job states
@dataclass
class _JobState:
    status: str = "IN_QUEUE"  # IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED
    progress: float = 0.0
    message: str = "waiting for the worker"
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)


_JOBS: dict[str, _JobState] = {}
_JOBS_LOCK = threading.Lock()
_RUN_LOCK = threading.Lock()  # one job at a time: one GPU


def job_state(job_id: str) -> Optional[dict[str, Any]]:
    """``{"status", "progress", "message"}`` of a job this process knows, else None."""
    with _JOBS_LOCK:
        s = _JOBS.get(job_id)
        return None if s is None else {"status": s.status, "progress": round(s.progress, 4), "message": s.message}


def cancel_job(job_id: str) -> bool:
    """Ask a queued or running job to stop (at its next step); False when it is unknown or finished."""
    with _JOBS_LOCK:
        s = _JOBS.get(job_id)
        if s is None or s.status in ("COMPLETED", "FAILED", "CANCELLED"):
            return False
        s.cancel.set()
        return True


def jobs_summary() -> dict[str, int]:
    """Counts of the jobs this process knows by status."""
    with _JOBS_LOCK:
        out: dict[str, int] = {}
        for s in _JOBS.values():
            out[s.status] = out.get(s.status, 0) + 1
        return out


def _forget_old(keep_s: float = 3600.0, keep_n: int = 256) -> None:
    with _JOBS_LOCK:
        done = [(s.started, k) for k, s in _JOBS.items() if s.status in ("COMPLETED", "FAILED", "CANCELLED")]
        for started, k in sorted(done)[: max(0, len(done) - keep_n)]:
            _JOBS.pop(k, None)
        for started, k in done:
            if time.time() - started > keep_s:
                _JOBS.pop(k, None)


# ---------------------------------------------------------------------------------------------- input checks
def check_input(inp: Any) -> dict[str, Any]:
    """The job input, checked for shape (task, keys, size) before any work; the tasks check the values.

    Raises:
        InputError: not an object, an unknown task or key, or over the ``request_bytes`` limit.
    """
    from ..limits import check_count

    if not isinstance(inp, Mapping):
        raise InputError(f"request input must be a JSON object with a 'task' (got {type(inp).__name__})")
    task = inp.get("task")
    if task not in TASKS:
        raise InputError(f"request task must be one of {', '.join(TASKS)} (got {task!r})")
    unknown = sorted(set(inp) - {"task", *TASKS[task]})
    if unknown:
        raise InputError(f"request for {task}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                         f"{', '.join(TASKS[task])}")
    check_count("request_bytes", encoded_size(inp), f"request for {task}")
    return dict(inp)


def _camera(inp: Mapping[str, Any], where: str, required: bool = True) -> Any:
    from ..camera import Camera

    if "camera" not in inp:
        if required:
            raise InputError(f"{where}: camera is missing (a camera JSON object)")
        return None
    return Camera.from_json_dict(inp["camera"], source=f"{where} camera")


def _strings(v: Any, name: str, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(s, str) and s and len(s) < 256 for s in v) or len(v) > 1024:
        raise InputError(f"{where}: {name} must be a list of names (got {v!r:.80})")
    return list(v)


def _int(v: Any, name: str, where: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InputError(f"{where}: {name} must be an integer in [{lo}, {hi}] (got {v!r:.40})")
    return v


# ---------------------------------------------------------------------------------------------- tasks
Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]


def _answer(task: str, out_dir: Path, notes: list[str], summary: dict[str, Any]) -> dict[str, Any]:
    return {"task": task, **encode_folder(out_dir), "notes": notes, "summary": summary}


def _task_generate(inp: dict, tmp: Path, progress: Progress, cancel: Cancel) -> dict:
    from ..conditioning import CONDITIONING_FILES, load_conditioning
    from ..generation import GenerationSettings, save_generation
    from ..stages import generate

    cfg = worker_config()
    where = "request for generate"
    if "conditioning" not in inp:
        raise InputError(f"{where}: conditioning is missing (the conditioning folder's files)")
    folder = decode_folder(inp["conditioning"], tmp / "conditioning", f"{where}: conditioning",
                           required=CONDITIONING_FILES[:-1], allowed=CONDITIONING_FILES)
    cond = load_conditioning(folder)
    knobs = inp.get("settings", {})
    if not isinstance(knobs, Mapping):
        raise InputError(f"{where}: settings must be an object")
    settings = GenerationSettings(models=cfg.models, memory=cfg.memory).with_request(dict(knobs), f"{where}: settings")
    gen = generate(cond, settings, device=cfg.device, progress=progress, cancel=cancel)
    save_generation(gen, tmp / "out")
    return _answer("generate", tmp / "out", gen.notes, {"generated_px": int(gen.generated.sum()),
                                                       "locked_px": int(cond.locked.sum()), "steps_run": gen.steps_run,
                                                       "step_s": gen.step_s})


def _task_refresh(inp: dict, tmp: Path, progress: Progress, cancel: Cancel) -> dict:
    from ..inpaint_diffusion import DiffusionSettings
    from ..scene import load_scene
    from ..stages import refresh
    from ..witness import INPAINT_METHODS, save_refresh

    cfg = worker_config()
    where = "request for refresh"
    if "scene" not in inp:
        raise InputError(f"{where}: scene is missing (the scene folder's files)")
    scene = load_scene(decode_folder(inp["scene"], tmp / "scene", f"{where}: scene", required=("scene.json",)))
    camera = _camera(inp, where)
    method = inp.get("inpaint", "classical")
    if method not in INPAINT_METHODS:
        raise InputError(f"{where}: inpaint must be one of {', '.join(INPAINT_METHODS)} (got {method!r:.40})")
    settings = None
    if method == "diffusion":
        m = cfg.models
        if m.family != "sd15" or not (m.controlnet_depth and m.controlnet_normal):
            raise InputError(f"{where}: diffusion inpainting runs SD 1.5 with depth and normal ControlNets; this "
                             f"worker serves {m.family} with {' + '.join(sig for sig, _ in m.controlnets) or 'no'} ControlNet "
                             "(use inpaint 'classical', or a worker started with --family sd15)")
        prompt = inp.get("prompt", "")
        if not isinstance(prompt, str) or len(prompt) > 4096:
            raise InputError(f"{where}: prompt must be a string of at most 4096 characters")
        settings = DiffusionSettings(model=m.model, controlnets=(m.controlnet_depth, m.controlnet_normal), prompt=prompt,
                                     steps=_int(inp.get("steps", 20), "steps", where, 1, 1000),
                                     seed=_int(inp.get("seed", 0), "seed", where, 0, 2 ** 63 - 1))
    if cancel():
        raise Cancelled("refresh cancelled before it started")
    res = refresh(scene, camera, locks=_strings(inp.get("locks", []), "locks", where), inpaint=method,
                  diffusion=settings, backend=cfg.backend, device=cfg.device, progress=progress)
    save_refresh(res, tmp / "out")
    return _answer("refresh", tmp / "out", res.notes, res.summary())


def _photo(inp: dict, tmp: Path, where: str) -> Any:
    from ..stages import load_photo

    if "photo" not in inp:
        raise InputError(f"{where}: photo is missing ({{\"name\": FILE_NAME, \"data\": BASE64}})")
    path = decode_file(inp["photo"], tmp, f"{where}: photo", suffixes=_PHOTO_SUFFIXES, stem="photo")
    return load_photo(path, camera=_camera(inp, where, required=False))


def _task_depth(inp: dict, tmp: Path, progress: Progress, cancel: Cancel) -> dict:
    from ..stages import metric_depth

    cfg = worker_config()
    where = "request for depth"
    photo = _photo(inp, tmp, where)
    if cancel():
        raise Cancelled("depth cancelled before it started")
    est = metric_depth(photo, model=cfg.depth_model, device=cfg.device, progress=progress)
    out = tmp / "out"
    out.mkdir()
    write_channels(out / "depth.exr", {"Z": est.depth_m}, "depth answer file")
    write_channels(out / "confidence.exr", {"Y": est.confidence}, "depth answer file")
    return _answer("depth", out, list(est.notes), {"model": est.model, "fov_x_deg": est.fov_x_deg})


def _task_reconstruct(inp: dict, tmp: Path, progress: Progress, cancel: Cancel) -> dict:
    from ..progress import scaled
    from ..scene import save_scene
    from ..stages import build_stage, metric_depth

    cfg = worker_config()
    where = "request for reconstruct"
    photo = _photo(inp, tmp, where)
    depth_file = decode_file(inp["depth"], tmp, f"{where}: depth", suffixes=_DEPTH_SUFFIXES, stem="depth") \
        if "depth" in inp else None
    max_splats = _int(inp["max_splats"], "max_splats", where, 1, 50_000_000) if "max_splats" in inp else None
    if cancel():
        raise Cancelled("reconstruct cancelled before it started")
    depth = metric_depth(photo, depth_file=depth_file, model=None if depth_file else cfg.depth_model,
                         device=cfg.device, progress=scaled(progress, 0.0, 0.5))
    scene = build_stage(photo, depth, max_splats=max_splats, device=cfg.device, progress=scaled(progress, 0.5, 1.0))
    save_scene(scene, tmp / "out")
    return _answer("reconstruct", tmp / "out", list(scene.meta.get("notes", [])),
                   {"splats": len(scene.splats), "regions": [r.id for r in scene.regions]})


def _task_render(inp: dict, tmp: Path, progress: Progress, cancel: Cancel) -> dict:
    from ..exr import write_exr
    from ..scene import load_scene
    from ..splatio import read_splats
    from ..splatio.sharp import placed
    from ..stages import render_frame

    cfg = worker_config()
    where = "request for render"
    if ("scene" in inp) == ("splats" in inp):
        raise InputError(f"{where}: give either scene (a folder) or splats (a file)")
    if "scene" in inp:
        source = load_scene(decode_folder(inp["scene"], tmp / "scene", f"{where}: scene", required=("scene.json",)))
    else:
        path = decode_file(inp["splats"], tmp, f"{where}: splats", suffixes=_SPLAT_SUFFIXES, stem="splats")
        source = placed(read_splats(path), path)
    camera = _camera(inp, where)
    passes = _strings(inp["passes"], "passes", where) if "passes" in inp else None
    progress(0.0, "render")
    frame = render_frame(source, camera, passes, backend=cfg.backend, device=cfg.device)
    out = tmp / "out"
    out.mkdir()
    write_exr(out / "frame.exr", frame.passes, camera=camera, half_for=())  # lossless: what a local render gives
    progress(1.0, "rendered")
    return _answer("render", out, [], {"passes": sorted(frame.passes)})


_TASKS: dict[str, Callable[[dict, Path, Progress, Cancel], dict]] = {
    "generate": _task_generate, "refresh": _task_refresh, "depth": _task_depth, "reconstruct": _task_reconstruct,
    "render": _task_render}


# ---------------------------------------------------------------------------------------------- the handler
def _runpod_progress(job: Mapping[str, Any]) -> Optional[Callable[[dict], None]]:
    """RunPod's progress updates when deployed on RunPod (its queue is configured), else None."""
    if not os.environ.get("RUNPOD_WEBHOOK_GET_JOB"):
        return None
    try:
        from runpod.serverless import progress_update
    except ImportError:  # pragma: no cover - the worker extra installs runpod
        return None
    return lambda data: progress_update(dict(job), data)


def run_job(job: Any) -> dict[str, Any]:
    """Run one job synchronously: the task's output dict, or ``{"error": ONE_LINE}``."""
    job_id = str(job.get("id", "")) if isinstance(job, Mapping) else ""
    job_id = job_id or f"local-{time.time_ns()}"
    state = _JobState()
    with _JOBS_LOCK:
        _JOBS[job_id] = state
    _forget_old()
    remote = _runpod_progress(job) if isinstance(job, Mapping) else None
    last_sent = [0.0]

    def progress(fraction: float, message: str = "") -> None:
        state.progress = min(1.0, max(0.0, float(fraction))) if math.isfinite(float(fraction)) else state.progress
        state.message = message or state.message
        if remote is not None and time.monotonic() - last_sent[0] >= _PROGRESS_EVERY_S:
            last_sent[0] = time.monotonic()
            remote({"progress": round(state.progress, 4), "message": state.message})
        if state.cancel.is_set():
            raise Cancelled(f"cancelled at {state.message or 'the start'}")

    task = "request"
    try:
        inp = check_input(job.get("input") if isinstance(job, Mapping) else None)
        task = inp["task"]
        with _RUN_LOCK:  # one job at a time; a queued job can be cancelled while it waits
            if state.cancel.is_set():
                raise Cancelled("cancelled while waiting for the worker")
            state.status, state.message = "IN_PROGRESS", f"{task}: starting"
            with tempfile.TemporaryDirectory(prefix="anchorstage-job-") as tmp:
                out = _TASKS[task](inp, Path(tmp), progress, state.cancel.is_set)
        state.status, state.progress, state.message = "COMPLETED", 1.0, f"{task}: done"
        return out
    except Cancelled as e:
        state.status, state.message = "CANCELLED", str(e)
        return {"error": f"{task} cancelled: {e}"}
    except AnchorStageError as e:
        state.status, state.message = "FAILED", str(e)
        return {"error": f"{task}: {e}"}
    except MemoryError:
        state.status = "FAILED"
        return {"error": f"{task}: the worker ran out of memory for this input (see docs/limits.md)"}
    except Exception as e:  # noqa: BLE001 - the boundary: a bug is one line (and a log file on the worker)
        state.status = "FAILED"
        return {"error": report_bug(e, f"remote worker task {task}")}


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """The RunPod handler: :func:`run_job` on a thread, so the server's event loop stays free."""
    return await asyncio.to_thread(run_job, job)
