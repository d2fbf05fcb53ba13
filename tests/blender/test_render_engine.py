# SPDX-License-Identifier: GPL-3.0-or-later
"""The ANCHORSTAGE render engine on small hand-made splat sets: orientation of every pass, object
transforms, animation (-a), no splats, no camera, and CLI EXRs brought into the compositor."""

import numpy as np
import pytest
import torch

import bpy
from blender_support import ADDON_MODULE


def _addon(name):
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.{name}")


def _read_exr(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {n: np.array(c.pixels) for part in f.parts for n, c in part.channels.items()}


def _splats(means, colors, region):
    from anchorstage import Splats

    n = len(means)
    return Splats(means=torch.tensor(means, dtype=torch.float32),
                  quats=torch.tensor([[1.0, 0, 0, 0]] * n), scales=torch.tensor([[0.12, 0.02, 0.12]] * n),
                  opacities=torch.full((n,), 0.95), colors=torch.tensor(colors, dtype=torch.float32),
                  confidence=torch.full((n,), 0.8), region_ids=torch.tensor(region, dtype=torch.int32))


@pytest.fixture
def small_stage(fresh_scene):
    """A red splat blob top-left and a blue one bottom-right, 4 m in front of a camera at the origin
    looking down +Y (world Z up)."""
    from anchorstage import Camera, look_at

    boundary = _addon("boundary")
    splat_object = _addon("splat_object")
    scene = fresh_scene
    grid = np.stack(np.meshgrid(np.linspace(-0.3, 0.3, 7), np.linspace(-0.3, 0.3, 7)), -1).reshape(-1, 2)
    red = np.stack([grid[:, 0] - 1.0, np.full(len(grid), 4.0), grid[:, 1] + 0.6], 1)   # left, up
    blue = np.stack([grid[:, 0] + 1.0, np.full(len(grid), 5.0), grid[:, 1] - 0.6], 1)  # right, down, farther
    means = np.concatenate([red, blue])
    colors = [[1, 0, 0]] * len(red) + [[0, 0, 1]] * len(blue)
    region = [1] * len(red) + [2] * len(blue)
    obj = splat_object.update_splat_object(_splats(means, colors, region), name="Blobs", scene=scene)
    cam_obj = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam_obj)
    core = Camera(width=64, height=48, lens_mm=30.0, world_from_cam=look_at((0, 0, 0), (0, 1, 0)))
    boundary.apply_camera_to_blender(core, cam_obj, scene, set_resolution=True)
    scene.camera = cam_obj
    scene.render.engine = "ANCHORSTAGE"
    scene.view_layers[0].use_pass_z = True
    scene.view_layers[0].use_pass_normal = True
    _addon("compat").set_multilayer_exr(scene.render.image_settings)
    return scene, obj, cam_obj


