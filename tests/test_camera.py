# SPDX-License-Identifier: GPL-3.0-or-later
"""Core Camera: intrinsics, projection, moves, JSON, bad input."""

import json
import math

import numpy as np
import pytest

from anchorstage import FOCAL_PRESETS_MM, Camera, InputError, load_camera_json, look_at, save_camera_json


@pytest.fixture
def cam():
    return Camera(width=1920, height=1080, lens_mm=50.0, world_from_cam=look_at((1.0, -6.0, 1.7), (0.0, 0.0, 1.0)))


def _assert_rigid(c: Camera):
    r = c.rotation
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


def test_fov_50mm_on_36mm_sensor():
    c = Camera(width=1920, height=1080, lens_mm=50.0, sensor_width_mm=36.0)
    assert c.fov_deg[0] == pytest.approx(39.598, abs=5e-4)
    assert c.focal_px == pytest.approx(50 / 36 * 1920)


@pytest.mark.parametrize("fit,res,expect_f", [
    ("AUTO", (1920, 1080), 50 / 36 * 1920),
    ("AUTO", (1080, 1920), 50 / 36 * 1920),   # AUTO portrait: sensor_width against the height
    ("HORIZONTAL", (1080, 1920), 50 / 36 * 1080),
    ("VERTICAL", (1920, 1080), 50 / 24 * 1080),
])
def test_sensor_fit_rules(fit, res, expect_f):
    c = Camera(width=res[0], height=res[1], lens_mm=50.0, sensor_width_mm=36.0, sensor_height_mm=24.0, sensor_fit=fit)
    assert c.focal_px == pytest.approx(expect_f)


def test_shift_moves_principal_point():
    c = Camera(width=1000, height=500, lens_mm=35.0, shift_x=0.1, shift_y=-0.2)
    assert c.principal_point_px == pytest.approx((500 - 100, 250 - 200))


def test_project_unproject_round_trip(cam):
    rng = np.random.default_rng(1)
    uv = rng.uniform([0, 0], [1920, 1080], size=(100, 2))
    z = rng.uniform(0.5, 50, size=100)
    pts = cam.unproject(uv, z)
    uv2, z2 = cam.project(pts)
    np.testing.assert_allclose(uv2, uv, atol=1e-8)
    np.testing.assert_allclose(z2, z, rtol=1e-12)


def test_look_at_target_projects_to_centre(cam):
    uv, z = cam.project([[0.0, 0.0, 1.0]])
    np.testing.assert_allclose(uv[0], [960, 540], atol=1e-9)
    assert z[0] == pytest.approx(math.dist((1.0, -6.0, 1.7), (0, 0, 1)))


def test_projection_matrix_matches_pixels_and_clip_range(cam):
    rng = np.random.default_rng(2)
    pts = cam.unproject(rng.uniform([0, 0], [1920, 1080], (20, 2)), rng.uniform(1, 30, 20))
    clip = np.c_[pts, np.ones(20)] @ cam.full_projection_matrix().T
    ndc = clip[:, :3] / clip[:, 3:]
    uv, _ = cam.project(pts)
    np.testing.assert_allclose((ndc[:, 0] + 1) / 2 * 1920, uv[:, 0], atol=1e-8)
    np.testing.assert_allclose((ndc[:, 1] + 1) / 2 * 1080, uv[:, 1], atol=1e-8)
    p = cam.projection_matrix()
    near = p @ [0, 0, cam.clip_start, 1]
    far = p @ [0, 0, cam.clip_end, 1]
    assert near[2] / near[3] == pytest.approx(0.0, abs=1e-12)
    assert far[2] / far[3] == pytest.approx(1.0)


@pytest.mark.parametrize("move,axis", [("dolly", "forward"), ("truck", "right"), ("pedestal", "up")])
@pytest.mark.parametrize("dist", [0.5, -2.25, 10.0])
def test_translations_move_exact_metres(cam, move, axis, dist):
    moved = getattr(cam, move)(dist)
    delta = moved.position - cam.position
    assert np.linalg.norm(delta) == pytest.approx(abs(dist), abs=1e-12)
    np.testing.assert_allclose(delta, dist * getattr(cam, axis), atol=1e-12)
    np.testing.assert_array_equal(moved.rotation, cam.rotation)
    _assert_rigid(moved)


