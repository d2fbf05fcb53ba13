# SPDX-License-Identifier: GPL-3.0-or-later
"""One photo, two front ends: the CLI and the add-on's node tree run the same stage layer, so they
give the same camera and the same splats (here a photo without EXIF and a depth model that
estimates its field of view, the case where they used to disagree)."""

import importlib

import numpy as np
import torch

import bpy
from anchorstage import load_scene
from anchorstage.cli import main
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR

PHOTO = str(FIXTURE_DIR / "v0_rgb.png")  # a PNG without EXIF: the lens is guessed


def _depth_pro_folder(tmp_path):
    from test_depth_estimation import _constant_head, _save, tiny_depth_pro

    model = tiny_depth_pro()
    _constant_head(model.head.layers[-2], 0.25)
    _constant_head(model.fov_model.head.layers[-1], 60.0)  # the model sees a 60° horizontal field of view
    return str(_save(model, tmp_path / "dp"))


def test_cli_and_node_tree_give_the_same_camera_and_splats(fresh_scene, tmp_path):
    folder = _depth_pro_folder(tmp_path)
    assert main(["reconstruct", PHOTO, "--depth-model", folder, "--out", str(tmp_path / "cli"), "--device", "cpu"]) == 0
    cli = load_scene(tmp_path / "cli")
    assert cli.meta["intrinsics_source"] == f"field of view estimated by {folder}"

    stage = importlib.import_module(f"{ADDON_MODULE}.stage")
    runner = importlib.import_module(f"{ADDON_MODULE}.nodes.runner")
    tree = stage.build_default_tree("T", PHOTO)
    depth = next(n for n in tree.nodes if n.bl_idname == "AnchorStageDepthNode")
    depth.model = folder
    fresh_scene.anchorstage.witness_camera = stage.ensure_witness_camera(
        fresh_scene, runner.run_tree(tree, bpy.context, targets=["Image"]).outputs["Image"]["camera"])
    report = runner.run_tree(tree, bpy.context)
    assert report.ok, (report.errors, report.blocked)
    regions = next(n for n in tree.nodes if n.bl_idname == "AnchorStageRegionsNode")
    node = runner.node_outputs(tree, regions.name)["scene"]

    assert node.camera.allclose(cli.camera, atol=1e-9)
    assert node.camera.fov_deg[0] == cli.camera.fov_deg[0]
    assert node.meta["intrinsics_source"] == cli.meta["intrinsics_source"]
    for name in ("means", "quats", "scales", "opacities", "colors", "confidence", "region_ids"):
        assert torch.equal(getattr(node.splats, name).cpu(), getattr(cli.splats, name)), name
    assert [r.id for r in node.regions] == [r.id for r in cli.regions]
    # The witness camera in Blender is the stage's camera, not the guessed 50 mm one.
    witness = fresh_scene.anchorstage.witness_camera
    bpy.context.view_layer.update()
    boundary = importlib.import_module(f"{ADDON_MODULE}.boundary")
    np.testing.assert_allclose(boundary.camera_from_blender(witness, fresh_scene).fov_deg, cli.camera.fov_deg, atol=1e-6)
