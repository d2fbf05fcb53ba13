# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness refresh against the Cycles fixture (tests/data/cycles_gt): the stage is v0 reconstructed
with its exact depth (default budget) and segmented; the moves dolly / orbit / truck + zoom were
rendered by Cycles. The truth of what the witness saw comes from ray casting the fixture's analytic
geometry (gt_fixture.witness_sees)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from PIL import Image

import anchorstage as a
from anchorstage import witness as wit
from anchorstage.confidence import GREEN, MAX_ANGLE_DEG, YELLOW, angle_confidence, estimate, level, meter_proxy, overlay
from anchorstage.image_io import linear_to_srgb
from gt_fixture import load_view, witness_sees

MOVES = ("dolly", "orbit", "truckzoom")


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


@pytest.fixture
def stage():
    return _stage()


def _psnr(ours_linear: np.ndarray, truth_srgb_u8: np.ndarray, mask: np.ndarray) -> float:
    mse = float(((linear_to_srgb(ours_linear)[mask] - truth_srgb_u8[mask] / 255.0) ** 2).mean())
    return 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("move", MOVES)
def test_void_matches_true_disocclusions_and_warp_is_exact(stage, move):
    v0, view = load_view("v0"), load_view(move)
    res = a.refresh(stage, view["camera"], device="cpu")
    truth_void = ~witness_sees(view, v0)
    iou = (res.void & truth_void).sum() / (res.void | truth_void).sum()
    assert iou >= 0.7, iou
    # the sky the witness saw is a direction at infinity: not void (only the sky out of its frame is)
    sky_seen = ~np.isfinite(view["depth_m"]) & ~truth_void
    assert (res.void & sky_seen).sum() <= 0.02 * sky_seen.sum()
    # warped colour on the pixels both see (true covisible pixels the warp shows)
    both = ~truth_void & ~res.void
    assert both.mean() > 0.7
    assert _psnr(res.warp.color, view["image_srgb_u8"], both) >= 30.0
    # metric: the warped depth is the true depth (no scale drift)
    rel = np.abs(res.depth_m[both & np.isfinite(view["depth_m"])] - view["depth_m"][both & np.isfinite(view["depth_m"])])
    assert np.median(rel / view["depth_m"][both & np.isfinite(view["depth_m"])]) < 1e-3


def test_alpha_void_marked_the_sky_the_witness_void_does_not(stage):
    v0, view = load_view("v0"), load_view("orbit")
    truth_void = ~witness_sees(view, v0)
    frame = a.render_frame(stage, view["camera"], device="cpu")  # a stage's Void pass: from the witness
    old = a.render_frame(stage.splats, view["camera"], device="cpu")  # bare splats: alpha < 0.5
    iou = lambda v: (v & truth_void).sum() / (v | truth_void).sum()  # noqa: E731
    assert iou(frame.passes["void"] > 0.5) >= 0.7
    assert iou(old.passes["void"] > 0.5) < iou(frame.passes["void"] > 0.5)
    sky = ~np.isfinite(view["depth_m"]) & ~truth_void
    assert (old.passes["void"][sky] > 0.5).mean() > 0.9 and (frame.passes["void"][sky] > 0.5).mean() < 0.02


def test_pure_rotation_warps_the_sky_and_reveals_only_out_of_frame(stage):
    cam = stage.camera.pan(8.0).tilt(3.0)
    res = a.refresh(stage, cam, device="cpu")
    # a rotation reveals nothing behind anything: the void is exactly what left the witness's frame
    uv, z = stage.camera.project(cam.unproject(cam.pixel_centers().reshape(-1, 2), np.full(cam.width * cam.height, 1e4)))
    outside = ~((uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)).reshape(res.void.shape)
    assert (res.void ^ outside).sum() <= 0.01 * outside.sum() + cam.height
    assert res.warp.sky.any()
    assert res.confidence.angle_confidence == pytest.approx(1.0, abs=1e-6)
    assert np.abs(res.warp.angle_deg).max() < 1e-3


