# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction on analytic depth maps: footprints, confidence at edges, budget merging, second layer, bad input."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from anchorstage import Camera, InputError, look_at, reconstruct
from anchorstage.image_io import LoadedImage
from anchorstage.rotation import quat_from_axes

R = importlib.import_module("anchorstage.regression")

W, H = 160, 120


def _camera(w=W, h=H, lens=35.0, eye=(0.0, 0.0, 1.5), target=(0.0, 10.0, 1.5)):
    return Camera(width=w, height=h, lens_mm=lens, sensor_width_mm=36.0, world_from_cam=look_at(eye, target))


def _wall(cam, z=5.0):
    return np.full((cam.height, cam.width), z, np.float32)


def _image(h=H, w=W, seed=0):
    return np.random.default_rng(seed).uniform(0.05, 0.9, (h, w, 3)).astype(np.float32)


def _smooth_image(h=H, w=W):
    """[h, w, 3] linear colours that change by far less than a colour step between neighbours."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([0.2 + 0.5 * x / w, 0.3 + 0.4 * y / h, np.full((h, w), 0.5)], -1).astype(np.float32)


def _project_cov(splats, cam):
    """[N, 2, 2] image-space covariance of each splat's in-plane part (pixels^2), by the perspective Jacobian."""
    q = splats.quats.double().numpy()
    w, x, y, z = q.T
    rot = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)
    s = splats.scales.double().numpy().copy()
    s[:, 2] = 0.0  # the thin normal axis is not part of the footprint
    cov = rot @ (s[:, :, None] ** 2 * np.swapaxes(rot, 1, 2))
    cfw = cam.cam_from_world
    cov_c = cfw[:3, :3] @ cov @ cfw[:3, :3].T
    p = splats.means.double().numpy() @ cfw[:3, :3].T + cfw[:3, 3]
    f = cam.focal_px
    j = np.zeros((len(p), 2, 3))
    j[:, 0, 0] = f / p[:, 2]
    j[:, 0, 2] = -f * p[:, 0] / p[:, 2] ** 2
    j[:, 1, 1] = f / p[:, 2]
    j[:, 1, 2] = -f * p[:, 1] / p[:, 2] ** 2
    return j @ cov_c @ np.swapaxes(j, 1, 2)


def test_fronto_wall_splats_are_pixel_footprints():
    cam = _camera()
    img = _smooth_image()
    sc = reconstruct(img, _wall(cam), cam, max_splats=W * H, second_layer=False, fit_colors=False, device="cpu")
    sp = sc.splats
    assert len(sp) == W * H and sc.meta["merges_per_level"] == []
    np.testing.assert_allclose(sp.means[:, 1].numpy(), 5.0, atol=1e-5)  # the wall is y = 5 in the world
    np.testing.assert_allclose(sp.colors.numpy(), img.reshape(-1, 3), atol=0)  # without the fit: the pixels
    # Each splat covers its own pixel: an isotropic 0.6-pixel Gaussian in the image.
    cov = _project_cov(sp, cam)
    np.testing.assert_allclose(cov[:, 0, 0], 0.36, rtol=1e-3)
    np.testing.assert_allclose(cov[:, 1, 1], 0.36, rtol=1e-3)
    np.testing.assert_allclose(cov[:, 0, 1], 0.0, atol=1e-3)
    np.testing.assert_allclose(torch.linalg.norm(sp.quats, dim=1).numpy(), 1.0, atol=1e-6)


