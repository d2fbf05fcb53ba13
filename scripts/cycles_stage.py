# SPDX-License-Identifier: GPL-3.0-or-later
"""Ground-truth stage rendered with Blender's Cycles (CPU) through the ``bpy`` module.

The stage has analytic geometry so tests can check reconstructions exactly:

* ground: the plane z = 0 (pass index 1),
* facade: the vertical plane y = 10 m, x in [-8, 8], z in [0, 3.5] (pass index 2),
* sphere: centre (1.2, 5, 0.8), radius 0.8 (pass index 3; a 128x64 UV sphere, so the
  faceted surface deviates from the analytic one by at most ``sphere.max_facet_error_m``),
* box: a 1 m cube standing on the ground at (-1.8, 6, 0.5), turned 30° about Z (pass index 4),
* sky: the world background (pass index 0, depth inf).

Every surface uses an EMISSION shader driven by procedural textures in object space, so a
pixel's colour does not depend on the view (like a splat's) and has no sampling noise. The
pixel filter is 0.01 px wide, so every sample (colour, depth, object index) is taken at the
pixel centre, which is where reconstruction back-projects.

Per view NAME the output folder gets::

    NAME_rgb.exr      linear Rec.709 RGB (half float, ZIP)
    NAME_rgb.png      the same in 8-bit sRGB
    NAME_depth.npy    [H, W] float32 planar z in metres (sky = inf)
    NAME_index.png    [H, W] uint8 object pass index
    NAME_camera.json  the camera in AnchorStage's camera JSON, read back from Blender's camera

and ``truth.json`` holds the analytic geometry and the view list.

Usage::

    python scripts/cycles_stage.py --out tests/data/cycles_gt --width 320 --height 180 --views v0 v1 v2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))

from anchorstage.camera import Camera, look_at  # noqa: E402

LENS_MM = 35.0
SENSOR_MM = 36.0
SKY_LINEAR = (0.35, 0.55, 0.9)

#: The analytic geometry (world metres, Blender frame, Z up).
TRUTH: dict[str, Any] = {
    "units": "metres, world frame = Blender (Z up)",
    "ground": {"pass_index": 1, "plane": [0.0, 0.0, 1.0, 0.0], "x_range": [-20.0, 20.0], "y_range": [-12.0, 28.0]},
    "facade": {"pass_index": 2, "plane": [0.0, 1.0, 0.0, -10.0], "x_range": [-8.0, 8.0], "z_range": [0.0, 3.5]},
    "sphere": {"pass_index": 3, "center": [1.2, 5.0, 0.8], "radius": 0.8, "segments": 128, "rings": 64},
    "box": {"pass_index": 4, "center": [-1.8, 6.0, 0.5], "size": 1.0, "yaw_deg": 30.0},
    "sky": {"pass_index": 0, "color_linear": list(SKY_LINEAR)},
}
# The largest distance between the faceted UV sphere and the true sphere (sagitta of a ring step).
TRUTH["sphere"]["max_facet_error_m"] = TRUTH["sphere"]["radius"] * (1.0 - math.cos(math.pi / TRUTH["sphere"]["rings"]))

_EYE = (0.0, 0.0, 1.6)
_TARGET = (0.0, 10.0, 1.2)
#: The point the ``orbit`` view turns about (world metres): between the sphere and the box.
ORBIT_PIVOT = (0.0, 5.5, 0.8)


def view_camera(name: str, width: int, height: int) -> Camera:
    """The named view.

    v0 is the reference; v1 trucked 0.5 m right and panned 5° left; v2 dollied 1 m and raised 0.3 m.
    The witness-refresh moves (committed fixtures): ``dolly`` 1.5 m forward, ``orbit`` 10° about a pivot
    7 m ahead, ``truckzoom`` trucked 0.6 m left and zoomed 1.2x. The fidelity benchmark's moves:
    ``fit_dolly`` 1 m forward, ``fit_orbit`` 8° about a point between the sphere and the box (5.5 m
    ahead, 0.8 m up), ``fit_truck_zoom`` trucked 0.4 m left with a 35 → 45 mm lens.
    """
    ref = Camera(width=width, height=height, lens_mm=LENS_MM, sensor_width_mm=SENSOR_MM,
                 clip_start=0.05, clip_end=200.0, world_from_cam=look_at(_EYE, _TARGET))
    moves: dict[str, Callable[[Camera], Camera]] = {
        "v0": lambda c: c,
        "v1": lambda c: c.truck(0.5).pan(5.0),
        "v2": lambda c: c.dolly(1.0).pedestal(0.3),
        "dolly": lambda c: c.dolly(1.5),
        "orbit": lambda c: c.orbit(c.position + 7.0 * c.forward, 10.0),
        "truckzoom": lambda c: c.truck(-0.6).zoom(1.2),
        "fit_dolly": lambda c: c.dolly(1.0),
        "fit_orbit": lambda c: c.orbit(ORBIT_PIVOT, yaw_deg=8.0),
        "fit_truck_zoom": lambda c: c.truck(-0.4).with_lens(45.0),
    }
    if name not in moves:
        raise SystemExit(f"unknown view {name!r}; known: {', '.join(moves)}")
    return moves[name](ref)


# ---------------------------------------------------------------------------- scene building
def _emission_material(bpy: Any, name: str, colors: Sequence[Sequence[float]], noise_scale: float,
                       checker_scale: float | None = None) -> Any:
    """An emission material: object-space noise through a two-colour ramp (optionally times a checker)."""
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = 1.0
    coord = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = noise_scale
    noise.inputs["Detail"].default_value = 3.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].position = 0.3
    ramp.color_ramp.elements[1].position = 0.7
    ramp.color_ramp.elements[0].color = (*colors[0], 1.0)
    ramp.color_ramp.elements[1].color = (*colors[1], 1.0)
    links.new(coord.outputs["Object"], noise.inputs["Vector"])
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    color_out = ramp.outputs["Color"]
    if checker_scale is not None:
        checker = nodes.new("ShaderNodeTexChecker")
        checker.inputs["Scale"].default_value = checker_scale
        checker.inputs["Color1"].default_value = (1.0, 1.0, 1.0, 1.0)
        checker.inputs["Color2"].default_value = (0.45, 0.45, 0.45, 1.0)
        mul = nodes.new("ShaderNodeVectorMath")
        mul.operation = "MULTIPLY"
        links.new(coord.outputs["Object"], checker.inputs["Vector"])
        links.new(ramp.outputs["Color"], mul.inputs[0])
        links.new(checker.outputs["Color"], mul.inputs[1])
        color_out = mul.outputs["Vector"]
    links.new(color_out, emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def _assign(obj: Any, mat: Any, pass_index: int) -> None:
    obj.data.materials.clear()
    obj.data.materials.append(mat)
    obj.pass_index = pass_index


def build_stage(bpy: Any, extra: Callable[[Any], None] | None = None) -> Any:
    """Reset Blender and build the ground-truth stage; ``extra(bpy)`` may add more objects."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    t = TRUTH
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 8.0, 0.0))
    ground = bpy.context.active_object
    ground.scale = (40.0, 40.0, 1.0)
    _assign(ground, _emission_material(bpy, "ground", [(0.18, 0.16, 0.12), (0.32, 0.30, 0.22)], 40.0), 1)

    fx, fz = t["facade"]["x_range"], t["facade"]["z_range"]
    bpy.ops.mesh.primitive_plane_add(size=1.0, location=(0.0, 10.0, (fz[0] + fz[1]) / 2), rotation=(math.pi / 2, 0.0, 0.0))
    facade = bpy.context.active_object
    facade.scale = (fx[1] - fx[0], fz[1] - fz[0], 1.0)
    _assign(facade, _emission_material(bpy, "facade", [(0.45, 0.12, 0.07), (0.75, 0.35, 0.2)], 3.0, checker_scale=6.0), 2)

    s = t["sphere"]
    bpy.ops.mesh.primitive_uv_sphere_add(segments=s["segments"], ring_count=s["rings"], radius=s["radius"], location=s["center"])
    _assign(bpy.context.active_object, _emission_material(bpy, "sphere", [(0.05, 0.15, 0.5), (0.2, 0.5, 0.8)], 4.0), 3)

    b = t["box"]
    bpy.ops.mesh.primitive_cube_add(size=b["size"], location=b["center"], rotation=(0.0, 0.0, math.radians(b["yaw_deg"])))
    _assign(bpy.context.active_object, _emission_material(bpy, "box", [(0.7, 0.55, 0.05), (0.95, 0.85, 0.3)], 5.0), 4)

    if extra is not None:
        extra(bpy)

    world = bpy.data.worlds.new("sky")
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (*SKY_LINEAR, 1.0)
    bg.inputs["Strength"].default_value = 1.0
    scene.world = world
    render_settings(scene)
    return scene


