# SPDX-License-Identifier: GPL-3.0-or-later
"""The compiled CPU path's own stages against the torch oracle: the fused projection, the row
spans and band member lists, the per-band stable depth order, and whole renders at the edges
(empty input, one-row images, splats spanning every band, exact depth ties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorstage import Camera, Splats, render
from anchorstage import projection, raster_cpu, raster_torch
from anchorstage.renderer import PASSES
from anchorstage.workers import Workers

pytestmark = pytest.mark.skipif(not raster_cpu.available(), reason="numba is not installed")

W, H = 64, 40
K = torch.tensor([[50.0, 0.0, W / 2 + 0.3], [0.0, 52.0, H / 2 - 0.2], [0.0, 0.0, 1.0]])
NEAR, FAR = 0.5, 20.0


def _kernels():
    from anchorstage import _raster_cpu_kernels

    return _raster_cpu_kernels


def _pose(seed: int = 0) -> torch.Tensor:
    """A rotated, translated cam_from_world (so every rotation entry and translation matters)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = q * torch.sign(torch.det(q))
    m[:3, 3] = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    return m.float()


def _edge_splats(n: int = 3000, seed: int = 0, vm: torch.Tensor = None) -> tuple[torch.Tensor, ...]:
    """Random splats in front of the camera plus every culling edge: behind the camera, before
    near / past far, outside the frustum, degenerate and huge scales, zero quaternions,
    opacities below and at 1/255."""
    g = torch.Generator().manual_seed(seed)
    cam_pts = torch.randn(n, 3, generator=g) * torch.tensor([2.0, 1.5, 3.0]) + torch.tensor([0.0, 0.0, 4.0])
    cam_pts[:40, 2] = -cam_pts[:40, 2].abs() - 0.1  # behind the camera
    cam_pts[40:60, 2] = NEAR * 0.99  # just before near
    cam_pts[60:80, 2] = FAR * 1.01  # just past far
    cam_pts[80:120, 0] = cam_pts[80:120, 2] * 5.0  # far off to the side
    cam_pts[120:140, 2] = NEAR  # exactly on the planes (kept)
    cam_pts[140:160, 2] = FAR
    quats = torch.randn(n, 4, generator=g)
    quats[160:180] = 0.0  # no rotation at all: NaN covariance, culled by both
    scales = torch.rand(n, 3, generator=g) * 0.2
    scales[180:220] = 0.0  # points: only the low-pass is left
    scales[220:240, 0] = 0.0  # flat discs
    scales[240:250] = 50.0  # cover the whole image
    op = torch.rand(n, generator=g)
    op[250:270] = 0.5 / 255.0  # below the alpha floor
    op[270:290] = projection.ALPHA_MIN  # exactly at it
    op[290:300] = 1.0
    # World points from camera points: world = R^T (p - t).
    r, t = vm[:3, :3], vm[:3, 3]
    means = (cam_pts - t) @ r
    return means.contiguous(), quats, scales, op


def _check_against_torch(p: raster_cpu.Projected, ref: projection.Projection) -> None:
    s = p.slots()
    np.testing.assert_array_equal(p.ids[s], ref.ids.numpy())
    for a, b, what in ((p.means2d, ref.means2d, "means2d"), (p.conics, ref.conics, "conics"),
                       (p.depths, ref.depths, "depths"), (p.opacities, ref.opacities, "opacities")):
        np.testing.assert_allclose(a[s], b.numpy(), rtol=2e-6, atol=1e-6, err_msg=what)
    # Row spans: alpha >= 1/255 inside sigma <= log(255 opacity), widened by SPAN_MARGIN.
    my, cyy, op = (t.double().numpy() for t in (ref.means2d[:, 1], ref.cov2d[:, 2], ref.opacities))
    hy = np.sqrt(2.0 * np.log(op / projection.ALPHA_MIN) * cyy) + projection.SPAN_MARGIN
    lo, hi = np.ceil(my - hy - 0.5), np.floor(my + hy - 0.5)
    live = (hi >= 0) & (lo <= H - 1)
    np.testing.assert_array_equal(p.y0[s][live], np.maximum(lo, 0)[live])
    np.testing.assert_array_equal(p.y1[s][live], np.minimum(hi, H - 1)[live])
    assert np.all(p.y0[s][~live] > p.y1[s][~live])


