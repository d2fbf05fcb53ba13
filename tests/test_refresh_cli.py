# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage refresh`` end to end on a scene folder of the Cycles fixture's v0."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import anchorstage as a
from anchorstage.camera import save_camera_json
from anchorstage.cli import main
from anchorstage.witness import REFRESH_FILES
from gt_fixture import load_view


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    v0 = load_view("v0")
    scene = a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))
    return a.save_scene(scene, tmp_path_factory.mktemp("stage") / "scene")


def _camera(tmp_path, name, cam):
    p = tmp_path / f"{name}.json"
    save_camera_json(p, cam)
    return str(p)


def test_refresh_writes_every_file_and_keeps_locks(scene_dir, tmp_path, capsys):
    cam = _camera(tmp_path, "orbit", load_view("orbit")["camera"])
    out = tmp_path / "out"
    assert main(["refresh", str(scene_dir), "--camera", cam, "--out", str(out), "--lock", "facade_001",
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REFRESH_FILES)
    conf = json.loads((out / "confidence.json").read_text())
    assert 0 < conf["confidence"] < 1 and conf["refresh"]["locked_regions"] == ["facade_001"]
    assert f"confidence {conf['confidence']:.3f}" in capsys.readouterr().out
    locks = np.asarray(Image.open(out / "locks.png")) > 127
    void = np.asarray(Image.open(out / "void_map.png")) > 127
    assert locks.any() and void.any() and not (locks & void).any()
    exr = a.read_exr(out / "witness.exr")
    assert {"color", "alpha", "depth", "void", "confidence", "region"} <= set(exr)
    assert np.array_equal(exr["void"] > 0.5, void)
    assert a.load_camera_json(out / "camera.json").allclose(a.load_camera_json(cam), atol=1e-6)
    assert "refresh_steps" not in a.load_scene(scene_dir).meta  # not updated without --update-scene


def test_a_risky_move_warns(scene_dir, tmp_path, capsys):
    ref = a.load_scene(scene_dir).camera
    cam = _camera(tmp_path, "far", ref.orbit(ref.position + 7.0 * ref.forward, 40.0))
    assert main(["refresh", str(scene_dir), "--camera", cam, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "below" in err


def test_steps_are_incremental_and_update_the_scene(scene_dir, tmp_path, capsys):
    import shutil

    stage = tmp_path / "scene"
    shutil.copytree(scene_dir, stage)
    ref = a.load_scene(stage).camera
    pivot = ref.position + 7.0 * ref.forward
    cams = [_camera(tmp_path, f"c{k}", ref.orbit(pivot, 4.0 * k)) for k in (1, 2, 3)]
    out = tmp_path / "seq"
    assert main(["refresh", str(stage), "--steps", *cams, "--out", str(out), "--update-scene", "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["step_01", "step_02", "step_03"]
    after = a.load_scene(stage)
    assert [s["step"] for s in after.meta["refresh_steps"]] == [1, 2, 3]
    assert len(after.splats) == after.meta["refresh_steps"][-1]["splats"][1]
    assert "splats after 3 refresh step(s)" in capsys.readouterr().out


def test_bad_input_exits_2_with_one_line(scene_dir, tmp_path, capsys):
    cam = _camera(tmp_path, "c", load_view("dolly")["camera"])
    assert main(["refresh", str(scene_dir), "--camera", cam, "--out", str(tmp_path / "o"), "--lock", "chimney"]) == 2
    assert "no region 'chimney'" in capsys.readouterr().err
    assert main(["refresh", str(scene_dir), "--camera", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["refresh", str(tmp_path), "--camera", cam, "--out", str(tmp_path / "o")]) == 2
    assert "not an AnchorStage scene" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
