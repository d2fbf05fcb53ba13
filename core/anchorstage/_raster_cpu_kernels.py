# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.raster_cpu` (imported on first use: importing compiles or
loads them from numba's cache)."""

from __future__ import annotations

import math

import numba
import numpy as np

from ._rotation_kernels import rotmat
from .formation import ALPHA_MAX, ALPHA_MIN, SPAN_MARGIN, T_MIN

#: Channels composited per pass over a band (the render passes need 8: colour, normal,
#: confidence, depth); more channels take more passes.
BLOCK = 8
# Columns of a band's per-splat header: 8 float32, 32 bytes, so the spans read one cache line per
# splat (a row's splats then stay in L2; with their channels in the same rows they did not).
_MX, _MY, _CA, _CB, _CC, _OP, _SMAX, _QX = range(8)
N_HEAD = 8


# Entries of project_piece's float32 ``cam`` vector.
(_R00, _R01, _R02, _R10, _R11, _R12, _R20, _R21, _R22, _T0, _T1, _T2, _FX, _FY, _CX, _CY, _LIM_XP, _LIM_XN, _LIM_YP,
 _LIM_YN, _EPS2D, _NEAR, _FAR, _WIDTH, _HEIGHT, _ALPHA_MIN, _EXTEND_MAX) = range(27)
N_CAM = 27
_RADIX_BITS = 11
_RADIX = 1 << _RADIX_BITS


@numba.njit(nogil=True, cache=True, inline="always")
def _row_span(my, cyy, op, height):
    """First and last image row (inclusive; first > last: none) where a splat's alpha can reach
    1/255: its ellipse sigma <= log(255 · opacity), widened by SPAN_MARGIN. float64 maths on the
    float32 centre y (pixels), 2D covariance yy (pixels²) and opacity."""
    hy = math.sqrt(2.0 * math.log(op / ALPHA_MIN) * cyy) + SPAN_MARGIN
    a, b = my - hy - 0.5, my + hy - 0.5
    if not (b >= 0.0 and a <= height - 1):  # off the image (or NaN)
        return 1, 0
    # Clamped before the integer conversion: a huge splat's span stays in range.
    return max(int(math.ceil(max(a, -1.0))), 0), min(int(math.floor(min(b, float(height)))), height - 1)