def test_locked_pixels_are_bit_identical_in_every_output(stage, tmp_path):
    cam = load_view("orbit")["camera"]
    res = a.refresh(stage, cam, locks=["facade_001", "ground"], device="cpu")
    facade = next(r.index for r in stage.regions if r.id == "facade_001")
    ground = [r.index for r in stage.regions if r.label == "ground"]
    assert res.locks.any() and res.void.any()
    assert set(np.unique(res.warp.region[res.locks])) <= {facade, *ground}
    # the fill never writes into locks, the void is still filled elsewhere
    assert np.array_equal(res.witness[res.locks], res.warp.color[res.locks])
    assert (res.filled & res.locks).sum() == 0 and res.filled.sum() > 0
    assert not np.array_equal(res.witness[~res.locks], res.warp.color[~res.locks])
    files = wit.save_refresh(res, tmp_path)
    png = np.asarray(Image.open(files["witness.png"]).convert("RGB"))
    warp_png = np.round(linear_to_srgb(res.warp.color) * 255).astype(np.uint8)
    assert np.array_equal(png[res.locks], warp_png[res.locks])
    exr = a.read_exr(files["witness.exr"])
    assert np.array_equal(exr["color"][res.locks], res.warp.color[res.locks])  # float32, bit for bit
    assert np.array_equal(np.asarray(Image.open(files["locks.png"])) > 127, res.locks)
    assert np.array_equal(np.asarray(Image.open(files["void_map.png"])) > 127, res.void)
    # without locks the same pixels may change (the feather blends the seam)
    free = a.refresh(stage, cam, device="cpu")
    assert not np.array_equal(free.witness[res.locks], res.warp.color[res.locks])


def test_fill_comes_from_the_background_side(stage):
    view = load_view("truckzoom")
    res = a.refresh(stage, view["camera"], device="cpu")
    fg = res.filled & np.isfinite(view["depth_m"])
    # what the fill continues is the farther surface: the fill depth is not in front of the true depth
    from anchorstage.witness import fill_classical, fill_depth

    fill = fill_classical(res.warp, res.locks)
    z = fill_depth(res.warp, fill, stage.regions)[fg]
    assert np.median(z / view["depth_m"][fg]) > 0.9


def test_three_step_drift_is_below_ten_percent(stage):
    ref = stage.camera
    pivot = ref.position + 7.0 * ref.forward
    s = stage
    for k in (1, 2, 3):
        res = a.refresh(s, ref.orbit(pivot, 10.0 * k / 3), update_scene=True, device="cpu")
        s = res.scene
        if k > 1:
            assert res.warp.covered.any()  # the earlier fills show instead of a new hole
    direct = a.refresh(stage, ref.orbit(pivot, 10.0), device="cpu")
    both = ~res.void & ~direct.void
    mean = float(stage.image_linear.mean())
    drift = float(np.abs(res.witness - direct.witness)[both].mean()) / mean
    assert drift < 0.1, drift
    filled = direct.filled & ~res.void  # the 3-step shows earlier fills where the direct refresh fills anew
    assert float(np.abs(res.witness - direct.witness)[filled].mean()) / mean < 0.1
    steps = s.meta["refresh_steps"]
    assert [st["step"] for st in steps] == [1, 2, 3]
    assert steps[0]["splats"][0] == len(stage.splats) and steps[-1]["splats"][1] == len(s.splats)
    assert len(s.splats) > len(stage.splats)
    new = s.splats.subset(slice(len(stage.splats), None))
    assert float(new.confidence.max()) <= wit.FILL_CONFIDENCE + 1e-6
    assert (new.region_ids >= 0).float().mean() > 0.9


