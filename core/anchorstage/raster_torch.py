# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure-torch Gaussian-splat compositor: the oracle for the other backends, and the path off
the CPU without gsplat (image formation: :mod:`anchorstage.projection`).

Instead of gsplat's 16x16 tiles, which make every pixel test every splat of its tile, this
implementation enumerates exactly the (pixel, splat) pairs gsplat can keep: for each splat
and image row it solves the ellipse ``alpha >= 1/255`` for the covered pixel span. Image rows are
processed in bands of at most 65535 pixels: each band picks the splats that touch it, sorts them
front to back, and makes one record per (splat, row) span, ordered row by row (depth order kept
within a row). The records' pairs are taken in chunks of a bounded number of pairs (so memory stays
bounded), grouped by pixel with a stable radix sort on 16-bit pixel keys, composited with a
segmented log-transmittance scan carried across chunks, and accumulated with one sparse-matrix
product per chunk for all channels at once (with few region classes, their weights too, as one-hot
channels). On the CPU, projection chunks and row bands run on a small thread pool, one intra-op
thread each.
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np
import torch

from .projection import ALPHA_MAX, ALPHA_MIN, SPAN_MARGIN, T_MIN, Projection, depth_order, rasterize_with, sums_as_images
from .workers import Workers, cpu_workers

__all__ = ["available", "composite", "rasterize_splats"]

_BAND_PIXELS = 65535  # keys of a band must fit uint16 for the radix sort
_CHUNK_PAIRS = 1 << 20  # pairs composited at once: bounds memory (~100 bytes per pair) and stays cache-friendly
_BELOW_ALPHA_MIN = float(np.nextafter(np.float32(ALPHA_MIN), np.float32(0)))  # threshold_ keeps x > this
_ONEHOT_CLASSES = 8  # up to this many classes, per-class weights ride in the sparse product


def available() -> bool:
    """Always True: pure torch runs everywhere."""
    return True


def _stable_argsort_u16(keys: torch.Tensor) -> torch.Tensor:
    """Stable argsort of non-negative keys < 65536 (radix sort through numpy on the CPU)."""
    if keys.device.type == "cpu":
        # numpy's 16-bit radix sort beats torch's stable sort on these run-structured pixel keys.
        order = np.argsort(keys.numpy().astype(np.uint16), kind="stable")
        return torch.from_numpy(order)
    return torch.sort(keys, stable=True).indices


