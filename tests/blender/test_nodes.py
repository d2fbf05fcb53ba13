# SPDX-License-Identifier: GPL-3.0-or-later
"""The AnchorStage node tree in real Blender: metric depth estimated by a tiny model loaded through
from_pretrained, export nodes, and the executor's handling of reroutes, muted nodes, wrong links,
cycles and missing inputs — each shown on the node, nothing raised into Blender."""

import json

import numpy as np
import pytest

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR

PHOTO = str(FIXTURE_DIR / "v0_rgb.png")
DEPTH = str(FIXTURE_DIR / "v0_depth.npy")
CAMERA = str(FIXTURE_DIR / "v0_camera.json")


def _graph():
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.nodes.runner")


def _tree(scene, depth_source="FILE"):
    tree = bpy.data.node_groups.new("T", "AnchorStageNodeTree")
    n = tree.nodes
    image = n.new("AnchorStageImageNode")
    image.filepath, image.camera_json = PHOTO, CAMERA
    depth = n.new("AnchorStageDepthNode")
    depth.source, depth.filepath = depth_source, DEPTH
    reg = n.new("AnchorStageRegressionNode")
    reg.max_splats = 4000
    L = tree.links
    L.new(image.outputs["image"], depth.inputs["image"])
    L.new(image.outputs["camera"], depth.inputs["camera"])
    L.new(image.outputs["image"], reg.inputs["image"])
    L.new(depth.outputs["depth"], reg.inputs["depth"])
    L.new(image.outputs["camera"], reg.inputs["camera"])
    return tree, image, depth, reg


def test_nodes_are_registered_in_the_add_menu(fresh_scene):
    import nodeitems_utils

    cats = nodeitems_utils._node_categories["ANCHORSTAGE_NODES"][0]
    items = {item.nodetype for cat in cats for item in cat.items(None)}
    assert items == {"AnchorStageImageNode", "AnchorStageCameraNode", "AnchorStageDepthNode",
                     "AnchorStageRegressionNode", "AnchorStageRegionsNode", "AnchorStageRenderNode",
                     "AnchorStageSplatObjectNode", "AnchorStageExportNode", "AnchorStageRefreshNode",
                     "AnchorStageConfidenceNode", "AnchorStageGenerateNode", "AnchorStageFuseNode",
                     "AnchorStageFidelityNode", "AnchorStageTurntableNode", "AnchorStageVideoNode"}
    for idname in items:
        assert bpy.types.Node.bl_rna_get_subclass_py(idname) is not None
    # nodes belong to the AnchorStage tree only
    geo = bpy.data.node_groups.new("G", "GeometryNodeTree")
    assert not bpy.types.Node.bl_rna_get_subclass_py("AnchorStageImageNode").poll(geo)


def test_metric_depth_estimated_by_a_tiny_model_from_a_folder(fresh_scene, tmp_path):
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    torch.manual_seed(0)
    bb = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
                      patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, depth_estimation_type="metric", max_depth=80,
                              reassemble_hidden_size=32, neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16,
                              head_hidden_size=8)
    model = DepthAnythingForDepthEstimation(cfg).eval()
    model.save_pretrained(tmp_path / "da")
    (tmp_path / "da" / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"height": 56, "width": 56}, "keep_aspect_ratio": True, "ensure_multiple_of": 14, "resample": 3,
         "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}))

    tree, image, depth, reg = _tree(fresh_scene, depth_source="ESTIMATE")
    depth.model = str(tmp_path / "da")
    seen = []
    report = _graph().run_tree(tree, bpy.context, progress=lambda f, m: seen.append((f, m)))
    assert report.ok, (report.errors, report.blocked)
    out = _graph().node_outputs(tree, depth.name)["depth"]
    assert out.depth_m.shape == (180, 320) and out.confidence.shape == (180, 320)
    assert depth.as_state == "RAN" and "depth model" in depth.as_message
    assert len(_graph().node_outputs(tree, reg.name)["scene"].splats) > 0
    assert any("Metric Depth" in m for _, m in seen) and seen[-1][0] == 1.0


def test_missing_model_is_shown_on_the_node(fresh_scene):
    tree, image, depth, reg = _tree(fresh_scene, depth_source="ESTIMATE")
    depth.model = "anchorstage-tests/not-a-real-model"
    report = _graph().run_tree(tree, bpy.context)
    assert depth.as_state == "ERROR" and "not-a-real-model" in depth.as_message
    assert reg.as_state == "BLOCKED" and image.as_state == "RAN"
    assert set(report.errors) == {depth.name}


def test_export_scene_and_ply_nodes(fresh_scene, tmp_path):
    from anchorstage import load_scene
    from anchorstage.splatio.ply import read_ply

    tree, image, depth, reg = _tree(fresh_scene)
    ex_scene = tree.nodes.new("AnchorStageExportNode")
    ex_scene.format, ex_scene.filepath = "SCENE", str(tmp_path / "stage")
    ex_ply = tree.nodes.new("AnchorStageExportNode")
    ex_ply.format, ex_ply.filepath = "PLY", str(tmp_path / "splats.ply")
    for ex in (ex_scene, ex_ply):
        tree.links.new(reg.outputs["scene"], ex.inputs["scene"])
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, report.errors
    core = _graph().node_outputs(tree, reg.name)["scene"]
    back = load_scene(tmp_path / "stage")
    assert len(back.splats) == len(core.splats) <= 4000
    np.testing.assert_allclose(back.splats.means.numpy(), core.splats.means.cpu().numpy(), atol=1e-6)
    assert len(read_ply(tmp_path / "splats.ply")) == len(core.splats)
    # unchanged inputs and outputs: nothing is computed or written again
    stamps = [(tmp_path / "splats.ply").stat().st_mtime_ns, (tmp_path / "stage" / "scene.json").stat().st_mtime_ns]
    report = _graph().run_tree(tree, bpy.context)
    assert set(report.cached) == {image.name, depth.name, reg.name}
    assert stamps == [(tmp_path / "splats.ply").stat().st_mtime_ns, (tmp_path / "stage" / "scene.json").stat().st_mtime_ns]
    assert "up to date" in ex_ply.as_message
    # a deleted output is written again
    (tmp_path / "splats.ply").unlink()
    report = _graph().run_tree(tree, bpy.context)
    assert (tmp_path / "splats.ply").is_file() and "wrote" in ex_ply.as_message
    ex_ply.overwrite = False
    ex_ply.filepath = str(tmp_path / "stage" / "scene.json")  # an existing file
    _graph().run_tree(tree, bpy.context)
    assert ex_ply.as_state == "ERROR" and "exists" in ex_ply.as_message


