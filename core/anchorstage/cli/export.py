# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage export``: render a camera sequence to EXRs, masks, maps and metadata for compositing."""

from __future__ import annotations

import argparse

from ._common import add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    from ..export import PRESETS
    from ..renderer import BACKENDS, PASSES

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
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..export import export_frames, parse_frame_range
    from ..progress import cli_progress
    from ..renderer import check_passes
    from ..scene import load_scene

    frames = parse_frame_range(args.frames) if args.frames else None
    passes = check_passes(args.passes)
    cameras = args.cameras if args.cameras else [(args.first_frame, load_camera_json(args.camera))]
    scene = load_scene(args.scene)
    with cli_progress("export", enabled=progress_enabled()) as bar:
        done = export_frames(scene, cameras, args.out, preset=args.preset, frames=frames, first_frame=args.first_frame,
                             passes=passes, backend=args.backend, device=args.device, progress=bar)
    first, last = done[0]["frame"], done[-1]["frame"]
    print(f"{args.out}: {len(done)} frame(s) {first}-{last}, preset {args.preset}")
    return 0
