# SPDX-License-Identifier: GPL-3.0-or-later
"""Real spherical harmonics (degrees 0-3) of splat colours: evaluation and rotation.

A 3DGS splat's colour seen along the unit direction ``d`` (from the camera centre to the splat
centre, world frame) is, in the colour encoding the coefficients were fitted in (sRGB for 3DGS
trainers),

    colour(d) = 0.5 + C0 * dc + sum_k rest[k] * Y_k(d),   then clamped at 0,

with the real SH basis ``Y_k`` of degrees 1..3 and the signs of the 3DGS reference code
(gsplat, the INRIA implementation). ``rest`` holds K = (degree + 1)^2 - 1 coefficients per
colour channel, coefficient-major: ``rest[:, k, c]``. In :class:`anchorstage.Splats` the DC term
is carried as the linear colour ``colors`` and re-encoded here, so evaluation is::

    linear(d) = decode(max(encode(colors) + sum_k rest[k] Y_k(d), 0))

where encode/decode are the sRGB curves (or the identity for ``"linearRGB"`` coefficients).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["SH_C0", "SH_ENCODINGS", "rest_count", "degree_of", "basis", "view_colors", "rotation_blocks", "rotate_rest",
           "srgb_encode", "srgb_decode"]

#: Degree-0 real spherical-harmonic constant 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
       1.445305721320277, -0.5900435899266435)
#: Encodings SH coefficients can be stored in.
SH_ENCODINGS = ("sRGB", "linearRGB")


def rest_count(degree: int) -> int:
    """Coefficients per channel above degree 0: 0, 3, 8, 15 for degrees 0..3."""
    return (degree + 1) ** 2 - 1


def degree_of(rest: int) -> int:
    """The SH degree of ``rest`` coefficients per channel (0, 3, 8 or 15); -1 for other counts."""
    return {0: 0, 3: 1, 8: 2, 15: 3}.get(int(rest), -1)


def basis(x, y, z, degree: int) -> list:
    """The real SH basis of degrees 1..``degree`` at unit directions (x, y, z).

    Args:
        x, y, z: [N] tensors or arrays, components of unit directions.
        degree: 0..3.

    Returns:
        ``rest_count(degree)`` [N] values, in the coefficient order of 3DGS files.
    """
    out = []
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [_C2[0] * xy, _C2[1] * yz, _C2[2] * (2.0 * zz - xx - yy), _C2[3] * xz, _C2[4] * (xx - yy)]
    if degree >= 3:
        out += [_C3[0] * y * (3.0 * xx - yy), _C3[1] * xy * z, _C3[2] * y * (4.0 * zz - xx - yy),
                _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), _C3[4] * x * (4.0 * zz - xx - yy),
                _C3[5] * z * (xx - yy), _C3[6] * x * (xx - 3.0 * yy)]
    return out


def srgb_encode(x: "torch.Tensor") -> "torch.Tensor":
    """Linear → sRGB-encoded, unclipped: the linear segment continues below 0, the curve above 1."""
    import torch

    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0.0031308).pow(1 / 2.4) - 0.055)


def srgb_decode(x: "torch.Tensor") -> "torch.Tensor":
    """sRGB-encoded → linear, unclipped (the inverse of :func:`srgb_encode`)."""
    import torch

    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055).pow(2.4))


Array = Union["torch.Tensor", np.ndarray]


def view_colors(colors: Array, rest: Array | None, encoding: str, means: Array,
                camera_position: Sequence[float] | Array) -> Array:
    """Each splat's linear colour seen from a camera: SH evaluated along the viewing direction.

    Torch tensors in, a tensor out; numpy arrays in (host memory), a numpy array out, torch not
    loaded while the compiled kernel is in use.

    Args:
        colors: [N, 3] float32 linear RGB, the DC (view-independent) colour.
        rest: [N, K, 3] float32 SH coefficients of degrees 1..3 (K = 3, 8 or 15) in ``encoding``,
            or None (no view dependence).
        encoding: ``"sRGB"`` or ``"linearRGB"``: the encoding the coefficients sum in.
        means: [N, 3] float32 splat centres, metres, world frame.
        camera_position: [3] camera centre, metres, world frame.

    Returns:
        [N, 3] float32 linear RGB, clamped at 0 (3DGS clamps the evaluated colour at 0).
    """
    host = isinstance(colors, np.ndarray)
    if rest is None or rest.shape[1] == 0:
        return np.maximum(colors, np.float32(0.0)) if host else colors.clamp(min=0.0)
    c = [float(v) for v in (camera_position.tolist() if hasattr(camera_position, "tolist") else camera_position)]
    if (host or colors.device.type == "cpu") and degree_of(rest.shape[1]) > 0 and _compiled():
        from . import _sh_kernels

        def f32(a: Array) -> np.ndarray:
            return np.ascontiguousarray(a if isinstance(a, np.ndarray) else a.detach().float().numpy(), np.float32)

        out = np.empty(colors.shape, np.float32)
        _sh_kernels.view_colors(f32(colors), f32(rest), f32(means), np.array(c, np.float64), encoding == "sRGB", out)
        if host:
            return out
        import torch

        return torch.from_numpy(out)
    if host:
        import torch

        return _view_colors_torch(*(torch.from_numpy(np.asarray(a)) for a in (colors, rest)), encoding,
                                  torch.from_numpy(np.asarray(means)), c).numpy()
    return _view_colors_torch(colors, rest, encoding, means, c)


def _compiled() -> bool:
    """Whether the compiled CPU kernels are in use (numba there, ``ANCHORSTAGE_NUMBA`` not 0)."""
    from .raster_cpu import available

    return available()


def _view_colors_torch(colors: "torch.Tensor", rest: "torch.Tensor", encoding: str, means: "torch.Tensor",
                       c: list[float]) -> "torch.Tensor":
    """:func:`view_colors` in torch (any device; the compiled kernel's oracle)."""
    import torch

    m = means.unbind(1)
    dx, dy, dz = m[0] - c[0], m[1] - c[1], m[2] - c[2]
    inv = torch.rsqrt((dx * dx + dy * dy + dz * dz).clamp_(min=1e-30))
    srgb = encoding == "sRGB"
    out = srgb_encode(colors) if srgb else colors.clone()
    for k, b in enumerate(basis(dx * inv, dy * inv, dz * inv, degree_of(rest.shape[1]))):
        out.addcmul_(b[:, None], rest[:, k])
    out.clamp_(min=0.0)
    return srgb_decode(out) if srgb else out


def _basis_np(dirs: np.ndarray, degree: int) -> np.ndarray:
    return np.stack(basis(dirs[:, 0], dirs[:, 1], dirs[:, 2], degree), axis=1)


@functools.lru_cache(maxsize=None)
def _sample_directions() -> np.ndarray:
    """64 well-spread unit directions (a Fibonacci sphere): enough to pin down degree-3 rotations."""
    i = np.arange(64) + 0.5
    z = 1.0 - 2.0 * i / 64
    r = np.sqrt(1.0 - z * z)
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def rotation_blocks(rotation: np.ndarray, degree: int) -> list[np.ndarray]:
    """Per-degree matrices that rotate SH coefficients with the splats.

    If a splat set is rotated by ``rotation`` (world_from_local, [3, 3]), its colour function
    becomes ``f'(d) = f(Rᵀ d)``; for degree l the new coefficients are ``M_l @ c_l``.

    Args:
        rotation: [3, 3] rotation matrix.
        degree: highest degree (1..3).

    Returns:
        ``degree`` float64 matrices, [2l+1, 2l+1] for l = 1..degree.
    """
    d = _sample_directions()
    r = np.asarray(rotation, dtype=np.float64)
    b = _basis_np(d, degree)
    b_rot = _basis_np(d @ r, degree)  # rows: Rᵀ d_i
    blocks, start = [], 0
    for deg in range(1, degree + 1):
        n = 2 * deg + 1
        sl = slice(start, start + n)
        m, *_ = np.linalg.lstsq(b[:, sl], b_rot[:, sl], rcond=None)
        blocks.append(m)
        start += n
    return blocks


def rotate_rest(rest: "torch.Tensor", rotation: np.ndarray) -> "torch.Tensor":
    """SH coefficients [N, K, 3] of splats rotated by ``rotation`` ([3, 3], world_from_local)."""
    import torch

    degree = degree_of(rest.shape[1])
    if degree <= 0:
        return rest.clone()
    out = torch.empty_like(rest)
    start = 0
    for m in rotation_blocks(rotation, degree):
        n = m.shape[0]
        mt = torch.as_tensor(m, dtype=torch.float64, device=rest.device)
        out[:, start:start + n] = torch.einsum("ij,njc->nic", mt, rest[:, start:start + n].double()).to(rest.dtype)
        start += n
    return out
