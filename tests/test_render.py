# SPDX-License-Identifier: GPL-3.0-or-later
"""Renderer: the torch rasterizer against a naive per-pixel gsplat reading, and the passes' contract."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest
import torch

from anchorstage import Camera, InputError, Splats, look_at, render
from anchorstage import projection, raster_cpu, raster_torch
from anchorstage.renderer import BACKGROUND_DEPTH, PASSES
from render_reference import naive_render

render_module = importlib.import_module("anchorstage.renderer")  # the module (the package attribute is the function)


@pytest.fixture(params=["numba", "torch"])
def cpu_kernel(request, monkeypatch):
    """Runs a test with the compiled compositor and with the pure-torch one (the CPU paths)."""
    if request.param == "numba" and not raster_cpu.available():
        pytest.skip("numba is not installed")
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1" if request.param == "numba" else "0")
    return request.param


def _random_splats(n: int = 60, seed: int = 0) -> Splats:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.5]) + torch.tensor([0.0, 0.0, 4.0])
    op = torch.rand(n, generator=g) * 0.98 + 0.02
    op[:5] = 0.995  # above the 0.99 cap
    return Splats(means=means, quats=torch.randn(n, 4, generator=g), scales=torch.rand(n, 3, generator=g) * 0.15 + 0.01,
                  opacities=op, colors=torch.rand(n, 3, generator=g), confidence=torch.rand(n, generator=g),
                  region_ids=torch.randint(-1, 3, (n,), generator=g, dtype=torch.int32))


def _cam(w: int = 40, h: int = 28) -> Camera:
    # OpenCV identity pose: looking down +z from the origin.
    return Camera.from_K(np.array([[30.0, 0, w / 2 + 0.3], [0, 30.0, h / 2 - 0.2], [0, 0, 1]]), w, h)


def _wall(n_side: int = 48, z: float = 3.0, size: float = 2.0, region: int = 4) -> Splats:
    """A dense opaque square of flat splats facing the camera at depth z."""
    g = torch.linspace(-size / 2, size / 2, n_side)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    n = n_side * n_side
    step = size / (n_side - 1)
    return Splats(means=torch.stack([xx.reshape(-1), yy.reshape(-1), torch.full((n,), z)], 1),
                  quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                  scales=torch.tensor([[step, step, step * 0.01]]).repeat(n, 1),
                  opacities=torch.full((n,), 0.98), colors=torch.tensor([[0.2, 0.5, 0.8]]).repeat(n, 1),
                  confidence=torch.full((n,), 0.7), region_ids=torch.full((n,), region, dtype=torch.int32))


def _naive(sp: Splats, cam: Camera):
    lut, cls = np.unique(np.concatenate([[-1], sp.region_ids.numpy()]), return_inverse=True)
    feats = torch.cat([sp.colors, sp.confidence[:, None]], 1).double().numpy()
    out = naive_render(sp.means.double().numpy(), sp.quats.double().numpy(), sp.scales.double().numpy(),
                       sp.opacities.double().numpy(), feats, cls[1:], len(lut), cam.cam_from_world, cam.K,
                       cam.width, cam.height, cam.clip_start, cam.clip_end)
    return out, lut


def test_torch_matches_naive_gsplat_reading(cpu_kernel):
    sp, cam = _random_splats(), _cam()
    (feats, alpha, depth, cls), lut = _naive(sp, cam)
    out = render(sp, cam, backend="torch", device="cpu")
    assert set(out) == set(PASSES)
    np.testing.assert_allclose(out["color"].numpy(), feats[..., :3], atol=2e-5)
    np.testing.assert_allclose(out["confidence"].numpy(), feats[..., 3], atol=2e-5)
    np.testing.assert_allclose(out["alpha"].numpy(), alpha, atol=2e-5)
    hit = alpha > 1e-3
    assert hit.mean() > 0.3
    np.testing.assert_allclose(out["depth"].numpy()[hit], depth[hit], rtol=1e-4)
    assert np.all(out["depth"].numpy()[alpha == 0] == BACKGROUND_DEPTH)
    np.testing.assert_array_equal(out["region"].numpy(), lut[cls])
    assert out["region"].dtype == torch.int32
    np.testing.assert_array_equal(out["void"].numpy(), (alpha < 0.5).astype(np.float32))


def test_bands_and_chunks_do_not_change_the_image(monkeypatch):
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "0")  # the pure-torch compositor's bands and chunks
    sp, cam = _random_splats(seed=3), _cam()
    ref = render(sp, cam, backend="torch", device="cpu")
    monkeypatch.setattr(raster_torch, "_BAND_PIXELS", 97)  # several bands of 2 rows
    monkeypatch.setattr(raster_torch, "_CHUNK_PAIRS", 37)  # many chunks per band
    monkeypatch.setattr(projection, "PROJECT_CHUNK", 7)  # projection split over the worker threads
    monkeypatch.setattr(render_module, "_FEATURES_CHUNK", 5)  # and the per-splat channels
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # three workers even on a 1-core runner
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave the real setting alone
    out = render(sp, cam, backend="torch", device="cpu")
    for k in PASSES:
        np.testing.assert_allclose(out[k].numpy(), ref[k].numpy(), atol=1e-6, err_msg=k)


def test_dense_wall_is_hole_free_and_metric(cpu_kernel):
    cam = _cam(64, 48)
    out = render(_wall(), cam, backend="torch", device="cpu")
    inner = (slice(17, 31), slice(25, 40))  # the wall spans x 22..42, y 14..34 px
    assert out["alpha"][inner].min() > 0.999
    assert out["void"][inner].max() == 0
    np.testing.assert_allclose(out["depth"][inner].numpy(), 3.0, rtol=1e-6)
    np.testing.assert_allclose(out["color"][inner].numpy(), np.broadcast_to([0.2, 0.5, 0.8], (14, 15, 3)), atol=1e-3)
    np.testing.assert_allclose(out["confidence"][inner].numpy(), 0.7, atol=1e-3)
    # The wall faces the camera: world normal points back at it (-z in this OpenCV-aligned world).
    np.testing.assert_allclose(out["normal"][inner].numpy(), np.broadcast_to([0, 0, -1.0], (14, 15, 3)), atol=1e-5)
    assert (out["region"][inner] == 4).all()
    # Corners are outside the wall: background everywhere.
    assert out["alpha"][0, 0] == 0 and out["depth"][0, 0] == BACKGROUND_DEPTH and out["region"][0, 0] == -1
    assert out["void"][0, 0] == 1 and (out["normal"][0, 0] == 0).all()


def test_occlusion_front_to_back_and_regions(cpu_kernel):
    cam = _cam(64, 48)
    back = _wall(z=5.0, size=4.0, region=1)
    back.colors[:] = torch.tensor([1.0, 0.0, 0.0])
    front = _wall(n_side=24, z=2.0, size=0.5, region=2)
    out = render(Splats.concat([back, front]), cam, backend="torch", device="cpu")
    c = (24, 32)
    assert out["region"][c] == 2 and abs(float(out["depth"][c]) - 2.0) < 1e-4
    np.testing.assert_allclose(out["color"][c].numpy(), [0.2, 0.5, 0.8], atol=1e-3)  # red wall hidden
    assert out["region"][15, 23] == 1 and abs(float(out["depth"][15, 23]) - 5.0) < 1e-4


def test_culling_near_far_and_behind_camera(cpu_kernel):
    cam = _cam().replace(clip_start=0.5, clip_end=10.0)
    for z in (-3.0, 0.3, 12.0):
        out = render(_wall(z=z), cam, backend="torch", device="cpu")
        assert float(out["alpha"].max()) == 0.0, z
    assert float(render(_wall(z=3.0), cam, ["alpha"], backend="torch")["alpha"].max()) > 0.99


def test_pass_selection_background_and_errors():
    sp, cam = _random_splats(), _cam()
    out = render(sp, cam, "depth,region", backend="torch", device="cpu")
    assert list(out) == ["depth", "region"]
    both = render(sp, cam, ["color", "alpha"], background=(0.1, 0.2, 0.3), backend="torch")
    plain = render(sp, cam, ["color"], backend="torch")
    np.testing.assert_allclose(both["color"].numpy(), plain["color"].numpy()
                               + (1 - both["alpha"].numpy())[..., None] * np.array([0.1, 0.2, 0.3]), atol=1e-6)
    with pytest.raises(InputError, match="unknown pass.*'beauty'.*valid passes: color, alpha"):
        render(sp, cam, ["beauty"])
    with pytest.raises(InputError, match="backend"):
        render(sp, cam, backend="vulkan")
    with pytest.raises(InputError, match="void_threshold"):
        render(sp, cam, void_threshold=2)
    with pytest.raises(InputError, match="background"):
        render(sp, cam, background=(1, 2))
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA"):
            render(sp, cam, backend="gsplat")


def test_empty_scene_and_auto_backend_on_cpu(cpu_kernel, recwarn):
    cam = _cam(16, 8)
    empty = Splats(means=torch.zeros(0, 3), quats=torch.zeros(0, 4), scales=torch.zeros(0, 3),
                   opacities=torch.zeros(0), colors=torch.zeros(0, 3))
    out = render(empty, cam)
    assert out["color"].shape == (8, 16, 3) and out["normal"].shape == (8, 16, 3)
    assert (out["depth"] == BACKGROUND_DEPTH).all() and (out["region"] == -1).all() and (out["void"] == 1).all()
    if not torch.cuda.is_available():
        render(_random_splats(), _cam(), backend="auto")
        assert not [w for w in recwarn if "gsplat" in str(w.message) or "CUDA" in str(w.message)]


def test_moved_blender_camera_sees_the_same_point(cpu_kernel):
    """A splat at a world point lands where Camera.project says, from a Blender-style pose."""
    cam = Camera(width=48, height=32, lens_mm=35.0, world_from_cam=look_at((2.0, -3.0, 1.5), (0, 0, 1)))
    target = np.array([0.3, 0.2, 1.1])
    sp = Splats(means=torch.tensor(target[None], dtype=torch.float32), quats=torch.tensor([[1.0, 0, 0, 0]]),
                scales=torch.full((1, 3), 0.02), opacities=torch.tensor([0.9]), colors=torch.ones(1, 3))
    out = render(sp, cam, ["alpha", "depth"], backend="torch")
    uv, z = cam.project(target[None])
    iy, ix = np.unravel_index(int(out["alpha"].argmax()), out["alpha"].shape)
    assert abs(ix + 0.5 - uv[0, 0]) <= 0.5 and abs(iy + 0.5 - uv[0, 1]) <= 0.5
    assert abs(float(out["depth"][iy, ix]) - z[0]) < 1e-5


def test_many_regions_bound_the_band_and_stay_exact(cpu_kernel, monkeypatch):
    sp = _random_splats(n=80, seed=5)
    sp.region_ids = torch.arange(80, dtype=torch.int32) * 1000  # 81 classes with the background
    cam = _cam()
    (feats, alpha, depth, cls), lut = _naive(sp, cam)
    out = render(sp, cam, ["region"], backend="torch")
    np.testing.assert_array_equal(out["region"].numpy(), lut[cls])



def _stage(n_side: int = 40) -> Splats:
    """Overlapping layers: a back wall, a half-transparent pane and opaque boxes (early stops, many pairs)."""
    back = _wall(n_side=n_side, z=6.0, size=5.0, region=1)
    pane = _wall(n_side=n_side // 2, z=4.0, size=2.5, region=2)
    pane.opacities[:] = 0.3
    pane.colors[:] = torch.tensor([0.9, 0.1, 0.1])
    box = _wall(n_side=n_side // 2, z=2.5, size=1.0, region=3)
    box.opacities[:] = 0.999
    sp = Splats.concat([back, pane, box, _random_splats(n=200, seed=9)])
    sp.confidence = torch.rand(len(sp), generator=torch.Generator().manual_seed(1))
    return sp


def test_compiled_compositor_matches_torch_on_a_layered_stage(monkeypatch):
    """The numba kernel against the pure-torch oracle: every pass, across bands, threads and
    channel blocks (more channels than one kernel block), with early stops and many regions."""
    if not raster_cpu.available():
        pytest.skip("numba is not installed")
    sp, cam = _stage(), _cam(96, 64)
    sp.region_ids = torch.randint(-1, 30, (len(sp),), generator=torch.Generator().manual_seed(2), dtype=torch.int32)
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "0")
    ref = render(sp, cam, backend="torch", device="cpu")
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1")
    monkeypatch.setattr(raster_cpu, "_MIN_BAND_ROWS", 3)  # many small bands
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # three workers even on a 1-core runner
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    out = render(sp, cam, backend="torch", device="cpu")
    assert float(out["alpha"].max()) > 0.999  # the box stops pixels early
    assert float(out["alpha"].max()) < 1 - projection.T_MIN  # ... before transmittance 1e-4
    np.testing.assert_array_equal(out["region"].numpy(), ref["region"].numpy())
    for k in set(PASSES) - {"region"}:
        np.testing.assert_allclose(out[k].numpy(), ref[k].numpy(), atol=2e-5, rtol=1e-5, err_msg=k)

    # Arbitrary channel counts go through the kernel in blocks: 19 channels plus depth.
    proj = projection.project(sp.means, sp.quats, sp.scales, sp.opacities,
                                torch.as_tensor(cam.cam_from_world, dtype=torch.float32),
                                torch.as_tensor(cam.K, dtype=torch.float32), cam.width, cam.height, 0.1, 100.0)
    feats = torch.rand(len(sp), 19, generator=torch.Generator().manual_seed(3))
    a = raster_cpu.composite(proj, feats, cam.width, cam.height, with_depth=True)
    b = raster_torch.composite(proj, feats, cam.width, cam.height, with_depth=True)
    assert set(a) == set(b) == {"features", "alpha", "depth_sum"}
    for k in a:
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=2e-5, rtol=1e-5, err_msg=k)


def test_numba_switch_picks_the_cpu_compositor(monkeypatch):
    sp, cam = _random_splats(), _cam()
    calls = []
    for mod, name in ((raster_cpu, "rasterize_arrays"), (raster_torch, "composite")):  # the numpy path / the oracle
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _m=mod, _r=real, **k: calls.append(_m.__name__) or _r(*a, **k))
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "0")
    render(sp, cam, backend="torch", device="cpu")
    assert calls == ["anchorstage.raster_torch"] and not raster_cpu.available()
    if importlib.util.find_spec("numba") is not None:
        monkeypatch.delenv("ANCHORSTAGE_NUMBA")
        render(sp, cam, backend="torch", device="cpu")
        assert calls[-1] == "anchorstage.raster_cpu"
