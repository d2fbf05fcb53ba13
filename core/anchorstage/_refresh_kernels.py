# SPDX-License-Identifier: GPL-3.0-or-later
"""numba kernels of :mod:`anchorstage.witness` (imported on first use: importing compiles or loads
them from numba's cache)."""

from __future__ import annotations

import math

import numba
import numpy as np

#: The 8 walking directions of the fill (dy, dx): the 4 axes, then the 4 diagonals.
FILL_DIRS = np.array([[0, -1], [0, 1], [-1, 0], [1, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]], np.int64)


@numba.njit(nogil=True, cache=True, inline="always")
def _raster(x0, y0, w0, f0, x1, y1, w1, f1, x2, y2, w2, f2, c0, c1, c2, i0, i1, i2, width, height,
            zbuf, color, wit_idx):
    """One target-space triangle: z-buffered on inverse depth ``w`` (linear on screen for planes),
    colours ``c`` interpolated with perspective factors ``f`` (linear on the surface); the vertex index
    ``i0``/``i1``/``i2`` of the largest weight goes to ``wit_idx``."""
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    if abs(area) < 1e-12:
        return
    xa = max(0, int(math.ceil(min(x0, x1, x2) - 0.5)))
    xb = min(width - 1, int(math.floor(max(x0, x1, x2) - 0.5)))
    ya = max(0, int(math.ceil(min(y0, y1, y2) - 0.5)))
    yb = min(height - 1, int(math.floor(max(y0, y1, y2) - 0.5)))
    if xa > xb or ya > yb:
        return
    inv_area = 1.0 / area
    for y in range(ya, yb + 1):
        py = y + 0.5
        for x in range(xa, xb + 1):
            px = x + 0.5
            l1 = ((px - x0) * (y2 - y0) - (x2 - x0) * (py - y0)) * inv_area
            l2 = ((x1 - x0) * (py - y0) - (px - x0) * (y1 - y0)) * inv_area
            l0 = 1.0 - l1 - l2
            if l0 < -1e-9 or l1 < -1e-9 or l2 < -1e-9:
                continue
            w = l0 * w0 + l1 * w1 + l2 * w2
            if w <= zbuf[y, x]:
                continue
            zbuf[y, x] = w
            a0, a1, a2 = l0 * f0, l1 * f1, l2 * f2
            s = a0 + a1 + a2
            if s <= 0.0:
                a0, a1, a2, s = l0, l1, l2, 1.0
            a0, a1, a2 = a0 / s, a1 / s, a2 / s
            for c in range(3):
                color[y, x, c] = a0 * c0[c] + a1 * c1[c] + a2 * c2[c]
            wit_idx[y, x] = i0 if (a0 >= a1 and a0 >= a2) else (i1 if a1 >= a2 else i2)


@numba.njit(nogil=True, cache=True, inline="always")
def _project(r0, r1, r2, wv, m, b, f, cx, cy, near, far, out, k):
    """Project one witness point (ray ``r``, inverse depth ``wv``) into the target: ``out[k]`` =
    (x, y, target inverse depth, perspective factor); returns False behind / beyond the clip range."""
    q0 = m[0, 0] * r0 + m[0, 1] * r1 + m[0, 2] * r2 + b[0] * wv
    q1 = m[1, 0] * r0 + m[1, 1] * r1 + m[1, 2] * r2 + b[1] * wv
    q2 = m[2, 0] * r0 + m[2, 1] * r1 + m[2, 2] * r2 + b[2] * wv
    if not (q2 > max(near * wv, 1e-9 * (abs(q0) + abs(q1) + abs(q2))) and (wv == 0.0 or q2 <= far * wv)):
        return False
    inv = 1.0 / q2
    out[k, 0] = q0 * inv * f + cx
    out[k, 1] = q1 * inv * f + cy
    out[k, 2] = wv * inv
    out[k, 3] = inv
    return True


