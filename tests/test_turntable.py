# SPDX-License-Identifier: GPL-3.0-or-later
"""Turntable camera paths (radius, elevation, centre, every camera looking at the centre), the product's
centre from the foreground splats, and ``anchorstage turntable`` writing a compositing package per angle."""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

import anchorstage as a
from anchorstage.camera import Camera, look_at, turntable_path
from anchorstage.errors import InputError
from anchorstage.region import Region
from anchorstage.stages import product_centre, turntable_cameras
from gt_fixture import load_view

CENTRE = np.array([0.4, 2.0, 0.7])


def _ref(eye=(0.4, -3.0, 2.2)) -> Camera:
    return Camera(width=320, height=180, lens_mm=35.0, world_from_cam=look_at(eye, CENTRE))


def _looks_at(cam: Camera, centre: np.ndarray) -> None:
    to_c = centre - cam.position
    assert np.allclose(cam.forward, to_c / np.linalg.norm(to_c), atol=1e-9)
    uv, z = cam.project(centre[None])
    assert z[0] > 0 and np.allclose(uv[0], [cam.width / 2, cam.height / 2], atol=1e-6)
    assert cam.up[2] > 0 and abs(cam.right[2]) < 1e-9  # upright, no roll


@pytest.mark.parametrize("views,radius,elev", [(8, 2.5, 20.0), (5, 0.8, -10.0), (1, 4.0, 0.0)])
def test_turntable_path_has_its_radius_elevation_spacing_and_looks_at_the_centre(views, radius, elev):
    cams = turntable_path(_ref(), CENTRE, views, radius_m=radius, elevation_deg=elev, start_deg=30.0)
    assert len(cams) == views
    az = []
    for cam in cams:
        off = cam.position - CENTRE
        assert math.isclose(np.linalg.norm(off), radius, rel_tol=1e-9)
        assert math.isclose(math.degrees(math.asin(off[2] / radius)), elev, abs_tol=1e-9)
        _looks_at(cam, CENTRE)
        assert cam.resolution == (320, 180) and cam.lens_mm == 35.0
        az.append(math.degrees(math.atan2(off[1], off[0])))
    steps = np.diff(np.unwrap(np.radians(az)))
    assert math.isclose(az[0] % 360, 30.0, abs_tol=1e-9)
    assert np.allclose(np.degrees(steps), 360.0 / views)  # evenly spaced, counter-clockwise, no repeated end


def test_turntable_defaults_come_from_the_reference_camera():
    ref = _ref()
    cams = turntable_path(ref, CENTRE, 8)
    assert np.allclose(cams[0].world_from_cam, ref.world_from_cam, atol=1e-9)  # a reference aimed at the centre is view 0
    dist = np.linalg.norm(ref.position - CENTRE)
    assert all(math.isclose(np.linalg.norm(c.position - CENTRE), dist, rel_tol=1e-9) for c in cams)
    assert all(math.isclose(c.position[2], ref.position[2], abs_tol=1e-9) for c in cams)


def test_a_partial_sweep_reaches_both_ends():
    cams = turntable_path(_ref(), CENTRE, 3, radius_m=2.0, elevation_deg=0.0, start_deg=0.0, sweep_deg=90.0)
    ends = [c.position - CENTRE for c in (cams[0], cams[-1])]
    assert np.allclose(ends[0], [2, 0, 0], atol=1e-9) and np.allclose(ends[1], [0, 2, 0], atol=1e-9)


@pytest.mark.parametrize("kw,needle", [
    (dict(views=0), "views"), (dict(views=-3), "views"), (dict(views=2.5), "views"), (dict(views=True), "views"),
    (dict(radius_m=0.0), "radius_m"), (dict(radius_m=float("nan")), "radius_m"),
    (dict(elevation_deg=90.0), "elevation_deg"), (dict(elevation_deg=-95.0), "elevation_deg"),
    (dict(sweep_deg=0.0), "sweep_deg"), (dict(sweep_deg=400.0), "sweep_deg"),
    (dict(centre=(0, 0)), "centre"), (dict(centre=(0, 0, float("inf"))), "centre"),
])
def test_bad_turntable_arguments_name_themselves(kw, needle):
    args = {"views": 8, "centre": CENTRE, **{k: v for k, v in kw.items() if k in ("views", "centre")}}
    extra = {k: v for k, v in kw.items() if k not in ("views", "centre")}
    with pytest.raises(InputError, match=needle):
        turntable_path(_ref(), args["centre"], args["views"], **extra)