def test_pixels_on_colour_steps_get_small_footprints():
    # Two flat halves of the wall meet in a colour step: the two columns at the step project to
    # 0.1-pixel Gaussians (little overlap, so a moved camera's blending order matters little),
    # every other pixel to 0.6-pixel ones; noise is all steps.
    cam = _camera()
    img = np.full((H, W, 3), 0.05, np.float32)
    img[:, W // 2:] = 0.8
    sp = reconstruct(img, _wall(cam), cam, max_splats=W * H, second_layer=False, device="cpu").splats
    uv, _ = cam.project(sp.means.numpy())
    col = np.floor(uv[:, 0]).astype(int)
    step = (col == W // 2 - 1) | (col == W // 2)
    cov = _project_cov(sp, cam)
    assert step.sum() == 2 * H
    np.testing.assert_allclose(cov[step, 0, 0], 0.01, rtol=1e-3)
    np.testing.assert_allclose(cov[~step, 0, 0], 0.36, rtol=1e-3)
    noise = reconstruct(_image(), _wall(cam), cam, max_splats=W * H, second_layer=False, device="cpu").splats
    assert np.median(_project_cov(noise, cam)[:, 1, 1]) == pytest.approx(0.01, rel=1e-3)


def test_slanted_ground_footprints_stretch_with_the_slant():
    # Looking down at a ground plane: footprints on it project to the same 0.6-pixel circles,
    # so in 3D they are long along the view direction and thin along the normal (world Z).
    cam = _camera(eye=(0, 0, 2.0), target=(0, 4, 0))
    uv = cam.pixel_centers().reshape(-1, 2)
    rays = cam.unproject(uv, np.ones(len(uv))) - cam.position
    t = -cam.position[2] / rays[:, 2]
    depth = (t * 1.0).reshape(H, W).astype(np.float32)  # planar z = t for unit-z rays
    sc = reconstruct(_smooth_image(), depth, cam, max_splats=W * H, second_layer=False, device="cpu")
    sp = sc.splats
    np.testing.assert_allclose(sp.means[:, 2].numpy(), 0.0, atol=1e-4)
    cov = _project_cov(sp, cam)
    inner = sp.confidence.numpy() > 0.5
    np.testing.assert_allclose(cov[inner, 0, 0], 0.36, rtol=2e-3)
    np.testing.assert_allclose(cov[inner, 1, 1], 0.36, rtol=2e-3)
    s = sp.scales.numpy()
    assert np.median(s[:, 0] / s[:, 1]) > 1.5  # stretched on the slanted surface
    w, x, y, z = sp.quats.double().numpy().T
    thin = np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], 1)
    assert np.abs(thin[inner, 2]).min() > np.cos(np.radians(0.5))


def test_confidence_and_opacity_drop_at_depth_edges_and_flying_pixels():
    cam = _camera()
    depth = _wall(cam, 8.0)
    depth[40:80, 60:100] = 3.0  # a box in front of the wall
    depth[40:80, 59] = 5.5  # a "flying" column between them, as a depth model smears an edge
    sc = reconstruct(_image(), depth, cam, max_splats=W * H, second_layer=False, device="cpu")
    sp = sc.splats
    uv, z = cam.project(sp.means.numpy())
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    flying = (col == 59) & (row >= 40) & (row < 80)
    interior = (np.abs(z - 3.0) < 1e-3) & (col > 62) & (col < 97) & (row > 42) & (row < 77)
    assert flying.sum() == 40 and interior.sum() > 1000
    assert sp.confidence[flying].max() < 0.05 and sp.opacities[flying].max() < 0.15
    assert sp.confidence[interior].min() > 0.99 and sp.opacities[interior].min() > 0.98
    # The box's outermost columns and the wall next to the edge continue their own surfaces: true
    # samples, opaque (sharp silhouettes) though their depth confidence is low.
    box_edge = (np.abs(z - 3.0) < 1e-3) & ((col == 60) | (col == 99)) & (row > 42) & (row < 77)
    wall_edge = (np.abs(z - 8.0) < 1e-3) & ((col == 58) | (col == 100)) & (row > 42) & (row < 77)
    assert box_edge.sum() == 2 * 34 and wall_edge.sum() == 2 * 34
    assert sp.confidence[box_edge].max() < 0.5 and sp.confidence[wall_edge].max() < 0.5
    assert sp.opacities[box_edge].min() > 0.98 and sp.opacities[wall_edge].min() > 0.98
    # No opaque splat bridges foreground and background.
    between = (z > 3.05) & (z < 7.9)
    assert sp.opacities[between].max() < 0.15