@numba.njit(nogil=True, cache=True, inline="always")
def _count_bands(lo, hi, band_rows, band_count):
    """Add one to ``band_count[b]`` for every band b of ``band_rows`` rows that rows lo..hi touch."""
    if lo <= hi:
        for b in range(lo // band_rows, hi // band_rows + 1):
            band_count[b] += 1


@numba.njit(nogil=True, cache=True, error_model="numpy")
def project_piece(lo, hi, means, quats, scales, opacities, cam, band_rows, ids, means2d, conics, op_out, depths,
                  y0, y1, band_count):
    """EWA-project input splats lo..hi-1 and cull them: :func:`anchorstage.projection.project` in one pass.

    The same float32 operations in the same order as the torch projection (so results agree to
    the last bit but for the libm ``log``/``sqrt``), with no temporaries. Survivors are written
    compacted, in input order, from slot ``lo`` on.

    Args:
        lo: first input splat of the piece.
        hi: one past its last input splat.
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 rotations, wxyz (any non-zero norm).
        scales: [N, 3] float32 standard deviations, metres.
        opacities: [N] float32.
        cam: [N_CAM] float32 camera constants (world → camera rotation and translation, intrinsics,
            Jacobian clamp limits, eps2d, near, far, width, height, 1/255, 3.33).
        band_rows: rows per band of the compositor.
        ids: [N] int32 out: input row of each slot.
        means2d: [N, 2] float32 out: centre, pixels (pixel centres at +0.5).
        conics: [N, 3] float32 out: inverse 2D covariance (a, b, c).
        op_out: [N] float32 out: opacity.
        depths: [N] float32 out: view depth, metres.
        y0: [N] int32 out: first image row the splat can touch (see :func:`_row_span`).
        y1: [N] int32 out: last image row (y0 > y1: none).
        band_count: [n_bands] int64 out: survivors of the piece touching each band.

    Returns:
        The number of survivors (slots lo .. lo + count - 1 written).
    """
    r00, r01, r02 = cam[_R00], cam[_R01], cam[_R02]
    r10, r11, r12 = cam[_R10], cam[_R11], cam[_R12]
    r20, r21, r22 = cam[_R20], cam[_R21], cam[_R22]
    t0, t1, t2 = cam[_T0], cam[_T1], cam[_T2]
    fx, fy, cx, cy = cam[_FX], cam[_FY], cam[_CX], cam[_CY]
    lim_xp, lim_xn, lim_yp, lim_yn = cam[_LIM_XP], -cam[_LIM_XN], cam[_LIM_YP], -cam[_LIM_YN]
    eps2d, near, far, width, height = cam[_EPS2D], cam[_NEAR], cam[_FAR], cam[_WIDTH], cam[_HEIGHT]
    alpha_min, extend_max = cam[_ALPHA_MIN], cam[_EXTEND_MAX]
    one, two = np.float32(1.0), np.float32(2.0)
    zero = np.float32(0.0)
    n_rows = int(height)
    band_count[:] = 0
    j = lo
    for i in range(lo, hi):
        op = opacities[i]
        if not op >= alpha_min:
            continue
        m0, m1, m2 = means[i, 0], means[i, 1], means[i, 2]
        z = m0 * r20 + m1 * r21 + m2 * r22 + t2
        if not (z >= near and z <= far):
            continue
        x = m0 * r00 + m1 * r01 + m2 * r02 + t0
        y = m0 * r10 + m1 * r11 + m2 * r12 + t1
        rz = one / z
        tx = x * rz
        if tx < lim_xn:
            tx = lim_xn
        if tx > lim_xp:
            tx = lim_xp
        ty = y * rz
        if ty < lim_yn:
            ty = lim_yn
        if ty > lim_yp:
            ty = lim_yp
        # J W as two rows of 3; then T = J W R(q) S and cov2d = T Tᵀ.
        fxz, fyz = fx * rz, fy * rz
        j00, j01, j02 = fxz * (r00 - tx * r20), fxz * (r01 - tx * r21), fxz * (r02 - tx * r22)
        j10, j11, j12 = fyz * (r10 - ty * r20), fyz * (r11 - ty * r21), fyz * (r12 - ty * r22)
        q00, q01, q02, q10, q11, q12, q20, q21, q22 = rotmat(quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3])
        s0, s1, s2 = scales[i, 0], scales[i, 1], scales[i, 2]
        a0 = (j00 * q00 + j01 * q10 + j02 * q20) * s0
        a1 = (j00 * q01 + j01 * q11 + j02 * q21) * s1
        a2 = (j00 * q02 + j01 * q12 + j02 * q22) * s2
        b0 = (j10 * q00 + j11 * q10 + j12 * q20) * s0
        b1 = (j10 * q01 + j11 * q11 + j12 * q21) * s1
        b2 = (j10 * q02 + j11 * q12 + j12 * q22) * s2
        cxx = a0 * a0 + a1 * a1 + a2 * a2 + eps2d
        cxy = a0 * b0 + a1 * b1 + a2 * b2
        cyy = b0 * b0 + b1 * b1 + b2 * b2 + eps2d
        det = cxx * cyy - cxy * cxy
        if not det > zero:
            continue
        extend = np.sqrt(two * np.log(op / alpha_min))
        if extend > extend_max:
            extend = extend_max
        rx = np.ceil(extend * np.sqrt(cxx))
        ry = np.ceil(extend * np.sqrt(cyy))
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        if not (u + rx > zero and u - rx < width and v + ry > zero and v - ry < height):
            continue
        ids[j] = i
        means2d[j, 0], means2d[j, 1] = u, v
        conics[j, 0], conics[j, 1], conics[j, 2] = cyy / det, -cxy / det, cxx / det
        op_out[j], depths[j] = op, z
        ya, yb = _row_span(v, cyy, op, n_rows)
        y0[j], y1[j] = ya, yb
        _count_bands(ya, yb, band_rows, band_count)
        j += 1
    return j - lo


@numba.njit(nogil=True, cache=True, error_model="numpy")
def span_piece(lo, hi, my, cyy, op, height, band_rows, y0, y1, band_count):
    """Row spans of already projected splats lo..hi-1 (a torch :class:`~anchorstage.projection.Projection`)
    and their count per band, as :func:`project_piece` makes them.

    Args:
        lo, hi: the piece's slots.
        my: [M] float32 centre y, pixels.
        cyy: [M] float32 2D covariance yy, pixels².
        op: [M] float32 opacities.
        height: image height in pixels.
        band_rows: rows per band.
        y0, y1: [M] int32 out: first and last row per slot.
        band_count: [n_bands] int64 out: slots of the piece touching each band.
    """
    band_count[:] = 0
    for s in range(lo, hi):
        ya, yb = _row_span(my[s], cyy[s], op[s], height)
        y0[s], y1[s] = ya, yb
        _count_bands(ya, yb, band_rows, band_count)