def test_passes_are_upright_and_consistent(small_stage, tmp_path):
    scene, obj, cam = small_stage
    scene.render.filepath = str(tmp_path / "f.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    ch = _read_exr(tmp_path / "f.exr")
    r, b = ch["ViewLayer.Combined.R"], ch["ViewLayer.Combined.B"]
    h, w = r.shape
    assert (h, w) == (48, 64)
    # red is top-left, blue bottom-right in the image (rows top-down as in every image file)
    assert r[: h // 2, : w // 2].sum() > 10 * r[h // 2:, w // 2:].sum()
    assert b[h // 2:, w // 2:].sum() > 10 * b[: h // 2, : w // 2].sum()
    depth, region = ch["ViewLayer.Depth.Z"], ch["ViewLayer.Region.X"]
    red_px = r > 0.5
    blue_px = b > 0.5
    assert np.median(depth[red_px]) == pytest.approx(4.0, abs=0.1)
    assert np.median(depth[blue_px]) == pytest.approx(5.0, abs=0.1)
    assert set(np.unique(region[red_px])) == {1.0} and set(np.unique(region[blue_px])) == {2.0}
    background = ch["ViewLayer.Combined.A"] < 1e-3
    assert background.mean() > 0.3
    assert np.all(depth[background] >= 1e9) and np.all(ch["ViewLayer.Void.X"][background] == 1.0)
    assert np.all(region[background] == -1.0)
    conf = ch["ViewLayer.Confidence.X"]
    assert np.all(conf >= 0) and conf[red_px].max() <= 0.8 + 1e-4
    # world normals of splats facing the camera point back along -Y
    ny = ch["ViewLayer.Normal.Y"]
    assert np.median(ny[red_px]) < -0.9


def test_object_transform_moves_the_splats(small_stage, tmp_path):
    scene, obj, cam = small_stage
    obj.location = (0.0, 2.0, 0.0)  # 2 m farther away
    scene.render.filepath = str(tmp_path / "moved.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    ch = _read_exr(tmp_path / "moved.exr")
    red_px = ch["ViewLayer.Combined.R"] > 0.5
    assert np.median(ch["ViewLayer.Depth.Z"][red_px]) == pytest.approx(6.0, abs=0.1)
    obj.scale = (1.0, 2.0, 1.0)
    with pytest.raises(RuntimeError, match="non-uniform scale"):
        bpy.ops.render.render(write_still=True)


def test_engine_reads_splats_once_until_they_change(small_stage, tmp_path):
    """The engine keeps each splat mesh's arrays between frames (splat_cache) and reads them again
    only when the splats change: a moved vertex, an attribute written, new mesh data on the object."""
    scene, obj, cam = small_stage
    stats = _addon("splat_cache").STATS
    boundary = _addon("boundary")
    n = len(obj.data.vertices)

    def frame(name):
        scene.render.filepath = str(tmp_path / f"{name}.exr")
        before = dict(stats)
        assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
        return _read_exr(tmp_path / f"{name}.exr"), {k: stats[k] - before[k] for k in ("mesh_reads", "world_transforms")}

    first, _ = frame("first")
    again, reads = frame("again")  # unchanged: nothing read, the same frame
    assert reads == {"mesh_reads": 0, "world_transforms": 0}
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])
    red_px = first["ViewLayer.Combined.R"] > 0.5

    # A vertex moved (through RNA): read again, and the frame shows it.
    obj.data.vertices[0].co.y += 1.0
    moved, reads = frame("moved")
    assert reads["mesh_reads"] == 1
    assert not np.array_equal(moved["ViewLayer.Depth.Z"], first["ViewLayer.Depth.Z"])
    _, reads = frame("moved_again")
    assert reads["mesh_reads"] == 0

    # An attribute written in bulk: every red splat turns green.
    col = np.empty(n * 4, np.float32)
    obj.data.attributes["color"].data.foreach_get("color", col)
    col = col.reshape(n, 4)
    red = col[:, 0] > 0.5
    col[red] = (0.0, 1.0, 0.0, 1.0)
    obj.data.attributes["color"].data.foreach_set("color", col.ravel())
    obj.data.update()
    green, reads = frame("green")
    assert reads["mesh_reads"] == 1
    assert green["ViewLayer.Combined.R"][red_px].max() < 0.05 and np.median(green["ViewLayer.Combined.G"][red_px]) > 0.5

    # Other mesh data on the object (the original splats, kept as a copy): read, and rendered as they are.
    original = boundary.splats_from_mesh(obj.data)
    other = bpy.data.meshes.new("Blobs other")
    boundary.splats_to_mesh(original.subset(~torch.from_numpy(red)), other)  # only the blue blob
    obj.data = other
    swapped, reads = frame("swapped")
    assert reads["mesh_reads"] == 1
    assert swapped["ViewLayer.Combined.G"][red_px].max() < 0.05
    blue_px = first["ViewLayer.Combined.B"] > 0.5
    np.testing.assert_allclose(swapped["ViewLayer.Combined.B"][blue_px], first["ViewLayer.Combined.B"][blue_px], atol=1e-5)

    # The object moved, its mesh not: the cached splats are only moved to world space again.
    obj.location = (0.0, 1.0, 0.0)
    _, reads = frame("object_moved")
    assert reads == {"mesh_reads": 0, "world_transforms": 1}
    _, reads = frame("object_moved_again")
    assert reads == {"mesh_reads": 0, "world_transforms": 0}


def test_hidden_splat_objects_are_not_rendered(small_stage, tmp_path):
    scene, obj, cam = small_stage
    obj.hide_render = True
    scene.render.filepath = str(tmp_path / "empty.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    ch = _read_exr(tmp_path / "empty.exr")
    assert ch["ViewLayer.Combined.A"].max() == 0.0
    assert np.all(ch["ViewLayer.Depth.Z"] >= 1e9) and np.all(ch["ViewLayer.Void.X"] == 1.0)


def test_no_camera_is_reported_not_raised(small_stage, tmp_path):
    scene, obj, cam = small_stage
    scene.camera = None
    scene.render.filepath = str(tmp_path / "x.exr")
    with pytest.raises(RuntimeError):
        bpy.ops.render.render(write_still=True)  # Blender itself refuses a camera-less render
    assert bpy.context.scene.render.engine == "ANCHORSTAGE"


def test_animation_renders_every_frame_from_the_animated_camera(small_stage, tmp_path):
    scene, obj, cam = small_stage
    scene.frame_start, scene.frame_end = 1, 3
    for f in (1, 3):
        scene.frame_set(f)
        cam.location = (0.0, 0.5 * (f - 1), 0.0)  # dolly 1 m forward over the shot
        cam.keyframe_insert("location", frame=f)
    scene.render.filepath = str(tmp_path / "seq_####")
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    depths = []
    for f in (1, 2, 3):
        ch = _read_exr(tmp_path / f"seq_{f:04d}.exr")
        depths.append(np.median(ch["ViewLayer.Depth.Z"][ch["ViewLayer.Combined.R"] > 0.5]))
    np.testing.assert_allclose(depths, [4.0, 3.5, 3.0], atol=0.1)


def test_cli_exr_becomes_a_multilayer_compositor_image_node(small_stage, tmp_path):
    scene, obj, cam = small_stage
    path = tmp_path / "passes.exr"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    assert bpy.ops.anchorstage.import_exr(filepath=str(path)) == {"FINISHED"}
    assert bpy.ops.anchorstage.import_exr(filepath=str(path)) == {"FINISHED"}  # reused, not duplicated
    tree = _addon("compositor").compositor_tree(scene)
    nodes = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"]
    assert len(nodes) == 1
    assert nodes[0].image.type == "MULTILAYER"
    names = {s.name for s in nodes[0].outputs if s.enabled}
    assert {"Combined", "Depth", "Normal", "Confidence", "Void", "Region"} <= names, names
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.anchorstage.import_exr(filepath=str(tmp_path / "missing.exr"))
    (tmp_path / "garbage.exr").write_bytes(b"not an exr at all")
    with pytest.raises(RuntimeError, match="cannot be read"):
        bpy.ops.anchorstage.import_exr(filepath=str(tmp_path / "garbage.exr"))
    assert not any(i.filepath.endswith("garbage.exr") for i in bpy.data.images)


def test_ply_export_import_round_trip(small_stage, tmp_path):
    scene, obj, cam = small_stage
    boundary = _addon("boundary")
    obj.location = (0.5, 0.0, 0.0)
    bpy.context.view_layer.update()
    path = tmp_path / "blobs.ply"
    assert bpy.ops.anchorstage.export_ply(filepath=str(path), object_name=obj.name) == {"FINISHED"}
    assert bpy.ops.anchorstage.import_ply(filepath=str(path)) == {"FINISHED"}
    imported = bpy.data.objects["blobs"]
    a = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    b = boundary.splats_from_mesh(imported.data, imported.matrix_world)
    assert len(a) == len(b) == 98
    np.testing.assert_allclose(b.means.numpy(), a.means.numpy(), atol=1e-5)  # world space written
    np.testing.assert_allclose(b.colors.numpy(), a.colors.numpy(), atol=1e-5)
    np.testing.assert_allclose(b.opacities.numpy(), a.opacities.numpy(), atol=1e-5)
    np.testing.assert_allclose(b.scales.numpy(), a.scales.numpy(), rtol=1e-5)
    assert imported.modifiers.get("AnchorStage Display") is not None
    bad = tmp_path / "bad.ply"
    bad.write_text("ply\nformat ascii 1.0\nend_header\n")
    with pytest.raises(RuntimeError, match="bad.ply"):
        bpy.ops.anchorstage.import_ply(filepath=str(bad))
    with pytest.raises(RuntimeError, match="not a splat object"):
        bpy.ops.anchorstage.export_ply(filepath=str(tmp_path / "x.ply"), object_name=cam.name)


def test_camera_animation_exports_as_a_camera_list(small_stage, tmp_path):
    from anchorstage.export import load_camera_list

    boundary = _addon("boundary")
    scene, obj, cam = small_stage
    for f, y in ((1, 0.0), (4, 1.5)):
        cam.location = (0.0, y, 0.0)
        cam.keyframe_insert("location", frame=f)
    scene.frame_set(2)
    path = tmp_path / "cams.json"
    assert bpy.ops.anchorstage.export_camera_list(filepath=str(path), frame_start=1, frame_end=4) == {"FINISHED"}
    assert scene.frame_current == 2
    cams = load_camera_list(path)
    assert [f for f, _ in cams] == [1, 2, 3, 4]
    scene.frame_set(3)
    assert cams[2][1].allclose(boundary.camera_from_blender(cam, scene), atol=1e-6)
    assert cams[3][1].position[1] == pytest.approx(1.5)


def test_viewport_projection_matches_the_camera(small_stage):
    """The viewport path rebuilds a core camera from view + projection matrices; for a camera's own
    matrices it must equal the camera (this is what Rendered shading through the camera draws)."""
    from mathutils import Euler

    boundary = _addon("boundary")
    scene, obj, cam = small_stage
    cam.data.lens, cam.data.shift_x, cam.data.shift_y = 42.0, 0.07, -0.03
    cam.location, cam.rotation_euler = (0.4, -1.0, 1.3), Euler((1.3, 0.05, 0.4))
    bpy.context.view_layer.update()
    dg = bpy.context.evaluated_depsgraph_get()
    w, h = boundary.render_resolution(scene)
    proj = cam.calc_matrix_camera(dg, x=w, y=h)
    view = cam.matrix_world.inverted()
    got = boundary.camera_from_view(view, proj, w, h, cam.data.clip_start, cam.data.clip_end)
    want = boundary.camera_from_blender(cam, scene)
    np.testing.assert_allclose(got.K, want.K, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got.world_from_cam, want.world_from_cam, atol=1e-5)
    import mathutils

    ortho = mathutils.Matrix.OrthoProjection("XY", 4)
    with pytest.raises(Exception, match="orthographic"):
        boundary.camera_from_view(view, ortho, w, h)


def test_core_written_exr_imports_as_multilayer(small_stage, tmp_path):
    """An EXR from the core / `anchorstage render` CLI (write_exr) opens as one socket per pass."""
    from anchorstage import render, write_exr

    boundary = _addon("boundary")
    scene, obj, cam = small_stage
    camera = boundary.camera_from_blender(cam, scene)
    passes = render(boundary.splats_from_mesh(obj.data, obj.matrix_world), camera, device="cpu")
    path = write_exr(tmp_path / "cli.exr", passes, camera=camera)
    assert bpy.ops.anchorstage.import_exr(filepath=str(path)) == {"FINISHED"}
    node = next(n for n in _addon("compositor").compositor_tree(scene).nodes if n.bl_idname == "CompositorNodeImage")
    assert node.image.type == "MULTILAYER"
    names = {s.name for s in node.outputs if s.enabled}
    assert {"Combined", "Depth", "Normal", "Confidence", "Void", "Region"} <= names, names


def test_proxies_render_in_cycles_with_splat_colours(small_stage, tmp_path):
    """The Geometry Nodes proxies carry colour/opacity to Blender's own engines (instancer attributes)."""
    scene, obj, cam = small_stage
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.cycles.device = "CPU"
    _addon("compat").set_multilayer_exr(scene.render.image_settings)
    scene.render.filepath = str(tmp_path / "cycles.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    ch = _read_exr(tmp_path / "cycles.exr")
    r, b = ch["ViewLayer.Combined.R"], ch["ViewLayer.Combined.B"]
    h, w = r.shape
    assert r[: h // 2, : w // 2].mean() > 0.05 and b[: h // 2, : w // 2].mean() < 0.2 * r[: h // 2, : w // 2].mean()
    assert b[h // 2:, w // 2:].mean() > 0.05 and r[h // 2:, w // 2:].mean() < 0.2 * b[h // 2:, w // 2:].mean()


def test_sharp_ply_import_places_splats_and_adds_the_photo_camera(fresh_scene, tmp_path):
    from test_ply import _in_front_of_camera, _sharp_file

    boundary = _addon("boundary")
    info = _sharp_file(tmp_path, _in_front_of_camera(), np.eye(4))
    assert bpy.ops.anchorstage.import_ply(filepath=str(tmp_path / "sharp.ply")) == {"FINISHED"}
    obj = bpy.data.objects["sharp"]
    cam_obj = bpy.data.objects["sharp Camera"]
    assert fresh_scene.camera == cam_obj
    from anchorstage.splatio import sharp

    assert boundary.camera_from_blender(cam_obj, fresh_scene).allclose(sharp.camera(info), atol=1e-4)
    placed = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    np.testing.assert_allclose(placed.means.numpy(), sharp.placed(info).means.numpy(), atol=1e-5)
    assert placed.means.numpy()[:, 1].min() > 2.9  # in front of the camera, along world +Y


def test_every_registry_pass_reaches_render_exr_and_the_compositor(small_stage, tmp_path):
    """Walk the pass registry: each pass is in render()'s output with its shape and dtype, in
    write_exr's file under its Blender name and float type, in the engine's own multilayer EXR,
    and a socket of the compositor's Render Layers node."""
    import OpenEXR

    from anchorstage import render, write_exr
    from anchorstage.passes import REGISTRY, blender_layers

    scene, obj, cam = small_stage
    boundary = _addon("boundary")
    compositor = _addon("compositor")
    core_cam = boundary.camera_from_blender(cam, scene)
    splats = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    out = render(splats, core_cam, [p.name for p in REGISTRY], device="cpu")
    write_exr(tmp_path / "core.exr", out, camera=core_cam)
    with OpenEXR.File(str(tmp_path / "core.exr"), separate_channels=True) as f:
        types = {n: c.pixels.dtype for part in f.parts for n, c in part.channels.items()}
    scene.render.filepath = str(tmp_path / "engine.exr")
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    engine = _read_exr(tmp_path / "engine.exr")
    compositor.ensure_compositor(scene)
    sockets = {s.name for s in compositor.render_layers_node(scene).outputs if s.enabled}
    layers = {ours: (blender, ids) for blender, ids, group in blender_layers([p.name for p in REGISTRY]) for ours in group}
    for p in REGISTRY:
        shape = (48, 64) if p.channels == 1 else (48, 64, p.channels)
        assert tuple(out[p.name].shape) == shape and str(out[p.name].dtype) == f"torch.{p.dtype}", p.name
        blender, ids = layers[p.name]
        names = [f"ViewLayer.{blender}.{c}" for c in ids]
        for n in names:
            assert n in types and types[n] == (np.float16 if p.half else np.float32), (p.name, n)
            assert n in engine, (p.name, n)
        # The Render Layers node shows Combined as Image + Alpha, everything else by its own name.
        assert (("Image" if blender == "Combined" else blender) in sockets) and ("Alpha" in sockets), (p.name, sockets)