def test_pan_tilt_roll_rotate_in_place(cam):
    for move, angle in (("pan", 30.0), ("tilt", -12.5), ("roll", 90.0)):
        moved = getattr(cam, move)(angle)
        np.testing.assert_array_equal(moved.position, cam.position)
        _assert_rigid(moved)
    # pan keeps the view's elevation, positive pan turns left (counter-clockwise from above)
    panned = cam.pan(90.0)
    assert panned.forward[2] == pytest.approx(cam.forward[2], abs=1e-12)
    assert np.cross(cam.forward[:2], panned.forward[:2]) > 0
    assert cam.tilt(10.0).forward[2] > cam.forward[2]
    np.testing.assert_allclose(cam.roll(37.0).forward, cam.forward, atol=1e-12)
    # positive roll: counter-clockwise seen from behind, so the camera's up swings towards its left
    assert np.dot(cam.roll(10.0).up, -cam.right) > 0
    # angles are degrees: four quarter pans come back to the start
    back = cam.pan(90).pan(90).pan(90).pan(90)
    np.testing.assert_allclose(back.world_from_cam, cam.world_from_cam, atol=1e-12)
    assert np.degrees(np.arccos(np.clip(np.dot(cam.forward, cam.tilt(7.0).forward), -1, 1))) == pytest.approx(7.0)


def test_orbit_keeps_distance_and_looks_at_pivot(cam):
    pivot = np.array([0.0, 0.0, 1.0])
    for yaw, pitch in ((45.0, 0.0), (0.0, 20.0), (-120.0, -10.0)):
        moved = cam.orbit(pivot, yaw, pitch)
        assert np.linalg.norm(moved.position - pivot) == pytest.approx(np.linalg.norm(cam.position - pivot), abs=1e-12)
        uv, _ = moved.project([pivot])
        np.testing.assert_allclose(uv[0], [960, 540], atol=1e-8)
        _assert_rigid(moved)
    assert cam.orbit(pivot, 0.0, 20.0).position[2] > cam.position[2]


def test_zoom_and_presets(cam):
    assert cam.zoom(2.0).lens_mm == pytest.approx(100.0)
    np.testing.assert_array_equal(cam.zoom(2.0).world_from_cam, cam.world_from_cam)
    assert FOCAL_PRESETS_MM == (24.0, 35.0, 50.0, 85.0, 135.0)
    fovs = [cam.with_lens(f).fov_deg[0] for f in FOCAL_PRESETS_MM]
    assert fovs == sorted(fovs, reverse=True)


def test_json_round_trip(tmp_path, cam):
    c = cam.replace(sensor_fit="VERTICAL", shift_x=0.03, clip_end=250.0)
    path = tmp_path / "cam.json"
    save_camera_json(path, c)
    data = json.loads(path.read_text())
    assert data["resolution"] == [1920, 1080]
    np.testing.assert_allclose(np.array(data["matrix_world"]), c.world_from_cam @ np.diag([1, -1, -1, 1]))
    assert load_camera_json(path).allclose(c, atol=1e-12)


def test_brief_example_json():
    c = Camera.from_json_dict({"lens_mm": 35.0, "sensor_width_mm": 36.0, "resolution": [1920, 1080],
                               "matrix_world": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]})
    # Blender's identity camera looks down world -Z with +Y up.
    np.testing.assert_allclose(c.forward, [0, 0, -1])
    np.testing.assert_allclose(c.up, [0, 1, 0])


def test_from_K_round_trip(cam):
    c = cam.replace(shift_x=0.05, shift_y=-0.02)
    back = Camera.from_K(c.K, c.width, c.height, c.world_from_cam)
    np.testing.assert_allclose(back.K, c.K, atol=1e-9)


@pytest.mark.parametrize("kwargs,match", [
    ({"lens_mm": 0.0}, "lens_mm must be > 0"),
    ({"lens_mm": -35.0}, "lens_mm must be > 0"),
    ({"lens_mm": float("nan")}, "lens_mm must be finite"),
    ({"width": 0}, "width must be a positive integer"),
    ({"height": 10.5}, "height must be a positive integer"),
    ({"sensor_fit": "DIAGONAL"}, "sensor_fit must be one of"),
    ({"clip_start": 5.0, "clip_end": 1.0}, "clip_end"),
    ({"world_from_cam": np.diag([2.0, 1, 1, 1])}, "not rigid"),
    ({"world_from_cam": np.diag([-1.0, 1, 1, 1])}, "not rigid"),
    ({"world_from_cam": np.full((4, 4), np.nan)}, "non-finite"),
    ({"world_from_cam": np.eye(3)}, "4x4"),
])
def test_bad_cameras_raise_clear_errors(kwargs, match):
    base = dict(width=640, height=480, lens_mm=35.0)
    with pytest.raises(InputError, match=match):
        Camera(**{**base, **kwargs})


def test_bad_json_names_the_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match="bad.json.*not valid JSON"):
        load_camera_json(p)
    p.write_text(json.dumps({"lens_mm": 35, "resolution": [10, 10]}))
    with pytest.raises(InputError, match="missing field.*matrix_world"):
        load_camera_json(p)
    with pytest.raises(InputError, match="does not exist"):
        load_camera_json(tmp_path / "nope.json")


def test_moves_reject_non_finite(cam):
    with pytest.raises(InputError):
        cam.dolly(float("inf"))
    with pytest.raises(InputError):
        cam.zoom(0.0)
