# SPDX-License-Identifier: GPL-3.0-or-later
"""User depth maps: ``.npy``, ``.exr`` and 16-bit PNG in millimetres.

Depth is planar z along the camera axis in metres (what Blender's Depth pass holds).
Invalid values — NaN, ±inf, ≤ 0, beyond the far limit, Blender's 1e10 background — become
``inf``: masked, never splatted (the sky is infinitely far away).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import InputError
from .exr_input import read_exr_channels
from .input_files import check_input_file, open_input
from .limits import check_count
from .npy_io import read_npy

__all__ = ["load_depth", "mask_invalid_depth", "DEFAULT_FAR_LIMIT_M"]

#: Depth beyond this many metres is treated as sky unless the caller says otherwise.
DEFAULT_FAR_LIMIT_M = 1000.0
#: Relative tolerance on aspect ratio when resampling a depth map to the image size.
_ASPECT_TOL = 0.01
# EXR channel names to try, best first (Blender's Depth pass, then plain single channels).
_EXR_DEPTH_KEYS = ("Depth.Z", "Z", "Y", "R", "V", "depth")


def mask_invalid_depth(depth: np.ndarray, far_limit_m: float = DEFAULT_FAR_LIMIT_M) -> tuple[np.ndarray, int]:
    """Replace NaN, ±inf, ≤ 0 and beyond-``far_limit_m`` values with ``inf``.

    Args:
        depth: [H, W] planar z, metres.
        far_limit_m: values above this are sky.

    Returns:
        ([H, W] float32 depth with invalid values set to inf, number of invalid pixels).
    """
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(d) | (d <= 0) | (d > far_limit_m)
    return np.where(bad, np.float32(np.inf), d).astype(np.float32), int(np.count_nonzero(bad))


def _read_npy(p: Path, where: str) -> np.ndarray:
    # The header is checked against the file size and the pixel limit before numpy allocates.
    return read_npy(p, "depth file", limit_name="image_pixels", kinds="fiu")


def _read_exr(p: Path, where: str) -> np.ndarray:
    chans = read_exr_channels(p, "depth file").channels
    if len(chans) == 1:
        return next(iter(chans.values()))
    for key in _EXR_DEPTH_KEYS:
        hits = sorted(n for n in chans if n == key or n.endswith("." + key))
        if hits:
            return chans[hits[0]]
    raise InputError(f"{where}: EXR has no depth channel (looked for *Depth.Z, Z, Y, R; has {', '.join(sorted(chans))})")


def _read_png(p: Path, where: str) -> np.ndarray:
    from .image_io import open_pillow_image

    f, _ = open_input(p, "depth file")
    try:
        with f, open_pillow_image(f, where) as im:
            mode = im.mode
            a = np.asarray(im)
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # corrupt data found while decoding
        raise InputError(f"{where} cannot be read as PNG: {e}") from None
    if mode not in ("I;16", "I;16B", "I;16L", "I") or a.ndim != 2:
        raise InputError(f"{where}: a PNG depth map must be 16-bit single-channel millimetres (got mode {mode})")
    mm = a.astype(np.float32)
    mm[mm == 0] = np.nan  # 0 mm is the usual "no depth" marker
    return mm / 1000.0


def _resample_nearest(d: np.ndarray, height: int, width: int) -> np.ndarray:
    # Nearest keeps depth edges sharp: averaging would invent depths between foreground and background.
    ys = np.minimum(((np.arange(height) + 0.5) * d.shape[0] / height).astype(np.int64), d.shape[0] - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * d.shape[1] / width).astype(np.int64), d.shape[1] - 1)
    return d[ys[:, None], xs[None, :]]


def _expected_hw(expected_hw: Any) -> Optional[tuple[int, int]]:
    if expected_hw is None:
        return None
    try:
        eh, ew = expected_hw
    except (TypeError, ValueError):
        raise InputError(f"load_depth: expected_hw must be (height, width) (got {expected_hw!r})") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (eh, ew)):
        raise InputError(f"load_depth: expected_hw must be two positive integers (got {expected_hw!r})")
    check_count("image_pixels", int(eh) * int(ew), f"load_depth: expected_hw {int(ew)}x{int(eh)}")
    return int(eh), int(ew)


def _far_limit(far_limit_m: Any) -> float:
    if isinstance(far_limit_m, bool) or not isinstance(far_limit_m, (int, float, np.integer, np.floating)):
        raise InputError(f"load_depth: far_limit_m must be a number of metres (got {far_limit_m!r})")
    v = float(far_limit_m)
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"load_depth: far_limit_m must be a positive finite number of metres (got {far_limit_m!r})")
    return v


def load_depth(path: str | os.PathLike, expected_hw: Optional[tuple[int, int]] = None,
               far_limit_m: float = DEFAULT_FAR_LIMIT_M) -> tuple[np.ndarray, list[str]]:
    """Load a metric depth map.

    Args:
        path: ``.npy`` (metres), ``.exr`` (metres; a single channel, Blender's ``*.Depth.Z``,
            or ``Z``/``Y``/``R``) or ``.png`` (16-bit, millimetres; 0 = no depth).
        expected_hw: (height, width) of the image it belongs to. A map of another size is
            resampled (nearest) when its aspect ratio matches within 1 %, else rejected.
        far_limit_m: depths beyond this (metres) are sky.

    Returns:
        depth_m: [H, W] float32 planar z in metres; invalid pixels are ``inf``.
        notes: human-readable notes (pixels masked, resampling done).

    Raises:
        InputError: missing or unreadable file, unknown format, wrong shape, no valid pixel.
    """
    p = check_input_file(path, "depth file")
    where = f"depth file {str(p)!r}"
    hw = _expected_hw(expected_hw)
    far_limit_m = _far_limit(far_limit_m)
    ext = p.suffix.lower()
    readers = {".npy": _read_npy, ".exr": _read_exr, ".png": _read_png}
    if ext not in readers:
        raise InputError(f"{where}: unknown depth format {ext!r} (use .npy, .exr or 16-bit .png in millimetres)")
    a = np.asarray(readers[ext](p, where), dtype=np.float32)
    a = np.squeeze(a) if a.ndim == 3 and 1 in (a.shape[0], a.shape[-1]) else a
    if a.ndim != 2 or a.size == 0:
        raise InputError(f"{where} must be a 2-D [H, W] map (got shape {list(a.shape)})")
    notes: list[str] = []
    if hw is not None and tuple(a.shape) != hw:
        h, w = a.shape
        eh, ew = hw
        if abs((w / h) / (ew / eh) - 1.0) > _ASPECT_TOL:
            raise InputError(f"{where} is {w}x{h} but the image is {ew}x{eh}; their aspect ratios differ "
                             f"({w / h:.4f} vs {ew / eh:.4f}), so it cannot be resampled to match")
        a = _resample_nearest(a, eh, ew)
        notes.append(f"depth resampled from {w}x{h} to {ew}x{eh} (nearest; aspect ratios match)")
    depth, n_bad = mask_invalid_depth(a, far_limit_m)
    if n_bad == depth.size:
        raise InputError(f"{where} has no valid depth: every pixel is NaN, inf, ≤ 0 or beyond {far_limit_m:g} m")
    if n_bad:
        notes.append(f"{n_bad} pixels ({n_bad / depth.size:.1%}) have no valid depth (NaN, inf, ≤ 0 or beyond "
                     f"{far_limit_m:g} m) and are masked as sky")
    return depth, notes