def test_reroute_mute_wrong_link_and_cycle(fresh_scene):
    tree, image, depth, reg = _tree(fresh_scene)
    # a reroute between Depth and Regression is followed
    reroute = tree.nodes.new("NodeReroute")
    tree.links.new(depth.outputs["depth"], reroute.inputs[0])
    tree.links.new(reroute.outputs[0], reg.inputs["depth"])
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok and reg.as_state == "RAN"
    # muting Depth leaves Regression without a required input
    depth.mute = True
    report = _graph().run_tree(tree, bpy.context)
    assert reg.as_state == "BLOCKED" and "'depth' is not connected" in reg.as_message
    depth.mute = False
    # a link of the wrong type is reported on the node it feeds
    tree.links.new(image.outputs["camera"], reg.inputs["image"])
    report = _graph().run_tree(tree, bpy.context)
    assert reg.as_state == "ERROR" and "another type" in reg.as_message
    tree.links.new(image.outputs["image"], reg.inputs["image"])
    # a cycle (Regions feeding itself through a second Regions node) is reported, not followed
    r1 = tree.nodes.new("AnchorStageRegionsNode")
    r2 = tree.nodes.new("AnchorStageRegionsNode")
    tree.links.new(r1.outputs["scene"], r2.inputs["scene"])
    tree.links.new(r2.outputs["scene"], r1.inputs["scene"])
    report = _graph().run_tree(tree, bpy.context)
    # Blender marks one link of the cycle invalid; that node shows the error, the other waits on it
    states = sorted([(r1.as_state, r1.as_message), (r2.as_state, r2.as_message)])
    assert states[0][0] == "BLOCKED" and states[1][0] == "ERROR" and "cycle" in states[1][1]
    assert bpy.ops.anchorstage.execute.poll()  # Blender is still fine


def test_camera_node_follows_the_scene_camera(fresh_scene):
    from anchorstage import Camera, look_at

    scene = fresh_scene
    tree = bpy.data.node_groups.new("C", "AnchorStageNodeTree")
    node = tree.nodes.new("AnchorStageCameraNode")
    _graph().run_tree(tree, bpy.context)
    assert node.as_state == "ERROR" and "no camera" in node.as_message
    obj = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(obj)
    scene.camera = obj
    import importlib

    boundary = importlib.import_module(f"{ADDON_MODULE}.boundary")
    want = Camera(width=200, height=100, lens_mm=42.0, world_from_cam=look_at((1, -3, 2), (0, 0, 1)))
    boundary.apply_camera_to_blender(want, obj, scene, set_resolution=True)
    bpy.context.view_layer.update()
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok
    got = _graph().node_outputs(tree, node.name)["camera"]
    assert got.allclose(want, atol=1e-5)


def test_export_passes_exr_and_compositing_frame(fresh_scene, tmp_path):
    from anchorstage import read_exr

    scene = fresh_scene
    tree, image, depth, reg = _tree(scene)
    cam_node = tree.nodes.new("AnchorStageCameraNode")
    cam_node.use_scene_camera = False
    obj = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(obj)
    import importlib

    from gt_fixture import load_view

    boundary = importlib.import_module(f"{ADDON_MODULE}.boundary")
    boundary.apply_camera_to_blender(load_view("v1")["camera"].with_resolution(80, 45), obj, scene, set_resolution=True)
    cam_node.camera = obj
    render = tree.nodes.new("AnchorStageRenderNode")
    tree.links.new(reg.outputs["scene"], render.inputs["scene"])
    tree.links.new(cam_node.outputs["camera"], render.inputs["camera"])
    exr = tree.nodes.new("AnchorStageExportNode")
    exr.format, exr.filepath = "EXR", str(tmp_path / "passes.exr")
    tree.links.new(render.outputs["passes"], exr.inputs["passes"])
    frame = tree.nodes.new("AnchorStageExportNode")
    frame.format, frame.filepath, frame.preset = "FRAME", str(tmp_path / "frames"), "nuke"
    tree.links.new(reg.outputs["scene"], frame.inputs["scene"])
    tree.links.new(cam_node.outputs["camera"], frame.inputs["camera"])
    scene.frame_set(7)
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, (report.errors, report.blocked)
    back = read_exr(tmp_path / "passes.exr")
    passes = _graph().node_outputs(tree, render.name)["passes"].passes
    np.testing.assert_allclose(back["depth"], passes["depth"], rtol=1e-6)
    assert back["camera"].allclose(load_view("v1")["camera"].with_resolution(80, 45), atol=1e-5)
    assert (tmp_path / "frames" / "frame_0007" / "metadata.json").is_file()
    assert (tmp_path / "frames" / "render.0007.exr").is_file()
