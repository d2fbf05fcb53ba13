# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernel of :mod:`anchorstage.splat_sort` (imported on first use: importing compiles it or
loads it from numba's cache)."""

from __future__ import annotations

import numba
import numpy as np

_DIGIT_BITS = 11
_BUCKETS = 1 << _DIGIT_BITS


@numba.njit(nogil=True, cache=True)
def radix_argsort_f32(values):
    """Stable ascending argsort of float32 ``values`` ([N] → [N] int32) by an LSD radix sort.

    Floats are mapped to unsigned keys that order like the floats (negative ones flipped), then
    sorted 11 bits at a time; a digit every key shares is skipped. -0.0 ties with 0.0; NaN orders
    above +inf.
    """
    n = values.shape[0]
    bits = values.view(np.uint32)
    keys = np.empty(n, np.uint32)
    for i in range(n):
        b = bits[i]
        if b == np.uint32(0x80000000):  # -0.0 equals 0.0
            b = np.uint32(0)
        keys[i] = ~b if b >> np.uint32(31) else b | np.uint32(0x80000000)
    idx = np.arange(n).astype(np.int32)
    keys2 = np.empty(n, np.uint32)
    idx2 = np.empty(n, np.int32)
    counts = np.empty(_BUCKETS + 1, np.int64)
    for shift in range(0, 32, _DIGIT_BITS):
        counts[:] = 0
        for i in range(n):
            counts[((keys[i] >> np.uint32(shift)) & np.uint32(_BUCKETS - 1)) + 1] += 1
        if counts.max() == n:  # one bucket holds every key: this digit orders nothing
            continue
        for d in range(_BUCKETS):
            counts[d + 1] += counts[d]
        for i in range(n):
            d = (keys[i] >> np.uint32(shift)) & np.uint32(_BUCKETS - 1)
            j = counts[d]
            counts[d] = j + 1
            keys2[j] = keys[i]
            idx2[j] = idx[i]
        keys, keys2 = keys2, keys
        idx, idx2 = idx2, idx
    return idx