@pytest.mark.parametrize("piece", [7, 1 << 16])
def test_compiled_projection_matches_torch(monkeypatch, piece):
    monkeypatch.setattr(raster_cpu, "_PIECE", piece)
    vm = _pose()
    means, quats, scales, op = _edge_splats(vm=vm)
    ref = projection.project(means, quats, scales, op, vm, K, W, H, NEAR, FAR)
    p = raster_cpu.project(means, quats, scales, op, vm, K, W, H, NEAR, FAR, workers=Workers(None, 3))
    ids = set(ref.ids.tolist())
    # Every edge case went the way it should (and so the comparison covers both outcomes).
    assert not ids & set(range(0, 120)) and not ids & set(range(160, 180)) and not ids & set(range(250, 270))
    assert ids & set(range(120, 160)) and ids & set(range(180, 250)) and ids & set(range(270, 300))
    assert 0.3 * len(op) < len(ids) < len(op)
    _check_against_torch(p, ref)
    assert p.counts.sum() == len(ids) and p.band_count.shape == (p.starts.shape[0], -(-H // p.band_rows))


def test_compiled_projection_reads_read_only_memory_maps(tmp_path):
    vm = _pose(1)
    arrays = _edge_splats(seed=1, vm=vm)
    maps = []
    for name, a in zip(("means", "quats", "scales", "op"), arrays):
        np.save(tmp_path / f"{name}.npy", a.numpy())
        maps.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    assert not maps[0].flags.writeable
    p = raster_cpu.project(*maps, vm.numpy(), K.numpy(), W, H, NEAR, FAR)
    _check_against_torch(p, projection.project(*arrays, vm, K, W, H, NEAR, FAR))


def test_depth_argsort_is_stable_and_orders_like_depth_order():
    g = np.random.default_rng(0)
    depths = g.choice(np.float32([0.5, 1.0, 1.0000001, 2.0, 3.0, 1e-30, 7e5]), 5000)  # many exact ties
    depths[:50] = g.uniform(0.1, 100.0, 50).astype(np.float32)
    members = np.sort(g.choice(5000, 3000, replace=False)).astype(np.int32)  # ascending, as filled
    got = _kernels().depth_argsort(members, depths)
    np.testing.assert_array_equal(got, projection.depth_order(torch.from_numpy(depths[members])).numpy())
    same = np.full(100, 2.5, np.float32)  # one key for all: the order is left as it is
    np.testing.assert_array_equal(_kernels().depth_argsort(np.arange(100, dtype=np.int32)[::-1].copy(), same),
                                  np.arange(100))
    assert _kernels().depth_argsort(np.zeros(0, np.int32), same).shape == (0,)


def test_band_members_cover_every_band_a_splat_touches(monkeypatch):
    monkeypatch.setattr(raster_cpu, "_MIN_BAND_ROWS", 1)
    monkeypatch.setattr(raster_cpu, "_PIECE", 11)
    vm = torch.eye(4)
    means, quats, scales, op = _edge_splats(n=400, seed=2, vm=vm)
    scales[:5] = 2.0  # a few splats across the whole image height
    w = Workers(None, 5)  # 20 bands of 2 rows
    p = raster_cpu.project(means, quats, scales, op, vm, K, W, H, NEAR, FAR, workers=w)
    assert p.band_rows == 2
    bands, members = raster_cpu._bands(p, H, w)
    assert bands == list(range(0, H, 2))
    for b, m in zip(bands, members):
        np.testing.assert_array_equal(m, np.sort(m))  # input order before the depth sort
        s = p.slots()
        touching = s[(p.y0[s] <= p.y1[s]) & (p.y0[s] <= b + 1) & (p.y1[s] >= b)]
        np.testing.assert_array_equal(m, touching)
    spanning = p.slots()[(p.y0[p.slots()] == 0) & (p.y1[p.slots()] == H - 1)]
    assert len(spanning) >= 3 and all(set(spanning) <= set(m) for m in members)


def _cam(w: int = W, h: int = H) -> Camera:
    return Camera.from_K(np.array([[50.0, 0, w / 2 + 0.3], [0, 50.0, h / 2 - 0.2], [0, 0, 1]]), w, h)


def _splats(n: int = 300, seed: int = 0) -> Splats:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.5]) + torch.tensor([0.0, 0.0, 4.0])
    return Splats(means=means, quats=torch.randn(n, 4, generator=g), scales=torch.rand(n, 3, generator=g) * 0.1 + 0.01,
                  opacities=torch.rand(n, generator=g) * 0.98 + 0.02, colors=torch.rand(n, 3, generator=g),
                  confidence=torch.rand(n, generator=g), region_ids=torch.randint(-1, 4, (n,), generator=g, dtype=torch.int32))


def _both(sp: Splats, cam: Camera, monkeypatch) -> tuple[dict, dict]:
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "0")
    ref = render(sp, cam, backend="torch", device="cpu")
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1")
    return render(sp, cam, backend="torch", device="cpu"), ref