@numba.njit(nogil=True, cache=True)
def fill_members(lo, hi, y0, y1, band_rows, fill, members):
    """Append slots lo..hi-1 (ascending) to the member lists of the bands their rows touch.

    Args:
        lo, hi: the piece's live slots.
        y0, y1: [S] int32 first and last row per slot.
        band_rows: rows per band.
        fill: [n_bands] int64 where the piece's next member of each band goes in ``members`` (advanced).
        members: [total] int32 out: every band's members, band after band.
    """
    for s in range(lo, hi):
        if y0[s] <= y1[s]:
            for b in range(y0[s] // band_rows, y1[s] // band_rows + 1):
                members[fill[b]] = s
                fill[b] += 1


@numba.njit(nogil=True, cache=True)
def depth_argsort(members, depths):
    """Front-to-back order of slots, stable (ties keep their order), by an LSD radix sort.

    Orders as :func:`anchorstage.projection.depth_order` does (float32 bits read as int32), 11
    bits a pass; a digit every key shares is skipped (depths of one scene share their top bits).

    Args:
        members: [n] int32 slots.
        depths: [S] float32 view depth per slot, metres.

    Returns:
        [n] int32 positions in ``members``, front to back.
    """
    n = members.shape[0]
    bits = depths.view(np.uint32)
    keys = np.empty(n, np.uint32)
    counts = np.zeros((3, _RADIX + 1), np.int64)
    for i in range(n):
        k = bits[members[i]] ^ np.uint32(0x80000000)  # int32 order as uint32 order
        keys[i] = k
        counts[0, (k & np.uint32(_RADIX - 1)) + 1] += 1
        counts[1, ((k >> np.uint32(_RADIX_BITS)) & np.uint32(_RADIX - 1)) + 1] += 1
        counts[2, (k >> np.uint32(2 * _RADIX_BITS)) + 1] += 1
    src_k, src_v = keys, np.arange(n).astype(np.int32)
    dst_k, dst_v = np.empty(n, np.uint32), np.empty(n, np.int32)
    for p in range(3):
        c = counts[p]
        if c.max() == n:  # every key has this digit: the pass orders nothing
            continue
        for d in range(_RADIX):
            c[d + 1] += c[d]
        shift = np.uint32(p * _RADIX_BITS)
        for i in range(n):
            k = src_k[i]
            d = (k >> shift) & np.uint32(_RADIX - 1)
            t = c[d]
            c[d] = t + 1
            dst_k[t] = k
            dst_v[t] = src_v[i]
        src_k, dst_k = dst_k, src_k
        src_v, dst_v = dst_v, src_v
    return src_v


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _band_layout(r0, r1, members, y0, y1, means2d, conics, op, depths, head):
    """A band's splats, one header row each, and its (splat, row) records bucketed by image row.

    The splats are copied into one row each, ordered by their first row, so the splats a row
    needs lie close together in memory and stay in cache from row to row. Records are bucketed
    by row visiting the splats in depth order, so each row's records come front to back. The
    projected arrays are read in slot order (members ascend), not depth order: the reads
    stream instead of jumping about; only band-sized arrays are visited in depth order.

    Args:
        r0, r1: first and last row of the band (inclusive).
        members, y0, y1, means2d, conics, op: as in :func:`composite_rows`, ``members`` ascending.
        depths: [S] float32 view depth per slot, metres (the order).
        head: [n, N_HEAD] float32, written: centre, conic, opacity, sigma bound, exp(-a) per band row.

    Returns:
        ``row_of`` [n] int32 the band row of each member, ``start`` [n_rows + 1] int64 and
        ``recs`` int32 band rows: row r's records are ``recs[start[r]:start[r + 1]]``.
    """
    n_rows = r1 - r0 + 1
    n = members.shape[0]
    order = depth_argsort(members, depths)
    start = np.zeros(n_rows + 1, np.int64)
    first_start = np.zeros(n_rows + 1, np.int64)
    lo_of = np.empty(n, np.int32)  # the band's rows of each member, band-relative
    hi_of = np.empty(n, np.int32)
    for j in range(n):
        s = members[j]
        lo, hi = max(y0[s], r0) - r0, min(y1[s], r1) - r0
        lo_of[j], hi_of[j] = lo, hi
        first_start[lo + 1] += 1
        for y in range(lo, hi + 1):
            start[y + 1] += 1
    for k in range(n_rows):
        start[k + 1] += start[k]
        first_start[k + 1] += first_start[k]
    row_of = np.empty(n, np.int32)
    first_fill = first_start[:n_rows].copy()
    for j in range(n):
        s = members[j]
        i = first_fill[lo_of[j]]
        first_fill[lo_of[j]] += 1
        row_of[j] = i
        a, o = conics[s, 0], op[s]
        head[i, _MX], head[i, _MY] = means2d[s, 0], means2d[s, 1]
        head[i, _CA], head[i, _CB], head[i, _CC] = a, conics[s, 1], conics[s, 2]
        head[i, _OP], head[i, _SMAX], head[i, _QX] = o, math.log(o / ALPHA_MIN), math.exp(-a)
    recs = np.empty(start[n_rows], np.int32)
    fill = start[:n_rows].copy()
    for k in range(n):
        j = order[k]
        i = row_of[j]
        for y in range(lo_of[j], hi_of[j] + 1):
            recs[fill[y]] = i
            fill[y] += 1
    return row_of, start, recs


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _span(head, si, y, width):
    """The pixels of row ``y`` that slot ``si``'s ellipse (alpha >= 1/255) covers, and the terms
    that step ``opacity · exp(-sigma)`` along them.

    sigma is quadratic in x, so from ``g`` at ``x0`` each step multiplies by ``r``, and ``r`` by ``q``.

    Returns:
        ``x0, x1`` (inclusive; x0 > x1: none), ``g``, ``r``, ``q``.
    """
    mx, sa, sb, sm = head[si, _MX], head[si, _CA], head[si, _CB], head[si, _SMAX]
    dy = y + 0.5 - head[si, _MY]
    bdy = sb * dy
    cdy2 = head[si, _CC] * dy * dy
    disc = bdy * bdy - sa * (cdy2 - 2.0 * sm)
    if disc < 0.0:
        return 1, 0, 0.0, 0.0, 0.0
    sq = math.sqrt(disc)
    cxr = mx - 0.5
    inv_a = 1.0 / sa
    x0 = max(0, int(math.ceil(cxr - (bdy + sq) * inv_a - SPAN_MARGIN)))
    x1 = min(width - 1, int(math.floor(cxr + (sq - bdy) * inv_a + SPAN_MARGIN)))
    if x0 > x1:
        return 1, 0, 0.0, 0.0, 0.0
    dx = x0 + 0.5 - mx
    # float32 exponentials (half the cost of float64 ones, ~1e-7 off): the steps run in float64.
    g = np.float64(head[si, _OP]) * np.float64(math.exp(np.float32(-(0.5 * (sa * dx * dx + cdy2) + bdy * dx))))
    r = np.float64(math.exp(np.float32(-(sa * (dx + 0.5) + bdy))))
    return x0, x1, g, r, np.float64(head[si, _QX])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def composite_rows(r0, r1, width, members, y0, y1, means2d, conics, op, depths, with_depth, ids, features, classes,
                   num_classes, out, cls_out, head, feat):
    """Composite image rows r0..r1 (inclusive) front to back.

    Args:
        r0: first row of the band.
        r1: last row of the band (inclusive).
        width: image width in pixels.
        members: int32 slots of the projected splats that touch the band, ascending.
        y0, y1: [S] int32 first and last row per slot (see :func:`_row_span`).
        means2d: [S, 2] float32 centres, pixels (pixel centres at +0.5).
        conics: [S, 3] float32 (a, b, c): sigma = 0.5 (a dx² + c dy²) + b dx dy.
        op: [S] float32 opacities.
        depths: [S] float32 view depth per slot, metres: the order front to back.
        with_depth: composite the view depth as the last channel.
        ids: [S] int32 input row of each slot (for ``features`` and ``classes``).
        features: [N, F] float32 channels to composite, by input row.
        classes: [N] int64 class per input row (read only when num_classes > 0).
        num_classes: number of classes, class 0 = none (0: no classes).
        out: [H * W, k·BLOCK + 1] float32 weighted sums (F features, then depth), then alpha;
            this band's rows are written.
        cls_out: [H * W] int64 class with the largest summed weight, the background counting
            for class 0 with weight 1 - alpha (ties to the lower class); written with classes.
        head: [len(members), N_HEAD] float32 scratch for the band's splat headers (any contents).
        feat: [len(members), k·BLOCK] float32 scratch for their channels (any contents).
    """
    n_rows = r1 - r0 + 1
    n_feat = features.shape[1]
    n_ch = out.shape[1] - 1
    row_of, start, recs = _band_layout(r0, r1, members, y0, y1, means2d, conics, op, depths, head)
    cls_of = np.empty(members.shape[0] if num_classes > 0 else 0, np.int32)
    for j in range(members.shape[0]):  # in slot order: the input rows ascend
        i, s = row_of[j], members[j]
        src = ids[s]
        if num_classes > 0:
            cls_of[i] = classes[src]
        for c in range(n_feat):
            feat[i, c] = features[src, c]
        c0 = n_feat
        if with_depth:
            feat[i, c0] = depths[s]
            c0 += 1
        for c in range(c0, n_ch):  # the last block's padding
            feat[i, c] = 0.0

    trans = np.empty(width, np.float64)
    acc = np.empty(width * BLOCK, np.float32)
    done = np.empty(width, np.bool_)
    use_cls = num_classes > 0
    cls_w = np.zeros((width if use_cls else 0) * max(num_classes, 1), np.float64)
    touched = np.empty(cls_w.shape[0], np.int64)  # (pixel, class) slots in use: at most all of them
    best = np.empty(width, np.float64)
    # A row's spans are computed first, all of them, then walked: the spans are independent (the
    # CPU overlaps their sqrt / exp latencies) where the walk is one long dependent chain.
    most = 0
    for row in range(n_rows):
        most = max(most, start[row + 1] - start[row])
    span_x0, span_x1 = np.empty(most, np.int32), np.empty(most, np.int32)
    span_g, span_r, span_q = np.empty(most, np.float64), np.empty(most, np.float64), np.empty(most, np.float64)
    for ch0 in range(0, n_ch, BLOCK):
        with_cls = use_cls and ch0 == 0
        for row in range(n_rows):
            y = r0 + row
            trans[:] = 1.0
            acc[:] = 0.0
            done[:] = False
            n_touched = 0
            k0 = start[row]
            for k in range(start[row + 1] - k0):
                span_x0[k], span_x1[k], span_g[k], span_r[k], span_q[k] = _span(head, recs[k0 + k], y, width)
            for k in range(start[row + 1] - k0):
                x0, x1 = span_x0[k], span_x1[k]
                if x0 > x1:
                    continue
                si = recs[k0 + k]
                g, r, q = span_g[k], span_r[k], span_q[k]
                f0, f1, f2, f3 = feat[si, ch0], feat[si, ch0 + 1], feat[si, ch0 + 2], feat[si, ch0 + 3]
                f4, f5, f6, f7 = feat[si, ch0 + 4], feat[si, ch0 + 5], feat[si, ch0 + 6], feat[si, ch0 + 7]
                cl = cls_of[si] if with_cls else 0
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
def pair_rows(r0, r1, width, members, y0, y1, means2d, conics, op, depths, ids, pixel_ok, w_min):
    """The blending weights of image rows r0..r1 (inclusive) as a sparse matrix, one row per pixel.

    Walks the splats exactly as :func:`composite_rows` does and keeps each (pixel, splat) pair's
    weight ``alpha · T`` instead of summing it: ``sum_j weight_j · feature[splat_j]`` over a
    pixel's pairs is what the compositor makes of any per-splat feature there.

    Args:
        r0, r1, width, members, y0, y1, means2d, conics, op, depths, ids: as in :func:`composite_rows`.
        pixel_ok: [H * W] bool: pixels whose pairs are kept (the others get none).
        w_min: float32; pairs with a smaller weight are left out.

    Returns:
        CSR over the band's pixels (row-major from row r0): ``indptr`` [(r1 - r0 + 1) · width + 1]
        int64, ``splat`` [nnz] int32 input rows, ``weight`` [nnz] float32; a pixel's pairs front to back.
    """
    n_rows = r1 - r0 + 1
    head = np.empty((members.shape[0], N_HEAD), np.float32)
    row_of, start, recs = _band_layout(r0, r1, members, y0, y1, means2d, conics, op, depths, head)
    slot_id = np.empty(members.shape[0], np.int32)
    for j in range(members.shape[0]):
        slot_id[row_of[j]] = ids[members[j]]
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
        n = _pair_row(head, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w,
                      count)
        if n > row_cap:  # a row with more pairs than any before: walk it again with room for them
            row_cap = 2 * n
            row_x, row_s, row_w = np.empty(row_cap, np.int32), np.empty(row_cap, np.int32), np.empty(row_cap, np.float32)
            n = _pair_row(head, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w,
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
def _pair_row(head, start, recs, row, y, width, slot_id, pixel_ok, w_min, trans, done, row_x, row_s, row_w, count):
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
        x0, x1, g, r, q = _span(head, si, y, width)
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
