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

__all__ = ["available", "composite", "rasterize_splats"]

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
            rows = max(_MIN_BAND_ROWS, -(-height // (w.n * _BANDS_PER_WORKER)))
            bands = list(range(0, height, rows))
            order = depth_order(proj.depths).numpy()
            op = proj.opacities.contiguous().numpy()
            y0, y1, starts, members = kern.band_members(order, proj.means2d[:, 1].contiguous().numpy(),
                                                        proj.cov2d[:, 2].contiguous().numpy(), op, height, rows,
                                                        len(bands))
            arrays = (y0, y1, order, proj.means2d.contiguous().numpy(), proj.conics.contiguous().numpy(), op,
                      proj.depths.contiguous().numpy() if with_depth else np.zeros(0, np.float32), proj.ids.numpy(),
                      features.contiguous().numpy(), classes.contiguous().numpy() if use_cls else np.zeros(0, np.int64),
                      num_classes if use_cls else 0, out.numpy(), cls_out.numpy())

            def band(k: int) -> None:
                kern.composite_rows(bands[k], min(height, bands[k] + rows) - 1, width,
                                    members[starts[k]:starts[k + 1]], *arrays)

            w.map(band, list(range(len(bands))))
    return sums_as_images(out, cls_out if classes is not None else None, F, width, height, with_depth)


def rasterize_splats(*args, **kwargs) -> dict[str, torch.Tensor]:
    """The backend entry point (:func:`anchorstage.projection.rasterize_with`'s signature) with the compiled compositor."""
    return rasterize_with(composite, *args, **kwargs)
