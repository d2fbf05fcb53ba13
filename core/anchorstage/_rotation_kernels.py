# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.rotation` on the CPU (imported on first use: importing
compiles or loads them from numba's cache). The array code in :mod:`anchorstage.rotation` is their
oracle; :func:`rotmat` is also the projection kernel's."""

from __future__ import annotations

import numba
import numpy as np

_TWO, _ONE = np.float32(2.0), np.float32(1.0)


@numba.njit(nogil=True, cache=True, inline="always")
def rotmat(w, x, y, z):
    """The 9 entries r00, r01, …, r22 (row-major) of a float32 wxyz quaternion's rotation (any
    non-zero norm): :func:`anchorstage.rotation.rotmat_entries`, its float32 operations in its order."""
    s = _TWO / (w * w + x * x + y * y + z * z)
    xs, ys, zs = x * s, y * s, z * s
    wx, wy, wz = w * xs, w * ys, w * zs
    xx, xy, xz = x * xs, x * ys, x * zs
    yy, yz, zz = y * ys, y * zs, z * zs
    return (_ONE - (yy + zz), xy - wz, xz + wy,
            xy + wz, _ONE - (xx + zz), yz - wx,
            xz - wy, yz + wx, _ONE - (xx + yy))


@numba.njit(nogil=True, cache=True)
def facing_thin_axis(quats, scales, means, eye, out):
    """``out[i]`` = splat i's thinnest axis in the world frame, flipped to face ``eye``.

    The float32 operations of :func:`anchorstage.rotation.thin_axis`, in its order, one splat at a time.

    Args:
        quats: [N, 4] float32 wxyz rotations, local → world (any non-zero norm).
        scales: [N, 3] float32 standard deviations along the local axes, metres.
        means: [N, 3] float32 centres, metres, world frame.
        eye: [3] float32 camera centre, metres, world frame.
        out: [N, 3] float32 written: unit normals.
    """
    for i in range(quats.shape[0]):
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = rotmat(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3])
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        if sx <= sy and sx <= sz:  # column k is local axis k (ties go to the first axis)
            a0, a1, a2 = r00, r10, r20
        elif sy <= sz:
            a0, a1, a2 = r01, r11, r21
        else:
            a0, a1, a2 = r02, r12, r22
        if (eye[0] - means[i, 0]) * a0 + (eye[1] - means[i, 1]) * a1 + (eye[2] - means[i, 2]) * a2 < 0:
            a0, a1, a2 = -a0, -a1, -a2
        out[i, 0], out[i, 1], out[i, 2] = a0, a1, a2
