# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage render``: render a scene folder from a camera into one multilayer EXR."""

from __future__ import annotations

import argparse
import time

from ._common import add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    from ..renderer import BACKENDS, PASSES

    p = sub.add_parser(
        "render", help="render a scene from a camera into a multilayer EXR (Blender pass names)",
        description="Render the splats of SCENE_DIR from CAMERA.json into one multilayer EXR whose channels use "
                    "Blender's names (ViewLayer.Combined.RGBA, ViewLayer.Depth.Z, ViewLayer.Normal.XYZ, "
                    "ViewLayer.Confidence.X, ViewLayer.Void.X, ViewLayer.Region.X). See docs/rendering.md.")
    p.add_argument("scene", metavar="SCENE_DIR", help="scene folder written by 'anchorstage reconstruct'")
    p.add_argument("--camera", required=True, metavar="CAMERA.json", help="camera JSON (Blender matrix_world, lens, sensor, resolution)")
    p.add_argument("--out", required=True, metavar="FRAME.exr", help="EXR file to write")
    p.add_argument("--passes", default=",".join(PASSES), metavar="LIST",
                   help=f"comma-separated passes (default: all = {','.join(PASSES)})")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: gsplat on CUDA when installed, else torch")
    p.add_argument("--void-threshold", type=float, default=None, metavar="A", help="alpha below which a pixel is void (default 0.5)")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..errors import InputError
    from ..exr import write_exr
    from ..renderer import DEFAULT_VOID_THRESHOLD, render
    from ..scene import load_scene

    if not str(args.out).lower().endswith(".exr"):
        raise InputError(f"--out must name an .exr file (got {args.out!r})")
    camera = load_camera_json(args.camera)
    scene = load_scene(args.scene)
    t0 = time.perf_counter()
    vt = DEFAULT_VOID_THRESHOLD if args.void_threshold is None else args.void_threshold
    passes = render(scene.splats, camera, args.passes, backend=args.backend, device=args.device, void_threshold=vt)
    dt = time.perf_counter() - t0
    write_exr(args.out, passes, camera=camera, meta={"scene": str(args.scene), "metric_scale": scene.meta.get("metric_scale", 1.0)})
    print(f"{args.out}: {camera.width}x{camera.height}, {len(scene.splats)} splats, passes {', '.join(passes)} "
          f"({dt:.2f} s)")
    return 0
