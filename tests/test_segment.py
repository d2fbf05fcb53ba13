# SPDX-License-Identifier: GPL-3.0-or-later
"""Region segmentation on analytic synthetic stages and on the Cycles ground-truth fixture."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from anchorstage import Camera, InputError, Splats, look_at
from anchorstage.segmentation import assign_splats, label_map, segment, segment_depth

SKY, GROUND, FACADE, SPHERE, BOX = range(5)
_COLOURS = {SKY: (0.35, 0.55, 0.9), GROUND: (0.25, 0.22, 0.18), FACADE: (0.6, 0.3, 0.2), SPHERE: (0.8, 0.1, 0.1),
            BOX: (0.8, 0.7, 0.1)}


def synthetic_stage(width=640, height=360, lens_mm=35.0, world_from_cam=None, sphere=((1.2, 5.0, 0.8), 0.8),
                    box=((-2.3, 5.5, 0.0), (-1.3, 6.5, 1.0))):
    """Ray-cast an analytic stage like the Cycles fixture: ground z=0, facade y=10, sphere, box.

    The default camera stands 1.6 m above the ground looking slightly down at the facade.
    ``sphere`` is (centre, radius) and ``box`` its axis-aligned (min corner, max corner), metres.

    Returns:
        (image_linear [H, W, 3], depth_m [H, W] (inf = sky), object_index [H, W] uint8, camera).
    """
    cam = Camera(width=width, height=height, lens_mm=lens_mm, sensor_width_mm=36.0,
                 world_from_cam=look_at((0.0, 0.0, 1.6), (0.0, 10.0, 1.2)) if world_from_cam is None
                 else world_from_cam)
    uv = cam.pixel_centers().reshape(-1, 2)
    xy = (uv - np.asarray(cam.principal_point_px)) / cam.focal_px
    ray = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ cam.rotation.T  # camera z = 1: t is planar depth
    o = cam.position
    best = np.full(len(ray), np.inf)
    idx = np.zeros(len(ray), np.uint8)

    def take(t, k):
        nonlocal best
        better = (t > 1e-6) & (t < best)
        best = np.where(better, t, best)
        idx[better] = k

    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[2] / ray[:, 2]
        p = o + t[:, None] * ray
        take(np.where((np.abs(p[:, 0]) < 20) & (p[:, 1] < 28), t, np.inf), GROUND)
        t = (10.0 - o[1]) / ray[:, 1]
        p = o + t[:, None] * ray
        take(np.where((np.abs(p[:, 0]) < 8) & (p[:, 2] >= 0) & (p[:, 2] < 3.5), t, np.inf), FACADE)
        c, r = np.asarray(sphere[0], dtype=np.float64), sphere[1]
        a = np.einsum("ij,ij->i", ray, ray)
        b = 2 * ray @ (o - c)
        disc = b * b - 4 * a * ((o - c) @ (o - c) - r * r)
        take(np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf), SPHERE)
        lo, hi = np.asarray(box[0], dtype=np.float64), np.asarray(box[1], dtype=np.float64)
        t1, t2 = (lo - o) / ray, (hi - o) / ray
        tn, tf = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
        take(np.where(tn <= tf, tn, np.inf), BOX)
    idx = idx.reshape(height, width)
    depth = best.reshape(height, width).astype(np.float32)
    rng = np.random.default_rng(0)
    img = np.array([_COLOURS[k] for k in range(5)], np.float32)[idx]
    img = img * (0.9 + 0.1 * rng.random((height, width, 1), dtype=np.float32))
    img[idx == SKY] = _COLOURS[SKY]
    return img, depth, idx, cam


def iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


def normal_error_deg(plane, truth_normal):
    c = abs(float(np.dot(np.asarray(plane[:3]), truth_normal)))
    return float(np.degrees(np.arccos(min(1.0, c))))


def by_label(regions, label):
    return [r for r in regions if r.label == label]


def check_regions(regions, shape, max_regions=10):
    assert 3 <= len(regions) <= max_regions
    assert [r.index for r in regions] == list(range(len(regions)))
    ids = [r.id for r in regions]
    assert len(set(ids)) == len(ids)
    for r in regions:
        assert re.fullmatch(r"sky|(ground|facade|object)_\d{3}", r.id)
        assert r.mask.shape == shape and r.mask.dtype == bool and r.mask.any()
        assert r.locked is False
        assert (r.plane is not None) == (r.label in ("ground", "facade"))
    total = np.sum([r.mask for r in regions], axis=0)
    assert total.max() == 1  # disjoint


@pytest.fixture(scope="module")
def stage():
    return synthetic_stage()


def test_synthetic_stage_regions(stage):
    img, depth, idx, cam = stage
    regions = segment_depth(img, depth, cam)
    check_regions(regions, depth.shape)
    (sky,) = by_label(regions, "sky")
    assert sky.index == 0 and iou(sky.mask, idx == SKY) > 0.99
    (ground,) = by_label(regions, "ground")
    assert iou(ground.mask, idx == GROUND) >= 0.8
    assert normal_error_deg(ground.plane, [0, 0, 1]) < 2.0
    assert ground.plane[2] > 0 and abs(ground.plane[3]) < 0.02  # z = 0, normal up (towards the camera)
    (facade,) = by_label(regions, "facade")
    assert iou(facade.mask, idx == FACADE) >= 0.8
    assert normal_error_deg(facade.plane, [0, 1, 0]) < 2.0
    assert facade.plane[1] < 0 and facade.plane[3] == pytest.approx(10.0, abs=0.05)  # y = 10, facing the camera
    objects = by_label(regions, "object")
    assert len(objects) == 2  # the box face is not a facade
    assert max(iou(o.mask, idx == SPHERE) for o in objects) > 0.9
    assert max(iou(o.mask, idx == BOX) for o in objects) > 0.8


def best_object_share(regions, truth):
    """(share, region index): the largest fraction of ``truth`` [H, W] bool pixels in one object region."""
    return max(((r.mask & truth).sum() / truth.sum(), r.index) for r in by_label(regions, "object"))


def test_large_box_and_sphere_before_wall_are_whole_objects():
    # A 2.8 m x 2.4 m box face is building-sized on its own and parallel to the wall, but the box
    # stands silhouetted in front of the wall: it is an object. A plane cut through the sphere
    # takes a cap of it, which must not split the sphere.
    img, depth, idx, cam = synthetic_stage(640, 360, lens_mm=24.0, sphere=((2.2, 7.0, 1.4), 1.4),
                                           box=((-3.4, 5.0, 0.0), (-0.6, 6.5, 2.4)))
    regions = segment_depth(img, depth, cam)
    check_regions(regions, depth.shape)
    (facade,) = by_label(regions, "facade")
    assert iou(facade.mask, idx == FACADE) >= 0.8 and normal_error_deg(facade.plane, [0, 1, 0]) < 2.0
    box_share, box_region = best_object_share(regions, idx == BOX)
    sphere_share, sphere_region = best_object_share(regions, idx == SPHERE)
    assert box_share >= 0.95 and sphere_share >= 0.95 and box_region != sphere_region


def test_noisy_depth_still_finds_planes(stage):
    img, depth, idx, cam = stage
    noisy = depth * (1 + 0.005 * np.random.default_rng(3).standard_normal(depth.shape)).astype(np.float32)
    regions = segment_depth(img, noisy, cam)
    (ground,) = by_label(regions, "ground")
    (facade,) = by_label(regions, "facade")
    assert iou(ground.mask, idx == GROUND) >= 0.8 and iou(facade.mask, idx == FACADE) >= 0.8
    assert normal_error_deg(ground.plane, [0, 0, 1]) < 2.0
    assert normal_error_deg(facade.plane, [0, 1, 0]) < 2.0


def test_sky_with_finite_saturated_depth_found_by_colour_and_position(stage):
    img, depth, idx, cam = stage
    finite = np.where(np.isinf(depth), 80.0, depth).astype(np.float32)  # what a saturated model reports
    regions = segment_depth(img, finite, cam)
    (sky,) = by_label(regions, "sky")
    assert iou(sky.mask, idx == SKY) > 0.95


def test_no_sky_when_colour_says_otherwise(stage):
    img, depth, idx, cam = stage
    finite = np.where(np.isinf(depth), 80.0, depth).astype(np.float32)
    grey_wall = img.copy()
    grey_wall[idx == SKY] = (0.1, 0.1, 0.1)  # a dark far wall is not sky
    regions = segment_depth(grey_wall, finite, cam)
    assert not by_label(regions, "sky")


def test_pitched_and_rolled_camera():
    # 25° down and rolled 5°: the ground is found within its wider tolerance, and the facade,
    # cut by the frame to about a metre of height, perpendicular to it.
    target = (0.0, 6.0, 1.6 - 6.0 * np.tan(np.radians(25.0)))
    pose = Camera(width=64, height=36, lens_mm=24.0, world_from_cam=look_at((0.0, 0.0, 1.6), target))
    pose = pose.roll(5.0).world_from_cam
    img, depth, idx, cam = synthetic_stage(480, 270, lens_mm=24.0, world_from_cam=pose)
    regions = segment_depth(img, depth, cam)
    (ground,) = by_label(regions, "ground")
    (facade,) = by_label(regions, "facade")
    assert iou(ground.mask, idx == GROUND) >= 0.8 and iou(facade.mask, idx == FACADE) >= 0.8
    assert normal_error_deg(ground.plane, [0, 0, 1]) < 2.0 and normal_error_deg(facade.plane, [0, 1, 0]) < 2.0


def test_package_attribute_is_the_function_after_submodule_import(stage):
    import importlib

    import anchorstage

    module = importlib.import_module("anchorstage.segmentation")
    assert anchorstage.segment is module.segment
    img, depth, idx, cam = stage
    _, splats = _splats_from_depth(depth, cam, step=16)
    scene = SimpleNamespace(image_linear=img, depth_m=depth, camera=cam, splats=splats, regions=[])
    assert [r.id for r in anchorstage.segment(scene)] == [r.id for r in module.segment_depth(img, depth, cam)]


def test_max_regions_and_determinism(stage):
    img, depth, idx, cam = stage
    few = segment_depth(img, depth, cam, max_regions=3)
    check_regions(few, depth.shape, max_regions=3)
    assert [r.label for r in few] == ["sky", "ground", "facade"]
    a = segment_depth(img, depth, cam)
    b = segment_depth(img, depth, cam)
    assert [r.id for r in a] == [r.id for r in b]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a, b))


def test_higher_resolution_is_subsampled_and_fast():
    img, depth, idx, cam = synthetic_stage(1280, 720)
    t0 = time.perf_counter()
    regions = segment_depth(img, depth, cam)
    elapsed = time.perf_counter() - t0
    print(f"segment_depth 1280x720: {elapsed * 1000:.0f} ms")  # timing reported, not asserted (shared CPU)
    check_regions(regions, depth.shape)
    (ground,) = by_label(regions, "ground")
    (facade,) = by_label(regions, "facade")
    assert iou(ground.mask, idx == GROUND) >= 0.8 and iou(facade.mask, idx == FACADE) >= 0.8


# ---------------------------------------------------------------------------------- Cycles ground truth
@pytest.mark.parametrize("view", ["v0", "v1", "v2"])
def test_cycles_ground_truth(view):
    from gt_fixture import PASS_INDEX, TRUTH, load_view

    v = load_view(view)
    regions = segment_depth(v["image_linear"], v["depth_m"], v["camera"])
    check_regions(regions, v["depth_m"].shape)
    oi = v["object_index"]
    for label in ("ground", "facade"):
        (r,) = by_label(regions, label)
        truth = np.asarray(TRUTH[label]["plane"])
        assert iou(r.mask, oi == PASS_INDEX[label]) >= 0.8, label
        assert normal_error_deg(r.plane, truth[:3]) < 2.0, label
        # Same plane, same orientation convention up to sign: offsets agree within 5 cm.
        sign = np.sign(np.dot(r.plane[:3], truth[:3]))
        assert sign * r.plane[3] == pytest.approx(truth[3], abs=0.05), label
    (sky,) = by_label(regions, "sky")
    assert iou(sky.mask, oi == PASS_INDEX["sky"]) > 0.99
    objects = by_label(regions, "object")
    for name in ("sphere", "box"):
        assert max(iou(o.mask, oi == PASS_INDEX[name]) for o in objects) > 0.8, name
        assert best_object_share(regions, oi == PASS_INDEX[name])[0] >= 0.95, name  # whole, not cut by a plane


# ---------------------------------------------------------------------------------- bundled sample
def sample_object_pixels():
    """The bundled sample (sample/) and its objects' pixels, found from the exact depth and the
    stage geometry (tests/data/cycles_gt/truth.json plus the columns and cone of scripts/make_sample.py).

    Returns:
        (image_linear [H, W, 3], depth_m [H, W], camera, {name: [H, W] bool}).
    """
    from pathlib import Path

    from gt_fixture import TRUTH

    from anchorstage import load_camera_json, load_image

    root = Path(__file__).resolve().parents[1] / "sample"
    img = load_image(root / "photo.png").rgb_linear
    depth = np.load(root / "depth.npy")
    cam = load_camera_json(root / "camera.json")
    ok = np.isfinite(depth)
    p = np.zeros(depth.shape + (3,))
    p[ok] = cam.unproject(cam.pixel_centers()[ok], depth[ok])
    tol = 0.01  # metres; facet error of the meshes is ≤ 1 mm
    s = TRUTH["sphere"]
    out = {"sphere": ok & (np.abs(np.linalg.norm(p - s["center"], axis=-1) - s["radius"]) < tol)}
    b = TRUTH["box"]
    yaw = np.radians(b["yaw_deg"])
    q = p - b["center"]
    q = np.stack([q[..., 0] * np.cos(yaw) + q[..., 1] * np.sin(yaw),
                  -q[..., 0] * np.sin(yaw) + q[..., 1] * np.cos(yaw), q[..., 2]], axis=-1)  # box frame
    out["box"] = ok & (np.abs(np.abs(q).max(axis=-1) - b["size"] / 2) < tol)
    for i, (x, y) in enumerate(((-3.2, 8.2), (3.4, 8.5))):  # columns: radius 0.25 m, 3 m tall
        r = np.hypot(p[..., 0] - x, p[..., 1] - y)
        out[f"column_{i}"] = ok & (np.abs(r - 0.25) < tol) & (p[..., 2] > tol)
    r = np.hypot(p[..., 0] + 0.4, p[..., 1] - 3.8)  # cone: base radius 0.35 m, 0.9 m tall
    out["cone"] = ok & (np.abs(r - 0.35 * (1 - p[..., 2] / 0.9)) < tol) & (p[..., 2] > tol)
    return img, depth, cam, out


def test_bundled_sample_one_facade_and_whole_objects():
    img, depth, cam, objects = sample_object_pixels()
    regions = segment_depth(img, depth, cam)
    check_regions(regions, depth.shape)
    (facade,) = by_label(regions, "facade")  # the wall; box faces and column sides are not facades
    assert normal_error_deg(facade.plane, [0, 1, 0]) < 2.0
    owners = []
    for name, truth in objects.items():
        assert truth.sum() > 500, name  # the geometry test found the object
        share, owner = best_object_share(regions, truth)
        assert share >= 0.95, (name, share)
        owners.append(owner)
    assert len(set(owners)) == len(owners)  # one region per object


# ---------------------------------------------------------------------------------- scene + splats
def _splats_from_depth(depth, cam, step=4):
    rows, cols = np.mgrid[0:depth.shape[0]:step, 0:depth.shape[1]:step]
    d = depth[rows, cols]
    ok = np.isfinite(d)
    uv = np.stack([cols[ok] + 0.5, rows[ok] + 0.5], axis=1)
    means = cam.unproject(uv, d[ok])
    n = len(means)
    return means, Splats(means=torch.tensor(means, dtype=torch.float32), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                         scales=torch.full((n, 3), 0.01), opacities=torch.full((n,), 0.9),
                         colors=torch.full((n, 3), 0.5))


def test_segment_scene_labels_splats(stage):
    img, depth, idx, cam = stage
    _, splats = _splats_from_depth(depth, cam)
    # A hidden splat on the ground behind the sphere, and one behind the camera.
    extra = np.array([[1.2, 5.9, 0.0], [0.0, -3.0, 1.0]])
    splats = Splats.concat([splats, Splats(means=torch.tensor(extra, dtype=torch.float32),
                                           quats=torch.tensor([[1.0, 0, 0, 0]] * 2), scales=torch.full((2, 3), 0.01),
                                           opacities=torch.full((2,), 0.9), colors=torch.full((2, 3), 0.5))])
    scene = SimpleNamespace(image_linear=img, depth_m=depth, camera=cam, splats=splats, regions=[])
    seen = []
    regions = segment(scene, progress=lambda f, m: seen.append(f))
    assert scene.regions is regions and seen[-1] == 1.0
    ids = scene.splats.region_ids
    assert ids.dtype == torch.int32 and ids.shape == (len(splats),)
    ground = by_label(regions, "ground")[0]
    assert int(ids[-2]) == ground.index  # hidden but on the ground plane
    assert int(ids[-1]) == -1  # behind the camera
    sphere = max(by_label(regions, "object"), key=lambda o: iou(o.mask, idx == SPHERE))
    # Visible splats take their pixel's region.
    means = splats.means.numpy().astype(np.float64)
    uv, _ = cam.project(means[:-2])
    pix = idx[np.floor(uv[:, 1]).astype(int), np.floor(uv[:, 0]).astype(int)]
    on_sphere = pix == SPHERE
    assert (ids[:-2].numpy()[on_sphere] == sphere.index).mean() > 0.95
    for r in regions:
        np.testing.assert_array_equal(r.splat_indices, np.flatnonzero(ids.numpy() == r.index))
    assert sum(len(r.splat_indices) for r in regions) == int((ids >= 0).sum())


def test_label_map_round_trip(stage):
    img, depth, idx, cam = stage
    regions = segment_depth(img, depth, cam)
    lab = label_map(regions, depth.shape)
    for r in regions:
        assert np.array_equal(lab == r.index, r.mask)
    ids = assign_splats(np.zeros((0, 3)), cam, lab, depth, regions)
    assert ids.shape == (0,)


# ---------------------------------------------------------------------------------- bad input
def test_bad_inputs(stage):
    img, depth, idx, cam = stage
    with pytest.raises(InputError, match="matching the image"):
        segment_depth(img, depth[:-1], cam)
    nan = depth.copy()
    nan[5, 5] = np.nan
    with pytest.raises(InputError, match="NaN"):
        segment_depth(img, nan, cam)
    with pytest.raises(InputError, match="does not match the depth map"):
        segment_depth(img, depth, cam.with_resolution(320, 180))
    with pytest.raises(InputError, match="max_regions"):
        segment_depth(img, depth, cam, max_regions=2)
    with pytest.raises(InputError, match="no splats"):
        segment(SimpleNamespace(image_linear=img, depth_m=depth, camera=cam, splats=None))