def render_settings(scene: Any) -> None:
    """Cycles on the CPU, emission only, every sample at the pixel centre, multilayer EXR with depth and index."""
    scene.render.engine = "CYCLES"
    cy = scene.cycles
    cy.device = "CPU"
    cy.samples = 2
    cy.use_adaptive_sampling = False
    cy.use_denoising = False
    cy.filter_width = 0.01  # every sample at the pixel centre: exact depth and colour there
    cy.max_bounces = 0  # emission only: nothing to bounce
    cy.seed = 0
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.render.resolution_percentage = 100
    vl = scene.view_layers[0]
    vl.use_pass_z = True
    vl.use_pass_object_index = True
    scene.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
    scene.render.image_settings.color_depth = "32"
    scene.render.image_settings.exr_codec = "ZIP"


def render_view(bpy: Any, scene: Any, cam: Camera) -> dict[str, Any]:
    """Render ``cam`` with Cycles; returns linear RGB [H, W, 3], alpha [H, W] (0 where the film is transparent),
    depth [H, W] (inf = sky), index [H, W] uint8, camera."""
    import OpenEXR

    cam_data = bpy.data.cameras.new("cam")
    cam_obj = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam_obj)
    cam_data.lens = cam.lens_mm
    cam_data.sensor_width = cam.sensor_width_mm
    cam_data.sensor_fit = cam.sensor_fit
    cam_data.clip_start = cam.clip_start
    cam_data.clip_end = cam.clip_end
    cam_obj.matrix_world = [list(r) for r in cam.matrix_world.T]  # mathutils takes columns here
    scene.camera = cam_obj
    scene.render.resolution_x, scene.render.resolution_y = cam.width, cam.height
    bpy.context.view_layer.update()
    # The camera as Blender sees it (what the camera JSON of a real .blend would hold).
    blender_cam = Camera.from_blender(np.array(cam_obj.matrix_world), lens_mm=cam_data.lens,
                                      resolution=(scene.render.resolution_x, scene.render.resolution_y),
                                      sensor_width_mm=cam_data.sensor_width, sensor_height_mm=cam_data.sensor_height,
                                      sensor_fit=cam_data.sensor_fit, shift_x=cam_data.shift_x, shift_y=cam_data.shift_y,
                                      clip_start=cam_data.clip_start, clip_end=cam_data.clip_end)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "render.exr")
        scene.render.filepath = path
        bpy.ops.render.render(write_still=True)
        with OpenEXR.File(path, separate_channels=True) as f:
            ch = {n: np.array(c.pixels) for part in f.parts for n, c in part.channels.items()}
    bpy.data.objects.remove(cam_obj)
    bpy.data.cameras.remove(cam_data)

    def get(suffix: str) -> np.ndarray:
        names = [n for n in ch if n.endswith(suffix)]
        if len(names) != 1:
            raise RuntimeError(f"render has no unique channel *{suffix} (has {sorted(ch)})")
        return ch[names[0]].astype(np.float32)

    rgb = np.stack([get("Combined.R"), get("Combined.G"), get("Combined.B")], axis=-1)
    depth = get("Depth.Z")
    depth[depth >= 1e9] = np.inf  # Cycles' background depth is 1e10
    index = np.round(get("Object Index.X")).astype(np.uint8)
    return {"image_linear": rgb, "alpha": get("Combined.A"), "depth_m": depth, "object_index": index,
            "camera": blender_cam}