def test_budget_merges_flat_low_texture_areas_first():
    cam = _camera()
    img = _image()
    img[:, : W // 2] = 0.4  # left half flat colour, right half noisy texture, same plane
    budget = W * H - 3 * 2000  # 2000 merges needed; the flat half has 2400 2x2 blocks
    sc = reconstruct(img, _wall(cam), cam, max_splats=budget, second_layer=False, fit_colors=False, device="cpu")
    sp = sc.splats
    assert len(sp) <= budget and sc.meta["merges_per_level"] == [2000]
    pixel_size = 5.0 / cam.focal_px
    merged = sp.scales[:, 0].numpy() > 1.5 * 0.6 * pixel_size
    uv, _ = cam.project(sp.means.numpy())
    left = uv[:, 0] < W / 2
    assert merged.sum() == 2000 and np.all(left[merged])  # every merge in the flat half
    assert np.count_nonzero(~left) == (W // 2) * H  # the textured half: still one splat per pixel
    # Merged splats keep the block's mean colour, sit on the plane and cover their 2x2 block.
    np.testing.assert_allclose(sp.colors[torch.from_numpy(merged)].numpy(), 0.4, atol=1e-6)
    np.testing.assert_allclose(sp.means[:, 1].numpy(), 5.0, atol=1e-5)
    np.testing.assert_allclose(_project_cov(sp.subset(torch.from_numpy(merged)), cam)[:, 0, 0], 1.44, rtol=1e-3)


def test_flat_areas_merge_up_the_levels_before_texture_merges_at_all():
    cam = _camera()
    img = _image()
    img[:, : W // 2] = 0.4
    budget = W * H // 2  # more than the flat half's 2x2 blocks can give
    sc = reconstruct(img, _wall(cam), cam, max_splats=budget, second_layer=False, device="cpu")
    assert len(sc.splats) == budget
    merges = sc.meta["merges_per_level"]
    assert len(merges) == 4 and merges[0] > (W // 4) * (H // 2)  # the flat half went up to 16x16 cells
    uv, _ = cam.project(sc.splats.means.numpy())
    textured = np.count_nonzero(uv[:, 0] > W / 2)
    # The textured half gives up only what the flat half could not: under 2.5 % of its pixels (a
    # flat cell next to the texture counts that texture, within a ring as wide as the cell).
    assert textured > 0.975 * (W // 2) * H
    assert sc.splats.scales[:, 0].max() > 7 * 0.6 * 5.0 / cam.focal_px  # 16x16-pixel splats exist


def test_tight_budget_goes_through_several_levels_then_prunes():
    cam = _camera()
    img = np.full((H, W, 3), 0.3, np.float32)
    sc = reconstruct(img, _wall(cam), cam, max_splats=500, second_layer=False, device="cpu")
    assert len(sc.splats) <= 500 and len(sc.meta["merges_per_level"]) >= 3
    noisy = reconstruct(_image(), _wall(cam), cam, max_splats=10, second_layer=False, device="cpu")
    assert len(noisy.splats) == 10  # texture everywhere: merges stop, the rest is pruned
    assert noisy.meta["pruned_splats"] + len(noisy.splats) + 3 * sum(noisy.meta["merges_per_level"]) == W * H


def test_default_budget_is_about_a_million_at_1080p():
    assert abs(R.default_max_splats(1920, 1080) - 1_000_000) <= 1
    assert R.default_max_splats(640, 360) == round(640 * 360 * 1_000_000 / (1920 * 1080))


def test_second_layer_fills_behind_the_foreground_only():
    cam = _camera()
    depth = _wall(cam, 8.0)
    depth[40:80, 60:100] = 3.0
    sc = reconstruct(_image(), depth, cam, max_splats=W * H * 2, second_layer=True, device="cpu")
    n2 = sc.meta["second_layer_splats"]
    assert n2 > 0
    layer2 = sc.splats.means[-n2:].numpy()
    np.testing.assert_allclose(layer2[:, 1], 8.0, atol=1e-4)  # the wall continued behind the box
    uv, _ = cam.project(layer2)
    inside = (uv[:, 0] > 60) & (uv[:, 0] < 100) & (uv[:, 1] > 40) & (uv[:, 1] < 80)
    assert inside.all()  # only where the box hides the wall
    band = max(2, round(0.008 * W))
    dist_in = np.minimum.reduce([uv[:, 0] - 60, 100 - uv[:, 0], uv[:, 1] - 40, 80 - uv[:, 1]])
    assert dist_in.max() < band + 0.5
    off = reconstruct(_image(), depth, cam, max_splats=W * H * 2, second_layer=False, device="cpu")
    assert len(off.splats) == len(sc.splats) - n2


def test_caller_confidence_multiplies_in():
    cam = _camera()
    conf = np.ones((H, W), np.float32)
    conf[:, :10] = 0.2
    sc = reconstruct(_image(), _wall(cam), cam, max_splats=W * H, confidence=conf, second_layer=False, device="cpu")
    uv, _ = cam.project(sc.splats.means.numpy())
    low = uv[:, 0] < 10
    inner = low & (uv[:, 1] > 1) & (uv[:, 1] < H - 1) & (uv[:, 0] > 1)
    np.testing.assert_allclose(sc.splats.confidence[torch.from_numpy(inner)].numpy(), 0.2, atol=1e-6)
    assert sc.splats.opacities[torch.from_numpy(low)].max() < sc.splats.opacities[torch.from_numpy(~low)].max()


def test_accepts_loaded_image_torch_and_rescales_a_same_aspect_camera():
    cam = _camera(w=W * 2, h=H * 2)
    img = LoadedImage(_image(), "x.png")
    sc = reconstruct(img, torch.from_numpy(_wall(_camera())), cam, device="cpu", meta={"depth_source": "test"})
    assert sc.camera.resolution == (W, H) and sc.meta["depth_source"] == "test"
    assert any("scaled" in n for n in sc.meta["notes"])
    assert abs(sc.camera.focal_px - cam.focal_px / 2) < 1e-9


def test_progress_is_reported():
    cam = _camera()
    seen = []
    reconstruct(_image(), _wall(cam), cam, device="cpu", progress=lambda f, m: seen.append((f, m)))
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0 and "splats" in seen[-1][1]


def test_quaternions_from_axes_are_exact_for_random_rotations():
    rng = np.random.default_rng(3)
    q = rng.normal(size=(2000, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[:5] = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0.6, 0.8, 0]]  # 180° turns
    w, x, y, z = q.T
    cols = [np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)]),
            np.stack([2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)]),
            np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])]
    got = torch.stack(quat_from_axes(*(tuple(torch.from_numpy(c[i]) for i in range(3)) for c in cols)), 1).numpy()
    want = q * np.where(q[:, :1] < 0, -1, 1)
    sign = np.sign((got * want).sum(1))[:, None]
    np.testing.assert_allclose(got * sign, want, atol=1e-9)


