# SPDX-License-Identifier: GPL-3.0-or-later
"""Render the bundled sample stage (sample/) with Blender's Cycles through the ``bpy`` module.

The ground-truth stage of scripts/cycles_stage.py (ground, facade, sphere, box) plus two
columns and a cone under a gradient sky, seen from a street-level camera at 640x360.
Writes::

    sample/photo.png     the photo, 8-bit sRGB
    sample/depth.npy     [360, 640] float32 exact planar depth in metres (Cycles' Depth pass; sky = inf)
    sample/camera.json   the camera (AnchorStage camera JSON: lens, sensor, Blender matrix_world)

Usage::

    python scripts/make_sample.py [--out sample] [--width 640 --height 360]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cycles_stage  # noqa: E402
from anchorstage.camera import Camera, look_at, save_camera_json  # noqa: E402
from anchorstage.image_io import to_uint8_srgb  # noqa: E402


def _extras(bpy: Any) -> None:
    """Two columns, a cone and a gradient sky on top of the ground-truth stage."""
    mat = cycles_stage._emission_material
    column = mat(bpy, "column", [(0.55, 0.55, 0.5), (0.8, 0.78, 0.7)], 6.0)
    for i, x in enumerate((-3.2, 3.4)):
        bpy.ops.mesh.primitive_cylinder_add(vertices=64, radius=0.25, depth=3.0, location=(x, 8.2 + 0.3 * i, 1.5))
        cycles_stage._assign(bpy.context.active_object, column, 5 + i)
    bpy.ops.mesh.primitive_cone_add(vertices=64, radius1=0.35, depth=0.9, location=(-0.4, 3.8, 0.45))
    cycles_stage._assign(bpy.context.active_object, mat(bpy, "cone", [(0.1, 0.4, 0.12), (0.3, 0.65, 0.25)], 8.0), 7)


def _gradient_sky(bpy: Any, scene: Any) -> None:
    nodes, links = scene.world.node_tree.nodes, scene.world.node_tree.links
    coord = nodes.new("ShaderNodeTexCoord")
    sep = nodes.new("ShaderNodeSeparateXYZ")
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].position = 0.8
    ramp.color_ramp.elements[0].color = (0.9, 0.75, 0.6, 1.0)
    ramp.color_ramp.elements[1].position = 1.0
    ramp.color_ramp.elements[1].color = (0.25, 0.45, 0.85, 1.0)
    links.new(coord.outputs["Window"], sep.inputs["Vector"])
    links.new(sep.outputs["Y"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], nodes["Background"].inputs["Color"])


def sample_camera(width: int, height: int) -> Camera:
    """A street-level camera a little left of the ground-truth reference, looking down the street."""
    return Camera(width=width, height=height, lens_mm=30.0, sensor_width_mm=36.0, clip_start=0.05, clip_end=200.0,
                  world_from_cam=look_at((-0.6, -0.5, 1.7), (0.4, 10.0, 1.1)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    args = ap.parse_args(argv)
    import bpy
    from PIL import Image

    scene = cycles_stage.build_stage(bpy, extra=_extras)
    _gradient_sky(bpy, scene)
    view = cycles_stage.render_view(bpy, scene, sample_camera(args.width, args.height))
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_srgb(view["image_linear"])).save(args.out / "photo.png", optimize=True)
    np.save(args.out / "depth.npy", view["depth_m"].astype(np.float32))
    save_camera_json(args.out / "camera.json", view["camera"])
    (args.out / "camera.json").chmod(0o644)
    sky = float(np.mean(~np.isfinite(view["depth_m"])))
    print(f"sample written to {args.out}: {args.width}x{args.height}, sky {sky:.1%}, "
          f"depth {np.nanmin(view['depth_m']):.2f}..{np.max(view['depth_m'][np.isfinite(view['depth_m'])]):.2f} m, "
          f"fov {math.degrees(2 * math.atan(args.width / 2 / view['camera'].focal_px)):.1f}°")
    return 0


if __name__ == "__main__":
    sys.exit(main())
