# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness refresh in real Blender: the Witness Refresh and Confidence nodes of the default tree, the
witness stored on the splat object (and kept in the .blend), region locks in the object's panel,
the Refresh Frame operator, the confidence meter following the camera, and the ANCHORSTAGE engine
rendering refreshed frames with Void and Confidence passes under an animation render (-a)."""

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
    scene = reset_blender()
    assert bpy.ops.anchorstage.new_stage(**V0) == {"FINISHED"}
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    return scene


def _move_camera(scene, core_camera):
    _addon("boundary").apply_camera_to_blender(core_camera, scene.camera, scene)
    bpy.context.view_layer.update()


def test_default_tree_refreshes_and_rates_the_shot(stage):
    tree = stage.anchorstage.tree
    nodes = {n.bl_idname: n for n in tree.nodes}
    for idname in ("AnchorStageRefreshNode", "AnchorStageConfidenceNode"):
        assert nodes[idname].as_state in ("RAN", "CACHED"), nodes[idname].as_message
    assert "confidence" in nodes["AnchorStageRefreshNode"].as_message
    assert nodes["AnchorStageConfidenceNode"].confidence().value > 0.9  # the witness camera itself
    assert tuple(bpy.data.images["AnchorStage Refresh"].size) == (320, 180)
    assert tuple(bpy.data.images["AnchorStage Confidence"].size) == (320, 180)
    obj = bpy.data.objects["AnchorStage Splats"]
    assert [it.region_id for it in obj.data.anchorstage_regions] == ["sky", "ground_001", "facade_001", "object_001",
                                                                      "object_002"]


def test_node_refresh_follows_the_camera_and_its_locks(stage):
    from anchorstage.stages import refresh

    tree = stage.anchorstage.tree
    node = next(n for n in tree.nodes if n.bl_idname == "AnchorStageRefreshNode")
    obj = bpy.data.objects["AnchorStage Splats"]
    view = load_view("orbit")
    _move_camera(stage, view["camera"])
    items = {it.region_id: it for it in obj.data.anchorstage_regions}
    items["facade_001"].locked = True
    try:
        assert bpy.ops.anchorstage.execute() == {"FINISHED"}
        res = _addon("nodes.runner").node_outputs(tree, node.name)["refresh"]
        assert res.locked_regions == ["facade_001"] and res.locks.any()
        assert np.array_equal(res.witness[res.locks], res.warp.color[res.locks])
        core = _addon("boundary").scene_from_mesh(obj.data)
        ref = refresh(core, view["camera"], device="cpu")
        # the same refresh as the core's from the stored witness (the camera went through Blender's floats)
        assert (ref.locks != res.locks).mean() < 1e-3
        assert np.abs(ref.witness - res.witness).mean() < 1e-3, np.abs(ref.witness - res.witness).mean()
        conf = next(n for n in tree.nodes if n.bl_idname == "AnchorStageConfidenceNode")
        assert conf.confidence().value == pytest.approx(res.confidence.value, abs=1e-6)
        assert res.confidence.value < 0.9
    finally:
        items["facade_001"].locked = False


def test_refresh_frame_operator_and_meter(stage, tmp_path):
    from anchorstage.confidence import estimate, meter_proxy

    meter = _addon("meter")
    obj = bpy.data.objects["AnchorStage Splats"]
    ref = load_view("v0")["camera"]
    _move_camera(stage, ref)
    before = meter.update(stage)["confidence"].value
    moved = ref.orbit(ref.position + 7.0 * ref.forward, 15.0)
    _move_camera(stage, moved)
    state = meter.update(stage)
    assert state["error"] == "" and state["confidence"].value < before - 0.1
    quick = estimate(meter_proxy(_addon("boundary").scene_from_mesh(obj.data)), moved, max_side=meter.MAX_SIDE)
    assert state["confidence"].value == pytest.approx(quick.value, abs=1e-6)
    assert meter.update(stage) is state  # unchanged camera: nothing recomputed
    assert bpy.ops.anchorstage.show_confidence() == {"FINISHED"}
    assert bpy.data.images["AnchorStage Confidence"].size[0] == meter.MAX_SIDE

    n_before = len(obj.data.vertices)
    obj.data.anchorstage_regions[2].locked = True  # facade_001
    assert bpy.ops.anchorstage.refresh_frame(update_scene=True, output_dir=str(tmp_path)) == {"FINISHED"}
    assert (tmp_path / "witness.exr").is_file() and (tmp_path / "confidence.json").is_file()
    assert len(obj.data.vertices) > n_before  # the filled pixels became splats
    assert obj.data.anchorstage_regions[2].locked  # the artist's lock survives the update
    core = _addon("boundary").scene_from_mesh(obj.data)
    assert core.meta["refresh_steps"][0]["locked_regions"] == ["facade_001"]
    assert meter.update(stage)["confidence"].void_coverage < state["confidence"].void_coverage


def test_panels_show_the_meter_and_the_region_locks(stage):
    from test_addon_ui import _draw_panel

    ui = _addon("ui")
    log = _draw_panel(ui.ANCHORSTAGE_PT_camera, bpy.context)
    labels = " ".join(t for kind, t in log if kind == "label")
    assert "Void" in labels and any(w in labels for w in ("GREEN", "YELLOW", "RED"))
    assert ("operator", "anchorstage.refresh_frame") in log and ("operator", "anchorstage.show_confidence") in log

    class Ctx:
        object = bpy.data.objects["AnchorStage Splats"]

    log = _draw_panel(ui.ANCHORSTAGE_PT_splats, Ctx)
    assert ("prop", "locked") in log and any("facade_001" in t for kind, t in log if kind == "label")


def test_engine_renders_refreshed_frames_with_void_and_confidence(stage, tmp_path):
    from anchorstage.stages import refresh

    obj = bpy.data.objects["AnchorStage Splats"]
    ref = load_view("v0")["camera"]
    keyed = _addon("operators")
    cams = [ref.truck(-0.3 * k) for k in (1, 2)]
    for f, cam in enumerate(cams, start=1):
        _move_camera(stage, cam)
        keyed.keyframe_pose(stage.camera, frame=f)
    blend = tmp_path / "refresh.blend"
    stage.anchorstage.engine_output = "REFRESH"
    stage.render.engine = "ANCHORSTAGE"
    _addon("compat").set_multilayer_exr(stage.render.image_settings)
    stage.render.filepath = str(tmp_path / "frame_####")
    stage.frame_start, stage.frame_end = 1, 2
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), copy=True)
    # what `blender -b refresh.blend -a` does: open the file, render the animation
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    cache = _addon("splat_cache").STATS
    before = dict(cache)
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    # the splats are read and the witness stage built once for the animation, not once per frame
    assert (cache["mesh_reads"] - before["mesh_reads"], cache["stages"] - before["stages"]) == (1, 1)
    boundary = _addon("boundary")
    core = boundary.scene_from_mesh(bpy.data.objects["AnchorStage Splats"].data)
    for f in (1, 2):
        scene.frame_set(f)
        cam = boundary.camera_from_blender(scene.camera, scene)  # the keyed pose, as the engine saw it
        assert cam.allclose(cams[f - 1], atol=1e-4)
        ch = _read_exr(tmp_path / f"frame_{f:04d}.exr")
        res = refresh(core, cam, device="cpu")
        rgb = np.stack([ch[f"ViewLayer.Combined.{c}"] for c in "RGB"], -1)
        assert np.abs(rgb - res.witness).max() < 2e-3  # half-float Combined
        assert np.array_equal(ch["ViewLayer.Void.X"] > 0.5, res.void)
        assert np.abs(ch["ViewLayer.Confidence.X"] - res.confidence.map).max() < 2e-3
        assert res.void.any() and np.all(ch["ViewLayer.Combined.A"] == 1.0)
    # the plain splat render's Void pass is the witness's too (the sky it saw is not void)
    scene.anchorstage.engine_output = "PROXY"
    scene.render.filepath = str(tmp_path / "proxy.exr")
    before = dict(cache)
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    assert cache["mesh_reads"] == before["mesh_reads"]
    ch = _read_exr(tmp_path / "proxy.exr")
    sky = ~np.isfinite(load_view("v0")["depth_m"])
    assert (ch["ViewLayer.Void.X"][sky] > 0.5).mean() < 0.05
    # a region lock toggled: the kept stage is rebuilt with it, the splats are not read again
    item = bpy.data.objects["AnchorStage Splats"].data.anchorstage_regions[0]
    item.locked = not item.locked
    before = dict(cache)
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    assert (cache["mesh_reads"] - before["mesh_reads"], cache["stages"] - before["stages"]) == (0, 1)
    del obj
