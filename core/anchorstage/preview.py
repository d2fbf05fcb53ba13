# SPDX-License-Identifier: GPL-3.0-or-later
"""Looking at passes: false-colour views and the contact sheet (one row per frame, one column per
pass the registry marks with a ``preview``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import InputError

__all__ = ["contact_sheet", "preview_image", "colorize_depth", "region_colors"]


def colorize_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Log-depth heat map (near = bright yellow, far = dark purple; background black), sRGB floats."""
    valid = depth < 1e9
    t = np.zeros_like(depth)
    span = max(np.log(hi) - np.log(lo), 1e-9)
    t[valid] = np.clip((np.log(hi) - np.log(np.maximum(depth[valid], 1e-6))) / span, 0, 1)
    # A compact magma-like ramp.
    stops = np.array([[0.0, 0.0, 0.02], [0.3, 0.06, 0.45], [0.75, 0.2, 0.45], [0.99, 0.55, 0.25], [0.99, 0.98, 0.6]])
    x = t * (len(stops) - 1)
    i = np.clip(x.astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    rgb[~valid] = 0.0
    return rgb


def region_colors(region: np.ndarray) -> np.ndarray:
    """Distinct colour per region id (golden-ratio hues); -1 black."""
    import colorsys

    ids = np.unique(region)
    lut = {int(i): colorsys.hsv_to_rgb((0.61803 * (i + 1)) % 1.0, 0.65, 0.95) for i in ids if i >= 0}
    out = np.zeros(region.shape + (3,))
    for i, c in lut.items():
        out[region == i] = c
    return out


def preview_image(kind: str, name: str, passes: dict, depth_range: tuple[float, float]) -> np.ndarray:
    """[H, W, 3] sRGB floats in [0, 1] showing one pass.

    Args:
        kind: the registry's ``preview`` (``"srgb"``, ``"depth"``, ``"normal"``, ``"unit"``, ``"ids"``), or
            ``"image"`` for a ready sRGB image.
        name: the pass name.
        passes: pass name → numpy array (``alpha`` is used to blank the background of normals).
        depth_range: (near, far) metres of the depth colour ramp.
    """
    from .image_io import linear_to_srgb

    p = passes[name]
    views: dict[str, Callable[[], np.ndarray]] = {
        "srgb": lambda: linear_to_srgb(p),
        "depth": lambda: colorize_depth(p, *depth_range),
        "normal": lambda: np.where(passes["alpha"][..., None] > 1e-3, p * 0.5 + 0.5, 0.0) if "alpha" in passes
        else p * 0.5 + 0.5,
        "unit": lambda: np.repeat(np.clip(p, 0, 1)[..., None], 3, axis=-1),
        "ids": lambda: region_colors(p),
        "image": lambda: np.asarray(p, dtype=np.float32),
    }
    return views[kind]()


def contact_sheet(rows: list[tuple[str, dict]], path: Path, tile_width: int = 320,
                  columns: Optional[Sequence[str]] = None) -> Path:
    """Write a labelled grid PNG: one row per frame, one column per previewed pass of the registry.

    Args:
        rows: (label, passes) per frame; passes as numpy arrays (e.g. from :func:`anchorstage.read_exr`).
        path: output PNG.
        tile_width: width of each tile in pixels.
        columns: the columns in order (default: every previewed registry pass the rows hold): registry
            pass names, or other keys of the rows' dicts holding ready [H, W, 3] sRGB images in [0, 1]
            (e.g. a refreshed witness).
    """
    from PIL import Image, ImageDraw

    from .atomic import atomic_file
    from .passes import REGISTRY

    if not rows:
        raise InputError("contact sheet: no frames to show")
    kinds = {p.name: p.preview for p in REGISTRY if p.preview}
    if columns is None:
        columns = [p.name for p in REGISTRY if p.preview and all(p.name in passes for _, passes in rows)]
    missing = [c for c in columns if not all(c in passes for _, passes in rows)]
    if missing:
        raise InputError(f"contact sheet: rows lack the column(s) {', '.join(missing)}")
    columns = [(c, kinds.get(c, "image")) for c in columns]  # (name, how it is shown)
    if "depth" in rows[0][1]:
        depths = np.concatenate([p["depth"][p["depth"] < 1e9].ravel() for _, p in rows])
    else:
        depths = np.zeros(0)
    lo, hi = (float(np.percentile(depths, 1)), float(np.percentile(depths, 99))) if depths.size else (1.0, 10.0)
    h0, w0 = next(iter(rows[0][1].values())).shape[:2]
    th = int(round(tile_width * h0 / w0))
    label_h, pad = 18, 4
    sheet = Image.new("RGB", (len(columns) * (tile_width + pad) + pad + 60, len(rows) * (th + pad) + pad + label_h),
                      (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, (name, _) in enumerate(columns):
        draw.text((60 + pad + c * (tile_width + pad) + 4, 3), name.replace("_", " "), fill=(230, 230, 230))
    for r, (label, passes) in enumerate(rows):
        y = label_h + pad + r * (th + pad)
        draw.text((4, y + th // 2 - 6), label, fill=(230, 230, 230))
        for c, (name, kind) in enumerate(columns):
            tile = preview_image(kind, name, passes, (lo, hi))
            im = Image.fromarray(np.round(np.clip(tile, 0, 1) * 255).astype(np.uint8))
            resample = Image.NEAREST if kind == "ids" else Image.BILINEAR
            sheet.paste(im.resize((tile_width, th), resample), (60 + pad + c * (tile_width + pad), y))
    with atomic_file(path, "contact sheet") as tmp:
        sheet.save(tmp, format="PNG")
    return path
