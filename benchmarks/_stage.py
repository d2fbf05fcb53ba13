# SPDX-License-Identifier: GPL-3.0-or-later
"""The benchmarks' analytic stage: a reference photo of a ground, a facade and two boxes, ray-cast exactly."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from anchorstage import Camera, look_at

__all__ = ["analytic_photo"]


def analytic_photo(n: int, facade_top_m: Optional[float] = None, seed: int = 0, noise: float = 0.05):
    """A ~``n``-pixel 16:9 photo of the analytic stage from its reference camera.

    Args:
        n: pixels (≈ splats at one splat per pixel).
        facade_top_m: the facade's height in metres (above it: sky); None for an endless facade.
        seed: texture-noise seed.
        noise: std of the colour noise.

    Returns:
        camera, hit [H*W] bool (a surface, not sky), points [H*W, 3] world metres (0 on sky),
        normals [H*W, 3] world, depth_m [H, W] float32 (inf on sky), colours [H*W, 3] in [0, 1]
        (a sky blue where nothing is hit).
    """
    aspect = 16 / 9
    h = int(round(math.sqrt(n / aspect)))
    w = int(round(n / h))
    ref = Camera(width=w, height=h, lens_mm=30.0, world_from_cam=look_at((0, -6, 1.6), (0, 0, 1.2)))
    uv = ref.pixel_centers().reshape(-1, 2)
    d = ref.unproject(uv, np.ones(len(uv))) - ref.position
    o = ref.position
    t = np.full(len(uv), np.inf)
    nrm = np.zeros((len(uv), 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = -o[2] / d[:, 2]
        tf = (4.0 - o[1]) / d[:, 1]
    below_top = np.ones(len(uv), bool) if facade_top_m is None else (o + tf[:, None] * d)[:, 2] < facade_top_m
    for tt, nn, ok in ((tg, (0, 0, 1), np.ones(len(uv), bool)), (tf, (0, -1, 0), below_top)):
        hit = ok & (tt > 0) & (tt < t)
        t[hit], nrm[hit] = tt[hit], nn
    for cx, cy, size in ((-1.0, 0.5, 0.8), (1.2, -0.5, 0.6)):  # front faces of two boxes
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = (cy - size - o[1]) / d[:, 1]
        p = o + tb[:, None] * d
        hit = (tb > 0) & (tb < t) & (np.abs(p[:, 0] - cx) < size) & (p[:, 2] > 0) & (p[:, 2] < 2 * size)
        t[hit], nrm[hit] = tb[hit], (0, -1, 0)
    hit = np.isfinite(t)
    pts = o + np.where(hit, t, 0.0)[:, None] * d
    depth = np.where(hit, (pts - o) @ ref.forward, np.inf).reshape(h, w).astype(np.float32)
    rng = np.random.default_rng(seed)
    tex = 0.5 + 0.4 * np.sin(pts[:, :1] * 7.0 + np.array([0.0, 1.0, 2.0])) * np.cos(pts[:, 2:3] * 5.0)
    tex = np.where(hit[:, None], tex, [0.35, 0.55, 0.9])
    colors = np.clip(tex + noise * rng.standard_normal(tex.shape), 0, 1)
    return ref, hit, pts, nrm, depth, colors
