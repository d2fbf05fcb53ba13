# SPDX-License-Identifier: GPL-3.0-or-later
"""The Fuse and Fidelity nodes in real Blender: a capture folder fused into a scene that an Export node
saves, a fidelity report written from a leave-one-out of a small capture, and bad folders shown on the
node without raising into Blender."""

import importlib
import json
import shutil
from pathlib import Path

import bpy
from blender_support import ADDON_MODULE

SAMPLE = Path(__file__).resolve().parents[2] / "sample" / "product"


def _graph():
    return importlib.import_module(f"{ADDON_MODULE}.nodes.runner")


def _capture(tmp_path, names=("az000", "az090", "az180", "az270")):
    cap = tmp_path / "capture"
    cap.mkdir()
    for name in names:
        for f in SAMPLE.glob(f"{name}*"):
            shutil.copy(f, cap)
    return cap


def test_fuse_node_feeds_an_export_node(fresh_scene, tmp_path):
    from anchorstage import load_scene

    cap = _capture(tmp_path)
    tree = bpy.data.node_groups.new("T", "AnchorStageNodeTree")
    fuse = tree.nodes.new("AnchorStageFuseNode")
    fuse.capture_dir = str(cap)
    ex = tree.nodes.new("AnchorStageExportNode")
    ex.format, ex.filepath = "SCENE", str(tmp_path / "stage")
    tree.links.new(fuse.outputs["scene"], ex.inputs["scene"])
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, report.errors
    assert fuse.as_state == "RAN" and "from 4 views" in fuse.as_message
    scene = _graph().node_outputs(tree, fuse.name)["scene"]
    back = load_scene(tmp_path / "stage")
    assert len(back.splats) == len(scene.splats) > 1000
    assert [v["view"] for v in back.meta["fusion"]["views"]] == ["az000", "az090", "az180", "az270"]
    # an unchanged folder is cached; a removed view runs the node again
    report = _graph().run_tree(tree, bpy.context)
    assert fuse.name in report.cached
    for f in cap.glob("az270*"):
        f.unlink()
    report = _graph().run_tree(tree, bpy.context)
    assert fuse.name not in report.cached and "from 3 views" in fuse.as_message


def test_fuse_node_shows_bad_capture_on_the_node(fresh_scene, tmp_path):
    cap = _capture(tmp_path, ("az000", "az090"))
    (cap / "az090_camera.json").unlink()
    tree = bpy.data.node_groups.new("T", "AnchorStageNodeTree")
    fuse = tree.nodes.new("AnchorStageFuseNode")
    fuse.capture_dir = str(cap)
    report = _graph().run_tree(tree, bpy.context)
    assert not report.ok
    assert fuse.as_state == "ERROR" and "az090_camera.json" in fuse.as_message
    fuse.capture_dir = ""
    _graph().run_tree(tree, bpy.context)
    assert fuse.as_state == "ERROR" and "no capture folder" in fuse.as_message


def test_fidelity_node_writes_the_report(fresh_scene, tmp_path):
    cap = _capture(tmp_path, ("az000", "az090", "az180", "az270"))
    tree = bpy.data.node_groups.new("T", "AnchorStageNodeTree")
    fid = tree.nodes.new("AnchorStageFidelityNode")
    fid.mode, fid.capture_dir, fid.report_dir = "LEAVE_ONE_OUT", str(cap), str(tmp_path / "report")
    fid.identity_model = "nobody/no-such-clip"
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, report.errors
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(
        ["fidelity.md", "fidelity.json", "contact_sheet.png", "per_angle.png"])
    rep = json.loads((tmp_path / "report" / "fidelity.json").read_text())
    assert rep["mode"] == "leave-one-out" and len(rep["angles"]) == 4
    assert "4 angles" in fid.as_message and "identity unavailable" in fid.as_message
    # a deleted report is written again on the next run (from the kept report: the inputs did not change)
    shutil.rmtree(tmp_path / "report")
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, report.errors
    assert json.loads((tmp_path / "report" / "fidelity.json").read_text()) == rep
    # compare mode: the held-out references against themselves
    fid.mode, fid.generated_dir, fid.reference_dir = "COMPARE", str(cap), str(cap)
    report = _graph().run_tree(tree, bpy.context)
    assert report.ok, report.errors
    rep = json.loads((tmp_path / "report" / "fidelity.json").read_text())
    assert rep["mode"] == "compare" and rep["summary"]["min_psnr_db"] == 99.0
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    fid.report_dir = str(other)
    _graph().run_tree(tree, bpy.context)
    assert fid.as_state == "ERROR" and "holds other files" in fid.as_message and (other / "keep.txt").is_file()
    fid.report_dir = str(tmp_path / "report")
    fid.reference_dir = str(tmp_path / "nowhere")
    _graph().run_tree(tree, bpy.context)
    assert fid.as_state == "ERROR" and "does not exist" in fid.as_message
    assert bpy.ops.anchorstage.execute.poll()  # Blender is still fine
