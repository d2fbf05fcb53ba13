# SPDX-License-Identifier: GPL-3.0-or-later
"""CUDA backend: gsplat's rasterizer (``gsplat.rasterization``, classic mode).

gsplat is imported only when this backend actually renders on a CUDA device: on a machine
with ``nvcc`` and no GPU, touching gsplat's CUDA entry points would start a JIT build.

Extra passes ride along as colour channels: the per-splat features (colour, normal,
confidence), one one-hot channel per region class, and gsplat's ``"RGB+ED"`` mode appends
the expected depth. gsplat 1.5 caps a splat's alpha at 0.999 while the 3DGS convention used
here (and by :mod:`anchorstage.projection`) is 0.99, so opacities are clamped to 0.99
first; the two agree exactly for opacities up to 0.99 and to within 1% of alpha near the
centre of splats above it.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import torch

from .formation import ALPHA_MAX, EPS2D
from .workers import Workers

__all__ = ["available", "rasterize_splats"]


def available() -> bool:
    """True when gsplat is installed and a CUDA device is present (gsplat itself is not imported)."""
    return torch.cuda.is_available() and importlib.util.find_spec("gsplat") is not None


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
) -> dict[str, torch.Tensor]:
    """The backend entry point on CUDA through gsplat: arguments and results as
    :func:`anchorstage.projection.rasterize_with` (``workers`` is unused here)."""
    from gsplat import rasterization

    n, F = features.shape
    parts = [features]
    want_cls = classes is not None and num_classes > 1
    if want_cls:
        parts.append(torch.nn.functional.one_hot(classes, num_classes).to(features.dtype))
    channels = torch.cat(parts, dim=1)
    pad = channels.shape[1] == 0  # gsplat needs at least one channel
    if pad:
        channels = torch.zeros(n, 1, device=features.device)
    colors, alphas, _ = rasterization(
        means, quats, scales, opacities.clamp(max=ALPHA_MAX), channels,
        cam_from_world[None], K[None], width, height,
        near_plane=near, far_plane=far, eps2d=eps2d, packed=False,
        render_mode="RGB+ED" if with_depth else "RGB", rasterize_mode="classic",
        channel_chunk=64,  # colour, normal, confidence, ~a dozen regions and depth in one pass
    )
    colors, alpha = colors[0], alphas[0, ..., 0]
    out: dict[str, torch.Tensor] = {"features": colors[..., :F], "alpha": alpha}
    if with_depth:
        out["depth"] = colors[..., -1]
    if classes is not None:
        if want_cls:
            cw = colors[..., F:F + num_classes].clone()
            cw[..., 0] += (1.0 - alpha).clamp(min=0.0)
            out["class_weight_argmax"] = cw.argmax(dim=-1)
        else:
            out["class_weight_argmax"] = torch.zeros(height, width, dtype=torch.int64, device=colors.device)
    return out
