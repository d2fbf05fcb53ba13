# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage reconstruct`` end to end, including bad input (one clear line, nothing half-written)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from anchorstage import load_scene
from anchorstage.cli import main
from gt_fixture import FIXTURE_DIR, load_view

IMG = str(FIXTURE_DIR / "v0_rgb.png")
DEPTH = str(FIXTURE_DIR / "v0_depth.npy")
CAM = str(FIXTURE_DIR / "v0_camera.json")


def _run(capsys, *argv):
    rc = main(["reconstruct", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_photo_depth_camera_to_scene(tmp_path, capsys):
    rc, out, err = _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--out", tmp_path / "s", "--device", "cpu")
    assert rc == 0, err
    assert "splats from 320x180" in out
    sc = load_scene(tmp_path / "s")
    v = load_view("v0")
    assert sc.camera.allclose(v["camera"]) and sc.meta["intrinsics_source"] == "camera file"
    assert sc.meta["depth_source"] == "file v0_depth.npy" and sc.meta["source_image"] == "v0_rgb.png"
    assert np.array_equal(sc.depth_m, v["depth_m"])
    # The PNG is 8-bit sRGB: the scene holds its linear decoding, close to Cycles' linear EXR.
    np.testing.assert_allclose(sc.image_linear, v["image_linear"], atol=0.01)


def test_lens_and_sensor_options_and_budget(tmp_path, capsys):
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--lens-mm", 50, "--sensor-mm", 24, "--max-splats", 5000,
                      "--no-second-layer", "--out", tmp_path / "s")
    assert rc == 0, err
    sc = load_scene(tmp_path / "s")
    assert sc.camera.lens_mm == 50 and sc.camera.sensor_width_mm == 24
    assert len(sc.splats) <= 5000 and sc.meta["second_layer_splats"] == 0
    assert sc.meta["intrinsics_source"].startswith("lens")


def test_color_fit_is_on_by_default_and_can_be_switched_off(tmp_path, capsys):
    common = [IMG, "--depth", DEPTH, "--camera", CAM, "--no-regions", "--device", "cpu"]
    assert _run(capsys, *common, "--out", tmp_path / "fit")[0] == 0
    assert _run(capsys, *common, "--no-color-fit", "--out", tmp_path / "plain")[0] == 0
    fit, plain = load_scene(tmp_path / "fit"), load_scene(tmp_path / "plain")
    assert fit.meta["color_fit"]["iterations"] > 0 and plain.meta["color_fit"] is None
    assert np.array_equal(fit.splats.means.numpy(), plain.splats.means.numpy())
    # Without the fit a single-pixel splat keeps its pixel's colour; with it, colours may leave [0, 1]
    # and the scene folder keeps them exactly.
    assert float(fit.splats.colors.min()) < 0.0 and float(plain.splats.colors.min()) >= 0.0
    assert not np.array_equal(fit.splats.colors.numpy(), plain.splats.colors.numpy())


def test_no_camera_uses_exif_or_the_documented_default(tmp_path, capsys):
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--out", tmp_path / "s")
    assert rc == 0, err
    sc = load_scene(tmp_path / "s")
    assert sc.meta["intrinsics_source"] == "default" and sc.meta["intrinsics"]["source"] == "default"
    np.testing.assert_allclose(sc.camera.world_from_cam[:3, 2], [0, 1, 0], atol=1e-12)  # looks along +Y


def test_depth_of_another_size_with_the_same_aspect_is_resampled(tmp_path, capsys):
    d = load_view("v0")["depth_m"][::2, ::2]
    np.save(tmp_path / "half.npy", d)
    rc, _, err = _run(capsys, IMG, "--depth", tmp_path / "half.npy", "--camera", CAM, "--out", tmp_path / "s")
    assert rc == 0, err
    notes = load_scene(tmp_path / "s").meta["notes"]
    assert any("resampled from 160x90 to 320x180" in n for n in notes)


def test_without_depth_a_depth_model_runs(tmp_path, capsys):
    from test_depth_estimation import DA_PREP, _save, tiny_depth_anything

    folder = _save(tiny_depth_anything(), tmp_path / "da", DA_PREP)
    rc, _, err = _run(capsys, IMG, "--camera", CAM, "--depth-model", folder, "--out", tmp_path / "s", "--device", "cpu")
    assert rc == 0, err
    sc = load_scene(tmp_path / "s")
    assert sc.meta["depth_source"] == f"model {folder}" and len(sc.splats) > 0
    assert np.all(np.isfinite(sc.splats.means.numpy()))


def _assert_one_line_error(rc, err, *needles):
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("anchorstage reconstruct: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("case, needles", [
    ("missing_image", ["image", "does not exist"]),
    ("unreadable_image", ["image", "not an image"]),
    ("wrong_aspect_depth", ["depth file", "aspect ratios differ"]),
    ("all_invalid_depth", ["depth file", "no valid depth"]),
    ("negative_lens", ["--lens-mm must be > 0"]),
    ("zero_sensor", ["--sensor-mm must be > 0"]),
    ("bad_budget", ["--max-splats"]),
    ("missing_depth", ["depth file", "does not exist"]),
    ("bad_camera", ["camera file", "not valid JSON"]),
    ("camera_and_lens", ["either --camera or --lens-mm"]),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, capsys, case, needles):
    out = tmp_path / "scene"
    args = [IMG, "--depth", DEPTH, "--out", out]
    if case == "missing_image":
        args[0] = tmp_path / "nope.jpg"
    elif case == "unreadable_image":
        (tmp_path / "x.png").write_bytes(b"garbage")
        args[0] = tmp_path / "x.png"
    elif case == "wrong_aspect_depth":
        np.save(tmp_path / "d.npy", np.ones((180, 180), np.float32))
        args[2] = tmp_path / "d.npy"
    elif case == "all_invalid_depth":
        np.save(tmp_path / "d.npy", np.full((180, 320), np.nan, np.float32))
        args[2] = tmp_path / "d.npy"
    elif case == "negative_lens":
        args += ["--lens-mm", "-35"]
    elif case == "zero_sensor":
        args += ["--lens-mm", "35", "--sensor-mm", "0"]
    elif case == "bad_budget":
        args += ["--max-splats", "0"]
    elif case == "missing_depth":
        args[2] = tmp_path / "none.npy"
    elif case == "bad_camera":
        (tmp_path / "c.json").write_text("{oops")
        args += ["--camera", tmp_path / "c.json"]
    elif case == "camera_and_lens":
        args += ["--camera", CAM, "--lens-mm", "35"]
    rc, _, err = _run(capsys, *args)
    _assert_one_line_error(rc, err, *needles)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries


def test_existing_scene_needs_force(tmp_path, capsys):
    out = tmp_path / "s"
    assert _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--out", out, "--max-splats", 3000)[0] == 0
    before = (out / "scene.json").read_bytes()
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--out", out)
    _assert_one_line_error(rc, err, "already holds a scene", "--force")
    assert (out / "scene.json").read_bytes() == before
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--out", out, "--force", "--max-splats", 4000)
    assert rc == 0, err
    assert json.loads((out / "scene.json").read_text())["meta"]["max_splats"] == 4000


def test_unwritable_output(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--out", tmp_path / "file" / "scene")
    _assert_one_line_error(rc, err, "cannot be created")
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"keep")
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--out", other, "--force")
    _assert_one_line_error(rc, err, "holds no AnchorStage scene")
    assert (other / "a.jpg").read_bytes() == b"keep"


def test_16bit_png_depth_in_millimetres(tmp_path, capsys):
    d = load_view("v0")["depth_m"]
    mm = np.where(np.isfinite(d), np.round(d * 1000), 0).astype(np.uint16)
    Image.fromarray(mm).save(tmp_path / "d.png")
    rc, _, err = _run(capsys, IMG, "--depth", tmp_path / "d.png", "--camera", CAM, "--out", tmp_path / "s")
    assert rc == 0, err
    got = load_scene(tmp_path / "s").depth_m
    assert np.array_equal(np.isinf(got), ~np.isfinite(d))
    np.testing.assert_allclose(got[np.isfinite(d)], d[np.isfinite(d)], atol=0.0006)


def test_scene_gets_regions_unless_asked_not_to(tmp_path, capsys):
    rc, out, err = _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--out", tmp_path / "s")
    assert rc == 0, err
    sc = load_scene(tmp_path / "s")
    labels = {r.label for r in sc.regions}
    assert {"sky", "ground", "facade"} <= labels, labels
    assert "regions: " in out and "ground_001" in out
    ids = sc.splats.region_ids.numpy()
    assert (ids >= 0).mean() > 0.95  # nearly every splat lies in a region
    rc, _, err = _run(capsys, IMG, "--depth", DEPTH, "--camera", CAM, "--no-regions", "--out", tmp_path / "n")
    assert rc == 0, err
    assert load_scene(tmp_path / "n").regions == []


def test_without_exif_focal_a_depth_pro_field_of_view_sets_the_lens(tmp_path, capsys):
    from test_depth_estimation import _constant_head, _save, tiny_depth_pro

    model = tiny_depth_pro()
    _constant_head(model.head.layers[-2], 0.25)
    _constant_head(model.fov_model.head.layers[-1], 60.0)  # the model sees a 60° horizontal field of view
    folder = _save(model, tmp_path / "dp")
    rc, _, err = _run(capsys, IMG, "--depth-model", folder, "--out", tmp_path / "s", "--device", "cpu")
    assert rc == 0, err
    sc = load_scene(tmp_path / "s")
    assert sc.meta["intrinsics_source"] == f"field of view estimated by {folder}"
    assert sc.meta["intrinsics"]["source"] == "default"
    assert sc.camera.fov_deg[0] == pytest.approx(60.0)


def test_camera_from_fov():
    from anchorstage import Camera
    from anchorstage.stages import camera_from_fov

    for w, h in ((640, 360), (360, 640)):
        cam = camera_from_fov(Camera(width=w, height=h, lens_mm=50.0), 60.0)
        assert cam.fov_deg[0] == pytest.approx(60.0)
    with pytest.raises(Exception, match="impossible field of view"):
        camera_from_fov(Camera(width=64, height=64, lens_mm=50.0), 190.0)
