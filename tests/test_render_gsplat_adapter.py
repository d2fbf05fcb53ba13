# SPDX-License-Identifier: GPL-3.0-or-later
"""The gsplat backend's packing (extra channels, one-hot regions, RGB+ED depth, opacity clamp), on the CPU.

A stand-in ``gsplat`` module whose ``rasterization`` follows gsplat 1.5's documented contract
(``(colors [C, H, W, X], alphas [C, H, W, 1], meta)``, ED depth appended as the last channel,
alpha capped at 0.999) is built from the torch oracle, so the adapter's own logic is checked
here; tests/test_render_cuda.py checks the real gsplat on a GPU.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from anchorstage import raster_gsplat, raster_torch, render
from anchorstage.renderer import _rasterize
from anchorstage.workers import Workers


def _rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *, near_plane, far_plane,
                   eps2d, packed, render_mode, rasterize_mode, channel_chunk):
    assert rasterize_mode == "classic" and render_mode in ("RGB", "RGB+ED") and colors.shape[1] >= 1
    assert viewmats.shape == (1, 4, 4) and Ks.shape == (1, 3, 3)
    old = raster_torch.ALPHA_MAX
    raster_torch.ALPHA_MAX = 0.999  # gsplat's own cap
    try:
        res = raster_torch.rasterize_splats(means, quats, scales, opacities, colors, viewmats[0], Ks[0], width, height,
                                            near=near_plane, far=far_plane, with_depth=render_mode == "RGB+ED", eps2d=eps2d)
    finally:
        raster_torch.ALPHA_MAX = old
    out = res["features"]
    if render_mode == "RGB+ED":
        out = torch.cat([out, res["depth"][..., None]], -1)
    return out[None], res["alpha"][None, ..., None], {}


@pytest.fixture
def fake_gsplat(monkeypatch):
    mod = types.ModuleType("gsplat")
    mod.rasterization = _rasterization
    monkeypatch.setitem(sys.modules, "gsplat", mod)


def test_adapter_matches_torch_backend(fake_gsplat):
    from test_render import _cam, _random_splats

    sp, cam = _random_splats(n=70, seed=11), _cam()
    sp.opacities.clamp_(max=0.99)  # where the two caps agree exactly
    dev = torch.device("cpu")
    ref = render(sp, cam, backend="torch")
    feats = torch.cat([sp.colors, sp.confidence[:, None]], 1)
    lut, inv = torch.unique(torch.cat([torch.tensor([-1]), sp.region_ids.long()]), return_inverse=True)
    got = _rasterize(raster_gsplat, sp, cam, feats, inv[1:], lut, True, dev, Workers(None, 1))
    np.testing.assert_allclose(got["features"][..., :3].numpy(), ref["color"].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["features"][..., 3].numpy(), ref["confidence"].numpy(), atol=1e-5)
    np.testing.assert_allclose(got["alpha"].numpy(), ref["alpha"].numpy(), atol=1e-5)
    hit = ref["alpha"].numpy() > 1e-3
    np.testing.assert_allclose(got["depth"].numpy()[hit], ref["depth"].numpy()[hit], rtol=1e-4)
    np.testing.assert_array_equal(lut[got["class_weight_argmax"]].numpy(), ref["region"].numpy())


def test_adapter_clamps_opacity_and_handles_no_channels(fake_gsplat):
    from test_render import _cam, _wall

    sp, cam = _wall(), _cam(64, 48)
    sp.opacities.fill_(1.0)
    dev = torch.device("cpu")
    got = _rasterize(raster_gsplat, sp, cam, torch.zeros(len(sp), 0), None, None, True, dev, Workers(None, 1))
    ref = render(sp, cam, ["alpha", "depth"], backend="torch")
    assert got["features"].shape == (48, 64, 0)
    # Above 0.99 the clamp approximates min(0.99, o·exp(-sigma)) to within 1 % of alpha (docs/rendering.md).
    diff = np.abs(got["alpha"].numpy() - ref["alpha"].numpy())
    assert 0 < diff.max() < 0.01
    np.testing.assert_allclose(got["depth"].numpy()[ref["alpha"].numpy() > 0.5], 3.0, rtol=1e-5)


def test_available_is_false_without_cuda():
    if not torch.cuda.is_available():
        assert raster_gsplat.available() is False
