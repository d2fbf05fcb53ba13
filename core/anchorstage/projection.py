# SPDX-License-Identifier: GPL-3.0-or-later
"""Image formation shared by every backend: constants (from :mod:`anchorstage.formation`), EWA
projection, the backend contract.

Image formation is gsplat's classic 3DGS (``gsplat.rasterization(..., rasterize_mode="classic")``):

* EWA projection with the Jacobian clamped to 1.3x the field of view, a 0.3 px² low-pass
  (``eps2d``) added to the 2D covariance, culling by near/far plane, by ``opacity < 1/255``
  and by the 3.33-sigma (opacity-tightened) box falling off screen;
* per pixel, splats front to back by view depth, ``alpha = min(0.99, opacity * exp(-sigma))``,
  pairs with ``alpha < 1/255`` skipped, and the pixel stops at the first splat that would take
  its transmittance to ``<= 1e-4`` (that splat excluded).

Backends. Every backend module (:mod:`~anchorstage.raster_torch`, the oracle;
:mod:`~anchorstage.raster_cpu`, the compiled CPU compositor; :mod:`~anchorstage.raster_gsplat`,
CUDA) exposes ``available() -> bool`` and one function with the signature of :func:`rasterize_with`
less its first argument::

    rasterize_splats(means, quats, scales, opacities, features, cam_from_world, K, width, height, *,
                     near, far, classes=None, num_classes=0, with_depth=True, eps2d=EPS2D, workers=None)
        -> {"features": [H, W, F], "alpha": [H, W], "depth": [H, W] (with_depth),
            "class_weight_argmax": [H, W] int64 (with classes)}

The two CPU backends differ in their *projector* (:func:`project_parallel` here, the torch
oracle; :func:`anchorstage.raster_cpu.project`, compiled, the same maths) and *compositor*
(``composite(proj, features, width, height, classes, num_classes, *, with_depth, workers)``, see
:func:`anchorstage.raster_torch.composite`), which :func:`rasterize_with` wraps into that signature.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import torch

from .formation import ALPHA_MAX, ALPHA_MIN, EPS2D, SPAN_MARGIN, T_MIN, sums_as_images
from .rotation import rotmat_entries
from .workers import Workers, cpu_workers

__all__ = [
    "ALPHA_MIN", "ALPHA_MAX", "T_MIN", "EPS2D", "SPAN_MARGIN", "Projection", "project", "project_parallel",
    "depth_order", "sums_as_images", "rasterize_with",
]

PROJECT_CHUNK = 1 << 16  # splats per parallel projection piece


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

def depth_order(depths: torch.Tensor) -> torch.Tensor:
    """Stable argsort of positive float32 depths (ties keep input order, as gsplat's sort does)."""
    # Positive IEEE floats order like their bit patterns, and torch sorts integers by radix.
    return torch.sort(depths.contiguous().view(torch.int32), stable=True).indices

def project_parallel(means, quats, scales, opacities, *args, workers: Workers) -> Projection:
    """:func:`project` (same arguments) over splat chunks on ``workers`` (ids stay ascending)."""
    # Chunks of PROJECT_CHUNK, not one per thread: each chunk's ~40 temporaries stay small and
    # reused (one piece per thread at 1M splats held ~200 MB of freed memory in the threads' heaps).
    n = means.shape[0]
    pieces = workers.chunks(n, PROJECT_CHUNK) or [(0, 0)]
    chunks = workers.map(lambda r: project(means[r[0]:r[1]], quats[r[0]:r[1]], scales[r[0]:r[1]],
                                           opacities[r[0]:r[1]], *args), pieces)
    if len(chunks) == 1:
        return chunks[0]
    chunks = [c._replace(ids=c.ids + r[0]) for r, c in zip(pieces, chunks)]
    return Projection(*(torch.cat(f) for f in zip(*chunks)))

def rasterize_with(
    compositor: Callable[..., dict[str, torch.Tensor]],
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
    projector: Callable[..., Any] = project_parallel,
) -> dict[str, torch.Tensor]:
    """Project splats and composite them with ``compositor``: the CPU backends' ``rasterize_splats``.

    Args:
        compositor: composites what ``projector`` returns into per-pixel sums.
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
        projector: projects and culls the splats: :func:`project_parallel`'s signature (the
            torch projection by default).

    Returns:
        ``features`` [H, W, F] weighted sums, ``alpha`` [H, W], ``depth`` [H, W] metres
        (sum(w·z) / alpha, as gsplat's "ED"; only with ``with_depth``) and
        ``class_weight_argmax`` [H, W] int64 (only with ``classes``).
    """
    with cpu_workers(means.device, workers) as w:
        proj = projector(means, quats, scales, opacities, cam_from_world, K, width, height, near, far, eps2d, workers=w)
        res = compositor(proj, features, width, height, classes, num_classes, with_depth=with_depth, workers=w)
    if with_depth:
        res["depth"] = res.pop("depth_sum") / res["alpha"].clamp(min=1e-10)
    return res
