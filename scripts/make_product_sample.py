# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the bundled product capture (sample/product/) with Blender's Cycles through the ``bpy`` module.

A packaged product (a rounded carton 16 x 10 x 22 cm with a screw cap) stands at the world
origin on a transparent background; eight cameras orbit it 45° apart (a turntable capture),
0.95 m from its centre and 20° above it. Surfaces are emission shaders over object-space
textures (as in scripts/cycles_stage.py), so a surface looks the same from every view and the
depth is exact. Per view ``azNNN`` (NNN = azimuth in degrees, 0 = the front, counter-clockwise
seen from above) the folder gets::

    azNNN.png           8-bit sRGB RGBA, alpha = the product's coverage (the film is transparent)
    azNNN_depth.npy     [H, W] float32 planar z in metres (Cycles' Depth pass; background = inf)
    azNNN_camera.json   the camera in AnchorStage's camera JSON, read back from Blender's camera

and ``manifest.json`` lists the views with their azimuths, the product centre and the renderer.

Usage::

    python scripts/make_product_sample.py [--out sample/product] [--size 192] [--views 8]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cycles_stage  # noqa: E402
from anchorstage.camera import Camera, look_at, save_camera_json  # noqa: E402

#: Where the cameras look (world metres, Z up): the carton's centre.
CENTER = (0.0, 0.0, 0.12)
RADIUS_M = 0.95
ELEVATION_DEG = 20.0
LENS_MM = 100.0


def orbit_camera(azimuth_deg: float, size: int) -> Camera:
    """The capture camera at ``azimuth_deg`` (0 looks at the front face along +Y, counter-clockwise from above)."""
    a, e = math.radians(azimuth_deg - 90.0), math.radians(ELEVATION_DEG)
    eye = (CENTER[0] + RADIUS_M * math.cos(e) * math.cos(a), CENTER[1] + RADIUS_M * math.cos(e) * math.sin(a),
           CENTER[2] + RADIUS_M * math.sin(e))
    return Camera(width=size, height=size, lens_mm=LENS_MM, sensor_width_mm=36.0, clip_start=0.05, clip_end=20.0,
                  world_from_cam=look_at(eye, CENTER))


def build_product(bpy: Any) -> Any:
    """Reset Blender and build the product on a transparent film."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    mat = cycles_stage._emission_material
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.0, 0.0, 0.11))
    carton = bpy.context.active_object
    carton.scale = (0.16, 0.10, 0.22)
    bpy.ops.object.transform_apply(scale=True)
    bevel = carton.modifiers.new("round", "BEVEL")
    bevel.width = 0.015
    bevel.segments = 6
    cycles_stage._assign(carton, mat(bpy, "carton", [(0.55, 0.18, 0.08), (0.85, 0.62, 0.25)], 6.0, checker_scale=4.0), 1)
    bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=0.03, depth=0.04, location=(0.03, 0.0, 0.24))
    cycles_stage._assign(bpy.context.active_object, mat(bpy, "cap", [(0.08, 0.25, 0.55), (0.25, 0.55, 0.8)], 10.0), 2)
    world = bpy.data.worlds.new("studio")
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.0
    scene.world = world
    cycles_stage.render_settings(scene)
    scene.render.film_transparent = True
    return scene


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample" / "product")
    ap.add_argument("--size", type=int, default=192, help="image side in pixels")
    ap.add_argument("--views", type=int, default=8, help="views evenly around the product")
    args = ap.parse_args(argv)
    import bpy
    from PIL import Image

    from anchorstage.image_io import to_uint8_srgb

    scene = build_product(bpy)
    args.out.mkdir(parents=True, exist_ok=True)
    views = []
    for k in range(args.views):
        az = 360.0 * k / args.views
        name = f"az{round(az):03d}"
        view = cycles_stage.render_view(bpy, scene, orbit_camera(az, args.size))
        alpha = view["alpha"]
        # Cycles' Combined is premultiplied by alpha on a transparent film; PNG stores straight alpha.
        straight = view["image_linear"] / np.maximum(alpha, 1e-6)[..., None]
        rgba = np.dstack([to_uint8_srgb(straight), np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)])
        Image.fromarray(rgba, "RGBA").save(args.out / f"{name}.png", optimize=True)
        depth = view["depth_m"]
        np.save(args.out / f"{name}_depth.npy", depth.astype(np.float32))
        save_camera_json(args.out / f"{name}_camera.json", view["camera"])
        (args.out / f"{name}_camera.json").chmod(0o644)
        views.append({"name": name, "azimuth_deg": az})
        print(f"{name}: coverage {np.mean(alpha > 0.5):.1%}, depth {np.min(depth):.3f}..{np.max(depth[np.isfinite(depth)]):.3f} m")
    manifest = {"kind": "anchorstage product capture", "views": views, "center_m": list(CENTER), "radius_m": RADIUS_M,
                "elevation_deg": ELEVATION_DEG, "frontal_view": views[0]["name"],
                "made_by": "scripts/make_product_sample.py", "blender": bpy.app.version_string}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
