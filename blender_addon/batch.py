# SPDX-License-Identifier: GPL-3.0-or-later
"""Headless batch: build a stage from a photo (or use the opened .blend's), animate the camera, and
render a frame range with the ANCHORSTAGE engine into a multilayer EXR sequence.

Entry points (see docs/headless.md)::

    blender -b --python scripts/blender_batch.py -- --image photo.jpg --out renders/ --frames 1-24
    blender -b stage.blend --python scripts/blender_batch.py -- --out renders/ --frames 25-48
    python scripts/blender_batch.py --image photo.jpg ...      # with the bpy module

and from Python: ``bl_ext.user_default.anchorstage.batch.main([...])`` (returns an exit code).
Frame ranges (``--frames A-B``) let a farm manager (Flamenco, Deadline) split one shot into chunks;
each chunk writes only its own frames, named ``frame_####.exr``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

import bpy

def _moves() -> tuple[str, ...]:
    from anchorstage.camera import MOVES

    return (*(m for m, (unit, _) in MOVES.items() if unit in ("m", "deg")), "turntable", "none")


class BatchError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blender_batch", description=__doc__.split("\n\n")[0])
    p.add_argument("--image", help="photo to build a new stage from (default: use the opened .blend's stage)")
    p.add_argument("--depth", default="", help="depth map for the photo (.npy/.exr metres, 16-bit .png mm); default: estimate")
    p.add_argument("--camera-json", default="", help="camera file of the photo; default: EXIF")
    p.add_argument("--move", choices=_moves(), default="orbit",
                   help="camera animation to create with --image (default orbit; turntable: a camera turning about "
                        "the product's centre, see docs/video.md)")
    p.add_argument("--amount", type=float, default=None,
                   help="total move over the shot: degrees (orbit, pan, tilt, roll, turntable) or metres (dolly, truck, "
                        "pedestal); default 20 degrees / 1 m, 360 degrees for a turntable")
    p.add_argument("--pivot-distance", type=float, default=5.0, help="orbit pivot distance ahead of the camera, metres")
    p.add_argument("--frame-start", type=int, default=None, help="first frame of the shot (default: the scene's)")
    p.add_argument("--frame-end", type=int, default=None, help="last frame of the shot (default: the scene's)")
    p.add_argument("--frames", default=None, help="render only this chunk, e.g. 25-48 (default: the whole shot)")
    p.add_argument("--out", required=True, help="output folder; frames are written as frame_####.exr")
    p.add_argument("--resolution-percentage", type=int, default=None)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--save-blend", default=None, help="save the prepared .blend (for `blender -b file.blend -a` later)")
    p.add_argument("--no-render", action="store_true", help="prepare (and save) only")
    p.add_argument("--skip-existing", action="store_true",
                   help="resumable farm chunk: keep frames already written, write each frame to a temporary name "
                        "and rename it into place (see farm.py)")
    return p


def animate_camera(scene, move: str, amount: float, frame_start: int, frame_end: int, pivot_distance: float = 5.0) -> None:
    """Keyframe the scene camera on every frame of the shot along a core camera path (exact arcs for
    orbits, not chords)."""
    from anchorstage.camera import camera_path

    from .boundary import camera_from_blender
    from .operators import apply_pose, keyframe_pose

    cam_obj = scene.camera
    if cam_obj is None:
        raise BatchError("the scene has no camera to animate")
    scene.frame_set(frame_start)
    base = camera_from_blender(cam_obj, scene)
    path = camera_path(base, move, 0.0, amount, frame_end - frame_start + 1,
                       pivot=base.position + pivot_distance * base.forward)
    for f, cam in enumerate(path, start=frame_start):
        apply_pose(cam_obj, cam)
        keyframe_pose(cam_obj, frame=f)
    scene.frame_set(frame_start)


def _op(call, what: str):
    try:
        result = call()
    except RuntimeError as e:  # an operator's ERROR report
        raise BatchError(f"{what}: {str(e).strip()}") from None
    if result != {"FINISHED"}:
        raise BatchError(f"{what} did not finish ({result})")


def run(args: argparse.Namespace) -> list[str]:
    """Do the work; returns the files written. Raises BatchError with a message."""
    from anchorstage.camera import MOVES

    from .compat import set_multilayer_exr
    from .preferences import get_prefs
    from .splat_object import splat_objects

    scene = bpy.context.scene
    from anchorstage.export import parse_frame_range

    chunk = parse_frame_range(args.frames) if args.frames else None  # bad ranges fail before any work
    if args.device:
        prefs = get_prefs()
        if prefs is not None:
            prefs.device = args.device.upper()
    if args.frame_start is not None:
        scene.frame_start = args.frame_start
    if args.frame_end is not None:
        scene.frame_end = args.frame_end
    if scene.frame_end < scene.frame_start:
        raise BatchError(f"frame range {scene.frame_start}-{scene.frame_end} is empty")
    if args.image:
        _op(lambda: bpy.ops.anchorstage.new_stage(image_path=os.path.abspath(args.image),
                                                  depth_path=os.path.abspath(args.depth) if args.depth else "",
                                                  camera_json=os.path.abspath(args.camera_json) if args.camera_json else ""),
            "new stage")
        _op(lambda: bpy.ops.anchorstage.execute(), "execute")
        if args.move == "turntable":
            first, frames = scene.frame_start, scene.frame_end - scene.frame_start + 1
            _op(lambda: bpy.ops.anchorstage.turntable_setup(frames=frames, frame_start=first,
                                                           sweep=360.0 if args.amount is None else args.amount),
                "turntable camera")
        elif args.move != "none":
            amount = args.amount if args.amount is not None else (1.0 if MOVES[args.move][0] == "m" else 20.0)
            animate_camera(scene, args.move, amount, scene.frame_start, scene.frame_end, args.pivot_distance)
    elif not splat_objects(scene):
        if scene.anchorstage.tree is None:
            raise BatchError("no --image given and the opened file has no AnchorStage stage")
        _op(lambda: bpy.ops.anchorstage.execute(), "execute")
    if args.resolution_percentage:
        scene.render.resolution_percentage = args.resolution_percentage
    scene.render.engine = "ANCHORSTAGE"
    set_multilayer_exr(scene.render.image_settings)
    scene.render.use_file_extension = True
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise BatchError(f"output folder {out!r} is not writable")
    scene.render.filepath = os.path.join(out, "frame_####")
    if args.save_blend:
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.save_blend), copy=True)
        print(f"AnchorStage batch: saved {os.path.abspath(args.save_blend)}", flush=True)
    if args.no_render:
        return []
    first, last = chunk or (scene.frame_start, scene.frame_end)
    shot = (scene.frame_start, scene.frame_end)
    written = []
    if args.skip_existing:
        from .farm import render_chunk

        try:
            done, kept = render_chunk(scene, first, last)
        except RuntimeError as e:
            raise BatchError(f"render frames {first}-{last}: {str(e).strip()}") from None
        if kept:
            print(f"AnchorStage batch: kept {len(kept)} complete frame(s): {', '.join(map(str, kept))}", flush=True)
        return done
    try:
        scene.frame_start, scene.frame_end = first, last
        _op(lambda: bpy.ops.render.render(animation=True), f"render frames {first}-{last}")
    finally:
        scene.frame_start, scene.frame_end = shot
    for f in range(first, last + 1):
        path = scene.render.frame_path(frame=f)
        if not os.path.isfile(path):
            raise BatchError(f"frame {f} was not written ({path})")
        written.append(path)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry; returns an exit code as the ``anchorstage`` CLI: 0 ok, 2 bad input or usage
    (one line), 1 an internal error (one line naming the log file with its traceback)."""
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    from anchorstage import AnchorStageError
    from anchorstage.errors import report_bug

    try:
        written = run(args)
    except (BatchError, AnchorStageError) as e:
        print(f"AnchorStage batch: error: {e}", file=sys.stderr, flush=True)
        return 2
    except Exception as e:  # noqa: BLE001 - the farm log gets one line; the traceback goes to a log file
        print(f"AnchorStage batch: {report_bug(e, 'the AnchorStage batch')}", file=sys.stderr, flush=True)
        return 1
    for p in written:
        print(f"AnchorStage batch: wrote {p}", flush=True)
    return 0
