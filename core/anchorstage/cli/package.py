# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage package``: one product photo → a package folder (mask, metric depth, CLIP embedding, camera)."""

from __future__ import annotations

import argparse

from ._common import add_camera_args, add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "package", help="product photo → package folder (mask, metric depth, identity embedding, camera)",
        description="Package one product photo: its foreground mask (an RGBA photo's alpha; else --mask-model, a "
                    "transformers segmentation model; else a depth-based fallback that needs no weights), metric depth, "
                    "a CLIP identity embedding (when the model's weights are on this machine) and the camera, in a "
                    "folder with manifest.json. See docs/multiview.md.")
    p.add_argument("image", metavar="PHOTO", help="the product photo (RGBA PNG, or any photo)")
    p.add_argument("--out", required=True, metavar="PKG_DIR", help="package folder to write")
    p.add_argument("--depth", metavar="FILE", help="metric depth: .npy / .exr (metres) or 16-bit .png (millimetres)")
    add_camera_args(p)
    p.add_argument("--depth-model", metavar="ID_OR_PATH", help="depth model (without --depth)")
    p.add_argument("--mask-model", metavar="ID_OR_PATH", help="transformers segmentation model for a photo without alpha")
    p.add_argument("--identity-model", metavar="ID_OR_PATH",
                   help="CLIP model id or folder for the identity embedding (default: $ANCHORSTAGE_IDENTITY_MODEL or "
                        "openai/clip-vit-base-patch32, from the local cache only)")
    add_device_arg(p)
    p.add_argument("--force", action="store_true", help="replace PKG_DIR if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_new_dir
    from ..errors import InputError
    from ..stages import load_photo, metric_depth, package_product

    if args.depth and args.depth_model:
        raise InputError("give either --depth or --depth-model, not both")
    check_new_dir(args.out, args.force, "package folder")  # before the depth model runs
    photo = load_photo(args.image, camera=args.camera, lens_mm=args.lens_mm, sensor_mm=args.sensor_mm)
    depth = metric_depth(photo, depth_file=args.depth, model=args.depth_model, device=args.device)
    m = package_product(photo, depth, args.out, mask_model=args.mask_model, identity_model=args.identity_model,
                        device=args.device, force=args.force)
    ident = f"identity {m['identity']['model']} ({m['identity']['dim']}-d)" if m["identity"]["model"] else \
        f"identity embedding left out: {m['identity']['unavailable']}"
    print(f"{args.out}: mask from {m['mask_source']} ({m['mask_coverage']:.1%} of the photo), depth {m['depth_source']}, "
          f"{ident}")
    return 0
