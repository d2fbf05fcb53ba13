# SPDX-License-Identifier: GPL-3.0-or-later
"""What the GPU drawer uploads: texture layout, the 3D covariance the projection uses, and the
per-splat channels of every viewport pass from the pass registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorstage import InputError, Splats
from anchorstage.passes import REGISTRY, spec
from anchorstage.preview import region_colors
from anchorstage.rotation import quat_to_rotmat
from anchorstage.viewport_layout import (VIEWPORT_PASSES, display_kind, pass_channels, padded, splat_arrays,
                                         texture_shape)


def _splats(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Splats(means=torch.randn(n, 3, generator=g), quats=torch.randn(n, 4, generator=g),
                  scales=torch.rand(n, 3, generator=g) * 0.2 + 0.01, opacities=torch.rand(n, generator=g),
                  colors=torch.rand(n, 3, generator=g), confidence=torch.rand(n, generator=g),
                  region_ids=torch.randint(-1, 4, (n,), generator=g, dtype=torch.int32))


def test_texture_shapes_hold_every_splat():
    assert texture_shape(0) == (1, 1) and texture_shape(1) == (1, 1)
    assert texture_shape(4096) == (4096, 1) and texture_shape(4097) == (4096, 2)
    assert texture_shape(4_000_000) == (4096, 977)
    p = padded(np.arange(10, dtype=np.float32), 4)
    assert p.shape == (12, 4) and list(p[:, 0]) == list(range(10)) + [0, 0] and not p[:, 1:].any()


def test_covariance_is_r_s2_rt_in_the_object_frame():
    sp = _splats()
    a = splat_arrays(sp, width=16)
    n = len(sp)
    r = quat_to_rotmat(sp.quats).double()
    cov = (r * sp.scales.double()[:, None, :] ** 2) @ r.transpose(1, 2)
    got_a, got_b = a["cov_a"][:n], a["cov_b"][:n]
    np.testing.assert_allclose(got_a, cov[:, [0, 0, 0, 1], [0, 1, 2, 1]].numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(got_b[:, :2], cov[:, [1, 2], [2, 2]].numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(a["center_opacity"][:n, :3], sp.means.numpy())
    np.testing.assert_allclose(a["center_opacity"][:n, 3], sp.opacities.numpy())
    assert a["center_opacity"].shape == (64, 4) and not a["center_opacity"][n:].any()
    assert a["means"].shape == (n, 3)


def test_viewport_passes_follow_the_registry():
    assert VIEWPORT_PASSES == tuple(p.name for p in REGISTRY if p.name != "alpha")
    kinds = {p: display_kind(p) for p in VIEWPORT_PASSES}
    assert kinds == {"color": "srgb", "depth": "depth", "normal": "normal", "confidence": "unit", "region": "ids",
                     "void": "void"}
    with pytest.raises(InputError, match="unknown pass 'alpha'"):
        display_kind("alpha")


def test_pass_channels_are_the_registrys_splat_channels():
    sp = _splats()
    n = len(sp)
    cam = np.array([0.0, 0.0, -5.0])
    for name in ("color", "normal", "confidence"):
        want = spec(name).splat_channels(sp, torch.tensor(cam, dtype=torch.float32)).numpy()
        got = pass_channels(sp, name, cam, width=16)
        np.testing.assert_allclose(got[:n, : want.shape[1]], want, rtol=1e-6)
        assert got.shape == (64, 4)
    np.testing.assert_allclose(pass_channels(sp, "void", cam)[:n, :3], sp.colors.numpy())
    np.testing.assert_allclose(pass_channels(sp, "region", cam)[:n, :3],
                               region_colors(sp.region_ids.numpy()).astype(np.float32))
    assert not pass_channels(sp, "depth", cam).any()