@numba.njit(nogil=True, cache=True)
def mesh_warp(rays, winv, conn_h, conn_v, conn_d, image, m, b, f, cx, cy, near, far, width, height,
              zbuf, color, wit_idx):
    """Rasterise the witness surface mesh into the target image with a z-buffer.

    The mesh joins the vertices of a padded (Hp, Wp) grid of witness rays: each cell of four
    neighbours is two triangles, a-b-d and a-d-c (a top-left, b top-right, c bottom-left,
    d bottom-right). A triangle whose three edges are continuous is drawn whole; otherwise each
    vertex draws its own third of it (the quad from the vertex to its edges' midpoints and the
    centroid), continued on its own side of each broken edge at its own inverse depth, so every
    surface reaches half-way to the discontinuity, as the witness's pixels do.

    Args:
        rays: [Hp, Wp, 3] float64 witness camera-frame rays (x, y, 1) of the vertices.
        winv: [Hp, Wp] float64 witness inverse depth, 1/metres (0: a direction at infinity).
        conn_h, conn_v, conn_d: [Hp, Wp-1], [Hp-1, Wp], [Hp-1, Wp-1] bool: vertex (i, j) is continuous
            with (i, j+1), (i+1, j), (i+1, j+1).
        image: [Hp, Wp, 3] float32 witness colours at the vertices (linear).
        m: [3, 3] float64 target-from-witness rotation; b: [3] float64 witness centre in the target
            frame, metres: a vertex maps to q = m ray + b winv (the target point times winv).
        f, cx, cy: target focal length and principal point, pixels.
        near, far: target clip distances, metres.
        width, height: target size in pixels.
        zbuf: [H, W] float64 filled with -1: the covering target inverse depth is written (0: sky).
        color: [H, W, 3] float32: interpolated witness colour where covered.
        wit_idx: [H, W] int64: flat index of the witness vertex each covered pixel is nearest.
    """
    hp, wp = winv.shape
    # every vertex projected once: x, y, target inverse depth, perspective factor; valid flag
    proj = np.empty((hp * wp, 4))
    pok = np.empty(hp * wp, np.bool_)
    for i in range(hp):
        for j in range(wp):
            pok[i * wp + j] = _project(rays[i, j, 0], rays[i, j, 1], rays[i, j, 2], winv[i, j], m, b, f, cx, cy,
                                       near, far, proj, i * wp + j)
    vi = np.empty(3, np.int64)
    conn = np.empty(3, np.bool_)  # edges 0-1, 1-2, 2-0
    sub = np.empty((3, 4))
    sc = np.empty((3, 3))
    imf = image.reshape(hp * wp, 3)
    for i in range(hp - 1):
        for j in range(wp - 1):
            for tri in range(2):
                if tri == 0:  # a-b-d
                    vi[0], vi[1], vi[2] = i * wp + j, i * wp + j + 1, (i + 1) * wp + j + 1
                    conn[0], conn[1], conn[2] = conn_h[i, j], conn_v[i, j + 1], conn_d[i, j]
                else:         # a-d-c
                    vi[0], vi[1], vi[2] = i * wp + j, (i + 1) * wp + j + 1, (i + 1) * wp + j
                    conn[0], conn[1], conn[2] = conn_d[i, j], conn_h[i + 1, j], conn_v[i, j]
                if conn[0] and conn[1] and conn[2]:
                    v0, v1, v2 = vi[0], vi[1], vi[2]
                    if pok[v0] and pok[v1] and pok[v2]:
                        _raster(proj[v0, 0], proj[v0, 1], proj[v0, 2], proj[v0, 3],
                                proj[v1, 0], proj[v1, 1], proj[v1, 2], proj[v1, 3],
                                proj[v2, 0], proj[v2, 1], proj[v2, 2], proj[v2, 3],
                                imf[v0], imf[v1], imf[v2], v0, v1, v2, width, height, zbuf, color, wit_idx)
                    continue
                # a broken edge: vertex v draws (v, mid(v, u), centroid) for u each of its other vertices
                for part in range(6):
                    v = part // 2
                    u = (v + 1 + part % 2) % 3
                    other = 3 - v - u
                    e_vu = conn[v] if u == (v + 1) % 3 else conn[u]
                    e_vo = conn[v] if other == (v + 1) % 3 else conn[other]
                    kv, ku, ko = vi[v], vi[u], vi[other]
                    iv, jv, iu, ju, io, jo = kv // wp, kv % wp, ku // wp, ku % wp, ko // wp, ko % wp
                    wv = winv[iv, jv]
                    w_mid = 0.5 * (wv + winv[iu, ju]) if e_vu else wv
                    n_g, g_w = 1.0, wv
                    if e_vu:
                        n_g, g_w = n_g + 1.0, g_w + winv[iu, ju]
                    if e_vo:
                        n_g, g_w = n_g + 1.0, g_w + winv[io, jo]
                    ok = _project(rays[iv, jv, 0], rays[iv, jv, 1], rays[iv, jv, 2], wv, m, b, f, cx, cy,
                                  near, far, sub, 0)
                    ok = ok and _project(0.5 * (rays[iv, jv, 0] + rays[iu, ju, 0]), 0.5 * (rays[iv, jv, 1] + rays[iu, ju, 1]),
                                         1.0, w_mid, m, b, f, cx, cy, near, far, sub, 1)
                    ok = ok and _project((rays[iv, jv, 0] + rays[iu, ju, 0] + rays[io, jo, 0]) / 3.0,
                                         (rays[iv, jv, 1] + rays[iu, ju, 1] + rays[io, jo, 1]) / 3.0,
                                         1.0, g_w / n_g, m, b, f, cx, cy, near, far, sub, 2)
                    if not ok:
                        continue
                    for c in range(3):
                        sc[0, c] = imf[kv, c]
                        sc[1, c] = 0.5 * (imf[kv, c] + imf[ku, c]) if e_vu else imf[kv, c]
                        sc[2, c] = imf[kv, c]
                    _raster(sub[0, 0], sub[0, 1], sub[0, 2], sub[0, 3], sub[1, 0], sub[1, 1], sub[1, 2], sub[1, 3],
                            sub[2, 0], sub[2, 1], sub[2, 2], sub[2, 3], sc[0], sc[1], sc[2], kv, kv, kv,
                            width, height, zbuf, color, wit_idx)


