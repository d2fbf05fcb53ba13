# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage demo`` end to end on a small sample (the Cycles fixture's reference view)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from anchorstage import read_exr
from anchorstage.cli import main
from anchorstage.demo import demo_move as camera_move, find_sample
from gt_fixture import FIXTURE_DIR, reference_camera


@pytest.fixture
def sample(tmp_path):
    d = tmp_path / "sample"
    d.mkdir()
    shutil.copy(FIXTURE_DIR / "v0_rgb.png", d / "photo.png")
    shutil.copy(FIXTURE_DIR / "v0_depth.npy", d / "photo_depth.npy")
    shutil.copy(FIXTURE_DIR / "v0_camera.json", d / "camera.json")
    return d


def test_demo_runs_the_main_job(tmp_path, sample, capsys):
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--sample", str(sample), "--frames", "4", "--device", "cpu",
                 "--backend", "torch"]) == 0
    assert "4 frames" in capsys.readouterr().out
    exrs = sorted(p.name for p in (out / "frames").glob("*.exr"))
    assert exrs == [f"render.{i:04d}.exr" for i in range(1, 5)]
    assert (out / "scene" / "scene.json").is_file()
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size[0] > 5 * 320 and sheet.size[1] > 4 * 180
    arr = np.asarray(sheet)
    assert arr.std() > 20  # real pictures, not a blank canvas
    # The move is metric: frames 1-2 orbit, 3-4 dolly forward; the reference sees the stage hole-free.
    first = read_exr(out / "frames" / "render.0001.exr")
    last = read_exr(out / "frames" / "render.0004.exr")
    ref = reference_camera()
    assert np.linalg.norm(last["camera"].position - ref.position) > 0.5
    assert first["alpha"].mean() > 0.8 and (first["region"] >= 0).mean() > 0.5
    md = json.loads((out / "frames" / "frame_0004" / "metadata.json").read_text())
    assert md["regions"] and "dolly" in md["generation"]["move"]
    assert md["confidence"]["level"] in ("green", "yellow", "red") and 0 < md["confidence"]["confidence"] <= 1
    # every camera of the move is refreshed (classical): witness, void, locks, confidence
    for f in range(1, 5):
        folder = out / "refresh" / f"frame_{f:04d}"
        assert {"witness.png", "witness.exr", "void_map.png", "locks.png", "confidence.json",
                "confidence_overlay.png"} <= {p.name for p in folder.iterdir()}
    conf = json.loads((out / "refresh" / "frame_0004" / "confidence.json").read_text())
    assert conf["confidence"] == pytest.approx(md["confidence"]["confidence"], abs=1e-6)
    void = np.asarray(Image.open(out / "refresh" / "frame_0001" / "void_map.png")) > 127
    assert 0 < void.mean() < 0.5
    # the sheet shows raw render, void, refreshed witness and confidence side by side (and depth, regions)
    assert sheet.size[0] > 6 * 320
    # beside it, an MP4 of the move: the refreshed witness of every frame, H.264 yuv420p
    av = pytest.importorskip("av")
    with av.open(str(out / "camera_move.mp4")) as c:
        assert (c.streams.video[0].codec_context.name, c.streams.video[0].codec_context.pix_fmt) == ("h264", "yuv420p")
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (180, 320, 3)
    witness = np.asarray(Image.open(out / "refresh" / "frame_0004" / "witness.png").convert("RGB")).astype(float)
    assert np.abs(frames[3].astype(float) - witness).mean() < 6


def test_camera_move_is_metric():
    ref = reference_camera()
    cams = camera_move(ref, 8.0, 6, 10.0, 2.0)
    pivot = ref.position + 8.0 * ref.forward
    for c in cams[:3]:  # orbit keeps the distance to the pivot
        assert abs(np.linalg.norm(c.position - pivot) - 8.0) < 1e-6
    np.testing.assert_allclose(cams[-1].position, ref.position + 2.0 * ref.forward, atol=1e-9)


def test_missing_sample_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "o"), "--sample", str(tmp_path / "nowhere")]) == 2
    assert "sample was not found" in capsys.readouterr().err
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "photo.png").write_bytes(b"")
    with pytest.raises(Exception, match="must hold a photo"):
        find_sample(str(tmp_path / "partial"))


def test_demo_never_replaces_an_earlier_run_without_force_and_checks_arguments_first(tmp_path, sample, capsys):
    out = tmp_path / "out"
    assert main(["demo", "--out", str(out), "--sample", str(sample), "--orbit-deg", "nan"]) == 2
    assert not out.exists()  # refused before anything was written
    (out / "scene").mkdir(parents=True)
    (out / "scene" / "mine.txt").write_text("keep me")
    assert main(["demo", "--out", str(out), "--sample", str(sample), "--frames", "2", "--device", "cpu"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "scene" / "mine.txt").read_text() == "keep me"
