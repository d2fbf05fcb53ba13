# SPDX-License-Identifier: GPL-3.0-or-later
"""Spherical harmonics: the basis, per-splat view-dependent colour against a reference evaluation,
rotation with the splats, and what the renderer composites."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

from anchorstage import Camera, Splats, look_at, render
from anchorstage.sh import SH_C0, basis, rotate_rest, view_colors


def reference_eval(deg: int, sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """The 3DGS reference evaluation (INRIA's ``eval_sh``), transcribed in float64.

    Args:
        sh: [N, 3, (deg+1)^2] coefficients per channel (DC first), dirs: [N, 3] unit directions.
    """
    C1 = 0.4886025119029199
    C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396]
    C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
          1.445305721320277, -0.5900435899266435]
    result = SH_C0 * sh[..., 0]
    x, y, z = (dirs[:, i:i + 1] for i in range(3))
    if deg > 0:
        result = result - C1 * y * sh[..., 1] + C1 * z * sh[..., 2] - C1 * x * sh[..., 3]
    if deg > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        result = (result + C2[0] * xy * sh[..., 4] + C2[1] * yz * sh[..., 5] + C2[2] * (2.0 * zz - xx - yy) * sh[..., 6]
                  + C2[3] * xz * sh[..., 7] + C2[4] * (xx - yy) * sh[..., 8])
    if deg > 2:
        result = (result + C3[0] * y * (3 * xx - yy) * sh[..., 9] + C3[1] * xy * z * sh[..., 10]
                  + C3[2] * y * (4 * zz - xx - yy) * sh[..., 11] + C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12]
                  + C3[4] * x * (4 * zz - xx - yy) * sh[..., 13] + C3[5] * z * (xx - yy) * sh[..., 14]
                  + C3[6] * x * (xx - 3 * yy) * sh[..., 15])
    return result


def _srgb_to_linear(x):
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def _fibonacci(n):
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r = np.sqrt(1 - z * z)
    phi = i * math.pi * (3 - math.sqrt(5))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def test_basis_is_orthonormal_on_the_sphere():
    d = _fibonacci(40000)
    y = np.stack([np.full(len(d), SH_C0)] + basis(d[:, 0], d[:, 1], d[:, 2], 3), 1)
    gram = y.T @ y * (4 * math.pi / len(d))
    np.testing.assert_allclose(gram, np.eye(16), atol=2e-3)


@pytest.mark.parametrize("compiled", ["1", "0"])  # the numba kernel and its torch oracle
@pytest.mark.parametrize("encoding", ["sRGB", "linearRGB"])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_view_colors_match_the_reference_evaluation(degree, encoding, compiled, monkeypatch):
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", compiled)
    g = torch.Generator().manual_seed(degree)
    n, k = 500, (degree + 1) ** 2 - 1
    means = torch.randn(n, 3, generator=g) * 3
    cam = torch.tensor([0.3, -4.0, 1.2])
    dc = torch.randn(n, 3, generator=g) * 0.8
    rest = torch.randn(n, k, 3, generator=g) * 0.3
    # The linear DC colour a file decodes: sRGB-encoded 0.5 + C0 dc, decoded (or as is for linear files).
    dc_colour = 0.5 + SH_C0 * dc.double().numpy()
    colors = torch.from_numpy(_srgb_to_linear(dc_colour) if encoding == "sRGB" else dc_colour).float()
    got = view_colors(colors, rest, encoding, means, cam).double().numpy()
    dirs = (means - cam).double().numpy()
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    sh = np.concatenate([dc.double().numpy()[:, :, None], rest.double().numpy().transpose(0, 2, 1)], axis=2)
    ref = np.maximum(reference_eval(degree, sh, dirs) + 0.5, 0.0)  # 3DGS: + 0.5, clamped at 0
    if encoding == "sRGB":
        ref = _srgb_to_linear(ref)
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-5)
    assert torch.equal(view_colors(colors, None, encoding, means, cam), colors.clamp(min=0))


@pytest.mark.skipif(importlib.util.find_spec("gsplat") is None, reason="gsplat not installed")
def test_view_colors_match_gsplats_torch_reference():
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(0)
    n = 300
    means, cam = torch.randn(n, 3, generator=g) * 3, torch.tensor([0.0, -5.0, 1.0])
    coeffs = torch.randn(n, 16, 3, generator=g) * 0.3
    dirs = means - cam
    ref = torch.clamp_min(_spherical_harmonics(3, dirs, coeffs) + 0.5, 0.0)
    colors = (0.5 + SH_C0 * coeffs[:, 0]).double()
    got = view_colors(colors.float(), coeffs[:, 1:], "linearRGB", means, cam)
    torch.testing.assert_close(got, ref, atol=2e-5, rtol=1e-5)


def test_rotated_coefficients_follow_the_splats():
    from scipy.spatial.transform import Rotation

    g = torch.Generator().manual_seed(3)
    rest = torch.randn(50, 15, 3, generator=g, dtype=torch.float64).float()
    r = Rotation.from_euler("zyx", [35, -70, 120], degrees=True).as_matrix()
    rotated = rotate_rest(rest, r).double().numpy()
    d = _fibonacci(200)
    f = np.stack(basis(d[:, 0], d[:, 1], d[:, 2], 3), 1)  # [P, 15]
    back = d @ r  # rows: R^T d
    f_back = np.stack(basis(back[:, 0], back[:, 1], back[:, 2], 3), 1)
    # f'(d) = f(R^T d) for every splat and channel.
    np.testing.assert_allclose(np.einsum("pk,nkc->npc", f, rotated), np.einsum("pk,nkc->npc", f_back, rest.double().numpy()),
                               atol=2e-5)


def _sh_splats(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * torch.tensor([3.0, 1.0, 2.0]) + torch.tensor([-1.5, 2.0, 0.0])
    return Splats(means=means, quats=torch.randn(n, 4, generator=g), scales=torch.rand(n, 3, generator=g) * 0.08 + 0.03,
                  opacities=torch.rand(n, generator=g) * 0.5 + 0.4, colors=torch.rand(n, 3, generator=g) * 0.6 + 0.2,
                  sh_rest=torch.randn(n, 15, 3, generator=g) * 0.25)


def test_render_composites_the_view_dependent_colour():
    # One splat on the optical axis, nearly opaque: the centre pixel shows its colour for that ray.
    sp = _sh_splats(1)
    sp.means[:] = torch.tensor([0.2, 3.0, 1.1])
    sp.scales[:] = 0.3
    sp.opacities[:] = 0.99
    cam = Camera(width=33, height=33, lens_mm=20, world_from_cam=look_at((0.0, -1.0, 1.4), (0.2, 3.0, 1.1)))
    out = render(sp, cam, ("color", "alpha"), backend="torch")
    want = view_colors(sp.colors, sp.sh_rest, "sRGB", sp.means, torch.as_tensor(cam.position, dtype=torch.float32))[0]
    torch.testing.assert_close(out["color"][16, 16] / out["alpha"][16, 16], want, atol=1e-5, rtol=1e-5)
    # From another side the same splat shows another colour.
    other = Camera(width=33, height=33, lens_mm=20, world_from_cam=look_at((3.0, 4.0, 1.0), (0.2, 3.0, 1.1)))
    assert not torch.allclose(render(sp, other, ("color",), backend="torch")["color"][16, 16], out["color"][16, 16], atol=1e-3)


@pytest.mark.parametrize("compositor", ["numba", "torch"])
def test_moving_splats_and_camera_together_keeps_the_image(monkeypatch, compositor):
    from scipy.spatial.transform import Rotation

    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1" if compositor == "numba" else "0")
    sp = _sh_splats()
    cam = Camera(width=64, height=48, lens_mm=24, world_from_cam=look_at((0.3, -3.0, 1.5), (0.0, 2.5, 1.0)))
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", [10, -25, 70], degrees=True).as_matrix()
    m[:3, 3] = [0.5, -1.0, 2.0]
    moved_cam = Camera.from_K(cam.K, cam.width, cam.height, m @ cam.world_from_cam)
    a = render(sp, cam, ("color",), backend="torch")["color"]
    b = render(sp.transformed(m), moved_cam, ("color",), backend="torch")["color"]
    assert float(a.abs().max()) > 0.1
    torch.testing.assert_close(a, b, atol=2e-3, rtol=0)
