# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernel of :func:`anchorstage.sh.view_colors` on the CPU (imported on first use: importing
compiles or loads it from numba's cache). The torch evaluation in :mod:`anchorstage.sh` is its oracle."""

from __future__ import annotations

import math

import numba
import numpy as np

from .sh import _C1, _C2, _C3


_F12_92, _F1_055, _F0_055 = np.float32(12.92), np.float32(1.055), np.float32(0.055)
_F_LIN, _F_ENC = np.float32(0.0031308), np.float32(0.04045)
_F_GAMMA, _F_INV_GAMMA = np.float32(2.4), np.float32(1.0 / 2.4)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def view_colors(colors, rest, means, eye, srgb, out):
    """``out[i] = decode(max(encode(colors[i]) + sum_k rest[i, k] Y_k(d_i), 0))`` (module :mod:`anchorstage.sh`).

    Args:
        colors: [N, 3] float32 linear DC colours.
        rest: [N, K, 3] float32 coefficients of degrees 1.. (K = 3, 8 or 15).
        means: [N, 3] float32 splat centres, metres, world frame.
        eye: [3] float64 camera centre, metres, world frame.
        srgb: True when the coefficients sum in sRGB (else linear).
        out: [N, 3] float32 written.
    """
    k_n = rest.shape[1]
    y = np.empty(15, np.float64)
    for i in range(colors.shape[0]):
        dx, dy, dz = means[i, 0] - eye[0], means[i, 1] - eye[1], means[i, 2] - eye[2]
        inv = 1.0 / math.sqrt(max(dx * dx + dy * dy + dz * dz, 1e-30))
        x, yy_, z = dx * inv, dy * inv, dz * inv
        y[0], y[1], y[2] = -_C1 * yy_, _C1 * z, -_C1 * x
        if k_n > 3:
            xx, yy, zz, xy, yz, xz = x * x, yy_ * yy_, z * z, x * yy_, yy_ * z, x * z
            y[3], y[4], y[5] = _C2[0] * xy, _C2[1] * yz, _C2[2] * (2.0 * zz - xx - yy)
            y[6], y[7] = _C2[3] * xz, _C2[4] * (xx - yy)
            if k_n > 8:
                y[8] = _C3[0] * yy_ * (3.0 * xx - yy)
                y[9] = _C3[1] * xy * z
                y[10] = _C3[2] * yy_ * (4.0 * zz - xx - yy)
                y[11] = _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy)
                y[12] = _C3[4] * x * (4.0 * zz - xx - yy)
                y[13] = _C3[5] * z * (xx - yy)
                y[14] = _C3[6] * x * (xx - 3.0 * yy)
        for c in range(3):
            v = colors[i, c]
            if srgb:  # the curves in float32, as the torch evaluation has them (float64 powers cost twice)
                v = v * _F12_92 if v <= _F_LIN else _F1_055 * max(v, _F_LIN) ** _F_INV_GAMMA - _F0_055
            s = np.float64(v)
            for k in range(k_n):
                s += y[k] * rest[i, k, c]
            v = np.float32(max(s, 0.0))
            if srgb:
                v = v / _F12_92 if v <= _F_ENC else ((v + _F0_055) / _F1_055) ** _F_GAMMA
            out[i, c] = v
