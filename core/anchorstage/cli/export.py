# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage export``: render a camera sequence to EXRs, masks, maps and metadata for compositing."""

from __future__ import annotations

import argparse

from ._common import add_backend_arg, add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    from ..export import PRESETS
    from ..passes import PASSES

    p = sub.add_parser(
        "export", help="export frames (EXR, void map, region masks, proxy, metadata) for Blender / Nuke / After Effects",
        description="Render SCENE_DIR from each camera of a sequence and write, per frame, a multilayer EXR (or one "
                    "EXR per pass for After Effects), void_map.png, region_masks/, proxy_render.png and "
                    "metadata.json. See docs/compositing_workflows.md.")
    p.add_argument("scene", metavar="SCENE_DIR", help="scene folder written by 'anchorstage reconstruct'")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cameras", metavar="CAMERAS.json", help="camera list: JSON list of camera objects (optional \"frame\" each)")
    src.add_argument("--camera", metavar="CAMERA.json", help="a single camera JSON")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--preset", choices=PRESETS, default="blender", help="file layout for the target application")
    p.add_argument("--frames", metavar="A-B", help="only this inclusive frame chunk, e.g. 10-19 (render-farm split)")
    p.add_argument("--first-frame", type=int, default=1, metavar="N", help="number of the first camera when the list has no frame numbers")
    p.add_argument("--passes", default=",".join(PASSES), metavar="LIST", help="comma-separated passes (default: all)")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave frames already complete in --out as they are (resume an interrupted farm chunk)")
    add_backend_arg(p)
    add_device_arg(p)
    p.add_argument("--no-lod", action="store_true", help="render every splat exactly (no level of detail for big scenes; see docs/scale.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..export import export_frames, frame_is_complete, parse_frame_range
    from ..progress import cli_progress
    from ..passes import check_passes
    from ..scene import load_scene

    frames = parse_frame_range(args.frames) if args.frames is not None else None
    passes = check_passes(args.passes, "--passes")
    cameras = args.cameras if args.cameras else [(args.first_frame, load_camera_json(args.camera))]
    scene = load_scene(args.scene)
    kept = []
    if args.skip_existing and frames is not None:
        kept = [f for f in range(frames[0], frames[1] + 1) if frame_is_complete(args.out, f)]
    with cli_progress("export", enabled=progress_enabled()) as bar:
        done = export_frames(scene, cameras, args.out, preset=args.preset, frames=frames, first_frame=args.first_frame,
                             passes=passes, backend=args.backend, device=args.device, skip_existing=args.skip_existing,
                             progress=bar, lod=not args.no_lod)
    if not done:
        print(f"{args.out}: every frame{f' of {args.frames}' if frames else ''} is already complete, nothing to do")
        return 0
    first, last = done[0]["frame"], done[-1]["frame"]
    note = f" ({len(kept)} already complete, kept)" if kept else ""
    print(f"{args.out}: {len(done)} frame(s) {first}-{last}, preset {args.preset}{note}")
    return 0
