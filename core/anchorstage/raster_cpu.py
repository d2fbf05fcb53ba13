# SPDX-License-Identifier: GPL-3.0-or-later
"""Compiled CPU rasterizer: the torch backend's fast path on the CPU (numba).

Same image formation as :mod:`anchorstage.raster_torch` (see :mod:`anchorstage.projection`); only
how it runs differs. Everything runs in compiled kernels that release the GIL, on the worker
threads:

* projection: pieces of the input splats are projected and culled in one pass each
  (:func:`project`, the maths of :func:`anchorstage.projection.project`), survivors written
  compacted per piece into preallocated arrays, each with the rows its ellipse can touch, and
  counted per band of image rows;
* bands: per-(piece, band) counts give every piece its place in each band's member list, filled
  in parallel, ascending input order kept; each band then sorts its own members front to back
  (a stable radix sort on the depth), so ties keep input order as gsplat's stable sort does;
* compositing: a band buckets the (splat, row) records that touch it by row, depth order kept
  (a counting sort), then walks each row's records front to back over the pixel span the
  record's ellipse covers, compositing pixel by pixel exactly as gsplat's classic kernel does:
  ``alpha = min(0.99, opacity * exp(-sigma))``, skipped below 1/255, the pixel stopping before
  the splat that would take its transmittance to ``<= 1e-4``. Every pair is touched once, with
  no sort by pixel and no intermediate arrays per pair.

``raster_torch`` stays the oracle this path is tested against, and the path used off the CPU
or when numba cannot be imported (or ``ANCHORSTAGE_NUMBA=0`` is set).

The path is numpy end to end (:func:`rasterize_arrays`): a frame of numpy-backed splats runs
without loading torch. :func:`rasterize_splats` is the same behind the backends' torch contract.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import threading
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

import numpy as np

from .formation import ALPHA_MIN, EPS2D, sums_as_images
from .splat_store import release_pages
from .workers import Workers, cpu_workers

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .projection import Projection
    from .scratch import Buffers

__all__ = ["available", "Projected", "project", "composite", "rasterize_arrays", "rasterize_splats", "witness_pairs"]

_Array = Union["torch.Tensor", np.ndarray]

_BANDS_PER_WORKER = 4  # rows are cut into this many bands per thread: the busy ones even out
_MIN_BAND_ROWS = 8
_PIECE = 1 << 16  # input splats per projection piece: pieces even out between the threads
_EXTEND_MAX = 3.33  # the culling box's sigma bound (gsplat), as in projection.project


def available() -> bool:
    """True when numba can be imported and ``ANCHORSTAGE_NUMBA`` is not ``0``."""
    if os.environ.get("ANCHORSTAGE_NUMBA", "1").strip() == "0":
        return False
    return importlib.util.find_spec("numba") is not None


def _kernels():
    """The compiled kernels (numba is imported and the cache read on first use only)."""
    from . import _raster_cpu_kernels

    return _raster_cpu_kernels


class Projected(NamedTuple):
    """Splats that survive culling, projected into one camera, in the compiled path's layout.

    Arrays are numpy and indexed by *slot*: piece p's survivors fill slots ``starts[p]`` ..
    ``starts[p] + counts[p] - 1`` in input order (so input rows ascend with the slot); the slots
    after them, up to the next piece, are unused. :meth:`slots` lists the live ones.

    Attributes:
        ids: [S] int32 input row of each slot.
        means2d: [S, 2] float32 centres, pixels (pixel centres at +0.5).
        conics: [S, 3] float32 inverse 2D covariance (a, b, c): sigma = 0.5(a dx² + c dy²) + b dx dy.
        opacities: [S] float32.
        depths: [S] float32 z of the centres along the view axis, metres.
        y0: [S] int32 first image row where the splat's alpha can reach 1/255.
        y1: [S] int32 last such row (y0 > y1: none).
        starts: [P] int64 first slot of each piece.
        counts: [P] int64 live slots of each piece.
        band_rows: image rows per band of the compositor.
        band_count: [P, n_bands] int64 live slots of each piece whose rows touch each band.
    """

    ids: np.ndarray
    means2d: np.ndarray
    conics: np.ndarray
    opacities: np.ndarray
    depths: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    starts: np.ndarray
    counts: np.ndarray
    band_rows: int
    band_count: np.ndarray

    def slots(self) -> np.ndarray:
        """[M] int64 the live slots, ascending (input order)."""
        if self.counts.shape[0] == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(s, s + c) for s, c in zip(self.starts.tolist(), self.counts.tolist())])


def _band_rows(height: int, workers: Workers) -> int:
    return max(_MIN_BAND_ROWS, -(-height // (workers.n * _BANDS_PER_WORKER)))


def _pieces(n: int) -> np.ndarray:
    return np.arange(0, n, _PIECE, dtype=np.int64)


def _host(a: _Array) -> np.ndarray:
    """A numpy view of a CPU tensor, or the array itself."""
    return a if isinstance(a, np.ndarray) else a.detach().numpy()


def _f32(a: _Array) -> np.ndarray:
    """A C-contiguous float32 numpy view of a CPU tensor or array (copied only when it must be)."""
    return np.ascontiguousarray(_host(a), dtype=np.float32)


def project(
    means: _Array,
    quats: _Array,
    scales: _Array,
    opacities: _Array,
    cam_from_world: _Array,
    K: _Array,
    width: int,
    height: int,
    near: float,
    far: float,
    eps2d: float = EPS2D,
    *,
    workers: Optional[Workers] = None,
    buffers: Optional["Buffers"] = None,
) -> Projected:
    """EWA-project and cull splats as :func:`anchorstage.projection.project` does, compiled.

    Args:
        means: [N, 3] float32 centres, metres, world frame (CPU tensors or numpy arrays, read-only
            memory maps included).
        quats: [N, 4] float32 rotations, wxyz (normalised here).
        scales: [N, 3] float32 standard deviations, metres (activated).
        opacities: [N] float32 in (0, 1] (activated).
        cam_from_world: [4, 4] world → camera (OpenCV: x right, y down, z forward), metres.
        K: [3, 3] intrinsics, pixels, pixel centres at +0.5.
        width: image width in pixels.
        height: image height in pixels.
        near: near plane, metres.
        far: far plane, metres.
        eps2d: low-pass added to the 2D covariance diagonal, pixels².
        workers: CPU threads to use (default: a pool of torch's thread count for this call).
        buffers: a frame's reusable buffers (:class:`anchorstage.scratch.Buffers`) for the result's
            arrays, which then live until that frame ends; None: new memory.

    Returns:
        The survivors as a :class:`Projected`, banded for ``workers``' thread count.
    """
    kern = _kernels()
    means, quats, scales, opacities = (_f32(a) for a in (means, quats, scales, opacities))
    vm = np.asarray(cam_from_world, dtype=np.float64)
    k = np.asarray(K, dtype=np.float64)
    fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    # The Jacobian's clamp at 1.3x the half field of view, in float64 as the torch projection has it.
    lims = ((width - cx) / fx + 0.3 * (0.5 * width / fx), cx / fx + 0.3 * (0.5 * width / fx),
            (height - cy) / fy + 0.3 * (0.5 * height / fy), cy / fy + 0.3 * (0.5 * height / fy))
    cam = np.array([*vm[:3, :3].reshape(-1), *vm[:3, 3], fx, fy, cx, cy, *lims, eps2d, near, far, width, height,
                    ALPHA_MIN, _EXTEND_MAX], np.float32)
    assert cam.shape[0] == kern.N_CAM
    n = means.shape[0]
    starts = _pieces(n)
    with cpu_workers("cpu", workers) as w:
        rows = _band_rows(height, w)
        band_count = np.zeros((starts.shape[0], -(-height // rows)), np.int64)
        fields = (("ids", (n,), np.int32), ("means2d", (n, 2), np.float32), ("conics", (n, 3), np.float32),
                  ("opacities", (n,), np.float32), ("depths", (n,), np.float32), ("y0", (n,), np.int32),
                  ("y1", (n,), np.int32))
        out = tuple(np.empty(shape, dtype) if buffers is None else buffers.empty(f"raster.project.{name}", shape, dtype)
                    for name, shape, dtype in fields)

        def piece(p: int) -> int:
            lo, hi = int(starts[p]), min(n, int(starts[p]) + _PIECE)
            count = kern.project_piece(lo, hi, means, quats, scales, opacities, cam, rows, *out, band_count[p])
            for a in (means, quats, scales, opacities):  # a memory-mapped scene's pages, read: given back
                release_pages(a, (lo, hi))
            return count

        counts = w.map(piece, list(range(starts.shape[0])))
    return Projected(*out, starts=starts, counts=np.array(counts, np.int64), band_rows=rows, band_count=band_count)


def _from_torch(proj: "Projection", height: int, workers: Workers) -> Projected:
    """A torch :class:`~anchorstage.projection.Projection` in the compiled layout (one slot per splat)."""
    kern = _kernels()
    m = proj.ids.shape[0]
    starts = _pieces(m)
    rows = _band_rows(height, workers)
    band_count = np.zeros((starts.shape[0], -(-height // rows)), np.int64)
    y0, y1 = np.empty(m, np.int32), np.empty(m, np.int32)
    my, cyy = proj.means2d[:, 1].contiguous().numpy(), proj.cov2d[:, 2].contiguous().numpy()
    op = proj.opacities.contiguous().numpy()
    workers.map(lambda p: kern.span_piece(starts[p], min(m, starts[p] + _PIECE), my, cyy, op, height, rows, y0, y1,
                                          band_count[p]), list(range(starts.shape[0])))
    return Projected(proj.ids.int().numpy(), proj.means2d.contiguous().numpy(),
                     proj.conics.contiguous().numpy(), op, proj.depths.contiguous().numpy(), y0, y1, starts,
                     np.minimum(_PIECE, m - starts), rows, band_count)


def _bands(proj: Projected, height: int, workers: Workers) -> tuple[list[int], list[np.ndarray]]:
    """Each band's first row and its member slots, ascending (each band puts its own in depth
    order where it is composited)."""
    kern = _kernels()
    per_band = proj.band_count.sum(0)
    first = np.concatenate([[0], np.cumsum(per_band)])
    # Where each piece's members of each band go: the band's start plus the earlier pieces' counts.
    fill = first[:-1][None, :] + np.cumsum(proj.band_count, 0) - proj.band_count
    members = np.empty(int(first[-1]), np.int32)
    workers.map(lambda p: kern.fill_members(proj.starts[p], proj.starts[p] + proj.counts[p], proj.y0, proj.y1,
                                            proj.band_rows, fill[p], members), list(range(proj.starts.shape[0])))
    bands = list(range(0, height, proj.band_rows))
    return bands, [members[first[b]:first[b + 1]] for b in range(len(bands))]


def _busiest_first(members: list[np.ndarray]) -> list[int]:
    """Bands in the order to hand them to the threads: most members first, so the last ones
    to start are short and the threads finish together."""
    return sorted(range(len(members)), key=lambda k: -members[k].shape[0])


def composite(
    proj: Union[Projected, "Projection"],
    features: "torch.Tensor",
    width: int,
    height: int,
    classes: Optional["torch.Tensor"] = None,
    num_classes: int = 0,
    *,
    with_depth: bool = False,
    workers: Optional[Workers] = None,
) -> dict[str, "torch.Tensor"]:
    """Composite projected splats front to back into per-pixel sums (CPU tensors only).

    Arguments and results are those of :func:`anchorstage.raster_torch.composite`; ``proj`` is
    this module's :class:`Projected` or the torch :class:`~anchorstage.projection.Projection`.
    """
    import torch

    out, cls_out = _composite(proj, _host(features), width, height, None if classes is None else _host(classes),
                              num_classes, with_depth, workers, None)
    return sums_as_images(torch.from_numpy(out), None if cls_out is None else torch.from_numpy(cls_out),
                          features.shape[1], width, height, with_depth)


def _composite(proj: Union[Projected, "Projection"], features: np.ndarray, width: int, height: int,
               classes: Optional[np.ndarray], num_classes: int, with_depth: bool,
               workers: Optional[Workers], buffers: Optional["Buffers"]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """:func:`composite` on numpy: the [H * W, C] sums (features, [depth], padding, alpha last) and
    the [H * W] int64 dominant classes (None without ``classes``); the sums and each band's records
    in ``buffers`` when given (then valid until that frame ends)."""
    kern = _kernels()
    F = features.shape[1]
    nd = int(with_depth)
    n_ch = max(1, -(-(F + nd) // kern.BLOCK)) * kern.BLOCK  # channels padded to whole kernel blocks

    def empty(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.empty(shape, np.float32) if buffers is None else buffers.empty(name, shape, np.float32)

    out = empty("raster.sums", (height * width, n_ch + 1))
    out[:] = 0.0
    cls_out = np.zeros(height * width, np.int64)
    use_cls = classes is not None and num_classes > 1
    with cpu_workers("cpu", workers) as w:
        if not isinstance(proj, Projected):
            proj = _from_torch(proj, height, w)
        if proj.counts.sum() > 0:
            bands, members = _bands(proj, height, w)
            rows = proj.band_rows
            arrays = (proj.y0, proj.y1, proj.means2d, proj.conics, proj.opacities, proj.depths, with_depth, proj.ids,
                      np.ascontiguousarray(features, np.float32),
                      np.ascontiguousarray(classes, np.int64) if use_cls else np.zeros(0, np.int64),
                      num_classes if use_cls else 0, out, cls_out)

            free: list[str] = []  # records buffers of bands done, for the next: one per thread in use
            made = itertools.count()
            lock = threading.Lock()

            def band(k: int) -> None:
                n = members[k].shape[0]
                with lock:
                    name = free.pop() if free else f"raster.records{next(made)}"
                records = empty(name, (n * (kern.N_HEAD + n_ch),))
                kern.composite_rows(bands[k], min(height, bands[k] + rows) - 1, width, members[k], *arrays,
                                    records[:n * kern.N_HEAD].reshape(n, kern.N_HEAD),
                                    records[n * kern.N_HEAD:].reshape(n, n_ch))
                if buffers is not None:
                    buffers.give_back(name)
                with lock:
                    free.append(name)

            w.map(band, _busiest_first(members))
    return out, cls_out if classes is not None else None


def witness_pairs(
    proj: Union[Projected, Projection],
    width: int,
    height: int,
    pixel_ok: _Array,
    w_min: float = 0.0,
    *,
    workers: Optional[Workers] = None,
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Every (pixel, splat, blending weight) pair of the compositor, as one CSR piece per row band.

    The weights are those :func:`composite` blends: with them, the composite of any per-splat
    feature x is ``sum_j weight_j · x[splat_j]`` over a pixel's pairs (a linear map ``W x``).

    Args:
        proj: the projected, culled splats (:func:`project`, or a torch
            :class:`~anchorstage.projection.Projection`).
        width: image width in pixels.
        height: image height in pixels.
        pixel_ok: [H * W] bool (a tensor or a numpy array): pixels whose pairs are kept (the others get none).
        w_min: pairs with a smaller weight are left out.
        workers: CPU threads to use (default: a pool of torch's thread count for this call).

    Returns:
        One ``(first_row, indptr, splat, weight)`` per band of rows: ``indptr`` [rows · width + 1]
        int64 over the band's pixels (row-major), ``splat`` [nnz] int32 input rows, ``weight``
        [nnz] float32; a pixel's pairs front to back. Bands cover the image top to bottom.
    """
    kern = _kernels()
    ok = np.ascontiguousarray(_host(pixel_ok).reshape(-1))
    with cpu_workers("cpu", workers) as w:
        if not isinstance(proj, Projected):
            proj = _from_torch(proj, height, w)
        if proj.counts.sum() == 0:
            return [(0, np.zeros(height * width + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))]
        bands, members = _bands(proj, height, w)
        rows = proj.band_rows
        head = (proj.y0, proj.y1, proj.means2d, proj.conics, proj.opacities, proj.depths, proj.ids)

        def band(k: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
            return (bands[k], *kern.pair_rows(bands[k], min(height, bands[k] + rows) - 1, width, members[k], *head, ok,
                                              np.float32(w_min)))

        done = dict(zip(order := _busiest_first(members), w.map(band, order)))
        return [done[k] for k in range(len(bands))]


def rasterize_arrays(
    means: _Array,
    quats: _Array,
    scales: _Array,
    opacities: _Array,
    features: _Array,
    cam_from_world: _Array,
    K: _Array,
    width: int,
    height: int,
    *,
    near: float,
    far: float,
    classes: Optional[_Array] = None,
    num_classes: int = 0,
    with_depth: bool = True,
    eps2d: float = EPS2D,
    workers: Optional[Workers] = None,
    buffers: Optional["Buffers"] = None,
) -> dict[str, np.ndarray]:
    """Project and composite splats on numpy (no torch needed): the compiled path of
    :func:`rasterize_splats`, whose arguments and results it has, as numpy arrays (CPU tensors in
    are read in place). With a frame's ``buffers`` (:class:`anchorstage.scratch.Buffers`) its big
    temporaries reuse the memory of earlier frames, and the results live until that frame ends."""
    with cpu_workers("cpu", workers) as w:
        proj = project(means, quats, scales, opacities, cam_from_world, K, width, height, near, far, eps2d, workers=w,
                       buffers=buffers)
        feats = _host(features)
        out, cls_out = _composite(proj, feats, width, height, None if classes is None else _host(classes), num_classes,
                                  with_depth, w, buffers)
    res = sums_as_images(out, cls_out, feats.shape[1], width, height, with_depth)
    if with_depth:
        res["depth"] = res.pop("depth_sum") / np.maximum(res["alpha"], np.float32(1e-10))
    return res


def rasterize_splats(*args: Any, **kwargs: Any) -> dict[str, "torch.Tensor"]:
    """The backend entry point (:func:`anchorstage.projection.rasterize_with`'s signature, CPU
    tensors): :func:`rasterize_arrays`, its results as tensors."""
    import torch

    return {k: torch.from_numpy(v) for k, v in rasterize_arrays(*args, **kwargs).items()}
