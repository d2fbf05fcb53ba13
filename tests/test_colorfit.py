# SPDX-License-Identifier: GPL-3.0-or-later
"""The witness colour fit: blending-weight products against the compositors, the solver, and
reconstruction reproducing its photo (textured planes head-on and at a slant)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anchorstage import Camera, Splats, look_at, raster_cpu, raster_torch, reconstruct, render
from anchorstage.colorfit import solve_colors, witness_weights
from anchorstage.image_io import to_uint8_srgb
from anchorstage.projection import project

R = importlib.import_module("anchorstage.regression")

W, H = 96, 72


@pytest.fixture(params=["numba", "torch"])
def path(request, monkeypatch):
    """The compiled weights (numba CSR bands) and the pure-torch ones (their oracle; the CUDA path)."""
    if request.param == "numba" and not raster_cpu.available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def _camera(eye=(0.0, 0.0, 1.5), target=(0.0, 10.0, 1.5), w=W, h=H) -> Camera:
    return Camera(width=w, height=h, lens_mm=35.0, world_from_cam=look_at(eye, target))


def _texture(seed: int = 0, blur_px: float = 1.0, w: int = W, h: int = H) -> np.ndarray:
    """[h, w, 3] linear colours: noise smoothed over ``blur_px`` (texture at the scale of a pixel or two)."""
    n = np.random.default_rng(seed).uniform(0.0, 1.0, (h, w, 3))
    b = np.stack([gaussian_filter(n[..., c], blur_px) for c in range(3)], -1)
    return (0.05 + 0.85 * (b - b.min()) / (b.max() - b.min())).astype(np.float32)


def _ground_depth(cam: Camera) -> np.ndarray:
    """Planar depth of the ground z = 0 (every pixel of a camera looking down at it)."""
    uv = cam.pixel_centers().reshape(-1, 2)
    rays = cam.unproject(uv, np.ones(len(uv))) - cam.position
    return (-cam.position[2] / rays[:, 2]).reshape(cam.height, cam.width).astype(np.float32)


def _psnr8(a_linear: np.ndarray, b_linear: np.ndarray) -> float:
    a = to_uint8_srgb(a_linear).astype(np.float64)
    b = to_uint8_srgb(b_linear).astype(np.float64)
    return 10 * np.log10(255.0 ** 2 / ((a - b) ** 2).mean())


def _stage() -> tuple[Splats, Camera]:
    """Overlapping splats at several depths, some opaque enough to stop pixels early, a few off screen."""
    g = torch.Generator().manual_seed(0)
    n = 700
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.7, 0.6]) + torch.tensor([0.0, 0.0, 4.0])
    op = torch.rand(n, generator=g) * 0.9 + 0.05
    op[:100] = 0.995
    sp = Splats(means=means, quats=torch.randn(n, 4, generator=g), scales=torch.rand(n, 3, generator=g) * 0.12 + 0.01,
                opacities=op, colors=torch.rand(n, 3, generator=g))
    cam = Camera.from_K(np.array([[60.0, 0, W / 2 + 0.3], [0, 60.0, H / 2 - 0.2], [0, 0, 1]]), W, H)
    return sp, cam


def _weights(sp: Splats, cam: Camera, **kwargs):
    return witness_weights(sp.means, sp.quats, sp.scales, sp.opacities,
                           torch.as_tensor(cam.cam_from_world, dtype=torch.float32),
                           torch.as_tensor(cam.K, dtype=torch.float32), cam.width, cam.height,
                           near=cam.clip_start, far=cam.clip_end, **kwargs)


def test_weights_times_colours_is_the_render(path):
    sp, cam = _stage()
    Wm = _weights(sp, cam)
    img = Wm.forward(sp.colors).reshape(H, W, 3).numpy()
    out = render(sp, cam, ["color", "alpha"], device="cpu")
    assert float(out["alpha"].max()) > 0.999  # opaque splats stop pixels early
    np.testing.assert_allclose(img, out["color"].numpy(), atol=2e-6)
    np.testing.assert_allclose(Wm.forward(torch.ones(len(sp), 1))[:, 0].reshape(H, W).numpy(), out["alpha"].numpy(),
                               atol=2e-6)


def test_compiled_pairs_match_the_torch_compositor_pairs():
    if not raster_cpu.available():
        pytest.skip("numba is not installed")
    sp, cam = _stage()
    proj = project(sp.means, sp.quats, sp.scales, sp.opacities, torch.as_tensor(cam.cam_from_world, dtype=torch.float32),
                   torch.as_tensor(cam.K, dtype=torch.float32), W, H, 0.1, 100.0)
    ok = torch.rand(H * W, generator=torch.Generator().manual_seed(1)) > 0.2
    bands = raster_cpu.witness_pairs(proj, W, H, ok, 1e-3)
    dense = np.zeros((H * W, len(sp)))
    for r0, indptr, splat, weight in bands:
        for p in range(indptr.shape[0] - 1):
            for j in range(indptr[p], indptr[p + 1]):
                dense[r0 * W + p, splat[j]] += weight[j]
    pieces: list = []
    raster_torch.composite(proj, torch.zeros(len(sp), 0), W, H, pairs=pieces)
    pixel, splat, weight = (torch.cat(t).numpy() for t in zip(*pieces))
    keep = (weight >= 1e-3) & ok.numpy()[pixel]
    ref = np.zeros_like(dense)
    np.add.at(ref, (pixel[keep], splat[keep]), weight[keep])
    assert np.count_nonzero(dense) > 3 * ok.sum() and not dense[~ok.numpy()].any()
    np.testing.assert_allclose(dense, ref, atol=2e-6)
    # Pairs come front to back within each pixel, as the compositor blends them.
    depth = np.full(len(sp), np.nan, np.float32)
    depth[proj.ids.numpy()] = proj.depths.numpy()
    for r0, indptr, splat, _ in bands:
        for p in range(0, indptr.shape[0] - 1, 7):
            z = depth[splat[indptr[p]:indptr[p + 1]]]
            assert np.all(np.diff(z) >= 0)


@pytest.mark.parametrize("channels", [3, 5])
def test_adjoint_is_the_transpose(path, channels):
    """<W x, y> == <x, Wᵀ y>; the one-pass normal product equals forward then adjoint."""
    sp, cam = _stage()
    Wm = _weights(sp, cam, min_weight=1e-3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(len(sp), channels, generator=g)
    y = torch.randn(H * W, channels, generator=g)
    wx, wty = Wm.forward(x), Wm.adjoint(y)
    assert wx.shape == (H * W, channels) and wty.shape == (len(sp), channels)
    lhs, rhs = float((wx.double() * y.double()).sum()), float((x.double() * wty.double()).sum())
    assert abs(lhs) > 1.0 and lhs == pytest.approx(rhs, rel=1e-5)
    has = Wm.forward(torch.ones(len(sp), 1))[:, 0] > 0  # pixels with pairs
    v = (y - wx) * has[:, None]
    acc, sumsq = Wm.normal(x, y)
    np.testing.assert_allclose(acc.numpy(), Wm.adjoint(v).numpy(), atol=1e-4)
    np.testing.assert_allclose(sumsq.numpy(), (v.double() ** 2).sum(0).numpy(), rtol=1e-5)
    acc, sumsq = Wm.normal(x)
    np.testing.assert_allclose(acc.numpy(), Wm.adjoint(wx).numpy(), atol=1e-4)
    diag = Wm.column_sumsq()
    e = torch.zeros(len(sp), 1)
    for i in (0, 17, 123):  # diag(WᵀW)_i = |W e_i|²
        e.zero_()
        e[i] = 1.0
        assert float(diag[i]) == pytest.approx(float((Wm.forward(e) ** 2).sum()), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("threads", [1, 3])
def test_compiled_and_torch_solvers_agree(monkeypatch, threads):
    if not raster_cpu.available():
        pytest.skip("numba is not installed")
    # Three workers even on a small runner: the compiled passes split bands between threads.
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    sp, cam = _stage()
    target = torch.rand(H * W, 3, generator=torch.Generator().manual_seed(5))
    fits = {}
    for env in ("1", "0"):
        monkeypatch.setenv("ANCHORSTAGE_NUMBA", env)
        fits[env] = solve_colors(_weights(sp, cam, min_weight=1e-3), sp.colors, target, iterations=5, tikhonov=0.05)
    np.testing.assert_allclose(fits["1"].numpy(), fits["0"].numpy(), atol=1e-4)
    # The fit lowers the witness error, and more iterations lower it further.
    Wm = _weights(sp, cam)
    err = [float(((Wm.forward(c) - target) ** 2).sum()) for c in
           (sp.colors, solve_colors(Wm, sp.colors, target, iterations=2), fits["1"])]
    assert err[2] < err[1] < 0.9 * err[0]


def test_solver_reaches_the_least_squares_solution(path):
    """Many iterations converge to the closed-form regularised solution (dense, small problem)."""
    sp, cam = _stage()
    sp = sp.subset(torch.arange(0, 700, 7))  # 100 splats: a dense solve is cheap
    Wm = _weights(sp, cam)
    A = Wm.forward(torch.eye(len(sp))).double()  # [pixels, splats]
    b = torch.rand(H * W, 3, generator=torch.Generator().manual_seed(6))
    lam = 0.05
    rows = A.abs().sum(1) > 0  # only pixels with pairs take part
    exact = torch.linalg.solve(A[rows].T @ A[rows] + lam * torch.eye(len(sp), dtype=torch.float64),
                               A[rows].T @ b[rows].double() + lam * sp.colors.double())
    fit = solve_colors(Wm, sp.colors, b, iterations=60, tikhonov=lam)
    np.testing.assert_allclose(fit.double().numpy(), exact.numpy(), atol=2e-3)


@pytest.mark.parametrize("view", ["head-on", "slanted"])
def test_textured_plane_reproduces_its_photo(path, view):
    """Each splat's own colour blurs the photo; the fit makes the witness render reproduce it (>= 40 dB)."""
    if view == "head-on":
        cam = _camera()
        depth = np.full((H, W), 5.0, np.float32)
    else:  # the ground seen from 2 m up, looking 4 m ahead
        cam = _camera(eye=(0.0, 0.0, 2.0), target=(0.0, 4.0, 0.0))
        depth = _ground_depth(cam)
    photo = _texture()
    psnr = {}
    for fit in (False, True):
        sc = reconstruct(photo, depth, cam, max_splats=W * H, second_layer=False, fit_colors=fit, device="cpu")
        psnr[fit] = _psnr8(render(sc.splats, cam, ["color"], device="cpu")["color"].numpy(), photo)
    assert psnr[False] < 32.0 and psnr[True] >= 40.0, psnr


