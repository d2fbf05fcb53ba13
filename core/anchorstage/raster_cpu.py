# SPDX-License-Identifier: GPL-3.0-or-later
"""Compiled CPU compositor: the torch backend's fast path on the CPU (numba).

Same image formation as :mod:`anchorstage.raster_torch` (see :mod:`anchorstage.projection`), sharing
its projection; only the compositing differs in how it runs. The
projected splats are sorted front to back once; rows of the image are split into bands that
run on the worker threads (the kernels release the GIL). A band buckets the (splat, row) records
that touch it by row, depth order kept (a counting sort), then walks each row's records front
to back over the pixel span the record's ellipse covers, compositing pixel by pixel exactly as
gsplat's classic kernel does: ``alpha = min(0.99, opacity * exp(-sigma))``, skipped below 1/255,
the pixel stopping before the splat that would take its transmittance to ``<= 1e-4``. Every
pair is touched once, with no sort by pixel and no intermediate arrays per pair.

``raster_torch`` stays the oracle this path is tested against, and the path used off the CPU
or when numba cannot be imported (or ``ANCHORSTAGE_NUMBA=0`` is set).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

import numpy as np
import torch

from .projection import Projection, depth_order, rasterize_with, sums_as_images
from .workers import Workers, cpu_workers

__all__ = ["available", "composite", "rasterize_splats", "witness_pairs"]

_BANDS_PER_WORKER = 4  # rows are cut into this many bands per thread: the busy ones even out
_MIN_BAND_ROWS = 8


def available() -> bool:
    """True when numba can be imported and ``ANCHORSTAGE_NUMBA`` is not ``0``."""
    if os.environ.get("ANCHORSTAGE_NUMBA", "1").strip() == "0":
        return False
    return importlib.util.find_spec("numba") is not None


def _kernels():
    """The compiled kernels (numba is imported and the cache read on first use only)."""
    from . import _raster_cpu_kernels

    return _raster_cpu_kernels


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
) -> dict[str, torch.Tensor]:
    """Composite projected splats front to back into per-pixel sums (CPU tensors only).

    Arguments and results are those of :func:`anchorstage.raster_torch.composite`.
    """
    kern = _kernels()
    F = features.shape[1]
    nd = int(with_depth)
    n_ch = max(1, -(-(F + nd) // kern.BLOCK)) * kern.BLOCK  # channels padded to whole kernel blocks
    out = torch.zeros(height * width, n_ch + 1, dtype=torch.float32)
    cls_out = torch.zeros(height * width, dtype=torch.int64)
    use_cls = classes is not None and num_classes > 1
    if proj.ids.shape[0] > 0:
        with cpu_workers(torch.device("cpu"), workers) as w:
            rows, bands, members, head = _bands(proj, height, w)
            arrays = (*head, proj.depths.contiguous().numpy() if with_depth else np.zeros(0, np.float32),
                      proj.ids.numpy(), features.contiguous().numpy(),
                      classes.contiguous().numpy() if use_cls else np.zeros(0, np.int64),
                      num_classes if use_cls else 0, out.numpy(), cls_out.numpy())

            def band(k: int) -> None:
                kern.composite_rows(bands[k], min(height, bands[k] + rows) - 1, width, members[k], *arrays)

            w.map(band, list(range(len(bands))))
    return sums_as_images(out, cls_out if classes is not None else None, F, width, height, with_depth)


def _bands(proj: Projection, height: int, workers: Workers) -> tuple[int, list[int], list[np.ndarray], tuple]:
    """Rows per band, each band's first row, its member splats, and the kernels' per-splat arrays
    (``y0, y1, order, means2d, conics, opacities``)."""
    kern = _kernels()
    rows = max(_MIN_BAND_ROWS, -(-height // (workers.n * _BANDS_PER_WORKER)))
    bands = list(range(0, height, rows))
    order = depth_order(proj.depths).numpy()
    op = proj.opacities.contiguous().numpy()
    y0, y1, starts, members = kern.band_members(order, proj.means2d[:, 1].contiguous().numpy(),
                                                proj.cov2d[:, 2].contiguous().numpy(), op, height, rows, len(bands))
    head = (y0, y1, order, proj.means2d.contiguous().numpy(), proj.conics.contiguous().numpy(), op)
    return rows, bands, [members[starts[k]:starts[k + 1]] for k in range(len(bands))], head


def witness_pairs(
    proj: Projection,
    width: int,
    height: int,
    pixel_ok: torch.Tensor,
    w_min: float = 0.0,
    *,
    workers: Optional[Workers] = None,
) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Every (pixel, splat, blending weight) pair of the compositor, as one CSR piece per row band.

    The weights are those :func:`composite` blends: with them, the composite of any per-splat
    feature x is ``sum_j weight_j · x[splat_j]`` over a pixel's pairs (a linear map ``W x``).

    Args:
        proj: the projected, culled splats (from :func:`anchorstage.projection.project`).
        width: image width in pixels.
        height: image height in pixels.
        pixel_ok: [H * W] bool: pixels whose pairs are kept (the others get none).
        w_min: pairs with a smaller weight are left out.
        workers: CPU threads to use (default: a pool of torch's thread count for this call).

    Returns:
        One ``(first_row, indptr, splat, weight)`` per band of rows: ``indptr`` [rows · width + 1]
        int64 over the band's pixels (row-major), ``splat`` [nnz] int32 input rows, ``weight``
        [nnz] float32; a pixel's pairs front to back. Bands cover the image top to bottom.
    """
    kern = _kernels()
    ok = pixel_ok.reshape(-1).contiguous().numpy()
    if proj.ids.shape[0] == 0:
        return [(0, np.zeros(height * width + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))]
    with cpu_workers(torch.device("cpu"), workers) as w:
        rows, bands, members, head = _bands(proj, height, w)
        ids = proj.ids.numpy()
        return w.map(lambda k: (bands[k], *kern.pair_rows(bands[k], min(height, bands[k] + rows) - 1, width, members[k],
                                                          *head, ids, ok, np.float32(w_min))), list(range(len(bands))))


def rasterize_splats(*args, **kwargs) -> dict[str, torch.Tensor]:
    """The backend entry point (:func:`anchorstage.projection.rasterize_with`'s signature) with the compiled compositor."""
    return rasterize_with(composite, *args, **kwargs)
