# SPDX-License-Identifier: GPL-3.0-or-later
"""Turntable and video in real Blender: the Turntable Camera operator keys a camera on every frame along
the core turntable path about the selected stage's centre (checked frame by frame), and the ANCHORSTAGE
render engine renders the animation as `blender -b file.blend -a` does; the Turntable and Video nodes
write a compositing package per angle and an MP4 that decodes back to its frames."""

import importlib
import json

import numpy as np
import pytest
import torch

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR


def _addon(name):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


def _read_exr(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {n: np.array(c.pixels) for part in f.parts for n, c in part.channels.items()}


@pytest.fixture
def product(fresh_scene):
    """A 0.6 m cube of splats (red on the -Y side, blue elsewhere) centred at (1, 2, 0.5), and a scene
    camera 4 m in front of it, 1 m up."""
    from anchorstage import Camera, Splats, look_at

    scene = fresh_scene
    g = np.linspace(-0.3, 0.3, 9)
    pts = np.stack(np.meshgrid(g, g, g), -1).reshape(-1, 3)
    pts = pts[np.abs(pts).max(1) > 0.29] + [1.0, 2.0, 0.5]  # the surface only
    colors = np.where((pts[:, 1] < 1.75)[:, None], [1.0, 0.1, 0.1], [0.1, 0.2, 1.0])
    n = len(pts)
    splats = Splats(means=torch.tensor(pts, dtype=torch.float32), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                    scales=torch.full((n, 3), 0.05), opacities=torch.full((n,), 0.95),
                    colors=torch.tensor(colors, dtype=torch.float32))
    obj = _addon("splat_object").update_splat_object(splats, name="Product", scene=scene)
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    core = Camera(width=64, height=48, lens_mm=35.0, world_from_cam=look_at((1.0, -2.0, 1.5), (1.0, 2.0, 0.5)))
    _addon("boundary").apply_camera_to_blender(core, cam, scene, set_resolution=True)
    scene.camera = cam
    bpy.context.view_layer.objects.active = obj
    return scene, obj, core, splats


def test_turntable_camera_is_keyed_on_the_core_path_and_renders_with_dash_a(product, tmp_path):
    from anchorstage.camera import turntable_path
    from anchorstage.stages import product_centre

    scene, obj, core, splats = product
    assert bpy.ops.anchorstage.turntable_setup(frames=8, frame_start=10, radius=3.0, use_elevation=True,
                                               elevation=20.0) == {"FINISHED"}
    cam = bpy.data.objects["AnchorStage Turntable"]
    assert scene.camera == cam and (scene.frame_start, scene.frame_end) == (10, 17)
    centre = product_centre(splats)
    assert np.allclose(centre, [1.0, 2.0, 0.5], atol=1e-3)
    expect = turntable_path(core, centre, 8, radius_m=3.0, elevation_deg=20.0)
    boundary = _addon("boundary")
    for k, want in enumerate(expect):
        scene.frame_set(10 + k)
        got = boundary.camera_from_blender(cam, scene)
        assert np.allclose(got.world_from_cam, want.world_from_cam, atol=1e-5), k
        assert got.resolution == (64, 48) and abs(got.lens_mm - 35.0) < 1e-6
        assert np.isclose(np.linalg.norm(got.position - centre), 3.0, atol=1e-5)
    # the first frame looks from the scene camera's direction (azimuth), the 5th from behind
    scene.frame_set(10)
    p0 = boundary.camera_from_blender(cam, scene).position - centre
    assert p0[1] < -2.0
    # `blender -b file.blend -a`: saved, opened again, the render engine renders every frame from the
    # animated camera
    scene.render.engine = "ANCHORSTAGE"
    _addon("compat").set_multilayer_exr(scene.render.image_settings)
    scene.frame_end = 14
    scene.render.filepath = str(tmp_path / "tt_####")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "turntable.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "turntable.blend"))
    assert bpy.context.scene.camera.name == "AnchorStage Turntable"
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    red = []
    for f in range(10, 15):
        ch = _read_exr(tmp_path / f"tt_{f:04d}.exr")
        r, b, a = ch["ViewLayer.Combined.R"], ch["ViewLayer.Combined.B"], ch["ViewLayer.Combined.A"]
        assert a.mean() > 0.05  # the product is in view from every angle
        centre_px = a.reshape(48, 64)[20:28, 28:36]
        assert centre_px.mean() > 0.9  # ... at the image centre
        red.append(float((r > b)[a > 0.5].mean()))
    # the red side faces the first camera and turns away: from behind (frame 14, 180°) none is seen
    assert red[0] > 0.5 and red[4] < 0.05


def test_turntable_operator_errors_are_reported(fresh_scene):
    with pytest.raises(RuntimeError, match="select a splat object"):
        bpy.ops.anchorstage.turntable_setup()
    with pytest.raises(RuntimeError, match="no splat object 'Nope'"):
        bpy.ops.anchorstage.turntable_setup(object_name="Nope")


def test_turntable_and_video_nodes(fresh_scene, tmp_path):
    av = pytest.importorskip("av")
    scene = fresh_scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 96, 54, 100
    tree = bpy.data.node_groups.new("T", "AnchorStageNodeTree")
    n = tree.nodes
    image = n.new("AnchorStageImageNode")
    image.filepath, image.camera_json = str(FIXTURE_DIR / "v0_rgb.png"), str(FIXTURE_DIR / "v0_camera.json")
    depth = n.new("AnchorStageDepthNode")
    depth.source, depth.filepath = "FILE", str(FIXTURE_DIR / "v0_depth.npy")
    reg = n.new("AnchorStageRegressionNode")
    reg.max_splats = 4000
    L = tree.links
    L.new(image.outputs["image"], depth.inputs["image"])
    L.new(image.outputs["camera"], depth.inputs["camera"])
    L.new(image.outputs["image"], reg.inputs["image"])
    L.new(depth.outputs["depth"], reg.inputs["depth"])
    L.new(image.outputs["camera"], reg.inputs["camera"])
    tt = n.new("AnchorStageTurntableNode")
    tt.views, tt.sweep, tt.use_centre, tt.centre = 4, 40.0, True, (0.0, 8.0, 1.0)
    tt.output_dir = str(tmp_path / "angles")
    video = n.new("AnchorStageVideoNode")
    video.filepath, video.gif, video.fps = str(tmp_path / "clip.mp4"), True, 12.0
    L.new(reg.outputs["scene"], tt.inputs["scene"])
    L.new(reg.outputs["scene"], video.inputs["scene"])
    L.new(tt.outputs["cameras"], video.inputs["cameras"])
    own = n.new("AnchorStageVideoNode")  # no camera path: its own turntable
    own.filepath, own.frames, own.frames_from = str(tmp_path / "own.mp4"), 3, "refresh"
    L.new(reg.outputs["scene"], own.inputs["scene"])
    report = _addon("nodes.runner").run_tree(tree, bpy.context)
    assert report.ok, (report.errors, report.blocked)
    assert tt.as_state == "RAN" and "4 views" in tt.as_message
    for f in range(1, 5):
        assert (tmp_path / "angles" / f"render.{f:04d}.exr").is_file()
    assert (tmp_path / "angles" / "cameras.json").is_file()
    assert json.loads((tmp_path / "angles" / "turntable.json").read_text())["views"] == 4  # as the CLI writes it
    for path, count in ((tmp_path / "clip.mp4", 4), (tmp_path / "own.mp4", 3)):
        with av.open(str(path)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == count and frames[0].shape == (54, 96, 3)
    assert (tmp_path / "clip.gif").is_file() and not (tmp_path / "own.gif").exists()
    # run again: nothing changed, nothing encoded or rendered again; a deleted clip is written again
    report = _addon("nodes.runner").run_tree(tree, bpy.context)
    assert report.ok and "up to date" in video.as_message and "up to date" in tt.as_message
    (tmp_path / "own.mp4").unlink()
    report = _addon("nodes.runner").run_tree(tree, bpy.context)
    assert report.ok and (tmp_path / "own.mp4").is_file() and "3 frames" in own.as_message
    # a bad setting is shown on the node; Blender stays usable
    video.filepath = str(tmp_path / "missing_dir" / "clip.mp4")
    scene.render.resolution_x = 97
    report = _addon("nodes.runner").run_tree(tree, bpy.context)
    assert not report.ok and video.as_state == "ERROR" and "odd side" in video.as_message


def test_headless_batch_makes_a_turntable(fresh_scene, tmp_path):
    from anchorstage.camera import turntable_path
    from anchorstage.stages import product_centre

    args = ["--image", str(FIXTURE_DIR / "v0_rgb.png"), "--depth", str(FIXTURE_DIR / "v0_depth.npy"),
            "--camera-json", str(FIXTURE_DIR / "v0_camera.json"), "--frame-start", "1", "--frame-end", "4",
            "--move", "turntable", "--amount", "40", "--resolution-percentage", "25", "--out", str(tmp_path / "f")]
    assert _addon("batch").main(args) == 0
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == [f"frame_{k:04d}.exr" for k in range(1, 5)]
    scene = bpy.context.scene
    boundary = _addon("boundary")
    obj = bpy.data.objects["AnchorStage Splats"]
    stage = boundary.scene_from_mesh(obj.data, obj.matrix_world)
    want = turntable_path(stage.camera.with_resolution(80, 45), product_centre(stage), 4, sweep_deg=40.0)
    assert scene.camera.name == "AnchorStage Turntable"
    for k, cam in enumerate(want, start=1):
        scene.frame_set(k)
        assert np.allclose(boundary.camera_from_blender(scene.camera, scene).world_from_cam, cam.world_from_cam,
                           atol=1e-5)
    assert np.allclose(want[0].position, stage.camera.position, atol=1e-6)  # view 0 from the photo's position
