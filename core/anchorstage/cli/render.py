# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage render``: render a scene folder (or a splat file) from a camera into one multilayer EXR."""

from __future__ import annotations

import argparse
import time

from ._common import add_backend_arg, add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    from ..passes import PASSES

    p = sub.add_parser(
        "render", help="render a scene from a camera into a multilayer EXR (Blender pass names)",
        description="Render the splats of SCENE_DIR from CAMERA.json into one multilayer EXR whose channels use "
                    "Blender's names (ViewLayer.Combined.RGBA, ViewLayer.Depth.Z, ViewLayer.Normal.XYZ, "
                    "ViewLayer.Confidence.X, ViewLayer.Void.X, ViewLayer.Region.X). See docs/rendering.md.")
    p.add_argument("scene", metavar="SCENE_DIR|FILE",
                   help="scene folder written by 'anchorstage reconstruct', or a splat file (.ply, .compressed.ply, "
                        ".splat, .spz; SHARP files are placed as Blender's import places them)")
    p.add_argument("--camera", required=True, metavar="CAMERA.json", help="camera JSON (Blender matrix_world, lens, sensor, resolution)")
    p.add_argument("--out", required=True, metavar="FRAME.exr", help="EXR file to write")
    p.add_argument("--passes", default=",".join(PASSES), metavar="LIST",
                   help=f"comma-separated passes (default: all = {','.join(PASSES)})")
    add_backend_arg(p)
    p.add_argument("--void-threshold", type=float, default=None, metavar="A", help="alpha below which a pixel is void (default 0.5)")
    add_device_arg(p)
    p.add_argument("--no-lod", action="store_true", help="render every splat exactly (no level of detail for big scenes; see docs/scale.md)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..errors import InputError
    from ..exr import write_exr
    from ..passes import check_passes
    from ..stages import open_source, render_frame

    if not str(args.out).lower().endswith(".exr"):
        raise InputError(f"--out must name an .exr file (got {args.out!r})")
    passes = check_passes(args.passes, "--passes")
    camera = load_camera_json(args.camera)
    source = open_source(args.scene, numpy=True)  # a CPU frame then never loads torch
    t0 = time.perf_counter()
    frame = render_frame(source, camera, passes, backend=args.backend, device=args.device, void_threshold=args.void_threshold,
                         lod=not args.no_lod)
    dt = time.perf_counter() - t0
    meta = getattr(source, "meta", {})
    write_exr(args.out, frame.passes, camera=camera, meta={"scene": str(args.scene), "metric_scale": meta.get("metric_scale", 1.0)})
    print(f"{args.out}: {camera.width}x{camera.height}, {len(getattr(source, 'splats', source))} splats, passes {', '.join(frame.passes)} "
          f"({dt:.2f} s)")
    return 0
