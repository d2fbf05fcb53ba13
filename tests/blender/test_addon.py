# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on end to end in real Blender, installed from the built zip: new_stage on the Cycles
fixture with its exact depth, execute, the splat object, the witness camera, the ANCHORSTAGE
render engine's multilayer EXR against the core renderer, the compositor, camera moves."""

import math

import numpy as np
import pytest

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR, load_view

V0 = {"image_path": str(FIXTURE_DIR / "v0_rgb.png"), "depth_path": str(FIXTURE_DIR / "v0_depth.npy"),
      "camera_json": str(FIXTURE_DIR / "v0_camera.json")}


def _addon(name):
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.{name}")


def _read_exr(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {n: np.array(c.pixels) for part in f.parts for n, c in part.channels.items()}


@pytest.fixture(scope="module")
def stage(reset_blender):
    """A stage built and executed once for this module (tests below must not break it)."""
    scene = reset_blender()
    assert bpy.ops.anchorstage.new_stage(**V0) == {"FINISHED"}
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    tree = scene.anchorstage.tree
    graph = _addon("nodes.runner")
    regions = next(n for n in tree.nodes if n.bl_idname == "AnchorStageRegionsNode")
    core_scene = graph.node_outputs(tree, regions.name)["scene"]
    return {"scene": scene, "tree": tree, "core_scene": core_scene}


def _node(tree, idname):
    return next(n for n in tree.nodes if n.bl_idname == idname)


def test_default_tree_runs_every_stage(stage):
    tree = stage["tree"]
    kinds = {n.bl_idname for n in tree.nodes}
    assert {"AnchorStageImageNode", "AnchorStageDepthNode", "AnchorStageRegressionNode", "AnchorStageRegionsNode",
            "AnchorStageCameraNode", "AnchorStageRenderNode", "AnchorStageSplatObjectNode"} <= kinds
    for n in tree.nodes:
        assert n.as_state in ("RAN", "CACHED"), (n.name, n.as_state, n.as_message)
    assert _node(tree, "AnchorStageDepthNode").source == "FILE"
    preview = bpy.data.images["AnchorStage Preview"]
    assert tuple(preview.size) == (320, 180)


def test_splat_object_has_every_splat_and_its_attributes(stage):
    boundary = _addon("boundary")
    splats = stage["core_scene"].splats
    obj = bpy.data.objects["AnchorStage Splats"]
    mesh = obj.data
    assert len(mesh.vertices) == len(splats) > 10_000
    types = {a.name: (a.data_type, a.domain) for a in mesh.attributes}
    for name, kind in (("opacity", "FLOAT"), ("scale", "FLOAT_VECTOR"), ("rotation", "QUATERNION"),
                       ("color", "FLOAT_COLOR"), ("confidence", "FLOAT"), ("region", "INT")):
        assert types[name] == (kind, "POINT"), name
    back = boundary.splats_from_mesh(mesh, obj.matrix_world)
    for f in ("means", "scales", "opacities", "colors", "confidence"):
        np.testing.assert_allclose(getattr(back, f).numpy(), getattr(splats, f).cpu().numpy(), rtol=1e-6, atol=1e-6, err_msg=f)
    q0, q1 = back.quats.numpy(), splats.quats.cpu().numpy()
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    assert np.abs(np.abs((q0 * q1).sum(1)) - 1).max() < 1e-5
    assert np.array_equal(back.region_ids.numpy(), splats.region_ids.cpu().numpy())
    assert len(set(back.region_ids.tolist())) >= 3  # the Regions node labelled the splats
    # Geometry Nodes display: the shared group on a Nodes modifier.
    mod = obj.modifiers["AnchorStage Display"]
    assert mod.type == "NODES" and mod.node_group.name == "AnchorStage Splat Display"


def _instance_count(obj):
    dg = bpy.context.evaluated_depsgraph_get()
    return sum(1 for inst in dg.object_instances if inst.is_instance and inst.parent is not None
               and inst.parent.original == obj)


def test_display_is_decimated_above_the_threshold(stage):
    splat_object = _addon("splat_object")
    obj = bpy.data.objects["AnchorStage Splats"]
    total = len(obj.data.vertices)
    mod = obj.modifiers["AnchorStage Display"]
    sid = splat_object._socket_id(mod.node_group, "Max Display Splats")
    old, display = mod[sid], stage["scene"].anchorstage.viewport_display
    try:
        stage["scene"].anchorstage.viewport_display = "PROXIES"  # the proxies, not the GPU Gaussians
        mod[sid] = 1000
        obj.update_tag()
        shown, n = splat_object.display_counts(obj)
        assert (shown, n) == (1000, total)
        count = _instance_count(obj)
        assert 800 < count < 1200, count  # a random subset of about 1000 oriented proxies
        mod[sid] = 10 * total
        obj.update_tag()
        assert _instance_count(obj) == total
    finally:
        mod[sid] = old
        stage["scene"].anchorstage.viewport_display = display


def test_witness_camera_has_the_photos_lens_and_sensor(stage):
    scene = stage["scene"]
    truth = load_view("v0")["camera"]
    cam = scene.camera
    assert cam is not None and cam == scene.anchorstage.witness_camera
    assert cam.data.lens == pytest.approx(truth.lens_mm) and cam.data.sensor_width == pytest.approx(truth.sensor_width_mm)
    assert (scene.render.resolution_x, scene.render.resolution_y) == truth.resolution
    np.testing.assert_allclose(np.array(cam.matrix_world), truth.matrix_world, atol=1e-6)
    assert scene.unit_settings.system == "METRIC" and scene.unit_settings.scale_length == 1.0


def test_render_engine_writes_multilayer_exr_matching_core_depth(stage, tmp_path):
    from anchorstage import render

    boundary = _addon("boundary")
    scene = stage["scene"]
    scene.render.engine = "ANCHORSTAGE"
    scene.render.resolution_percentage = 50
    _addon("compat").set_multilayer_exr(scene.render.image_settings)
    scene.render.filepath = str(tmp_path / "still.exr")
    try:
        assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
        ch = _read_exr(tmp_path / "still.exr")
        obj = bpy.data.objects["AnchorStage Splats"]
        camera = boundary.camera_from_blender(scene.camera, scene)
        assert camera.resolution == (160, 90)
        ref = render(boundary.splats_from_mesh(obj.data, obj.matrix_world), camera, device="cpu")
        from anchorstage.witness import void_pass

        witness_void = void_pass(boundary.scene_from_mesh(obj.data, obj.matrix_world), camera, device="cpu")
    finally:
        scene.render.resolution_percentage = 100
    for name in ("ViewLayer.Combined.R", "ViewLayer.Combined.A", "ViewLayer.Depth.Z", "ViewLayer.Normal.X",
                 "ViewLayer.Confidence.X", "ViewLayer.Void.X", "ViewLayer.Region.X"):
        assert name in ch, sorted(ch)
    depth = ch["ViewLayer.Depth.Z"]
    assert depth.shape == (90, 160)
    np.testing.assert_allclose(depth, ref["depth"].numpy(), rtol=1e-5)
    np.testing.assert_allclose(ch["ViewLayer.Combined.G"], ref["color"][..., 1].numpy(), atol=1e-5)
    np.testing.assert_array_equal(ch["ViewLayer.Region.X"], ref["region"].numpy().astype(np.float32))
    # the Void pass is what the witness stored on the splat object never saw (not alpha < 0.5)
    np.testing.assert_array_equal(ch["ViewLayer.Void.X"], witness_void)
    # Not flipped, and metric: the render's depth agrees with Cycles' own at the reference camera.
    gt = load_view("v0")["depth_m"][::2, ::2]
    both = np.isfinite(gt) & (depth < 1e9)
    assert both.mean() > 0.7
    assert np.median(np.abs(depth[both] - gt[both]) / gt[both]) < 0.01


def test_compositor_render_layers_exposes_custom_passes(stage):
    compositor = _addon("compositor")
    scene = stage["scene"]
    scene.render.engine = "ANCHORSTAGE"
    tree = compositor.ensure_compositor(scene)
    again = compositor.ensure_compositor(scene)
    assert again == tree == compositor.compositor_tree(scene)
    rls = [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]
    assert len(rls) == 1
    enabled = {s.name for s in rls[0].outputs if s.enabled}
    assert {"Image", "Alpha", "Depth", "Normal", "Confidence", "Void", "Region"} <= enabled
    # 5.0+: one compositing node group; 4.x: the scene's own node_tree, no node group
    assert sum(1 for g in bpy.data.node_groups if g.bl_idname == "CompositorNodeTree") == int(bpy.app.version >= (5, 0, 0))


def test_dolly_moves_exactly_along_the_view_axis(stage):
    scene = stage["scene"]
    cam = scene.camera
    before = np.array(cam.matrix_world)
    forward = -before[:3, 2]
    try:
        assert bpy.ops.anchorstage.camera_dolly(distance=0.5) == {"FINISHED"}
        after = np.array(cam.matrix_world)
        np.testing.assert_allclose(after[:3, 3] - before[:3, 3], 0.5 * forward, atol=1e-6)
        np.testing.assert_allclose(after[:3, :3], before[:3, :3], atol=1e-6)
        assert np.linalg.norm(after[:3, 3] - before[:3, 3]) == pytest.approx(0.5, abs=1e-6)
    finally:
        from mathutils import Matrix

        cam.matrix_world = Matrix(before.tolist())


def test_camera_moves_and_keyframes(stage):
    scene = stage["scene"]
    cam = scene.camera
    before = np.array(cam.matrix_world)
    lens = cam.data.lens
    from mathutils import Matrix

    try:
        # orbit about a point 5 m ahead keeps the distance to it and keeps looking at it
        pivot = before[:3, 3] - 5.0 * before[:3, 2]
        assert bpy.ops.anchorstage.camera_orbit(yaw=20.0, pitch=10.0, pivot_mode="AHEAD", distance=5.0) == {"FINISHED"}
        m = np.array(cam.matrix_world)
        assert np.linalg.norm(m[:3, 3] - pivot) == pytest.approx(5.0, abs=1e-5)
        np.testing.assert_allclose(m[:3, 3] - 5.0 * m[:3, 2], pivot, atol=1e-5)
        # truck / pedestal along the camera's own axes
        m0 = np.array(cam.matrix_world)
        bpy.ops.anchorstage.camera_truck(distance=0.25)
        bpy.ops.anchorstage.camera_pedestal(distance=-0.1)
        m1 = np.array(cam.matrix_world)
        np.testing.assert_allclose(m1[:3, 3] - m0[:3, 3], 0.25 * m0[:3, 0] - 0.1 * m0[:3, 1], atol=1e-6)
        # pan about world Z keeps the position and the horizon
        bpy.ops.anchorstage.camera_pan(angle=15.0)
        m2 = np.array(cam.matrix_world)
        np.testing.assert_allclose(m2[:3, 3], m1[:3, 3], atol=1e-6)
        assert math.degrees(math.atan2(np.cross(m1[:2, 2], m2[:2, 2]), np.dot(m1[:2, 2], m2[:2, 2]))) == pytest.approx(15.0, abs=1e-4)
        # keyframing
        scene.frame_set(10)
        assert bpy.ops.anchorstage.camera_tilt(angle=-3.0, keyframe=True) == {"FINISHED"}
        fcurves = {fc.data_path for fc in cam.animation_data.action.layers[0].strips[0].channelbags[0].fcurves} \
            if hasattr(cam.animation_data.action, "layers") and cam.animation_data.action.layers else \
            {fc.data_path for fc in cam.animation_data.action.fcurves}
        assert {"location", "rotation_euler"} <= fcurves
        assert bpy.ops.anchorstage.camera_focal_preset(lens="85") == {"FINISHED"}
        assert cam.data.lens == 85.0
        assert bpy.ops.anchorstage.camera_focal_preset(lens="24", keyframe=True) == {"FINISHED"}
        assert cam.data.lens == 24.0 and cam.data.animation_data is not None
    finally:
        cam.animation_data_clear()
        cam.data.animation_data_clear()
        cam.data.lens = lens
        cam.matrix_world = Matrix(before.tolist())
        scene.frame_set(1)


def test_execute_after_camera_move_reuses_the_reconstruction(stage):
    from mathutils import Matrix

    scene, tree = stage["scene"], stage["tree"]
    cam = scene.camera
    before = np.array(cam.matrix_world)
    preview = bpy.data.images["AnchorStage Preview"]
    try:
        bpy.ops.anchorstage.camera_dolly(distance=1.0)
        assert bpy.ops.anchorstage.execute() == {"FINISHED"}
        states = {n.bl_idname: n.as_state for n in tree.nodes}
        assert states["AnchorStageRegressionNode"] == "CACHED"
        assert states["AnchorStageDepthNode"] == "CACHED" and states["AnchorStageRegionsNode"] == "CACHED"
        assert states["AnchorStageCameraNode"] == "RAN" and states["AnchorStageRenderNode"] == "RAN"
        assert preview.name in bpy.data.images
    finally:
        cam.matrix_world = Matrix(before.tolist())


def test_a_failing_node_is_marked_and_blender_stays_usable(reset_blender, tmp_path):
    scene = reset_blender()
    assert bpy.ops.anchorstage.new_stage(**V0) == {"FINISHED"}
    tree = scene.anchorstage.tree
    depth = _node(tree, "AnchorStageDepthNode")
    depth.filepath = str(tmp_path / "missing.npy")
    with pytest.raises(RuntimeError, match="missing.npy"):
        # bpy.ops turns an operator's ERROR report into RuntimeError for the calling script
        bpy.ops.anchorstage.execute()
    assert depth.as_state == "ERROR" and "missing.npy" in depth.as_message and "does not exist" in depth.as_message
    assert depth.use_custom_color
    assert _node(tree, "AnchorStageRegressionNode").as_state == "BLOCKED"
    assert _node(tree, "AnchorStageImageNode").as_state in ("RAN", "CACHED")
    # fixed input: runs, the error mark goes away
    depth.filepath = V0["depth_path"]
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    assert depth.as_state == "RAN" and not depth.use_custom_color


def test_new_stage_bad_input_is_reported(fresh_scene, tmp_path):
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.anchorstage.new_stage(image_path=str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(RuntimeError, match="bad.png"):
        bpy.ops.anchorstage.new_stage(image_path=str(bad))
    assert not [t for t in bpy.data.node_groups if t.bl_idname == "AnchorStageNodeTree"]


def test_new_stage_from_exif_alone(fresh_scene):
    from anchorstage import load_image, read_intrinsics

    scene = fresh_scene
    assert bpy.ops.anchorstage.new_stage(image_path=V0["image_path"], depth_path=V0["depth_path"]) == {"FINISHED"}
    intr = read_intrinsics(load_image(V0["image_path"]))
    cam = scene.camera
    assert cam.data.lens == pytest.approx(intr.lens_mm) and cam.data.sensor_width == pytest.approx(intr.sensor_width_mm)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (320, 180)
    assert scene.render.engine == "ANCHORSTAGE"
