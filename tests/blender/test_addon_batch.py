# SPDX-License-Identifier: GPL-3.0-or-later
"""Headless batch: build a stage from a photo, animate the camera, render one frame-range chunk of
multilayer EXRs; the saved .blend renders again with `-a` semantics (render(animation=True))."""

import os
import subprocess
import sys

import numpy as np
import pytest

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR

ARGS = ["--image", str(FIXTURE_DIR / "v0_rgb.png"), "--depth", str(FIXTURE_DIR / "v0_depth.npy"),
        "--camera-json", str(FIXTURE_DIR / "v0_camera.json"), "--frame-start", "1", "--frame-end", "5",
        "--move", "orbit", "--amount", "8", "--resolution-percentage", "25"]


def _batch():
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.batch")


def _depth(path):
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        for part in f.parts:
            if "ViewLayer.Depth.Z" in part.channels:
                return np.array(part.channels["ViewLayer.Depth.Z"].pixels)
    raise AssertionError(f"{path} has no ViewLayer.Depth.Z")


def test_bad_frame_chunks_fail_before_any_work(installed_addon, tmp_path, capsys):
    b = _batch()
    for bad in ("x", "5-3", "1-"):
        assert b.main([*ARGS, "--frames", bad, "--out", str(tmp_path / "o")]) == 2
        assert "frame range" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_batch_renders_only_its_chunk_and_saves_a_renderable_blend(fresh_scene, tmp_path):
    out = tmp_path / "frames"
    blend = tmp_path / "stage.blend"
    code = _batch().main([*ARGS, "--frames", "2-3", "--out", str(out), "--save-blend", str(blend)])
    assert code == 0
    assert sorted(os.listdir(out)) == ["frame_0002.exr", "frame_0003.exr"]
    d2, d3 = _depth(out / "frame_0002.exr"), _depth(out / "frame_0003.exr")
    assert d2.shape == (45, 80)
    assert np.mean(np.abs(d2 - d3) > 1e-3) > 0.05  # the camera orbits between frames
    assert blend.is_file()

    # What `blender -b stage.blend -a` does: open the file, render its animation with its settings.
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    assert scene.render.engine == "ANCHORSTAGE"
    again = tmp_path / "again"
    scene.render.filepath = str(again / "frame_####")
    scene.frame_start, scene.frame_end = 3, 3
    assert bpy.ops.render.render(animation=True) == {"FINISHED"}
    np.testing.assert_allclose(_depth(again / "frame_0003.exr"), d3, rtol=1e-6)


def test_batch_reports_bad_input(fresh_scene, tmp_path, capsys):
    b = _batch()
    assert b.main(["--image", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert b.main(["--out", str(tmp_path / "o")]) == 2  # no --image and no stage in the file
    assert "no AnchorStage stage" in capsys.readouterr().err
    assert b.main([*ARGS, "--frames", "9-2", "--out", str(tmp_path / "o")]) == 2


def test_script_entry_with_the_bpy_module(addon_zip, tmp_path):
    """`python scripts/blender_batch.py --addon-zip ...` in a fresh process (a fresh Blender)."""
    root = FIXTURE_DIR.parents[2]
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    cmd = [sys.executable, str(root / "scripts" / "blender_batch.py"), "--addon-zip", str(addon_zip), *ARGS,
           "--frames", "4", "--out", str(tmp_path / "o"), "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert os.listdir(tmp_path / "o") == ["frame_0004.exr"]
    assert "wrote" in res.stdout