def test_fit_changes_colours_only_and_off_keeps_the_pixels(path):
    cam = _camera(eye=(0.0, 0.0, 2.0), target=(0.0, 4.0, 0.0))
    depth = _ground_depth(cam)
    depth[:, W // 2:] *= 0.8  # a step: depth edges, faint splats, a second layer
    depth[:8, :8] = np.inf  # some sky
    photo = _texture(seed=3)
    on = reconstruct(photo, depth, cam, device="cpu")  # default budget: merged cells too
    off = reconstruct(photo, depth, cam, fit_colors=False, device="cpu")
    assert sum(on.meta["merges_per_level"]) > 0 and on.meta["second_layer_splats"] > 0
    for k in ("means", "quats", "scales", "opacities", "confidence", "region_ids"):
        assert torch.equal(getattr(on.splats, k), getattr(off.splats, k)), k
    assert on.meta["color_fit"]["iterations"] > 0 and off.meta["color_fit"] is None
    assert not torch.equal(on.splats.colors, off.splats.colors)
    # Off: single-pixel splats carry their pixel's colour exactly (merged cells their mean).
    n1 = off.meta["splats_per_level"][0]
    uv, _ = cam.project(off.splats.means[:n1].numpy())
    px = np.floor(uv).astype(int)
    np.testing.assert_array_equal(off.splats.colors[:n1].numpy(), photo[px[:, 1], px[:, 0]])
    # On: the photo's own view is closer to the photo (over pixels with depth).
    valid = np.isfinite(depth)
    err = [np.abs(render(s.splats, cam, ["color"], device="cpu")["color"].numpy() - photo)[valid].mean() for s in (off, on)]
    assert err[1] < 0.5 * err[0]


def test_empty_and_masked_inputs(path):
    sp, cam = _stage()
    Wm = _weights(sp, cam, pixel_ok=torch.zeros(H, W, dtype=torch.bool))
    assert float(Wm.column_sumsq().abs().sum()) == 0.0
    fit = solve_colors(Wm, sp.colors, torch.rand(H * W, 3), iterations=3)
    assert torch.equal(fit, sp.colors)  # nothing to fit: the colours stay
    none = sp.subset(torch.zeros(len(sp), dtype=torch.bool))
    assert solve_colors(_weights(none, cam), none.colors, torch.rand(H * W, 3)).shape == (0, 3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_matches_cpu():
    from gt_fixture import load_view

    v = load_view("v0")
    cpu = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cpu")
    gpu = reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cuda")
    if len(gpu.splats) == len(cpu.splats):
        np.testing.assert_allclose(gpu.splats.colors.cpu().numpy(), cpu.splats.colors.numpy(), atol=2e-3)
    img = render(gpu.splats, v["camera"], ["color"], device="cuda")["color"].cpu().numpy()
    valid = np.isfinite(v["depth_m"])
    a, b = to_uint8_srgb(img).astype(float)[valid], to_uint8_srgb(v["image_linear"]).astype(float)[valid]
    assert 10 * np.log10(255.0 ** 2 / ((a - b) ** 2).mean()) >= 39.0
