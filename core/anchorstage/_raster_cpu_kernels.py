# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.raster_cpu` (imported on first use: importing compiles or
loads them from numba's cache)."""

from __future__ import annotations

import math

import numba
import numpy as np

from .projection import ALPHA_MAX, ALPHA_MIN, SPAN_MARGIN, T_MIN

#: Channels composited per pass over a band (the render passes need 8: colour, normal,
#: confidence, depth); more channels take more passes.
BLOCK = 8
# Columns of a band's per-splat rows, before the channels.
_MX, _MY, _CA, _CB, _CC, _OP, _SMAX, _QX, _CLS = range(9)
_N_HEAD = 9


@numba.njit(nogil=True, cache=True)
def band_members(order, my, cyy, op, height, band_rows, n_bands):
    """Rows each splat's ellipse touches, and the splats each band of rows needs.

    Args:
        order: [M] int64 projected splats front to back (indices into the other arrays).
        my: [M] float32 centre y, pixels (pixel centres at +0.5).
        cyy: [M] float32 2D covariance yy, pixels².
        op: [M] float32 opacities.
        height: image height in pixels.
        band_rows: rows per band (band b holds rows b·band_rows ...).
        n_bands: number of bands.

    Returns:
        ``y0``, ``y1`` [M] int32 first and last row per splat in depth order (y0 > y1: none;
        alpha >= 1/255 inside sigma <= log(255 · opacity)), ``starts`` [n_bands + 1] int64 and
        ``members`` int32 positions in ``order``: band b's are ``members[starts[b]:starts[b + 1]]``.
    """
    m = order.shape[0]
    y0 = np.empty(m, np.int32)
    y1 = np.empty(m, np.int32)
    starts = np.zeros(n_bands + 1, np.int64)
    for k in range(m):
        s = order[k]
        hy = math.sqrt(2.0 * math.log(op[s] / ALPHA_MIN) * cyy[s]) + SPAN_MARGIN
        lo, hi = math.ceil(my[s] - hy - 0.5), math.floor(my[s] + hy - 0.5)
        if hi < 0 or lo > height - 1:
            lo, hi = 1, 0
        y0[k], y1[k] = max(lo, 0), min(hi, height - 1)
        if y0[k] <= y1[k]:
            for bnd in range(y0[k] // band_rows, y1[k] // band_rows + 1):
                starts[bnd + 1] += 1
    for bnd in range(n_bands):
        starts[bnd + 1] += starts[bnd]
    members = np.empty(starts[n_bands], np.int32)
    fill = starts[:n_bands].copy()
    for k in range(m):
        if y0[k] <= y1[k]:
            for bnd in range(y0[k] // band_rows, y1[k] // band_rows + 1):
                members[fill[bnd]] = k
                fill[bnd] += 1
    return y0, y1, starts, members


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _band_layout(r0, r1, members, y0, y1, order, means2d, conics, op, n_extra):
    """A band's splats, one row each, and its (splat, row) records bucketed by image row.

    The splats are copied into one row each, ordered by their first row, so the splats a row
    needs lie close together in memory and stay in cache from row to row. Records are bucketed
    by row visiting the splats in depth order, so each row's records come front to back.

    Args:
        r0, r1: first and last row of the band (inclusive).
        members, y0, y1, order, means2d, conics, op: as in :func:`composite_rows`.
        n_extra: zeroed columns to leave after the header for the caller's channels.

    Returns:
        ``band`` [S, _N_HEAD + n_extra] float32 (centre, conic, opacity, sigma bound, exp(-a)),
        ``slot_s`` [S] int64 position of each slot's splat in the projected arrays, ``start``
        [n_rows + 1] int64 and ``recs`` int32 slots: row r's records are ``recs[start[r]:start[r + 1]]``.
    """
    n_rows = r1 - r0 + 1
    start = np.zeros(n_rows + 1, np.int64)
    slot_start = np.zeros(n_rows + 1, np.int64)
    for k in members:
        lo, hi = max(y0[k], r0), min(y1[k], r1)
        slot_start[lo - r0 + 1] += 1
        for y in range(lo, hi + 1):
            start[y - r0 + 1] += 1
    for k in range(n_rows):
        start[k + 1] += start[k]
        slot_start[k + 1] += slot_start[k]
    band = np.zeros((slot_start[n_rows], _N_HEAD + n_extra), np.float32)
    slot_s = np.empty(slot_start[n_rows], np.int64)
    recs = np.empty(start[n_rows], np.int32)
    fill = start[:n_rows].copy()
    slot_fill = slot_start[:n_rows].copy()
    for k in members:
        lo, hi = max(y0[k], r0), min(y1[k], r1)
        i = slot_fill[lo - r0]
        slot_fill[lo - r0] += 1
        s = order[k]
        slot_s[i] = s
        a, o = conics[s, 0], op[s]
        band[i, _MX], band[i, _MY] = means2d[s, 0], means2d[s, 1]
        band[i, _CA], band[i, _CB], band[i, _CC] = a, conics[s, 1], conics[s, 2]
        band[i, _OP], band[i, _SMAX], band[i, _QX] = o, math.log(o / ALPHA_MIN), math.exp(-a)
        for y in range(lo, hi + 1):
            recs[fill[y - r0]] = i
            fill[y - r0] += 1
    return band, slot_s, start, recs


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _span(band, si, y, width):
    """The pixels of row ``y`` that slot ``si``'s ellipse (alpha >= 1/255) covers, and the terms
    that step ``opacity · exp(-sigma)`` along them.

    sigma is quadratic in x, so from ``g`` at ``x0`` each step multiplies by ``r``, and ``r`` by ``q``.

    Returns:
        ``x0, x1`` (inclusive; x0 > x1: none), ``g``, ``r``, ``q``.
    """
    mx, sa, sb, sm = band[si, _MX], band[si, _CA], band[si, _CB], band[si, _SMAX]
    dy = y + 0.5 - band[si, _MY]
    bdy = sb * dy
    cdy2 = band[si, _CC] * dy * dy
    disc = bdy * bdy - sa * (cdy2 - 2.0 * sm)
    if disc < 0.0:
        return 1, 0, 0.0, 0.0, 0.0
    sq = math.sqrt(disc)
    cxr = mx - 0.5
    x0 = max(0, int(math.ceil(cxr + (-bdy - sq) / sa - SPAN_MARGIN)))
    x1 = min(width - 1, int(math.floor(cxr + (-bdy + sq) / sa + SPAN_MARGIN)))
    if x0 > x1:
        return 1, 0, 0.0, 0.0, 0.0
    dx = x0 + 0.5 - mx
    g = band[si, _OP] * math.exp(-(0.5 * (sa * dx * dx + cdy2) + bdy * dx))
    r = math.exp(-(sa * (dx + 0.5) + bdy))
    return x0, x1, g, r, np.float64(band[si, _QX])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def composite_rows(r0, r1, width, members, y0, y1, order, means2d, conics, op, depths, ids, features, classes,
                   num_classes, out, cls_out):
    """Composite image rows r0..r1 (inclusive) front to back.

    Args:
        r0: first row of the band.
        r1: last row of the band (inclusive).
        width: image width in pixels.
        members: int32 positions in ``order`` of the splats that touch the band (ascending).
        y0, y1: [M] int32 first and last row per splat, in depth order (see :func:`band_members`).
        order: [M] int64 projected splats front to back.
        means2d: [M, 2] float32 centres, pixels (pixel centres at +0.5).
        conics: [M, 3] float32 (a, b, c): sigma = 0.5 (a dx² + c dy²) + b dx dy.
        op: [M] float32 opacities.
        depths: [M] float32 view depth, metres, composited as the last channel (or [0]: not).
        ids: [M] int64 input row of each projected splat (for ``features`` and ``classes``).
        features: [N, F] float32 channels to composite, by input row.
        classes: [N] int64 class per input row (read only when num_classes > 0).
        num_classes: number of classes, class 0 = none (0: no classes).
        out: [H * W, k·BLOCK + 1] float32 weighted sums (F features, then depth), then alpha;
            this band's rows are written.
        cls_out: [H * W] int64 class with the largest summed weight, the background counting
            for class 0 with weight 1 - alpha (ties to the lower class); written with classes.
    """
    n_rows = r1 - r0 + 1
    n_feat = features.shape[1]
    with_depth = depths.shape[0] == order.shape[0]
    n_ch = out.shape[1] - 1
    band, slot_s, start, recs = _band_layout(r0, r1, members, y0, y1, order, means2d, conics, op, n_ch)
    for i in range(slot_s.shape[0]):
        s = slot_s[i]
        src = ids[s]
        if num_classes > 0:
            band[i, _CLS] = classes[src]
        for c in range(n_feat):
            band[i, _N_HEAD + c] = features[src, c]
        if with_depth:
            band[i, _N_HEAD + n_feat] = depths[s]

    trans = np.empty(width, np.float64)
    acc = np.empty(width * BLOCK, np.float32)
    done = np.empty(width, np.bool_)
    use_cls = num_classes > 0
    cls_w = np.zeros((width if use_cls else 0) * max(num_classes, 1), np.float64)
    touched = np.empty(cls_w.shape[0], np.int64)  # (pixel, class) slots in use: at most all of them
    best = np.empty(width, np.float64)
    for ch0 in range(0, n_ch, BLOCK):
        with_cls = use_cls and ch0 == 0
        for row in range(n_rows):
            y = r0 + row
            trans[:] = 1.0
            acc[:] = 0.0
            done[:] = False
            n_touched = 0
            for k in range(start[row], start[row + 1]):
                si = recs[k]
                x0, x1, g, r, q = _span(band, si, y, width)
                if x0 > x1:
                    continue
                c0 = _N_HEAD + ch0
                f0, f1, f2, f3 = band[si, c0], band[si, c0 + 1], band[si, c0 + 2], band[si, c0 + 3]
                f4, f5, f6, f7 = band[si, c0 + 4], band[si, c0 + 5], band[si, c0 + 6], band[si, c0 + 7]
                cl = int(band[si, _CLS])
                for x in range(x0, x1 + 1):
                    alpha = min(ALPHA_MAX, g)
                    g *= r
                    r *= q
                    if done[x] or alpha < ALPHA_MIN:
                        continue
                    t = trans[x]
                    t_next = t * (1.0 - alpha)
                    if t_next <= T_MIN:
                        done[x] = True
                        continue
                    trans[x] = t_next
                    w = np.float32(alpha * t)
                    b = x * BLOCK
                    acc[b] += w * f0
                    acc[b + 1] += w * f1
                    acc[b + 2] += w * f2
                    acc[b + 3] += w * f3
                    acc[b + 4] += w * f4
                    acc[b + 5] += w * f5
                    acc[b + 6] += w * f6
                    acc[b + 7] += w * f7
                    if with_cls:
                        j = x * num_classes + cl
                        if cls_w[j] == 0.0:
                            touched[n_touched] = j
                            n_touched += 1
                        cls_w[j] += alpha * t
            base = y * width
            n_out = min(BLOCK, n_ch - ch0)
            for x in range(width):
                for c in range(n_out):
                    out[base + x, ch0 + c] = acc[x * BLOCK + c]
                out[base + x, n_ch] = 1.0 - trans[x]
            if with_cls:
                # Class 0 (none) also takes the background's weight; then the best touched class.
                for x in range(width):
                    cls_out[base + x] = 0
                    best[x] = trans[x] + cls_w[x * num_classes]
                    cls_w[x * num_classes] = 0.0
                for i in range(n_touched):
                    j = touched[i]
                    x, cl = j // num_classes, j % num_classes
                    v = cls_w[j]
                    if v > best[x] or (v == best[x] and cl < cls_out[base + x]):
                        best[x] = v
                        cls_out[base + x] = cl
                    cls_w[j] = 0.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def pair_rows(r0, r1, width, members, y0, y1, order, means2d, conics, op, ids, pixel_ok, w_min):
    """The blending weights of image rows r0..r1 (inclusive) as a sparse matrix, one row per pixel.

    Walks the splats exactly as :func:`composite_rows` does and keeps each (pixel, splat) pair's
    weight ``alpha · T`` instead of summing it: ``sum_j weight_j · feature[splat_j]`` over a
    pixel's pairs is what the compositor makes of any per-splat feature there.

    Args:
        r0, r1, width, members, y0, y1, order, means2d, conics, op, ids: as in :func:`composite_rows`.
        pixel_ok: [H * W] bool: pixels whose pairs are kept (the others get none).
        w_min: float32; pairs with a smaller weight are left out.

    Returns:
        CSR over the band's pixels (row-major from row r0): ``indptr`` [(r1 - r0 + 1) · width + 1]
        int64, ``splat`` [nnz] int32 input rows, ``weight`` [nnz] float32; a pixel's pairs front to back.
    """
    n_rows = r1 - r0 + 1
    band, slot_s, start, recs = _band_layout(r0, r1, members, y0, y1, order, means2d, conics, op, 0)
    slot_id = np.empty(slot_s.shape[0], np.int32)
    for i in range(slot_s.shape[0]):
        slot_id[i] = ids[slot_s[i]]
    indptr = np.zeros(n_rows * width + 1, np.int64)
    cap = max(1024, 4 * recs.shape[0])  # ~3-5 kept pairs per (splat, row) record; grows when short
    splat = np.empty(cap, np.int32)
    weight = np.empty(cap, np.float32)
    row_cap = 16 * width
    row_x = np.empty(row_cap, np.int32)
    row_s = np.empty(row_cap, np.int32)
    row_w = np.empty(row_cap, np.float32)
    count = np.empty(width + 1, np.int64)
    trans = np.empty(width, np.float64)
    done = np.empty(width, np.bool_)
    nnz = 0
    for row in range(n_rows):
        y = r0 + row
        n = _pair_row(band, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w,
                      count)
        if n > row_cap:  # a row with more pairs than any before: walk it again with room for them
            row_cap = 2 * n
            row_x, row_s, row_w = np.empty(row_cap, np.int32), np.empty(row_cap, np.int32), np.empty(row_cap, np.float32)
            n = _pair_row(band, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w,
                          count)
        if nnz + n > cap:
            cap = max(cap + cap // 2, nnz + n)
            splat, weight = _grow(splat, cap), _grow(weight, cap)
        # The row's pairs came record by record (front to back): a stable counting sort by pixel.
        base = row * width
        count[0] = nnz
        for x in range(width):
            count[x + 1] += count[x]
            indptr[base + x + 1] = count[x + 1]
        for i in range(n):
            j = count[row_x[i]]
            count[row_x[i]] = j + 1
            splat[j], weight[j] = row_s[i], row_w[i]
        nnz += n
    if cap > nnz + nnz // 8:  # hand back compact arrays, not views of mostly unused ones
        return indptr, splat[:nnz].copy(), weight[:nnz].copy()
    return indptr, splat[:nnz], weight[:nnz]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _pair_row(band, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w, count):
    """One row of :func:`pair_rows`: its kept pairs, in record order, into ``row_x/s/w`` while they
    fit, and ``count[x + 1]`` pairs per pixel x. Returns the number of pairs (more than fit: call
    again with larger arrays). A function of its own so the arrays stay fixed inside its loops
    (reassigning them in the loops slows the walk by half)."""
    trans[:] = 1.0
    for x in range(width):
        done[x] = not pixel_ok[y * width + x]  # pixels left out: nothing to walk there
    count[:] = 0
    n = 0
    cap = row_x.shape[0]
    for k in range(start[row], start[row + 1]):
        si = recs[k]
        x0, x1, g, r, q = _span(band, si, y, width)
        sid = slot_id[si]
        for x in range(x0, x1 + 1):
            alpha = min(ALPHA_MAX, g)
            g *= r
            r *= q
            if done[x] or alpha < ALPHA_MIN:
                continue
            t = trans[x]
            t_next = t * (1.0 - alpha)
            if t_next <= T_MIN:
                done[x] = True
                continue
            trans[x] = t_next
            w = np.float32(alpha * t)
            if w < w_min:
                continue
            if n < cap:
                row_x[n], row_s[n], row_w[n] = x, sid, w
            count[x + 1] += 1
            n += 1
    return n


@numba.njit(nogil=True, cache=True)
def _grow(a, n):
    """``a`` copied into a new array of length ``n`` (>= len(a))."""
    b = np.empty(n, a.dtype)
    b[:a.shape[0]] = a
    return b
