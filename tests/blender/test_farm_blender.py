# SPDX-License-Identifier: GPL-3.0-or-later
"""Farm chunks in Blender: the batch's --skip-existing renders a chunk frame by frame, each written to
a temporary name and renamed into place, keeps complete frames, removes a killed run's leftovers,
fails without leaving a frame; and an OpenJD bundle of a .blend runs two chunks through
``blender -b FILE --python-expr ...`` (here ``tests/bpy_blender.py``, Blender's command line for the
bpy module) and resumes."""

import os
import subprocess
import sys

import pytest

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR

ARGS = ["--image", str(FIXTURE_DIR / "v0_rgb.png"), "--depth", str(FIXTURE_DIR / "v0_depth.npy"),
        "--camera-json", str(FIXTURE_DIR / "v0_camera.json"), "--frame-start", "1", "--frame-end", "4",
        "--move", "orbit", "--amount", "6", "--resolution-percentage", "20", "--device", "cpu"]


def _batch():
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.batch")


@pytest.fixture(scope="module")
def stage_blend(reset_blender, tmp_path_factory):
    """A saved .blend with an executed stage and a 4-frame camera orbit."""
    reset_blender()
    blend = tmp_path_factory.mktemp("farm") / "stage.blend"
    assert _batch().main([*ARGS, "--out", str(blend.parent / "unused"), "--save-blend", str(blend), "--no-render"]) == 0
    return blend


def _stamps(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_skip_existing_keeps_frames_cleans_leftovers_and_fails_cleanly(stage_blend, tmp_path, capsys):
    from farm_support import exr_channels

    out = tmp_path / "frames"
    bpy.ops.wm.open_mainfile(filepath=str(stage_blend))
    b = _batch()
    assert b.main(["--frames", "1-2", "--out", str(out), "--skip-existing"]) == 0
    assert sorted(os.listdir(out)) == ["frame_0001.exr", "frame_0002.exr"]
    assert {"ViewLayer.Combined.R", "ViewLayer.Depth.Z", "ViewLayer.Confidence.X"} <= exr_channels(out / "frame_0002.exr")
    stamps = _stamps(out)
    (out / ".frame_0003.partial-99999.exr").write_bytes(b"half a frame")  # what a killed Blender leaves
    capsys.readouterr()
    assert b.main(["--frames", "1-3", "--out", str(out), "--skip-existing"]) == 0
    assert "kept 2 complete frame(s): 1, 2" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["frame_0001.exr", "frame_0002.exr", "frame_0003.exr"]
    assert {k: v for k, v in _stamps(out).items() if k in stamps} == stamps
    assert (out / "frame_0003.exr").stat().st_size > 1000

    bpy.context.scene.camera = None  # a chunk that cannot render: an error, no frame, no leftover
    assert b.main(["--frames", "4", "--out", str(out), "--skip-existing"]) == 2
    assert "frame" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["frame_0001.exr", "frame_0002.exr", "frame_0003.exr"]


def test_openjd_blender_bundle_runs_two_chunks_and_resumes(stage_blend, tmp_path):
    from anchorstage.farm import write_openjd_bundle
    from farm_support import exr_channels, launcher, openjd_exe, openjd_run

    openjd_exe()
    blender = launcher(tmp_path / "blender", sys.executable, str(FIXTURE_DIR.parents[1] / "bpy_blender.py"))
    job = tmp_path / "job"
    res = write_openjd_bundle(stage_blend, job, frames=(1, 4), chunk=2, device="cpu", command=blender)
    assert res["step"] == "Render" and res["tasks"] == 2
    check = subprocess.run([openjd_exe(), "check", str(job / "template.json")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    run = openjd_run(job, "Render", ["1-2", "3-3"], cwd=tmp_path)
    assert run.returncode == 0, run.stdout[:3000] + run.stderr[-4000:]
    out = job / "output"
    assert sorted(os.listdir(out)) == ["frame_0001.exr", "frame_0002.exr", "frame_0003.exr"]
    assert {"ViewLayer.Combined.A", "ViewLayer.Depth.Z", "ViewLayer.Region.X"} <= exr_channels(out / "frame_0003.exr")
    stamps = _stamps(out)
    again = openjd_run(job, "Render", ["1-2", "3-3"], cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "kept 2 complete frame(s): 1, 2" in again.stdout and "kept 1 complete frame(s): 3" in again.stdout
    assert _stamps(out) == stamps
