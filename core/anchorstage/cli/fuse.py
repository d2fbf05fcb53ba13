# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage fuse``: a capture folder of posed product views → one fused scene folder."""

from __future__ import annotations

import argparse

from ._common import add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fuse", help="capture folder of posed views → one fused metric splat scene",
        description="Fuse the views of CAPTURE_DIR (NAME.png|jpg, RGBA or with NAME_mask.png, each with "
                    "NAME_camera.json and optionally NAME_depth.npy|exr) into one scene folder: each view regressed "
                    "and placed by its camera, no duplicated surfaces, background dropped, colours fitted across all "
                    "views. See docs/multiview.md.")
    p.add_argument("capture", metavar="CAPTURE_DIR", help="the capture folder")
    p.add_argument("--out", required=True, metavar="SCENE_DIR", help="scene folder to write")
    p.add_argument("--depth-model", metavar="ID_OR_PATH", help="depth model for views without a depth file")
    p.add_argument("--mask-model", metavar="ID_OR_PATH", help="segmentation model for views without alpha or mask file")
    p.add_argument("--max-splats-per-view", type=int, metavar="N", help="splat budget per view (default by pixel count)")
    p.add_argument("--no-color-fit", action="store_true", help="keep each splat's pixel colour")
    add_device_arg(p)
    p.add_argument("--force", action="store_true", help="replace SCENE_DIR if it already holds a scene")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..progress import cli_progress
    from ..scene import check_scene_target, save_scene
    from ..stages import fuse_capture

    out = check_scene_target(args.out, args.force)
    if args.max_splats_per_view is not None and args.max_splats_per_view < 1:
        raise InputError(f"--max-splats-per-view must be a positive integer (got {args.max_splats_per_view})")
    with cli_progress("fuse", enabled=progress_enabled()) as bar:
        scene = fuse_capture(args.capture, depth_model=args.depth_model, mask_model=args.mask_model,
                             max_splats_per_view=args.max_splats_per_view, fit_colors=not args.no_color_fit,
                             device=args.device, progress=bar)
        save_scene(scene, out, force=args.force)
    views = scene.meta["fusion"]["views"]
    dropped = sum(v["dropped_empty_space"] + v["dropped_duplicates"] for v in views)
    print(f"{out}: {len(scene.splats)} splats fused from {len(views)} views ({dropped} duplicate or empty-space "
          f"splats dropped)")
    return 0