def write_view(out: Path, name: str, view: dict[str, Any]) -> None:
    """Write one rendered view's files (see module docstring)."""
    import OpenEXR
    from PIL import Image

    from anchorstage.camera import save_camera_json
    from anchorstage.image_io import to_uint8_srgb

    rgb = view["image_linear"]
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    chans = {c: np.ascontiguousarray(rgb[..., i].astype(np.float16)) for i, c in enumerate("RGB")}
    OpenEXR.File(header, chans).write(str(out / f"{name}_rgb.exr"))
    Image.fromarray(to_uint8_srgb(rgb)).save(out / f"{name}_rgb.png", optimize=True)
    np.save(out / f"{name}_depth.npy", view["depth_m"].astype(np.float32))
    Image.fromarray(view["object_index"]).save(out / f"{name}_index.png", optimize=True)
    save_camera_json(out / f"{name}_camera.json", view["camera"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--views", nargs="+", default=["v0", "v1", "v2"])
    args = ap.parse_args(argv)
    import bpy

    args.out.mkdir(parents=True, exist_ok=True)
    scene = build_stage(bpy)
    views = {}
    for name in args.views:
        view = render_view(bpy, scene, view_camera(name, args.width, args.height))
        write_view(args.out, name, view)
        views[name] = {"camera": f"{name}_camera.json"}
        print(f"{name}: sky {np.mean(~np.isfinite(view['depth_m'])):.1%}, "
              f"objects {sorted(np.unique(view['object_index']).tolist())}")
    truth = {**TRUTH, "resolution": [args.width, args.height], "views": views,
             "made_by": "scripts/cycles_stage.py", "blender": bpy.app.version_string}
    (args.out / "truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
