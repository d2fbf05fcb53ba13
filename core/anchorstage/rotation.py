# SPDX-License-Identifier: GPL-3.0-or-later
"""Quaternions and splat axes: the one implementation every module uses.

Quaternions are wxyz (Blender's and gsplat's order) and rotate a splat's local axes into the
world. Computations work on one [N] tensor per scalar: [N, 3, 3] batches with tiny inner
dimensions run slowly on the CPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

from .arrays import array_module

if TYPE_CHECKING:  # pragma: no cover
    import torch

_Array = Union["torch.Tensor", np.ndarray]

__all__ = ["rotmat_entries", "quat_to_rotmat", "quat_from_axes", "quat_from_matrix", "quat_mul", "thin_axis",
           "facing_thin_axis"]


def rotmat_entries(quats: _Array) -> tuple[_Array, ...]:
    """[N, 4] wxyz (any non-zero norm) → the 9 entries r00, r01, …, r22 (row-major), each [N].

    Column k of the matrix is local axis k expressed in the world frame. Tensors or numpy arrays.
    """
    w, x, y, z = (quats[..., i] for i in range(4))
    s = 2.0 / (w * w + x * x + y * y + z * z)  # normalises without a separate pass
    xs, ys, zs = x * s, y * s, z * s
    wx, wy, wz = w * xs, w * ys, w * zs
    xx, xy, xz = x * xs, x * ys, x * zs
    yy, yz, zz = y * ys, y * zs, z * zs
    return (1 - (yy + zz), xy - wz, xz + wy,
            xy + wz, 1 - (xx + zz), yz - wx,
            xz - wy, yz + wx, 1 - (xx + yy))


def quat_to_rotmat(quats: "torch.Tensor") -> "torch.Tensor":
    """[N, 4] wxyz (any non-zero norm) → [N, 3, 3] rotation matrices (local → world)."""
    import torch

    # Stacked entry-major (contiguous writes), returned as a strided [N, 3, 3] view.
    return torch.stack(rotmat_entries(quats)).T.reshape(-1, 3, 3)


def quat_from_axes(a1: tuple[_Array, ...], a2: tuple[_Array, ...], a3: tuple[_Array, ...]) -> tuple[_Array, ...]:
    """Unit wxyz quaternions of the rotations whose columns are ``a1, a2, a3`` (each 3 [M] tensors
    or numpy arrays).

    Returns:
        (w, x, y, z), each [M], with w ≥ 0.
    """
    m00, m10, m20 = a1
    m01, m11, m21 = a2
    m02, m12, m22 = a3
    xp = array_module(m00)
    # Four proportional closed forms; use the one built on the largest diagonal term (well conditioned).
    t0, t1 = m00 + m11 + m22, m00 - m11 - m22
    t2, t3 = m11 - m00 - m22, m22 - m00 - m11
    c0 = (t0 >= t1) & (t0 >= t2) & (t0 >= t3)
    c1 = ~c0 & (t1 >= t2) & (t1 >= t3)
    c2 = ~c0 & ~c1 & (t2 >= t3)

    def pick(v0: _Array, v1: _Array, v2: _Array, v3: _Array) -> _Array:
        return xp.where(c0, v0, xp.where(c1, v1, xp.where(c2, v2, v3)))

    w = pick(1 + t0, m21 - m12, m02 - m20, m10 - m01)
    x = pick(m21 - m12, 1 + t1, m01 + m10, m02 + m20)
    y = pick(m02 - m20, m01 + m10, 1 + t2, m12 + m21)
    z = pick(m10 - m01, m02 + m20, m12 + m21, 1 + t3)
    norm2 = w * w + x * x + y * y + z * z
    inv = 1.0 / np.sqrt(norm2) if xp is np else xp.rsqrt(norm2)
    inv = xp.where(w < 0, -inv, inv)  # canonical sign: w ≥ 0
    return w * inv, x * inv, y * inv, z * inv


def quat_from_matrix(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """The unit wxyz quaternion (w ≥ 0) of one [3, 3] rotation matrix, in float64."""
    r = np.asarray(rotation, dtype=np.float64)
    axes = [tuple(np.array([v]) for v in r[:, k]) for k in range(3)]
    w, x, y, z = (float(c[0]) for c in quat_from_axes(*axes))
    return w, x, y, z


def quat_mul(a: tuple[float, ...], b: "torch.Tensor") -> "torch.Tensor":
    """[M, 4] Hamilton product a ⊗ b of one constant wxyz quaternion ``a`` and [M, 4] wxyz ``b``, w ≥ 0."""
    import torch

    aw, ax, ay, az = a
    # a ⊗ b is linear in b: one [M, 4] x [4, 4] product instead of sixteen [M] passes.
    left = torch.tensor([[aw, -ax, -ay, -az], [ax, aw, -az, ay], [ay, az, aw, -ax], [az, -ay, ax, aw]],
                        dtype=b.dtype, device=b.device)
    out = b @ left.T
    return out.mul_(torch.where(out[:, :1] < 0, -1.0, 1.0))


def thin_axis(quats: _Array, scales: _Array) -> tuple[_Array, _Array, _Array]:
    """Each splat's thinnest local axis in the world frame: the splat's normal, up to sign.

    Args:
        quats: [N, 4] wxyz rotations, local → world (a tensor or a numpy array).
        scales: [N, 3] standard deviations along the local axes, metres (the same kind).

    Returns:
        (x, y, z), each [N]: the unit axis with the smallest scale (ties go to the first axis).
    """
    r = rotmat_entries(quats)  # row-major: r[3i + k] is world component i of local axis k
    sx, sy, sz = (scales[:, i] for i in range(3))
    thin0, thin1 = (sx <= sy) & (sx <= sz), sy <= sz
    xp = array_module(scales)
    return tuple(xp.where(thin0, r[3 * i], xp.where(thin1, r[3 * i + 1], r[3 * i + 2])) for i in range(3))


def facing_thin_axis(quats: _Array, scales: _Array, means: _Array, eye: _Array) -> _Array:
    """Each splat's thinnest axis (:func:`thin_axis`) flipped to face a camera: its normal.

    Args:
        quats: [N, 4] wxyz rotations, local → world (a tensor or a numpy array).
        scales: [N, 3] standard deviations along the local axes, metres (the same kind).
        means: [N, 3] centres, metres, world frame (the same kind).
        eye: [3] camera centre, metres, world frame.

    Returns:
        [N, 3] unit normals, of the inputs' kind (numpy arrays take the compiled kernel when it is in use).
    """
    from .raster_cpu import available as compiled

    xp = array_module(means)
    c = [float(v) for v in (eye.tolist() if hasattr(eye, "tolist") else eye)]
    if xp is np and quats.dtype == np.float32 and compiled():
        from . import _rotation_kernels

        out = np.empty((len(quats), 3), np.float32)
        _rotation_kernels.facing_thin_axis(*(np.ascontiguousarray(a) for a in (quats, scales, means)),
                                           np.array(c, np.float32), out)
        return out
    n = thin_axis(quats, scales)
    m = [means[:, i] for i in range(3)]
    facing = (c[0] - m[0]) * n[0] + (c[1] - m[1]) * n[1] + (c[2] - m[2]) * n[2] < 0
    return xp.stack([xp.where(facing, -a, a) for a in n], 1)
