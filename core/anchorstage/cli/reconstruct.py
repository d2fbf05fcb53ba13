# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage reconstruct``: one photo (+ optional metric depth) → a scene folder of splats."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np

from ..camera import Camera
from ..errors import InputError, OutputError
from ._common import add_camera_args, add_device_arg, camera_from_args, progress_enabled


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


def _check_out(out: Path, force: bool) -> None:
    """Fail before any heavy work when the output folder cannot take a scene."""
    from ..scene import is_scene_dir

    if out.exists():
        if not out.is_dir():
            raise OutputError(f"scene folder {str(out)!r} exists and is not a folder")
        if any(out.iterdir()) and not is_scene_dir(out):
            raise OutputError(f"scene folder {str(out)!r} is not empty and holds no AnchorStage scene; "
                              "refusing to write into it (choose another folder)")
        if is_scene_dir(out) and not force:
            raise OutputError(f"scene folder {str(out)!r} already holds a scene; use --force to replace it")
    # The scene is written beside its final place: the nearest existing ancestor must take new folders.
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"scene folder {str(out)!r} cannot be created: {str(parent)!r} is not a writable folder")


def run(args: argparse.Namespace) -> int:
    from ..depth_io import DEFAULT_FAR_LIMIT_M, load_depth
    from ..image_io import load_image
    from ..progress import cli_progress, scaled
    from ..regression import reconstruct
    from ..scene import save_scene

    out = Path(args.out)
    _check_out(out, args.force)
    if args.lens_mm is not None and args.lens_mm <= 0:
        raise InputError(f"--lens-mm must be > 0 (got {args.lens_mm:g})")
    if args.sensor_mm is not None and args.sensor_mm <= 0:
        raise InputError(f"--sensor-mm must be > 0 (got {args.sensor_mm:g})")
    if args.max_splats is not None and args.max_splats < 1:
        raise InputError(f"--max-splats must be a positive integer (got {args.max_splats})")
    if args.depth and args.depth_model:
        raise InputError("give either --depth or --depth-model, not both")
    far = DEFAULT_FAR_LIMIT_M if args.far_limit is None else args.far_limit
    if not far > 0:
        raise InputError(f"--far-limit must be > 0 metres (got {args.far_limit})")

    image = load_image(args.image)
    camera = camera_from_args(args, (image.width, image.height))
    meta: dict = {"source_image": str(Path(args.image).name), "notes": list(image.notes)}
    guessed_intrinsics = False
    if camera is not None:
        meta["intrinsics_source"] = "camera file" if args.camera else "command line (--lens-mm/--sensor-mm)"
    else:
        from ..exif import read_intrinsics

        intr = read_intrinsics(image)
        camera = intr.camera(image.width, image.height)
        meta["intrinsics_source"] = intr.source
        meta["intrinsics"] = intr.to_json_dict()
        guessed_intrinsics = intr.source == "default"

    with cli_progress("reconstruct", enabled=progress_enabled()) as bar:
        confidence = None
        if args.depth:
            depth, notes = load_depth(args.depth, expected_hw=(image.height, image.width), far_limit_m=far)
            meta["depth_source"] = f"file {Path(args.depth).name}"
            meta["notes"] += notes
            regress = bar
        else:
            from ..depth import DEFAULT_DEPTH_MODEL, estimate_depth

            model = args.depth_model or DEFAULT_DEPTH_MODEL
            # With no focal length from EXIF, let a model that estimates the field of view (Depth Pro) use its own.
            est = estimate_depth(image, None if guessed_intrinsics else camera, model=model, device=args.device,
                                 progress=scaled(bar, 0.0, 0.7))
            depth, confidence = est.depth_m, est.confidence
            if guessed_intrinsics and est.fov_x_deg is not None:
                camera = camera_from_fov(camera, est.fov_x_deg)
                meta["intrinsics_source"] = f"field of view estimated by {est.model}"
            meta["depth_source"] = f"model {est.model}"
            meta["notes"] += list(est.notes)
            regress = scaled(bar, 0.7, 0.95)
        scene = reconstruct(image, depth, camera, max_splats=args.max_splats, confidence=confidence, far_limit_m=far,
                            second_layer=not args.no_second_layer, fit_colors=not args.no_color_fit, device=args.device,
                            progress=regress, meta=meta)
        if not args.no_regions:
            from ..segmentation import segment

            segment(scene)
        save_scene(scene, out, force=args.force)
        bar(1.0, "saved")
    regions = ", ".join(r.id for r in scene.regions) or "none"
    print(f"{out}: {len(scene.splats)} splats from {scene.width}x{scene.height} "
          f"(intrinsics: {scene.meta['intrinsics_source']}; depth: {scene.meta['depth_source']}; regions: {regions})")
    return 0


def camera_from_fov(camera: Camera, fov_x_deg: float) -> Camera:
    """``camera`` with the focal length that gives a horizontal field of view of ``fov_x_deg``."""
    if not 0.0 < fov_x_deg < 180.0:
        raise InputError(f"depth model returned an impossible field of view ({fov_x_deg:g} degrees)")
    f_px = camera.width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    K = np.array([[f_px, 0.0, camera.width / 2.0], [0.0, f_px, camera.height / 2.0], [0.0, 0.0, 1.0]])
    return Camera.from_K(K, camera.width, camera.height, camera.world_from_cam, camera.sensor_width_mm)