@pytest.mark.parametrize("bad, message", [
    (dict(depth=np.ones((H, W + 1), np.float32)), "depth is"),
    (dict(depth=np.full((H, W), np.nan, np.float32)), "no valid pixels"),
    (dict(depth=np.full((H, W), -2.0, np.float32)), "no valid pixels"),
    (dict(depth=np.full((H, W), 2000.0, np.float32)), "no valid pixels"),
    (dict(image=np.ones((H, W), np.float32)), "image must be"),
    (dict(image=np.full((H, W, 3), np.nan, np.float32)), "non-finite"),
    (dict(camera=_camera(w=W, h=W)), "aspect"),
    (dict(camera="camera.json"), "anchorstage.Camera"),
    (dict(max_splats=0), "max_splats"),
    (dict(max_splats=2.5), "max_splats"),
    (dict(far_limit_m=-1.0), "far_limit_m"),
    (dict(confidence=np.ones((H, 3), np.float32)), "confidence"),
    (dict(fit_colors="no"), "fit_colors"),
])
def test_bad_input_names_the_input(bad, message):
    args = dict(image=_image(), depth=_wall(_camera()), camera=_camera())
    kwargs = {k: v for k, v in bad.items() if k not in args}
    args.update({k: v for k, v in bad.items() if k in args})
    with pytest.raises(InputError, match=message):
        reconstruct(args["image"], args["depth"], args["camera"], device="cpu", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(InputError, match="cuda"):
        reconstruct(_image(), _wall(_camera()), _camera(), device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    from gt_fixture import load_view

    v = load_view("v0")
    cpu = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cpu")
    gpu = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cuda")
    assert gpu.splats.device.type == "cuda"
    assert abs(len(gpu.splats) - len(cpu.splats)) <= 0.001 * len(cpu.splats)
    if len(gpu.splats) == len(cpu.splats):
        np.testing.assert_allclose(gpu.splats.means.cpu().numpy(), cpu.splats.means.numpy(), atol=1e-4)


def test_cpu_chunking_does_not_change_the_result(monkeypatch):
    from gt_fixture import load_view

    v = load_view("v0")
    monkeypatch.setattr(R, "_CHUNK", 1000)  # 1000-splat chunks
    small = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cpu")
    monkeypatch.setattr(R, "_CHUNK", 1 << 30)  # one chunk
    whole = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cpu")
    for k in ("means", "quats", "scales", "opacities", "colors", "confidence"):
        assert torch.equal(getattr(small.splats, k), getattr(whole.splats, k)), k
