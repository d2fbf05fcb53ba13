# SPDX-License-Identifier: GPL-3.0-or-later
"""The main job on the bundled sample, composed from the stage layer.

Reconstruct the sample photo with its metric depth, segment it into regions, render a metric
camera move (an orbit about the subject, then a dolly towards it) to multilayer EXRs with void
maps, region masks and metadata, refresh the witness for every camera of the move (classical
inpainting, no weights) into ``refresh/frame_NNNN/``, encode the refreshed frames as
``camera_move.mp4`` (H.264, :mod:`anchorstage.video`) and write ``contact_sheet.png``: one row per
frame, raw render, void, refreshed witness and confidence side by side (then depth and regions).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .camera import Camera, camera_path
from .errors import InputError, OutputError
from .progress import ProgressFn, report, scaled

__all__ = ["find_sample", "demo_move", "run_demo", "DemoResult"]

#: Where the sample lives: beside the package when installed with its data, else the checkout.
_SAMPLE_CANDIDATES = (
    Path(__file__).resolve().parent / "data" / "sample",
    Path(__file__).resolve().parents[2] / "sample",
)
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".heic")
_DEPTH_EXT = (".npy", ".exr", ".png")


@dataclass
class DemoResult:
    """What :func:`run_demo` made: the scene's splat count, the frames' metadata, the move, the sheet,
    each frame's refresh confidence (value and level), and the MP4 of the move."""

    splat_count: int
    frames: list[dict]
    orbit_deg: float
    dolly_m: float
    contact_sheet: Path
    refresh: list[dict]
    video: Path


def find_sample(explicit: Optional[str] = None) -> dict[str, Path]:
    """The sample's photo, depth and camera files.

    Raises:
        InputError: no sample folder, or one without the three files.
    """
    env = os.environ.get("ANCHORSTAGE_SAMPLE")
    dirs = [Path(explicit)] if explicit else ([Path(env)] if env else list(_SAMPLE_CANDIDATES))
    for d in dirs:
        if not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.is_file())
        depth = [p for p in files if "depth" in p.stem.lower() and p.suffix.lower() in _DEPTH_EXT]
        image = [p for p in files if "depth" not in p.stem.lower() and p.suffix.lower() in _IMAGE_EXT]
        camera = [p for p in files if p.suffix.lower() == ".json" and "camera" in p.stem.lower()] or \
                 [p for p in files if p.suffix.lower() == ".json"]
        if depth and image and camera:
            return {"image": image[0], "depth": depth[0], "camera": camera[0], "dir": d}
        raise InputError(f"sample folder {str(d)!r} must hold a photo, a *depth* map (.npy/.exr/.png) and a camera "
                         f"JSON (found {', '.join(p.name for p in files) or 'nothing'})")
    raise InputError("the bundled sample was not found (looked in " + ", ".join(str(d) for d in dirs) +
                     "); run from a checkout of the repository, or pass --sample DIR / set ANCHORSTAGE_SAMPLE")