def composite(
    proj: Projection,
    features: torch.Tensor,
    width: int,
    height: int,
    classes: Optional[torch.Tensor] = None,
    num_classes: int = 0,
    *,
    with_depth: bool = False,
    workers: Optional[Workers] = None,
    pairs: Optional[list] = None,
) -> dict[str, torch.Tensor]:
    """Composite projected splats front to back into per-pixel sums.

    Args:
        proj: the projected, culled splats (from :func:`anchorstage.projection.project`).
        features: [N, F] float32 per-splat values to composite, rows of the input splats
            (``proj.ids`` picks the projected ones).
        width: image width in pixels.
        height: image height in pixels.
        classes: optional [N] int64 class per input splat in [0, num_classes); class 0 is "none".
        num_classes: number of classes (including class 0).
        with_depth: also composite the view depth (``proj.depths``).
        workers: CPU threads to use (default: a pool of torch's thread count for this call).
        pairs: when a list, every blended pair is appended to it as ``(pixel, splat, weight)``:
            [P] int64 pixel (y · width + x), [P] int64 input splat row, [P] float32 weight,
            in pieces (bands and chunks in any order; front to back within a piece's pixel).

    Returns:
        ``features`` [H, W, F] float32 sums of weight x feature, ``alpha`` [H, W] float32
        (1 - final transmittance), with ``with_depth`` ``depth_sum`` [H, W] float32 (sum of
        weight x depth, metres), and with ``classes`` ``class_weight_argmax`` [H, W] int64:
        the class with the largest summed weight, where the background counts for class 0
        with weight 1 - alpha (ties go to the lower class).
    """
    dev = features.device
    F = features.shape[1]
    nd = int(with_depth)
    out = torch.empty(height * width, F + nd + 1, dtype=torch.float32, device=dev)  # every band writes its rows
    cls_out = torch.zeros(height * width, dtype=torch.int64, device=dev)
    if proj.ids.shape[0] == 0:
        out.zero_()
    else:
        mx, my = proj.means2d.unbind(1)
        a, b, c = proj.conics.unbind(1)
        op = proj.opacities
        # alpha >= 1/255  <=>  sigma <= log(255 * opacity): the ellipse each splat can touch.
        smax = torch.log(op / ALPHA_MIN)
        hy = torch.sqrt(2.0 * smax * proj.cov2d[:, 2]) + SPAN_MARGIN
        y0 = torch.ceil(my - hy - 0.5).clamp(0, height - 1).to(torch.int32)
        y1 = torch.floor(my + hy - 0.5).clamp(0, height - 1).to(torch.int32)
        live = (my + hy - 0.5 >= 0) & (my - hy - 0.5 <= height - 1)
        y0.masked_fill_(~live, height)  # an empty row range: never in a band
        # A band's per-(pixel, class) weights stay under ~64 MB however many regions there are.
        band_rows = max(1, min(height, _BAND_PIXELS // width, (1 << 24) // (width * max(num_classes, 1))))
        splats = (mx, my, a, b, c, op, smax, y0, y1, proj.depths, proj.ids)
        cls = classes if classes is not None and num_classes > 1 else None

        def run(r0: int) -> None:
            _composite_band(r0, min(height, r0 + band_rows) - 1, width, splats, features, cls, num_classes,
                            with_depth, out, cls_out, pairs)

        # Bands write disjoint rows, so they run in parallel.
        with cpu_workers(dev, workers) as w:
            w.map(run, list(range(0, height, band_rows)))

    return sums_as_images(out, cls_out if classes is not None else None, F, width, height, with_depth)


def _composite_band(r0, r1, width, splats, features, cls, num_classes, with_depth, out, cls_out, pairs=None):
    """Composite the splats that touch image rows r0..r1 (inclusive) into ``out``.

    Args:
        r0: first image row of the band.
        r1: last image row of the band (inclusive).
        width: image width in pixels.
        splats: per projected splat arrays, each [M]: centre x and y (float32, pixels), conic
            a, b, c (float32), opacity (float32), smax = log(255 · opacity) (float32, the sigma
            bound of the alpha >= 1/255 ellipse), first and last image row the ellipse touches
            (int32; first > last when none), view depth (float32, metres) and input splat row (int64).
        features: [N, F] float32 channels to composite, rows of the input splats.
        cls: [N] int64 class per input splat, or None.
        num_classes: number of classes.
        with_depth: composite the view depth as a channel after the features.
        out: [H * W, C] float32 sums, C = F (+ 1 with depth) + 1 (alpha); this band's rows are written.
        cls_out: [H * W] int64 per-pixel dominant class (this band's rows are written).
        pairs: optional list that receives the band's (pixel, splat, weight) pairs (see :func:`composite`).
    """
    dev = features.device
    npx = (r1 - r0 + 1) * width
    mx, my, a, b, c, op, smax, y0, y1, z, src = splats
    # The band's splats, compacted (later gathers and the sparse product's rows stay in cache)
    # and sorted front to back.
    s = ((y0 <= r1) & (y1 >= r0)).nonzero().squeeze(1)
    s = s.index_select(0, depth_order(z.index_select(0, s)))
    mx, my, a, b, c, op, smax, y0, y1, z, src = (t.index_select(0, s) for t in splats)
    # Channels: features, depth, ones (for alpha) and, with few classes, per-class weights as
    # one-hot channels of the one sparse product (written into place: narrow cats are slow).
    F = features.shape[1] + int(with_depth)
    onehot = cls is not None and num_classes <= _ONEHOT_CLASSES
    feats = torch.zeros(s.shape[0], F + 1 + (num_classes if onehot else 0), dtype=torch.float32, device=dev)
    feats[:, :features.shape[1]] = features.index_select(0, src)
    if with_depth:
        feats[:, F - 1] = z
    feats[:, F] = 1.0
    if onehot:
        feats[:, F + 1:].scatter_(1, cls.index_select(0, src)[:, None], 1.0)
    cls = cls.index_select(0, src) if cls is not None and not onehot else None
    # One record per (splat, row): the pixel span its ellipse covers on that row.
    ys = y0.clamp(min=r0)
    nrow = (y1.clamp(max=r1) - ys + 1).clamp_(min=0).to(torch.int64)
    row_of = torch.repeat_interleave(nrow)
    row_y = ys.index_select(0, row_of) + (torch.arange(row_of.shape[0], device=dev)
                                          - (torch.cumsum(nrow, 0) - nrow).index_select(0, row_of))
    # Records row by row, depth order kept inside each row: a chunk's pairs then span few rows,
    # so their sort and gathers stay in cache.
    by_row = _stable_argsort_u16(row_y - r0)
    row_of, row_y = row_of.index_select(0, by_row), row_y.index_select(0, by_row)
    row_splat = row_of.to(torch.int32)  # 32-bit keys and ids halve gather traffic
    dy = row_y.to(torch.float32).add_(0.5).sub_(my.index_select(0, row_of))
    ra, rb, rc = a.index_select(0, row_of), b.index_select(0, row_of), c.index_select(0, row_of)
    bdy = rb * dy
    cdy2 = rc * dy * dy
    sq = (bdy * bdy - ra * (cdy2 - 2.0 * smax.index_select(0, row_of))).clamp_(min=0.0).sqrt_()
    cxr = mx.index_select(0, row_of) - 0.5
    x0 = torch.ceil(cxr + (-bdy - sq) / ra - SPAN_MARGIN).clamp_(0, width - 1)
    x1 = torch.floor(cxr + (-bdy + sq) / ra + SPAN_MARGIN).clamp_(-1, width - 1)
    span = (x1 - x0 + 1).clamp_(min=0).to(torch.int64)
    # log(opacity) - sigma along the span is A u² + B u + C, u = x - x0 (small, so float32 stays exact).
    d0 = x0 - cxr
    A = -0.5 * ra
    B = -(ra * d0 + bdy)
    C = (A * d0 - bdy) * d0 - 0.5 * cdy2 + torch.log(op).index_select(0, row_of)
    rkey = ((row_y - r0) * width).to(torch.float32) + x0

    # Chunks of whole records with a bounded number of pairs; per-pixel log-transmittance carries over.
    ends = torch.cumsum(span, 0)
    n_pairs = int(ends[-1]) if ends.numel() else 0
    log_t = torch.zeros(npx, dtype=torch.float64, device=dev)
    acc = torch.zeros(npx, feats.shape[1], dtype=torch.float32, device=dev)
    cls_w = torch.zeros(npx * num_classes, dtype=torch.float32, device=dev) if cls is not None else None
    lo_rec, lo_pair = 0, 0
    while lo_pair < n_pairs:
        hi_rec = max(int(torch.searchsorted(ends, lo_pair + _CHUNK_PAIRS, right=True)), lo_rec + 1)
        hi_pair = int(ends[hi_rec - 1])
        sp = span[lo_rec:hi_rec]
        pr = torch.repeat_interleave(sp)
        u = torch.arange(hi_pair - lo_pair, device=dev, dtype=torch.float32)
        u -= (torch.cumsum(sp, 0) - sp).to(torch.float32).index_select(0, pr)
        alpha = A[lo_rec:hi_rec].index_select(0, pr).mul_(u).add_(B[lo_rec:hi_rec].index_select(0, pr)).mul_(u)
        alpha += C[lo_rec:hi_rec].index_select(0, pr)
        alpha = torch.nn.functional.threshold_(alpha.exp_().clamp_(max=ALPHA_MAX), _BELOW_ALPHA_MIN, 0.0)
        key = (rkey[lo_rec:hi_rec].index_select(0, pr) + u).to(torch.int32)
        sid = row_splat[lo_rec:hi_rec].index_select(0, pr)
        perm = _stable_argsort_u16(key)
        counts = torch.bincount(key, minlength=npx)  # the sorted keys follow from these: no gather
        sid = sid.index_select(0, perm)
        w = _composite_pairs(counts, alpha.index_select(0, perm), sid, feats, cls, num_classes, log_t, acc, cls_w)
        if pairs is not None:
            pairs.append((torch.repeat_interleave(counts) + r0 * width, src.index_select(0, sid), w))
        lo_rec, lo_pair = hi_rec, hi_pair

    nf = out.shape[1]
    out[r0 * width:(r1 + 1) * width] = acc[:, :nf]
    if onehot or cls_w is not None:
        cw = acc[:, nf:] if onehot else cls_w.view(npx, num_classes)
        cw[:, 0] += (1.0 - acc[:, nf - 1]).clamp(min=0.0)
        cls_out[r0 * width:(r1 + 1) * width] = cw.argmax(dim=1)


def _composite_pairs(counts, alpha, sid, feats, cls, num_classes, log_t, acc, cls_w):
    """Front-to-back composite one chunk of (pixel, splat) pairs.

    Args:
        counts: [npx] int64 pairs per band pixel; the pairs come grouped by pixel, in pixel
            order, depth order inside each pixel.
        alpha: [P] float32 pair alpha (0 for pairs below 1/255).
        sid: [P] int32 band-local splat index (row of ``feats``).
        feats: [S, C] float32 the band's per-splat channels (with one-hot classes when few).
        cls: [S] int64 class per band splat, or None (none, or carried as one-hot channels).
        num_classes: number of classes.
        log_t: [npx] float64 log-transmittance of each pixel so far (all pairs, updated).
        acc: [npx, C] float32 weighted sums (updated).
        cls_w: [npx * num_classes] float32 per-(pixel, class) weights (updated), or None.

    Returns:
        [P] float32 the pairs' blending weights (0 for pairs left out).
    """
    dev = feats.device
    npx = counts.shape[0]
    key = torch.repeat_interleave(counts)  # [P] pixel of each pair
    ell = torch.log1p(-alpha)
    incl = torch.cumsum(ell, 0, dtype=torch.float64)
    ends = torch.cumsum(counts, 0)
    has = counts > 0
    first = (ends - counts)[has]
    # Per pixel: carried log-transmittance minus the running sum before its first pair.
    off = log_t.clone()
    off[has] -= incl.index_select(0, first) - ell.index_select(0, first).double()
    incl += off.index_select(0, key)
    log_t[has] = incl.index_select(0, ends[has] - 1)
    # Per pixel the values are small again: float32 from here. A pair is included while the
    # transmittance after it stays above T_MIN (gsplat's early stop).
    incl32 = incl.to(torch.float32)
    keep = incl32 > math.log(T_MIN)
    w = torch.where(keep, (incl32 - ell).exp_().mul_(alpha), 0.0)
    crow = torch.zeros(npx + 1, dtype=torch.int32, device=dev)
    crow[1:] = ends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch flags sparse CSR as beta
        mat = torch.sparse_csr_tensor(crow, sid, w, size=(npx, feats.shape[0]))
        torch.addmm(acc, mat, feats, out=acc)  # accumulates in place: no [npx, C] temporary
    if cls_w is not None:
        cls_w.index_add_(0, key * num_classes + cls.index_select(0, sid), w)
    return w


def rasterize_splats(*args, **kwargs) -> dict[str, torch.Tensor]:
    """The backend entry point (:func:`anchorstage.projection.rasterize_with`'s signature) with the pure-torch compositor."""
    return rasterize_with(composite, *args, **kwargs)