def _splats(points: np.ndarray, opacity: float = 0.9, region_ids=None) -> a.Splats:
    n = len(points)
    return a.Splats(means=torch.tensor(points, dtype=torch.float32), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                    scales=torch.full((n, 3), 0.01), opacities=torch.full((n,), opacity), colors=torch.rand(n, 3),
                    region_ids=None if region_ids is None else torch.tensor(region_ids, dtype=torch.int32))


def test_product_centre_is_the_middle_of_the_foreground_not_of_its_visible_side_or_the_background():
    rng = np.random.default_rng(0)
    # the visible front face of a 0.4 m box centred at CENTRE (dense) and its back (sparse)
    front = CENTRE + np.c_[rng.uniform(-0.2, 0.2, 3000), np.full(3000, -0.2), rng.uniform(-0.2, 0.2, 3000)]
    back = CENTRE + np.c_[rng.uniform(-0.2, 0.2, 300), np.full(300, 0.2), rng.uniform(-0.2, 0.2, 300)]
    strays = rng.uniform(-30, 30, (20, 3))
    ground = np.c_[rng.uniform(-10, 10, 5000), rng.uniform(-10, 10, 5000), np.zeros(5000)]
    pts = np.concatenate([front, back, strays, ground])
    ids = np.r_[np.zeros(len(front) + len(back) + len(strays), int), np.ones(len(ground), int)]
    scene = a.Scene(camera=_ref(), splats=_splats(pts, region_ids=ids), image_linear=np.zeros((180, 320, 3), np.float32),
                    depth_m=np.ones((180, 320), np.float32),
                    regions=[Region(0, "object_001", "object"), Region(1, "ground_001", "ground")])
    assert np.allclose(product_centre(scene), CENTRE, atol=0.03)
    # no object region: everything but the background labels
    scene.regions = [Region(0, "facade_001", "facade"), Region(1, "ground_001", "ground")]
    assert np.linalg.norm(product_centre(scene) - CENTRE) > 1.0
    # a fused product capture (no regions): every splat is the product
    bare = _splats(np.concatenate([front, back]))
    assert np.allclose(product_centre(bare), CENTRE, atol=0.03)
    cams = turntable_cameras(a.Scene(camera=_ref(), splats=bare, image_linear=scene.image_linear, depth_m=scene.depth_m),
                             8, radius_m=1.5, elevation_deg=15.0)
    for cam in cams:
        _looks_at(cam, product_centre(bare))


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


def test_turntable_cli_writes_a_compositing_package_per_angle(tmp_path, capsys):
    from anchorstage.cli import main
    from anchorstage.export import load_camera_list

    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    out = tmp_path / "tt"
    code = main(["turntable", str(scene_dir), "--views", "4", "--out", str(out), "--radius-m", "6",
                 "--elevation-deg", "10", "--centre", "0,8,1", "--sweep-deg", "40", "--resolution", "160x90",
                 "--passes", "color,alpha,depth,void,region", "--device", "cpu"])
    res = capsys.readouterr()
    assert code == 0, res.err
    cams = [c for _, c in load_camera_list(out / "cameras.json")]
    assert len(cams) == 4
    info = json.loads((out / "turntable.json").read_text())
    assert info["centre_m"] == [0.0, 8.0, 1.0] and info["radius_m"] == 6.0 and info["views"] == 4
    for k, cam in enumerate(cams, start=1):
        assert (out / f"render.{k:04d}.exr").is_file() and (out / f"frame_{k:04d}" / "metadata.json").is_file()
        md = json.loads((out / f"frame_{k:04d}" / "metadata.json").read_text())
        assert md["camera"]["resolution"] == [160, 90]
        assert math.isclose(np.linalg.norm(cam.position - [0, 8, 1]), 6.0, rel_tol=1e-6)
        _looks_at(cam, np.array([0.0, 8.0, 1.0]))
        exr = a.read_exr(out / f"render.{k:04d}.exr")
        assert exr["depth"].shape == (90, 160)


@pytest.mark.parametrize("args,needle", [
    (["--views", "0"], "--views"), (["--views", "8", "--centre", "1,2"], "--centre"),
    (["--views", "8", "--resolution", "big"], "--resolution"), (["--views", "8", "--radius-m", "-1"], "radius_m"),
])
def test_turntable_cli_bad_input_is_one_line(tmp_path, capsys, args, needle):
    from anchorstage.cli import main

    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    code = main(["turntable", str(scene_dir), "--out", str(tmp_path / "tt"), "--device", "cpu", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