def test_update_scene_round_trips_through_the_scene_folder(stage, tmp_path):
    cam = load_view("orbit")["camera"]
    res = a.refresh(stage, cam, locks=["object_001"], update_scene=True, device="cpu")
    assert res.added_splats > 0 and len(stage.splats) + res.added_splats == len(res.scene.splats)
    assert not any(r.locked for r in stage.regions)  # the input scene is left as it was
    assert [r.id for r in res.scene.regions if r.locked] == ["object_001"]
    a.save_scene(res.scene, tmp_path / "s")
    back = a.load_scene(tmp_path / "s")
    assert back.meta["refresh_steps"] == res.scene.meta["refresh_steps"]
    assert [r.id for r in back.regions if r.locked] == ["object_001"]
    again = a.refresh(back, cam, device="cpu")
    assert again.void.sum() < 0.2 * res.void.sum()  # the fills' splats cover what was void
    assert np.array_equal(again.locks, again.locks & ~again.void)


def test_confidence_formula_thresholds_and_overlay(stage):
    res = a.refresh(stage, load_view("orbit")["camera"], device="cpu")
    c = res.confidence
    assert c.value == pytest.approx((1 - c.void_coverage) * c.depth_confidence * c.angle_confidence)
    assert 0.0 < c.value < 1.0 and c.void_coverage == pytest.approx(res.void.mean())
    assert c.map.shape == res.void.shape and np.all(c.map[res.void] == 0) and c.map.max() <= 1.0
    assert level(GREEN) == "green" and level(YELLOW) == "yellow" and level(YELLOW - 1e-6) == "red"
    np.testing.assert_allclose(angle_confidence([0.0, MAX_ANGLE_DEG / 2, 90.0]), [1.0, 0.5, 0.0])
    ov = overlay(res.witness, c.map, res.void)
    assert ov.shape == res.witness.shape and ov.min() >= 0 and ov.max() <= 1
    red = ov[res.void]
    assert np.all(red[:, 0] > red[:, 1])  # void is red
    d = c.to_json_dict()
    assert d["thresholds"] == {"green": GREEN, "yellow": YELLOW, "max_angle_deg": MAX_ANGLE_DEG}
    json.dumps(d)
    # a bigger move is less safe
    far = a.refresh(stage, stage.camera.orbit(stage.camera.position + 7.0 * stage.camera.forward, 25.0), device="cpu")
    assert far.confidence.value < c.value


def test_meter_estimate_follows_the_full_refresh(stage):
    proxy = meter_proxy(stage, max_side=160)
    for move in MOVES:
        cam = load_view(move)["camera"]
        full = a.refresh(stage, cam, device="cpu").confidence
        quick = estimate(proxy, cam, max_side=120)
        assert quick.map.shape[1] == 120
        assert abs(quick.value - full.value) < 0.05, (move, quick.value, full.value)


def test_export_metadata_carries_the_confidence(stage, tmp_path):
    cam = load_view("dolly")["camera"]
    md = a.export_frames(stage, [cam], tmp_path, passes=("color", "alpha", "confidence", "void"), device="cpu")[0]
    c = a.refresh(stage, cam, device="cpu").confidence
    assert md["confidence"]["confidence"] == pytest.approx(c.value, abs=1e-5)
    assert md["confidence"]["level"] == c.level and md["confidence"]["void_coverage"] == pytest.approx(c.void_coverage, abs=1e-6)
    void = np.asarray(Image.open(tmp_path / md["files"]["void_map"])) > 127
    assert void.mean() == pytest.approx(c.void_coverage)


def test_bad_input_is_named(stage):
    cam = load_view("dolly")["camera"]
    with pytest.raises(a.InputError, match="no region 'chimney'.*facade_001"):
        a.refresh(stage, cam, locks=["chimney"])
    with pytest.raises(a.InputError, match="inpaint must be one of"):
        a.refresh(stage, cam, inpaint="magic")
    with pytest.raises(a.InputError, match="camera must be an anchorstage.Camera"):
        a.refresh(stage, "cam.json")
