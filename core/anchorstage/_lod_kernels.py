# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.lod`'s per-frame cut (imported on first use: importing
compiles or loads them from numba's cache)."""

from __future__ import annotations

import math

import numba
import numpy as np

#: ``classify`` verdicts.
CULLED, DRAWN, OPENED = 0, 1, 2


@numba.njit(nogil=True, cache=True)
def classify(cand, means, radius, scales, cam_from_world, sides, near, far, stretch, fx, threshold_px):
    """Test one level's candidate nodes against the view frustum and the size threshold.

    Args:
        cand: [K] int64 node rows of this level.
        means: [M, 3] float32 node centres, metres, world frame.
        radius: [M] float32 bounding radii, metres.
        scales: [M, 3] float32 standard deviations, metres.
        cam_from_world: [4, 4] float64 world → camera (OpenCV).
        sides: [4] float64 ``ax, bx, ay, by``: the side planes ``x >= ax z``, ``x <= bx z``, ``y >= ay z``,
            ``y <= by z`` in the camera frame (the image box widened by the projection's margins).
        near, far: clip distances, metres.
        stretch: the projection's largest footprint stretch (its Jacobian clamp); radii are widened by it.
        fx: focal length, pixels.
        threshold_px: nodes whose largest standard deviation projects below this are drawn.

    Returns:
        ``verdict`` [K] int8 (:data:`CULLED`, :data:`DRAWN`, :data:`OPENED`) and ``z`` [K] float32
        camera-frame depth of each centre, metres.
    """
    k_n = cand.shape[0]
    verdict = np.empty(k_n, np.int8)
    z_out = np.empty(k_n, np.float32)
    ax, bx, ay, by = sides[0], sides[1], sides[2], sides[3]
    na, nb, nc, nd = (1.0 / math.sqrt(1.0 + ax * ax), 1.0 / math.sqrt(1.0 + bx * bx),
                      1.0 / math.sqrt(1.0 + ay * ay), 1.0 / math.sqrt(1.0 + by * by))
    r = cam_from_world
    for i in range(k_n):
        j = cand[i]
        mx, my, mz = means[j, 0], means[j, 1], means[j, 2]
        x = r[0, 0] * mx + r[0, 1] * my + r[0, 2] * mz + r[0, 3]
        y = r[1, 0] * mx + r[1, 1] * my + r[1, 2] * mz + r[1, 3]
        z = r[2, 0] * mx + r[2, 1] * my + r[2, 2] * mz + r[2, 3]
        rad = radius[j]
        reach = -rad * stretch
        z_out[i] = z
        if (z + rad < near or z - rad > far or (x - ax * z) * na < reach or (bx * z - x) * nb < reach
                or (y - ay * z) * nc < reach or (by * z - y) * nd < reach):
            verdict[i] = CULLED
            continue
        size_px = fx * max(scales[j, 0], scales[j, 1], scales[j, 2]) / max(z, 1e-9)
        verdict[i] = OPENED if size_px >= threshold_px or z - rad <= near else DRAWN
    return verdict, z_out


@numba.njit(nogil=True, cache=True)
def children(nodes, child_start):
    """The concatenation of ``range(child_start[e], child_start[e + 1])`` over ``nodes`` (int64)."""
    total = 0
    for e in nodes:
        total += child_start[e + 1] - child_start[e]
    out = np.empty(total, np.int64)
    k = 0
    for e in nodes:
        for c in range(child_start[e], child_start[e + 1]):
            out[k] = c
            k += 1
    return out


@numba.njit(nogil=True, cache=True)
def leaves_under(nodes, child_start, leaf_order, n_leaves):
    """[L] int64 ascending splat indices below first-level ``nodes`` (their ranges of ``leaf_order``);
    IndexError on an index outside ``[0, n_leaves)`` (a damaged hierarchy)."""
    keep = np.zeros(n_leaves, np.bool_)
    count = 0
    for e in nodes:
        for c in range(child_start[e], child_start[e + 1]):
            s = leaf_order[c]
            if s < 0 or s >= n_leaves:
                raise IndexError("leaf index outside the splat set")
            if not keep[s]:
                keep[s] = True
                count += 1
    out = np.empty(count, np.int64)
    k = 0
    for s in range(n_leaves):
        if keep[s]:
            out[k] = s
            k += 1
    return out


@numba.njit(nogil=True, cache=True)
def gather_rows(src, rows, out):
    """``out[i] = src[rows[i]]`` for [N, C] ``src``; returns whether every value copied is finite
    (integers always are)."""
    finite = True
    c_n = src.shape[1]
    for i in range(rows.shape[0]):
        s = rows[i]
        for c in range(c_n):
            v = src[s, c]
            out[i, c] = v
            if not np.isfinite(v):
                finite = False
    return finite
