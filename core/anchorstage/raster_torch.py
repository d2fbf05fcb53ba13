# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure-torch Gaussian-splat rasterizer: the CPU backend and the oracle for the CUDA one.

Image formation is gsplat's classic 3DGS (``gsplat.rasterization(..., rasterize_mode="classic")``):

* EWA projection with the Jacobian clamped to 1.3x the field of view, a 0.3 px² low-pass
  (``eps2d``) added to the 2D covariance, culling by near/far plane, by ``opacity < 1/255``
  and by the 3.33-sigma (opacity-tightened) box falling off screen;
* per pixel, splats front to back by view depth, ``alpha = min(0.99, opacity * exp(-sigma))``,
  pairs with ``alpha < 1/255`` skipped, and the pixel stops at the first splat that would take
  its transmittance to ``<= 1e-4`` (that splat excluded).

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

import contextlib
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, NamedTuple, Optional

import numpy as np
import torch

__all__ = [
    "ALPHA_MIN",
    "ALPHA_MAX",
    "T_MIN",
    "EPS2D",
    "Projection",
    "quat_to_rotmat",
    "rotmat_entries",
    "project",
    "rasterize",
    "rasterize_splats",
    "Workers",
    "cpu_workers",
]

#: Pairs below this alpha are skipped (gsplat's ALPHA_THRESHOLD).
ALPHA_MIN = 1.0 / 255.0
#: Per-splat alpha cap (3DGS). gsplat 1.5 caps at 0.999; the gsplat backend clamps opacity to match.
ALPHA_MAX = 0.99
#: A pixel stops before the splat that would take its transmittance to this or below.
T_MIN = 1e-4
#: Low-pass filter added to the projected 2D covariance, pixels².
EPS2D = 0.3

_BAND_PIXELS = 65535  # keys of a band must fit uint16 for the radix sort
_CHUNK_PAIRS = 1 << 20  # pairs composited at once: bounds memory (~100 bytes per pair) and stays cache-friendly
_BELOW_ALPHA_MIN = float(np.nextafter(np.float32(ALPHA_MIN), np.float32(0)))  # threshold_ keeps x > this
_ONEHOT_CLASSES = 8  # up to this many classes, per-class weights ride in the sparse product
_PROJECT_CHUNK = 1 << 16  # splats per parallel projection piece, at least
_SPAN_MARGIN = 1e-3  # px; spans are a superset, the exact alpha test decides


class Projection(NamedTuple):
    """Splats that survive culling, projected into one camera.

    Attributes:
        ids: [M] int64 indices into the input splats.
        means2d: [M, 2] float32 pixel coordinates of the centres (pixel centres at +0.5).
        conics: [M, 3] float32 inverse 2D covariance (a, b, c): sigma = 0.5(a dx² + c dy²) + b dx dy.
        cov2d: [M, 3] float32 2D covariance (xx, xy, yy) with the low-pass added, pixels².
        depths: [M] float32 z of the centres along the view axis, metres.
        opacities: [M] float32.
    """

    ids: torch.Tensor
    means2d: torch.Tensor
    conics: torch.Tensor
    cov2d: torch.Tensor
    depths: torch.Tensor
    opacities: torch.Tensor