def demo_move(reference: Camera, pivot_distance_m: float, frames: int, orbit_deg: float, dolly_m: float) -> list[Camera]:
    """Orbit about a pivot on the view axis, then dolly towards it (metres, degrees).

    Returns:
        [frames] cameras: the first half orbits from -orbit/2 to +orbit/2 about the pivot
        ``pivot_distance_m`` ahead of the reference; the second half dollies forward from
        the reference pose by up to ``dolly_m``.
    """
    pivot = reference.position + pivot_distance_m * reference.forward
    n_orbit = max(1, frames // 2)
    n_dolly = frames - n_orbit
    cams = camera_path(reference, "orbit", -orbit_deg / 2, orbit_deg / 2, n_orbit, pivot=pivot)
    if n_dolly:
        cams += camera_path(reference, "dolly", dolly_m / n_dolly, dolly_m, n_dolly)
    return cams


def run_demo(out: str | os.PathLike, *, sample: Optional[str] = None, frames: int = 12, orbit_deg: float = 12.0,
             dolly_m: Optional[float] = None, backend: str = "auto", device: str = "auto", force: bool = False,
             video_fps: float = 12.0, progress: Optional[ProgressFn] = None) -> DemoResult:
    """Run the main job on a sample folder (photo, metric depth, camera JSON) into ``out``.

    Args:
        out: output folder: ``scene/``, ``frames/``, ``refresh/``, ``contact_sheet.png`` and
            ``camera_move.mp4`` (the refreshed witness along the move, H.264).
        sample: the sample folder (default: the bundled one, or ``$ANCHORSTAGE_SAMPLE``).
        frames: frames in the move (≥ 2: half orbit, half dolly).
        orbit_deg: orbit sweep, degrees.
        dolly_m: dolly distance, metres (default: 25 % of the distance to the subject).
        backend: render backend.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        force: replace the scene and frames of an earlier run in ``out``.
        video_fps: frames per second of ``camera_move.mp4``.
        progress: optional progress callback.

    Raises:
        InputError: bad arguments or sample, checked before anything is written.
        OutputError: ``out`` already holds a demo (without ``force``) or cannot be written.
    """
    from .export import export_frames
    from .exr import read_exr
    from .preview import contact_sheet
    from .confidence import overlay
    from .image_io import linear_to_srgb
    from .scene import is_scene_dir, save_scene
    from .stages import build_stage, depth_from_file, load_photo, refresh
    from .video import check_fps, write_clip
    from .witness import save_refresh

    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise InputError(f"demo: frames must be at least 2 (got {frames!r})")
    if not math.isfinite(orbit_deg) or abs(orbit_deg) >= 360:
        raise InputError(f"demo: orbit must be a finite number of degrees below 360 (got {orbit_deg!r})")
    if dolly_m is not None and not math.isfinite(dolly_m):
        raise InputError(f"demo: dolly must be a finite number of metres (got {dolly_m!r})")
    check_fps(video_fps, "demo")
    files = find_sample(sample)
    out = Path(out)
    if not force:
        for what, p in (("scene", out / "scene"), ("frames", out / "frames"), ("refreshed frames", out / "refresh")):
            if (p.is_dir() and any(p.iterdir())) or (p.exists() and not p.is_dir()):
                raise OutputError(f"demo: {str(p)!r} already holds {'a scene' if is_scene_dir(p) else what}; "
                                  "use --force (force=True) to replace an earlier demo")
    report(progress, 0.0, "load sample")
    photo = load_photo(files["image"], camera=files["camera"])
    depth = depth_from_file(files["depth"], photo)
    scene = build_stage(photo, depth, device=device, progress=scaled(progress, 0.02, 0.35))
    save_scene(scene, out / "scene", force=force)
    finite = depth.depth_m[np.isfinite(depth.depth_m)]
    subject = float(np.median(finite)) if finite.size else 5.0
    dolly = 0.25 * subject if dolly_m is None else float(dolly_m)
    cams = demo_move(scene.camera, subject, frames, orbit_deg, dolly)
    records = export_frames(scene, cams, out / "frames", preset="blender", backend=backend, device=device,
                            generation={"move": f"orbit {orbit_deg:g} deg about {subject:.2f} m, dolly {dolly:.2f} m"},
                            progress=scaled(progress, 0.35, 0.8))
    picks = sorted({0, len(records) // 2 - 1, len(records) // 2, len(records) - 1})
    refreshed, rows = [], []
    # the clip's frames: H.264 in yuv420p needs even sides, so an odd sample loses its last row / column
    even_w, even_h = scene.camera.width // 2 * 2, scene.camera.height // 2 * 2

    def refreshed_frames():
        for k, (rec, cam) in enumerate(zip(records, cams)):
            report(progress, 0.8 + 0.15 * k / len(cams), f"refresh frame {rec['frame']}")
            res = refresh(scene, cam, device=device, backend=backend)
            save_refresh(res, out / "refresh" / f"frame_{rec['frame']:04d}")
            refreshed.append({"frame": rec["frame"], **res.confidence.to_json_dict()})
            if k in picks:
                passes = read_exr(out / "frames" / rec["files"]["exr"])
                passes["refreshed"] = linear_to_srgb(res.witness)
                passes["refresh_confidence"] = overlay(res.witness, res.confidence.map, res.void)
                rows.append((f"#{rec['frame']}", passes))
            yield res.witness[:even_h, :even_w]

    clip = write_clip(refreshed_frames(), out / "camera_move.mp4", even_w, even_h, fps=video_fps)
    report(progress, 0.95, "contact sheet")
    sheet = contact_sheet(rows, out / "contact_sheet.png",
                          columns=("color", "void", "refreshed", "refresh_confidence", "depth", "region"))
    report(progress, 1.0, "done")
    return DemoResult(len(scene.splats), records, orbit_deg, dolly, sheet, refreshed, clip.path)