@numba.njit(nogil=True, cache=True)
def view_angles(zbuf, xs, ys, rot, offset, out):
    """Angle (degrees) at each covered finite point between the target's and the witness's rays.

    Args:
        zbuf: [H, W] float64 target inverse depth (> 0 finite; 0 sky and < 0 uncovered get 0).
        xs, ys: [W], [H] float64 normalised target pixel coordinates (a point is z (x, y, 1)).
        rot: [3, 3] float64 target world_from_cam rotation.
        offset: [3] float64 target centre minus witness centre, world metres.
        out: [H, W] float32 written.
    """
    h, w = zbuf.shape
    for y in range(h):
        for x in range(w):
            wv = zbuf[y, x]
            if wv <= 0.0:
                out[y, x] = 0.0
                continue
            z = 1.0 / wv
            cx, cy = xs[x] * z, ys[y] * z
            t0 = rot[0, 0] * cx + rot[0, 1] * cy + rot[0, 2] * z
            t1 = rot[1, 0] * cx + rot[1, 1] * cy + rot[1, 2] * z
            t2 = rot[2, 0] * cx + rot[2, 1] * cy + rot[2, 2] * z
            u0, u1, u2 = t0 + offset[0], t1 + offset[1], t2 + offset[2]
            c = (t0 * u0 + t1 * u1 + t2 * u2) / math.sqrt((t0 * t0 + t1 * t1 + t2 * t2) * (u0 * u0 + u1 * u1 + u2 * u2))
            out[y, x] = math.degrees(math.acos(min(1.0, max(-1.0, c))))


