# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.colorfit`: products with a band's blending-weight matrix.

A band's matrix ``W`` is a CSR over the band's pixels (``indptr``, ``splat``, ``weight``, as
:func:`anchorstage.raster_cpu.witness_pairs` returns it); its columns are all the splats. Bands
own disjoint pixels, so ``W x`` runs band by band in parallel; ``Wᵀ y`` adds into an
accumulator per thread. Values come three channels at a time (an RGB colour; the caller
splits other widths), which keeps a pixel's sums in registers. Imported on first use
(importing compiles or loads numba's cache).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def forward(indptr, splat, weight, x, out):
    """``out = W x`` over the band's pixels.

    Args:
        indptr, splat, weight: the band's CSR (pixels → splats).
        x: [N, 3] float32 per-splat values.
        out: [P, 3] float32, P = the band's pixels; overwritten.
    """
    for p in range(indptr.shape[0] - 1):
        v0 = v1 = v2 = np.float32(0.0)
        for j in range(indptr[p], indptr[p + 1]):
            s, w = splat[j], weight[j]
            v0 += w * x[s, 0]
            v1 += w * x[s, 1]
            v2 += w * x[s, 2]
        out[p, 0], out[p, 1], out[p, 2] = v0, v1, v2


@numba.njit(nogil=True, cache=True)
def adjoint(indptr, splat, weight, y, acc):
    """``acc += Wᵀ y``: each pixel's value goes back to its splats by their weights.

    Args:
        indptr, splat, weight: the band's CSR (pixels → splats).
        y: [P, 3] float32 per-pixel values of the band.
        acc: [N, 3] float32 per-splat sums (updated).
    """
    for p in range(indptr.shape[0] - 1):
        y0, y1, y2 = y[p, 0], y[p, 1], y[p, 2]
        for j in range(indptr[p], indptr[p + 1]):
            s, w = splat[j], weight[j]
            acc[s, 0] += w * y0
            acc[s, 1] += w * y1
            acc[s, 2] += w * y2


@numba.njit(nogil=True, cache=True)
def normal(indptr, splat, weight, x, target, acc, sumsq):
    """``acc += Wᵀ v`` with ``v = W x`` (or ``v = target - W x`` when ``target`` has rows), pixel
    by pixel: one pass over the pairs (the second read of a pixel's pairs comes from cache).

    Args:
        indptr, splat, weight: the band's CSR (pixels → splats).
        x: [N, 3] float32 per-splat values.
        target: [P, 3] float32 the band's target pixels, or [0, 3] for ``v = W x``.
        acc: [N, 3] float32 per-splat sums (updated).
        sumsq: [3] float64 sum of v² over the pixels with pairs (updated).
    """
    with_target = target.shape[0] > 0
    s0 = s1 = s2 = 0.0
    for p in range(indptr.shape[0] - 1):
        lo, hi = indptr[p], indptr[p + 1]
        if lo == hi:
            continue
        v0 = v1 = v2 = np.float32(0.0)
        for j in range(lo, hi):
            s, w = splat[j], weight[j]
            v0 += w * x[s, 0]
            v1 += w * x[s, 1]
            v2 += w * x[s, 2]
        if with_target:
            v0, v1, v2 = target[p, 0] - v0, target[p, 1] - v1, target[p, 2] - v2
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        for j in range(lo, hi):
            s, w = splat[j], weight[j]
            acc[s, 0] += w * v0
            acc[s, 1] += w * v1
            acc[s, 2] += w * v2
    sumsq[0] += s0
    sumsq[1] += s1
    sumsq[2] += s2


@numba.njit(nogil=True, cache=True)
def column_sumsq(indptr, splat, weight, acc):
    """``acc[s] += sum of weight²`` over splat s's pairs (the diagonal of WᵀW).

    Args:
        indptr, splat, weight: the band's CSR (pixels → splats).
        acc: [N] float32 (updated).
    """
    for j in range(indptr[indptr.shape[0] - 1]):
        acc[splat[j]] += weight[j] * weight[j]


# Conjugate-gradient vector steps of :func:`anchorstage.colorfit.solve_colors` over splats lo..hi-1,
# fused so each is one pass over the per-splat arrays ([N, 3] float32; ``inv_d`` [N]). ``acc`` [G, N, 3]
# holds the per-thread sums of the last :func:`normal` pass; the steps read and clear it.
@numba.njit(nogil=True, cache=True)
def cg_start(acc, r, p, u, inv_d, lo, hi, sums):
    """``r = p = (sum of acc) · inv_d``, ``u = p · inv_d``; ``sums[0:3] += |r|²``, ``sums[3:6] += |u|²``."""
    for i in range(lo, hi):
        d = inv_d[i]
        for c in range(3):
            t = np.float32(0.0)
            for g in range(acc.shape[0]):
                t += acc[g, i, c]
                acc[g, i, c] = 0.0
            rv = t * d
            r[i, c] = rv
            p[i, c] = rv
            u[i, c] = rv * d
            sums[c] += rv * rv
            sums[3 + c] += (rv * d) * (rv * d)


@numba.njit(nogil=True, cache=True)
def cg_descend(acc, u, p, z, r, inv_d, lam, alpha, lo, hi, sums):
    """``z += alpha · p``, ``r -= alpha · (sum of acc + lam · u) · inv_d``; ``sums[0:3] += |r|²``."""
    for i in range(lo, hi):
        d = inv_d[i]
        for c in range(3):
            t = np.float32(0.0)
            for g in range(acc.shape[0]):
                t += acc[g, i, c]
                acc[g, i, c] = 0.0
            a = alpha[c]
            z[i, c] += a * p[i, c]
            rv = r[i, c] - a * (t + lam * u[i, c]) * d
            r[i, c] = rv
            sums[c] += rv * rv


@numba.njit(nogil=True, cache=True)
def cg_direction(r, p, u, inv_d, beta, lo, hi, sums):
    """``p = r + beta · p``, ``u = p · inv_d``; ``sums[0:3] += |u|²``."""
    for i in range(lo, hi):
        d = inv_d[i]
        for c in range(3):
            pv = r[i, c] + beta[c] * p[i, c]
            p[i, c] = pv
            uv = pv * d
            u[i, c] = uv
            sums[c] += uv * uv