def rotmat_entries(quats: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """[N, 4] wxyz (any non-zero norm) → the 9 entries r00, r01, …, r22 (row-major), each [N]."""
    w, x, y, z = quats.unbind(-1)
    s = 2.0 / (w * w + x * x + y * y + z * z)  # normalises without a separate pass
    xs, ys, zs = x * s, y * s, z * s
    wx, wy, wz = w * xs, w * ys, w * zs
    xx, xy, xz = x * xs, x * ys, x * zs
    yy, yz, zz = y * ys, y * zs, z * zs
    return (1 - (yy + zz), xy - wz, xz + wy,
            xy + wz, 1 - (xx + zz), yz - wx,
            xz - wy, yz + wx, 1 - (xx + yy))


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[N, 4] wxyz (any non-zero norm) → [N, 3, 3] rotation matrices (local → world)."""
    # Stacked entry-major (contiguous writes), returned as a strided [N, 3, 3] view.
    return torch.stack(rotmat_entries(quats)).T.reshape(-1, 3, 3)


def project(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    cam_from_world: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    near: float,
    far: float,
    eps2d: float = EPS2D,
) -> Projection:
    """EWA-project 3D Gaussians into a pinhole camera and cull them as gsplat does.

    Args:
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 rotations, wxyz (normalised here).
        scales: [N, 3] float32 standard deviations, metres (activated).
        opacities: [N] float32 in (0, 1] (activated).
        cam_from_world: [4, 4] world → camera (OpenCV: x right, y down, z forward), metres.
        K: [3, 3] intrinsics, pixels, pixel centres at +0.5.
        width: image width in pixels.
        height: image height in pixels.
        near: near plane, metres (splats with z < near are culled).
        far: far plane, metres (splats with z > far are culled).
        eps2d: low-pass added to the 2D covariance diagonal, pixels².

    Returns:
        The surviving splats as a :class:`Projection`.
    """
    # One [N] tensor per scalar (no [N, 3, 3] batches: tiny inner dimensions run slowly on the
    # CPU); every splat is computed and the culled ones dropped once at the end.
    (R0, R1, R2), t = cam_from_world[:3, :3].tolist(), cam_from_world[:3, 3].tolist()
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    m = means.unbind(1)
    x, y, z = (m[0] * r[0] + m[1] * r[1] + m[2] * r[2] + tk for r, tk in zip((R0, R1, R2), t))
    rz = 1.0 / z
    # gsplat clamps the Jacobian's x/z, y/z to 1.3x the half field of view.
    lim_xp = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_xn = cx / fx + 0.3 * (0.5 * width / fx)
    lim_yp = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_yn = cy / fy + 0.3 * (0.5 * height / fy)
    tx = (x * rz).clamp_(-lim_xn, lim_xp)
    ty = (y * rz).clamp_(-lim_yn, lim_yp)
    # J W as two rows of 3; then T = J W R(q) S, cov2d = T Tᵀ.
    fxz, fyz = fx * rz, fy * rz
    j0 = [fxz * (R0[k] - tx * R2[k]) for k in range(3)]
    j1 = [fyz * (R1[k] - ty * R2[k]) for k in range(3)]
    r = rotmat_entries(quats)
    sc = scales.unbind(1)
    t0 = [(j0[0] * r[k] + j0[1] * r[3 + k] + j0[2] * r[6 + k]) * sc[k] for k in range(3)]
    t1 = [(j1[0] * r[k] + j1[1] * r[3 + k] + j1[2] * r[6 + k]) * sc[k] for k in range(3)]
    cxx = t0[0] * t0[0] + t0[1] * t0[1] + t0[2] * t0[2] + eps2d
    cxy = t0[0] * t1[0] + t0[1] * t1[1] + t0[2] * t1[2]
    cyy = t1[0] * t1[0] + t1[1] * t1[1] + t1[2] * t1[2] + eps2d
    det = cxx * cyy - cxy * cxy
    extend = torch.sqrt(2.0 * torch.log(opacities / ALPHA_MIN)).clamp_(max=3.33)
    rx = torch.ceil(extend * torch.sqrt(cxx))
    ry = torch.ceil(extend * torch.sqrt(cyy))
    u = fx * x * rz + cx
    v = fy * y * rz + cy
    ok = ((z >= near) & (z <= far) & (opacities >= ALPHA_MIN) & (det > 0)
          & (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height))
    ids = ok.nonzero().squeeze(1)
    cxx, cxy, cyy, det, u, v, z, op = (t.index_select(0, ids) for t in (cxx, cxy, cyy, det, u, v, z, opacities))
    return Projection(
        ids=ids,
        means2d=torch.stack([u, v], dim=1),
        conics=torch.stack([cyy / det, -cxy / det, cxx / det], dim=1),
        cov2d=torch.stack([cxx, cxy, cyy], dim=1),
        depths=z,
        opacities=op,
    )


def _stable_argsort_u16(keys: torch.Tensor) -> torch.Tensor:
    """Stable argsort of non-negative keys < 65536 (radix sort through numpy on the CPU)."""
    if keys.device.type == "cpu":
        # numpy's 16-bit radix sort beats torch's stable sort on these run-structured pixel keys.
        order = np.argsort(keys.numpy().astype(np.uint16), kind="stable")
        return torch.from_numpy(order)
    return torch.sort(keys, stable=True).indices


def _depth_order(depths: torch.Tensor) -> torch.Tensor:
    """Stable argsort of positive float32 depths (ties keep input order, as gsplat's sort does)."""
    # Positive IEEE floats order like their bit patterns, and torch sorts integers by radix.
    return torch.sort(depths.contiguous().view(torch.int32), stable=True).indices


class Workers:
    """CPU threads for independent pieces of work (splat chunks, row bands), each running torch
    with one intra-op thread: single-threaded steps (radix sorts, scans) then run in parallel too,
    and a busy machine does not stall every op at OpenMP barriers."""

    def __init__(self, pool: Optional[ThreadPoolExecutor], n: int) -> None:
        self.pool, self.n = pool, n

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(x) for x in items]``, on the threads when there are several."""
        return list(self.pool.map(fn, items)) if self.pool is not None and len(items) > 1 else [fn(x) for x in items]

    def ranges(self, n: int, min_size: int = 1 << 16) -> list[tuple[int, int]]:
        """Split ``range(n)`` into up to one contiguous piece per thread, each >= ``min_size``."""
        parts = max(1, min(self.n, n // max(min_size, 1)))
        bounds = [n * k // parts for k in range(parts + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


@contextlib.contextmanager
def cpu_workers(device: torch.device, workers: Optional[Workers] = None) -> Iterator[Workers]:
    """:class:`Workers` for ``device`` (none off the CPU); torch's thread count is restored after.

    ``workers``, when given, are a caller's pool already set up: they are used as they are.
    """
    if workers is not None:
        yield workers
        return
    n = torch.get_num_threads() if device.type == "cpu" else 1
    if n <= 1:
        yield Workers(None, 1)
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n) as pool:
            yield Workers(pool, n)
    finally:
        torch.set_num_threads(n)


def _project_parallel(workers: Workers, means, quats, scales, opacities, *args) -> Projection:
    """:func:`project` over splat chunks on ``workers`` (ids stay ascending)."""
    pieces = workers.ranges(means.shape[0], _PROJECT_CHUNK)
    chunks = workers.map(lambda r: project(means[r[0]:r[1]], quats[r[0]:r[1]], scales[r[0]:r[1]],
                                           opacities[r[0]:r[1]], *args), pieces)
    if len(chunks) == 1:
        return chunks[0]
    chunks = [c._replace(ids=c.ids + r[0]) for r, c in zip(pieces, chunks)]
    return Projection(*(torch.cat(f) for f in zip(*chunks)))


def rasterize(
    proj: Projection,
    features: torch.Tensor,
    width: int,
    height: int,
    classes: Optional[torch.Tensor] = None,
    num_classes: int = 0,
    *,
    with_depth: bool = False,
    workers: Optional[Workers] = None,
) -> dict[str, torch.Tensor]:
    """Composite projected splats front to back into per-pixel sums.

    Args:
        proj: the projected, culled splats (from :func:`project`).
        features: [N, F] float32 per-splat values to composite, rows of the input splats
            (``proj.ids`` picks the projected ones).
        width: image width in pixels.
        height: image height in pixels.
        classes: optional [N] int64 class per input splat in [0, num_classes); class 0 is "none".
        num_classes: number of classes (including class 0).
        with_depth: also composite the view depth (``proj.depths``).
        workers: CPU threads to use (default: a pool of torch's thread count for this call).

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
        hy = torch.sqrt(2.0 * smax * proj.cov2d[:, 2]) + _SPAN_MARGIN
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
                            with_depth, out, cls_out)

        # Bands write disjoint rows, so they run in parallel.
        with cpu_workers(dev, workers) as w:
            w.map(run, list(range(0, height, band_rows)))

    return _sums_as_images(out, cls_out if classes is not None else None, F, width, height, with_depth)


def _sums_as_images(out: torch.Tensor, cls_out: Optional[torch.Tensor], F: int, width: int, height: int,
                    with_depth: bool) -> dict[str, torch.Tensor]:
    """:func:`rasterize`'s results from the [H * W, C] sums (F features, [depth], ..., alpha last)
    and the [H * W] dominant classes (None: no classes)."""
    return {
        "features": out[:, :F].reshape(height, width, F),
        "alpha": out[:, -1].reshape(height, width),
        **({"depth_sum": out[:, F].reshape(height, width)} if with_depth else {}),
        **({"class_weight_argmax": cls_out.reshape(height, width)} if cls_out is not None else {}),
    }


def _composite_band(r0, r1, width, splats, features, cls, num_classes, with_depth, out, cls_out):
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
    """
    dev = features.device
    npx = (r1 - r0 + 1) * width
    mx, my, a, b, c, op, smax, y0, y1, z, src = splats
    # The band's splats, compacted (later gathers and the sparse product's rows stay in cache)
    # and sorted front to back.
    s = ((y0 <= r1) & (y1 >= r0)).nonzero().squeeze(1)
    s = s.index_select(0, _depth_order(z.index_select(0, s)))
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
    x0 = torch.ceil(cxr + (-bdy - sq) / ra - _SPAN_MARGIN).clamp_(0, width - 1)
    x1 = torch.floor(cxr + (-bdy + sq) / ra + _SPAN_MARGIN).clamp_(-1, width - 1)
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
        _composite_pairs(counts, alpha.index_select(0, perm), sid.index_select(0, perm), feats, cls, num_classes,
                         log_t, acc, cls_w)
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


def rasterize_splats(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    cam_from_world: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    near: float,
    far: float,
    classes: Optional[torch.Tensor] = None,
    num_classes: int = 0,
    with_depth: bool = True,
    eps2d: float = EPS2D,
    workers: Optional[Workers] = None,
    compositor: Optional[Callable[..., dict[str, torch.Tensor]]] = None,
) -> dict[str, torch.Tensor]:
    """Project and composite splats: the backend entry point used by :func:`anchorstage.render`.

    Args:
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 rotations, wxyz.
        scales: [N, 3] float32 standard deviations, metres.
        opacities: [N] float32.
        features: [N, F] float32 per-splat channels to composite.
        cam_from_world: [4, 4] world → camera (OpenCV), metres.
        K: [3, 3] intrinsics, pixels.
        width: image width in pixels.
        height: image height in pixels.
        near: near plane, metres.
        far: far plane, metres.
        classes: optional [N] int64 class per splat (0 = none).
        num_classes: number of classes.
        with_depth: also return the expected depth.
        eps2d: low-pass, pixels².
        workers: CPU threads to use (default: a pool of torch's thread count for this call).
        compositor: what composites the projection, with :func:`rasterize`'s signature (default
            :func:`rasterize`; :func:`anchorstage.raster_cpu.rasterize` on the CPU).

    Returns:
        ``features`` [H, W, F] weighted sums, ``alpha`` [H, W], ``depth`` [H, W] metres
        (sum(w·z) / alpha, as gsplat's "ED"; only with ``with_depth``) and
        ``class_weight_argmax`` [H, W] int64 (only with ``classes``).
    """
    with cpu_workers(means.device, workers) as w:
        proj = _project_parallel(w, means, quats, scales, opacities, cam_from_world, K, width, height, near, far, eps2d)
        res = (compositor or rasterize)(proj, features, width, height, classes, num_classes, with_depth=with_depth,
                                        workers=w)
    if with_depth:
        res["depth"] = res.pop("depth_sum") / res["alpha"].clamp(min=1e-10)
    return res