@numba.njit(nogil=True, cache=True)
def directional_fill(rows, fill, support, color, winv, max_walk, rel_band, out_color, out_winv, out_src):
    """Fill pixels from the farther of their nearest supporting neighbours along 8 directions.

    For each pixel of ``fill`` in ``rows``, walks up to ``max_walk`` pixels in each direction to the
    first ``support`` pixel; of those, the farthest inverse depth ``w_bg`` (sky, 0, is the farthest)
    sets the background, and only candidates with ``w <= w_bg * (1 + rel_band)`` count (the
    background side); their colours and inverse depths are averaged with weights 1 / distance².

    Args:
        rows: [R] int64 rows to process.
        fill: [H, W] bool pixels to fill.
        support: [H, W] bool pixels that may be copied from.
        color: [H, W, 3] float32 colours of the support.
        winv: [H, W] float64 inverse depth of the support (1/metres, 0 sky).
        max_walk: longest walk in pixels.
        rel_band: relative inverse-depth band around the farthest candidate.
        out_color: [H, W, 3] float32 written at filled pixels.
        out_winv: [H, W] float64 written at filled pixels (-1: no candidate at all).
        out_src: [H, W] int64 flat index of the nearest accepted candidate (-1: none).
    """
    h, w = fill.shape
    cand_q = np.empty(8, np.int64)
    cand_d = np.empty(8, np.float64)
    for r in range(rows.shape[0]):
        y = rows[r]
        for x in range(w):
            if not fill[y, x]:
                continue
            n = 0
            for k in range(8):
                dy, dx = FILL_DIRS[k, 0], FILL_DIRS[k, 1]
                step = math.sqrt(dy * dy + dx * dx)
                yy, xx = y, x
                for t in range(1, max_walk + 1):
                    yy += dy
                    xx += dx
                    if yy < 0 or yy >= h or xx < 0 or xx >= w:
                        break
                    if support[yy, xx]:
                        cand_q[n] = yy * w + xx
                        cand_d[n] = t * step
                        n += 1
                        break
            if n == 0:
                out_winv[y, x] = -1.0
                out_src[y, x] = -1
                continue
            w_bg = 1e300
            for k in range(n):
                q = cand_q[k]
                wq = winv[q // w, q % w]
                if wq < w_bg:
                    w_bg = wq
            limit = w_bg * (1.0 + rel_band) + 1e-12
            sw = 0.0
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            accw = 0.0
            best = -1
            best_d = 1e300
            for k in range(n):
                q = cand_q[k]
                qy, qx = q // w, q % w
                wq = winv[qy, qx]
                if wq > limit:
                    continue
                wt = 1.0 / (cand_d[k] * cand_d[k])
                sw += wt
                acc0 += wt * color[qy, qx, 0]
                acc1 += wt * color[qy, qx, 1]
                acc2 += wt * color[qy, qx, 2]
                accw += wt * wq
                if cand_d[k] < best_d:
                    best_d = cand_d[k]
                    best = q
            out_color[y, x, 0] = acc0 / sw
            out_color[y, x, 1] = acc1 / sw
            out_color[y, x, 2] = acc2 / sw
            out_winv[y, x] = accw / sw
            out_src[y, x] = best


@numba.njit(nogil=True, cache=True)
def feather(fill, blocked, winv, fill_color, fill_winv, radius, rel_band, out):
    """Blend the fill into the background beside it: a pixel at chessboard distance d (1..radius)
    from the fill, not ``blocked`` and not nearer than the fill there (inverse depth within
    ``rel_band`` of the mean of the filled pixels at distance d), becomes
    ``(1 - β) out + β mean`` with ``β = 0.5 (1 - (d - 1) / radius)``.

    Args:
        fill: [H, W] bool filled pixels.
        blocked: [H, W] bool pixels never written (locks, the void).
        winv: [H, W] float64 inverse depth of the pixels (0 sky).
        fill_color: [H, W, 3] float32 fill colours; fill_winv: [H, W] float64 fill inverse depths.
        radius: feather width in pixels.
        rel_band: see above.
        out: [H, W, 3] float32 the composite, updated in place.
    """
    h, w = fill.shape
    for y in range(h):
        for x in range(w):
            if fill[y, x] or blocked[y, x]:
                continue
            for d in range(1, radius + 1):
                n = 0
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                sw = 0.0
                for yy in range(max(0, y - d), min(h, y + d + 1)):
                    for xx in range(max(0, x - d), min(w, x + d + 1)):
                        if max(abs(yy - y), abs(xx - x)) != d or not fill[yy, xx]:
                            continue
                        n += 1
                        s0 += fill_color[yy, xx, 0]
                        s1 += fill_color[yy, xx, 1]
                        s2 += fill_color[yy, xx, 2]
                        sw += fill_winv[yy, xx]
                if n == 0:
                    continue
                if winv[y, x] <= (sw / n) * (1.0 + rel_band) + 1e-12:
                    beta = 0.5 * (1.0 - (d - 1) / radius)
                    out[y, x, 0] = (1.0 - beta) * out[y, x, 0] + beta * s0 / n
                    out[y, x, 1] = (1.0 - beta) * out[y, x, 1] + beta * s1 / n
                    out[y, x, 2] = (1.0 - beta) * out[y, x, 2] + beta * s2 / n
                break
