# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage reconstruct``: one photo (+ optional metric depth) → a scene folder of splats."""

from __future__ import annotations

import argparse
import math

from ._common import add_camera_args, add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct", help="photo (+ metric depth) → metric Gaussian-splat scene folder",
        description="Back-project a photo with metric depth into 3D Gaussian splats and write a scene folder "
                    "(scene.json, splats.ply, image, depth). Without --depth, depth is estimated with a metric "
                    "depth model; without --camera/--lens-mm, intrinsics come from the photo's EXIF (or a "
                    "documented default). See docs/reconstruction.md.")
    p.add_argument("image", metavar="IMAGE", help="the photo (PNG, JPEG, EXR, ...)")
    p.add_argument("--out", required=True, metavar="SCENE_DIR", help="scene folder to write")
    p.add_argument("--depth", metavar="FILE", help="metric depth: .npy / .exr (metres) or 16-bit .png (millimetres)")
    add_camera_args(p)
    p.add_argument("--max-splats", type=int, metavar="N", help="splat budget (default ≈ 1M for a 1080p photo)")
    p.add_argument("--far-limit", type=float, metavar="M", help="depth beyond this many metres is sky (default 1000)")
    p.add_argument("--no-second-layer", action="store_true", help="no background splats behind depth edges")
    p.add_argument("--no-color-fit", action="store_true",
                   help="keep each splat's pixel colour instead of fitting colours so the photo's own view reproduces it")
    p.add_argument("--depth-model", metavar="ID_OR_PATH", help="depth model hub id, alias or local folder (without --depth)")
    p.add_argument("--no-regions", action="store_true", help="skip region segmentation (sky/ground/facades/objects)")
    add_device_arg(p)
    p.add_argument("--force", action="store_true", help="replace SCENE_DIR if it already holds a scene")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..progress import cli_progress, scaled
    from ..scene import check_scene_target, save_scene
    from ..stages import build_stage, load_photo, metric_depth

    # Everything that can be checked is checked before the slow work.
    out = check_scene_target(args.out, args.force)
    for opt, value in (("--lens-mm", args.lens_mm), ("--sensor-mm", args.sensor_mm)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise InputError(f"{opt} must be > 0 (got {value:g})")
    if args.max_splats is not None and args.max_splats < 1:
        raise InputError(f"--max-splats must be a positive integer (got {args.max_splats})")
    if args.far_limit is not None and not (math.isfinite(args.far_limit) and args.far_limit > 0):
        raise InputError(f"--far-limit must be > 0 metres (got {args.far_limit})")
    if args.depth and args.depth_model:
        raise InputError("give either --depth or --depth-model, not both")
    if args.camera and (args.lens_mm is not None or args.sensor_mm is not None):
        raise InputError("give either --camera or --lens-mm/--sensor-mm, not both")

    with cli_progress("reconstruct", enabled=progress_enabled()) as bar:
        photo = load_photo(args.image, camera=args.camera, lens_mm=args.lens_mm, sensor_mm=args.sensor_mm)
        depth = metric_depth(photo, depth_file=args.depth, model=args.depth_model, far_limit_m=args.far_limit,
                             device=args.device, progress=scaled(bar, 0.0, 0.6))
        scene = build_stage(photo, depth, max_splats=args.max_splats, second_layer=not args.no_second_layer,
                            fit_colors=not args.no_color_fit, far_limit_m=args.far_limit, regions=not args.no_regions,
                            device=args.device, progress=scaled(bar, 0.6, 0.95))
        save_scene(scene, out, force=args.force)
        bar(1.0, "saved")
    regions = ", ".join(r.id for r in scene.regions) or "none"
    print(f"{out}: {len(scene.splats)} splats from {scene.width}x{scene.height} "
          f"(intrinsics: {scene.meta['intrinsics_source']}; depth: {scene.meta['depth_source']}; regions: {regions})")
    return 0
