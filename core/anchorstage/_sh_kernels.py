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

# The sRGB curves on [0, 1] as tables read with linear interpolation: a pow per channel cost more
# than the SH sum itself. Encode is tabulated over sqrt(x) (the curve is steep near 0), decode over
# v; either is within 3e-7 of the float64 curve (float32 rounding, as the pow). Values above 1 take the pow.
_TABLE_STEPS = 4096
_t = np.linspace(0.0, 1.0, _TABLE_STEPS + 1)
_ENCODE_OF_ROOT = (1.055 * _t ** (2.0 / 2.4) - 0.055).astype(np.float32)
_DECODE = (((_t + 0.055) / 1.055) ** 2.4).astype(np.float32)
del _t


@numba.njit(nogil=True, cache=True, inline="always")
def _lerp(table, u):
    """``table`` read at ``u`` in [0, 1] (its entries evenly spaced over [0, 1]), interpolated linearly."""
    f = u * _TABLE_STEPS
    i = min(int(f), _TABLE_STEPS - 1)
    w = f - i
    return table[i] + w * (table[i + 1] - table[i])


@numba.njit(nogil=True, cache=True, inline="always")
def _encode(v):
    """Linear → sRGB-encoded (float32, unclipped: :func:`anchorstage.sh.srgb_encode`)."""
    if v <= _F_LIN:
        return v * _F12_92
    if v <= 1.0:
        return np.float32(_lerp(_ENCODE_OF_ROOT, math.sqrt(np.float64(v))))
    return _F1_055 * v ** _F_INV_GAMMA - _F0_055


@numba.njit(nogil=True, cache=True, inline="always")
def _decode(v):
    """sRGB-encoded → linear (float32, unclipped: :func:`anchorstage.sh.srgb_decode`)."""
    if v <= _F_ENC:
        return v / _F12_92
    if v <= 1.0:
        return np.float32(_lerp(_DECODE, np.float64(v)))
    return ((v + _F0_055) / _F1_055) ** _F_GAMMA


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
        # The curves out of the sums' loop: with the three of a kind together the CPU overlaps them.
        if srgb:
            e0, e1, e2 = _encode(colors[i, 0]), _encode(colors[i, 1]), _encode(colors[i, 2])
        else:
            e0, e1, e2 = colors[i, 0], colors[i, 1], colors[i, 2]
        s0, s1, s2 = np.float64(e0), np.float64(e1), np.float64(e2)
        for k in range(k_n):  # the three channels together: their coefficients lie side by side
            s0 += y[k] * rest[i, k, 0]
            s1 += y[k] * rest[i, k, 1]
            s2 += y[k] * rest[i, k, 2]
        v0, v1, v2 = np.float32(max(s0, 0.0)), np.float32(max(s1, 0.0)), np.float32(max(s2, 0.0))
        if srgb:
            v0, v1, v2 = _decode(v0), _decode(v1), _decode(v2)
        out[i, 0], out[i, 1], out[i, 2] = v0, v1, v2