def _assert_same(out: dict, ref: dict) -> None:
    np.testing.assert_array_equal(out["region"].numpy(), ref["region"].numpy())
    for k in set(PASSES) - {"region"}:
        # Normals are renormalised sums: where opposite normals nearly cancel, float32 summing
        # order differences grow.
        np.testing.assert_allclose(out[k].numpy(), ref[k].numpy(), atol=1e-4 if k == "normal" else 2e-5, rtol=1e-5,
                                   err_msg=k)


def test_exact_depth_ties_blend_in_input_order(monkeypatch):
    """Splats at one depth: the front-to-back order among them is their input order (gsplat's
    stable sort), which decides the colour when each is nearly opaque."""
    n = 12
    sp = Splats(means=torch.tensor([[0.02 * i, 0.0, 3.0] for i in range(n)]), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                scales=torch.full((n, 3), 0.2), opacities=torch.full((n,), 0.95),
                colors=torch.rand(n, 3, generator=torch.Generator().manual_seed(1)),
                region_ids=torch.arange(n, dtype=torch.int32))
    monkeypatch.setattr(raster_cpu, "_PIECE", 5)  # ties across projection pieces
    out, ref = _both(sp, _cam(), monkeypatch)
    _assert_same(out, ref)
    c = out["color"][H // 2, W // 2].numpy()
    assert np.allclose(c, 0.95 * sp.colors[0].numpy(), atol=0.06)  # the first of the tie is in front
    flipped = sp.subset(torch.arange(n - 1, -1, -1))
    assert not np.allclose(render(flipped, _cam(), ["color"], backend="torch")["color"].numpy(), out["color"].numpy())


def test_many_bands_pieces_and_threads_match_torch(monkeypatch):
    sp = _splats(n=500, seed=3)
    sp.scales[:4] = 1.5  # across every band
    monkeypatch.setattr(raster_cpu, "_MIN_BAND_ROWS", 1)
    monkeypatch.setattr(raster_cpu, "_PIECE", 13)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # three workers even on a 1-core runner
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    out, ref = _both(sp, _cam(), monkeypatch)
    assert float(out["alpha"].max()) > 0.99
    _assert_same(out, ref)


@pytest.mark.parametrize("size", [(W, 1), (1, H), (1, 1)])
def test_one_row_and_one_column_images(monkeypatch, size):
    sp = _splats(seed=4)
    out, ref = _both(sp, _cam(*size), monkeypatch)
    assert out["alpha"].shape == (size[1], size[0]) and float(out["alpha"].max()) > 0.1
    _assert_same(out, ref)


def test_empty_and_fully_culled_input(monkeypatch):
    empty = Splats(means=torch.zeros(0, 3), quats=torch.zeros(0, 4), scales=torch.zeros(0, 3),
                   opacities=torch.zeros(0), colors=torch.zeros(0, 3))
    behind = _splats(seed=5)
    behind.means[:, 2] = -4.0
    for sp in (empty, behind):
        out, ref = _both(sp, _cam(), monkeypatch)
        assert float(out["alpha"].max()) == 0.0
        _assert_same(out, ref)
    p = raster_cpu.project(empty.means, empty.quats, empty.scales, empty.opacities, torch.eye(4), K, W, H, NEAR, FAR)
    assert p.counts.shape == (0,) and p.slots().shape == (0,)
    bands = raster_cpu.witness_pairs(p, W, H, torch.ones(H * W, dtype=torch.bool))
    assert len(bands) == 1 and bands[0][1].shape == (H * W + 1,) and bands[0][2].shape == (0,)


def test_witness_pairs_same_from_either_projection():
    sp, cam = _splats(seed=6), _cam()
    args = (sp.means, sp.quats, sp.scales, sp.opacities, torch.as_tensor(cam.cam_from_world, dtype=torch.float32),
            torch.as_tensor(cam.K, dtype=torch.float32), W, H, 0.1, 100.0)
    ok = torch.ones(H * W, dtype=torch.bool)
    a = raster_cpu.witness_pairs(raster_cpu.project(*args), W, H, ok, 1e-4)
    b = raster_cpu.witness_pairs(projection.project(*args), W, H, ok, 1e-4)
    assert len(a) == len(b) and sum(x[2].shape[0] for x in a) > 10 * H
    for x, y in zip(a, b):
        assert x[0] == y[0]
        for u, v in zip(x[1:], y[1:]):
            np.testing.assert_array_equal(u, v)
    # And the compiled compositor's sums equal the oracle's on the compiled projection's splats.
    feats = torch.rand(len(sp), 5, generator=torch.Generator().manual_seed(7))
    c = raster_cpu.composite(raster_cpu.project(*args), feats, W, H, with_depth=True)
    d = raster_torch.composite(projection.project(*args), feats, W, H, with_depth=True)
    for k in c:
        np.testing.assert_allclose(c[k].numpy(), d[k].numpy(), atol=2e-5, rtol=1e-5, err_msg=k)
