# SPDX-License-Identifier: GPL-3.0-or-later
"""Export rendered frames for compositing: EXRs, void map, region masks, proxy render, metadata.

For frame N (4-digit, e.g. 0012) ``export_frames`` writes into the output folder::

    render.0012.exr                 presets "blender" and "nuke": every pass in one multilayer EXR
    <pass>.0012.exr                 preset "after-effects": one EXR per pass (color holds RGBA)
    frame_0012/void_map.png         8-bit, 255 where the camera sees what the photo never saw
                                    (disocclusions and out of frame; the sky it saw is not void)
    frame_0012/proxy_render.png     the beauty pass, sRGB 8-bit
    frame_0012/region_masks/<id>.png  one 8-bit mask per region (255 inside)
    frame_0012/metadata.json        camera, metric scale, regions (planes, locks), confidence (the
                                    shot's number, its parts and level, see anchorstage.confidence),
                                    generation parameters, files

Camera sequences come as a list of cameras or a camera-list JSON file (see
:func:`load_camera_list`); ``frames=(first, last)`` renders only that chunk, so a render farm
can split a shot. Every file is written atomically; chunks may write into the same folder.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from .atomic import atomic_dir, atomic_file, ensure_writable_dir
from .camera import Camera
from .errors import InputError
from .exr import write_exr
from .image_io import to_uint8_srgb
from .input_files import path_arg
from .passes import DEFAULT_VOID_THRESHOLD, PASSES, check_passes
from .progress import ProgressFn, report, scaled
from .safe_json import load_json

__all__ = ["export_frames", "frame_is_complete", "load_camera_list", "save_camera_list", "parse_frame_range", "PRESETS", "frame_metadata"]

PRESETS = ("blender", "nuke", "after-effects")
_NAMING = {"blender": "blender", "nuke": "nuke", "after-effects": "plain"}

CameraList = Sequence[Union[Camera, tuple[int, Camera]]]
# Frame numbers as Blender allows them (scene.frame_start/end span ±1,048,574).
_FRAME_MIN, _FRAME_MAX = -1_048_574, 1_048_574


def parse_frame_range(text: str) -> tuple[int, int]:
    """``"10-19"`` or ``"7"`` → (first, last), inclusive."""
    m = re.fullmatch(r"\s*(-?\d{1,9})\s*(?:-\s*(-?\d{1,9})\s*)?", text) if isinstance(text, str) else None
    if m is None:
        raise InputError(f"frame range must look like 10-19 or 7 (got {text!r})")
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) is not None else first
    if last < first:
        raise InputError(f"frame range {text!r}: the last frame comes before the first")
    return first, last


def load_camera_list(path: str | os.PathLike, first_frame: int = 1) -> list[tuple[int, Camera]]:
    """Read a camera sequence.

    The file holds a JSON list. Each entry is a camera JSON object (as for ``--camera``) with
    an optional integer ``"frame"``, or ``{"frame": N, "camera": {...}}``; entries without a
    frame number are numbered from ``first_frame`` by position. A single camera object is a
    one-frame list.

    Returns:
        (frame number, camera) pairs in file order.
    """
    p = path_arg(path, "camera list")
    data = load_json(p, "camera list")  # special files, size and nesting refused before parsing
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise InputError(f"camera list {str(p)!r}: expected a non-empty JSON list of cameras")
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise InputError(f"camera list {str(p)!r}: entry {i} is not a JSON object")
        frame = entry.get("frame", first_frame + i)
        if isinstance(frame, bool) or not isinstance(frame, int) or not _FRAME_MIN <= frame <= _FRAME_MAX:
            raise InputError(f"camera list {str(p)!r}: entry {i} frame must be an integer in "
                             f"[{_FRAME_MIN}, {_FRAME_MAX}] (got {frame!r})")
        cam = entry["camera"] if "camera" in entry else {k: v for k, v in entry.items() if k != "frame"}
        out.append((frame, Camera.from_json_dict(cam, source=f"camera list {str(p)!r} entry {i}")))
    frames = [f for f, _ in out]
    if len(set(frames)) != len(frames):
        raise InputError(f"camera list {str(p)!r}: frame numbers repeat")
    return out


def save_camera_list(path: str | os.PathLike, cameras: CameraList, first_frame: int = 1) -> None:
    """Write a camera sequence that :func:`load_camera_list` reads (atomically)."""
    entries = [{"frame": f, **c.to_json_dict()} for f, c in _numbered(cameras, first_frame)]
    with atomic_file(path, "camera list") as tmp:
        tmp.write_text(json.dumps(entries, indent=1), encoding="utf-8")


def _numbered(cameras: Any, first_frame: int) -> list[tuple[int, Camera]]:
    if isinstance(first_frame, bool) or not isinstance(first_frame, (int, np.integer)) \
            or not _FRAME_MIN <= first_frame <= _FRAME_MAX:
        raise InputError(f"export: first_frame must be an integer in [{_FRAME_MIN}, {_FRAME_MAX}] (got {first_frame!r})")
    first_frame = int(first_frame)
    if isinstance(cameras, (str, os.PathLike)):
        return load_camera_list(cameras, first_frame)
    if isinstance(cameras, Camera):
        cameras = [cameras]
    if not isinstance(cameras, (list, tuple)):
        raise InputError(f"export: cameras must be a Camera, a list of cameras or a camera-list path "
                         f"(got {type(cameras).__name__})")
    out = []
    for i, c in enumerate(cameras):
        if isinstance(c, Camera):
            out.append((first_frame + i, c))
        elif isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], Camera) and not isinstance(c[0], bool) \
                and isinstance(c[0], (int, np.integer)) and _FRAME_MIN <= c[0] <= _FRAME_MAX:
            out.append((int(c[0]), c[1]))
        else:
            raise InputError(f"export: camera {i} must be a Camera or (frame, Camera) (got {type(c).__name__})")
    if not out:
        raise InputError("export: no cameras given")
    return out


def _blender_rotation(cam: Camera) -> tuple[list[float], list[float]]:
    """Blender object rotation of the camera: quaternion wxyz and XYZ Euler in degrees."""
    from scipy.spatial.transform import Rotation

    rot = Rotation.from_matrix(cam.matrix_world[:3, :3])
    x, y, z, w = rot.as_quat()
    return [float(w), float(x), float(y), float(z)], [float(a) for a in rot.as_euler("xyz", degrees=True)]


def frame_metadata(frame: int, camera: Camera, passes: Mapping[str, Any], *, regions: Sequence[Any] = (),
                   metric_scale: float = 1.0, reference: Optional[Camera] = None,
                   generation: Optional[Mapping[str, Any]] = None,
                   confidence: Optional[Any] = None) -> dict[str, Any]:
    """The JSON-ready metadata of one frame.

    Args:
        frame: frame number.
        camera: the frame's camera.
        passes: the rendered passes (numpy or torch, as from :func:`anchorstage.render`).
        regions: the scene's :class:`~anchorstage.region.Region` list.
        metric_scale: metres per scene unit of the reconstruction (1.0 = metric).
        reference: the photo's camera, for the view angle.
        generation: generation parameters to record (prompt, seed, model ...).
        confidence: the shot's :class:`~anchorstage.confidence.Confidence` (its number, parts, level and
            thresholds go into ``confidence``).
    """
    quat, euler = _blender_rotation(camera)
    cam = camera.to_json_dict()
    cam.update({"position_m": camera.position.tolist(), "rotation_quaternion_wxyz": quat,
                "rotation_euler_xyz_deg": euler, "focal_px": camera.focal_px,
                "principal_point_px": list(camera.principal_point_px), "fov_deg": list(camera.fov_deg),
                "focal_35mm_equiv": camera.focal_35mm_equiv})
    conf: dict[str, Any] = {}
    void = _np(passes.get("void"))
    if void is not None:
        conf["void_coverage"] = float(void.mean())
    c = _np(passes.get("confidence"))
    a = _np(passes.get("alpha"))
    if c is not None and a is not None:
        seen = a > 1e-3
        conf["mean_depth_confidence"] = float((c[seen] / a[seen]).mean()) if seen.any() else 0.0
    if reference is not None:
        cosang = float(np.clip(np.dot(reference.forward, camera.forward), -1.0, 1.0))
        conf["view_angle_deg"] = math.degrees(math.acos(cosang))
        conf["baseline_m"] = float(np.linalg.norm(camera.position - reference.position))
    if confidence is not None:
        conf.update(confidence.to_json_dict())
    region_pass = _np(passes.get("region"))
    regs = []
    for r in regions:
        d = r.to_json_dict()
        if region_pass is not None:
            d["visible_px"] = int((region_pass == r.index).sum())
        regs.append(d)
    return {"format": "anchorstage-frame", "format_version": 1, "frame": int(frame), "units": "metres",
            "metric_scale": float(metric_scale), "camera": cam, "regions": regs, "confidence": conf,
            "generation": dict(generation or {})}


def _np(x: Any) -> Optional[np.ndarray]:
    if x is None:
        return None
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "region"


def frame_is_complete(out_dir: str | os.PathLike, frame: int) -> bool:
    """True when frame ``frame`` of an export folder has its metadata and every file it lists."""
    md_path = Path(out_dir) / f"frame_{frame:04d}" / "metadata.json"
    try:
        md = json.loads(md_path.read_text(encoding="utf-8"))
        listed = [v for v in md["files"].values() if isinstance(v, str)]
        listed += list(md["files"].get("region_masks", {}).values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return all((Path(out_dir) / f).is_file() for f in listed)


def _clean_leftovers(out: Path, tag: str) -> None:
    """Remove the temporary files and folders a killed run left for this frame."""
    for p in out.iterdir():
        n = p.name
        if n.startswith(".") and ".tmp" in n and (f".{tag}." in n or n.startswith(f".frame_{tag}.")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _write_frame(out: Path, frame: int, cam: Camera, res: Mapping[str, Any], md: dict[str, Any], naming: str,
                 regions: Sequence[Any]) -> None:
    """Write one frame so that it is complete or absent: the EXRs go to temporary files, the frame
    folder (maps, masks, metadata.json) is committed in one rename, then the EXRs are renamed into
    place; a run killed at any point leaves no EXR without its metadata."""
    tag = f"{frame:04d}"
    _clean_leftovers(out, tag)
    header_meta = {"frame": frame, "metric_scale": md["metric_scale"]}
    if naming == "plain":  # one EXR per pass (colour with alpha)
        groups = [["color", "alpha"] if p == "color" and "alpha" in res else [p] for p in res
                  if p != "alpha" or "color" not in res]
        exrs = {g[0]: (out / f"{g[0]}.{tag}.exr", g) for g in groups}
    else:
        exrs = {"exr": (out / f"render.{tag}.exr", list(res))}
    files: dict[str, Any] = {key: path.name for key, (path, _) in exrs.items()}
    with contextlib.ExitStack() as stack:
        for path, group in exrs.values():
            tmp = stack.enter_context(atomic_file(path, "EXR file"))
            write_exr(tmp, {p: res[p] for p in group}, camera=cam, naming=naming, meta=header_meta)
        fdir = stack.enter_context(atomic_dir(out / f"frame_{tag}", replace=True, what=f"frame {frame} folder"))
        if "void" in res:
            _png(fdir / "void_map.png", (np.asarray(res["void"]) > 0.5).astype(np.uint8) * 255)
            files["void_map"] = f"frame_{tag}/void_map.png"
        if "color" in res:
            _png(fdir / "proxy_render.png", to_uint8_srgb(np.asarray(res["color"])))
            files["proxy_render"] = f"frame_{tag}/proxy_render.png"
        if "region" in res:
            reg = np.asarray(res["region"])
            names = {r.index: _safe(r.id) for r in regions}
            (fdir / "region_masks").mkdir()
            for idx in sorted(set(names) | {int(i) for i in np.unique(reg) if i >= 0}):
                name = names.get(idx, f"region_{idx}")
                _png(fdir / "region_masks" / f"{name}.png", (reg == idx).astype(np.uint8) * 255)
                files.setdefault("region_masks", {})[str(idx)] = f"frame_{tag}/region_masks/{name}.png"
            for d in md["regions"]:
                d["mask"] = files["region_masks"][str(d["index"])]
        md["files"] = files
        (fdir / "metadata.json").write_text(json.dumps(md, indent=2), encoding="utf-8")
        # Leaving the stack commits the frame folder first, then renames the EXRs into place.


def _png(path: Path, a: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(a)).save(path, format="PNG")


def export_frames(
    scene: Any,
    cameras: Union[CameraList, str, os.PathLike],
    out_dir: str | os.PathLike,
    *,
    preset: str = "blender",
    frames: Optional[tuple[int, int]] = None,
    first_frame: int = 1,
    passes: Sequence[str] = PASSES,
    backend: str = "auto",
    device: str = "auto",
    void_threshold: float = DEFAULT_VOID_THRESHOLD,
    generation: Optional[Mapping[str, Any]] = None,
    skip_existing: bool = False,
    progress: Optional[ProgressFn] = None,
    lod: bool = True,
) -> list[dict[str, Any]]:
    """Render and export a camera sequence (or one camera) of a scene.

    Args:
        scene: a :class:`~anchorstage.scene.Scene` (splats, regions, reference camera, meta).
        cameras: a Camera, a list of Cameras (numbered from ``first_frame``), a list of
            (frame, Camera), or a camera-list JSON path (:func:`load_camera_list`).
        out_dir: output folder (created).
        preset: ``"blender"``, ``"nuke"`` or ``"after-effects"``.
        frames: optional inclusive (first, last) frame-number chunk to export.
        first_frame: number of the first camera when the list carries no frame numbers.
        passes: passes to render (all by default; masks and maps need region / void).
        backend: render backend (``"auto"``, ``"torch"``, ``"gsplat"``).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        void_threshold: alpha below which a pixel is void.
        generation: generation parameters recorded in each frame's metadata.
        skip_existing: leave frames that are already complete in ``out_dir``
            (:func:`frame_is_complete`) as they are, so a re-run of a farm chunk renders only
            what an earlier, interrupted run did not finish.
        progress: optional progress callback.
        lod: render big scenes through their level-of-detail hierarchy (:func:`anchorstage.stages.render_frame`);
            False renders every splat exactly.

    Returns:
        Each exported frame's metadata (as written to its metadata.json, with ``files``); frames
        skipped as complete are not in the list.

    Raises:
        InputError: unknown preset, no frames in the chunk, bad cameras or passes.
        OutputError: the output folder cannot be written.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise InputError(f"export: preset must be one of {', '.join(PRESETS)} (got {preset!r})")
    for name in ("splats", "camera"):
        if not hasattr(scene, name):
            raise InputError(f"export: scene must be a Scene (with splats and a camera), got {type(scene).__name__}")
    out_dir = path_arg(out_dir, "export: out_dir")
    passes = check_passes(passes)
    numbered = _numbered(cameras, first_frame)
    if frames is not None:
        if isinstance(frames, str):
            frames = parse_frame_range(frames)
        if not (isinstance(frames, (tuple, list)) and len(frames) == 2
                and all(isinstance(f, (int, np.integer)) and not isinstance(f, bool) for f in frames)):
            raise InputError(f"export: frames must be (first, last) integers or a range like '10-19' (got {frames!r})")
        lo, hi = frames
        numbered = [(f, c) for f, c in numbered if lo <= f <= hi]
        if not numbered:
            raise InputError(f"export: no frames in the chunk {lo}-{hi}")
    out = ensure_writable_dir(out_dir, "export folder")
    if skip_existing:
        numbered = [(f, c) for f, c in numbered if not frame_is_complete(out, f)]
    splats, regions = scene.splats, list(getattr(scene, "regions", []) or [])
    meta = dict(getattr(scene, "meta", {}) or {})
    naming = _NAMING[preset]
    results = []
    if not isinstance(lod, (bool, np.bool_)):
        raise InputError(f"export: lod must be True or False (got {lod!r})")
    from .lod import tree_for

    tree = tree_for(scene) if lod else None
    for k, (frame, cam) in enumerate(numbered):
        step = scaled(progress, k / len(numbered), (k + 1) / len(numbered))
        report(step, 0.0, f"frame {frame}: render")
        from .renderer import render

        res = render(splats, cam, passes, backend=backend, device=device, void_threshold=void_threshold, lod=tree)
        res = {name: t.detach().cpu().numpy() for name, t in res.items()}
        conf = None
        if getattr(scene, "depth_m", None) is not None:  # a stage with its witness: void and confidence from it
            from .confidence import from_warp
            from .witness import warp_witness

            warp = warp_witness(scene, cam, backend=backend, device=device)
            conf = from_warp(warp)
            if "void" in res:
                res["void"] = warp.void.astype(np.float32)
        report(step, 0.6, f"frame {frame}: write")
        md = frame_metadata(frame, cam, res, regions=regions, metric_scale=meta.get("metric_scale", 1.0),
                            reference=getattr(scene, "camera", None), generation=generation, confidence=conf)
        md.update({"preset": preset, "passes": list(res), "render": {"backend": backend, "void_threshold": void_threshold}})
        _write_frame(out, frame, cam, res, md, naming, regions)
        results.append(md)
        report(step, 1.0, f"frame {frame}: done")
    return results
