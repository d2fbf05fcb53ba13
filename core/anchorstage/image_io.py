# SPDX-License-Identifier: GPL-3.0-or-later
"""Photo input and 8-bit preview output.

Photos (PNG, JPEG, TIFF, WebP; HEIC where ``pillow_heif`` is installed) are sRGB and are
decoded to linear Rec.709; EXR input is already linear. EXIF orientation is applied so
the pixels are upright. EXIF intrinsics are read in :mod:`anchorstage.exif`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_file
from .errors import InputError
from .exr_input import read_exr_channels
from .input_files import check_input_file, open_input
from .limits import check_count

__all__ = ["LoadedImage", "load_image", "open_pillow_image", "srgb_to_linear", "linear_to_srgb", "save_png", "to_uint8_srgb"]


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear (IEC 61966-2-1)."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray, clip: bool = True) -> np.ndarray:
    """Linear values → sRGB-encoded values; clipped to [0, 1], or with ``clip=False`` only
    negatives are (the curve continues above 1, keeping HDR values)."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0 if clip else None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def to_uint8_srgb(linear_rgb: np.ndarray) -> np.ndarray:
    """[H, W, C] linear float → uint8 sRGB."""
    return np.round(linear_to_srgb(linear_rgb) * 255.0).astype(np.uint8)


@dataclass
class LoadedImage:
    """A decoded photo.

    Attributes:
        rgb_linear: [H, W, 3] float32 linear Rec.709.
        path: where it came from.
        exif: raw EXIF tags by name (empty when absent or unreadable).
        notes: human-readable notes about conversions applied (orientation, alpha dropped, ...).
    """

    rgb_linear: np.ndarray
    path: str
    exif: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.rgb_linear.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb_linear.shape[1])


def _register_heif() -> bool:
    try:
        import pillow_heif  # type: ignore

        pillow_heif.register_heif_opener()
        return True
    except ImportError:
        return False


def _load_exr(path: Path) -> np.ndarray:
    chans = read_exr_channels(path, "image").channels
    # Accept plain R,G,B or Blender's <Layer>.Combined.R naming.
    for prefix in ("", *sorted({n.rsplit(".", 1)[0] + "." for n in chans if n.endswith(".R")})):
        keys = [prefix + c for c in "RGB"]
        if all(k in chans for k in keys):
            return np.stack([chans[k] for k in keys], axis=-1).astype(np.float32)
    for key in ("Y", "R"):
        if key in chans:
            return np.repeat(chans[key][..., None], 3, axis=-1).astype(np.float32)
    raise InputError(f"image {str(path)!r}: EXR has no RGB channels (has {', '.join(sorted(chans))})")


def _srgb8_lut() -> np.ndarray:
    """[256] float32: 8-bit sRGB code → linear (a lookup: no float temporaries the size of the photo)."""
    return srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0)


def open_pillow_image(f: Any, where: str) -> Any:
    """``PIL.Image.open`` on an open file, its size checked against ``image_pixels`` before decoding.

    Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``) still applies on top: its
    warning is silenced (our limit decides) and its error becomes an :class:`InputError`.

    Raises:
        InputError: not an image Pillow reads, a decompression bomb, or over the pixel limit.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(f)
    except Image.DecompressionBombError as e:
        raise InputError(f"{where} is refused as a decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise InputError(f"{where} is not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # Pillow's plugins raise these for corrupt headers
        raise InputError(f"{where} cannot be read: {e}") from None
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise InputError(f"{where} has no pixels ({w}x{h})")
    try:
        check_count("image_pixels", w * h, f"{where} ({w}x{h})")
    except InputError:
        im.close()
        raise
    return im


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Load a photo as linear RGB.

    The pixel count is checked against the ``image_pixels`` limit (docs/limits.md) from the
    file's header, before anything is decoded.

    Raises:
        InputError: when the file is missing, unreadable, not an image, a special file (FIFO,
            device, folder), or over the pixel limit.
    """
    p = check_input_file(path, "image")
    notes: list[str] = []
    if p.suffix.lower() == ".exr":
        rgb = _load_exr(p)
        if not np.all(np.isfinite(rgb)):
            notes.append("non-finite EXR pixels replaced by 0")
            rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0)
        return LoadedImage(np.ascontiguousarray(rgb), str(p), {}, notes)

    if p.suffix.lower() in (".heic", ".heif") and not _register_heif():
        raise InputError(f"image {str(p)!r}: HEIC needs the 'pillow-heif' package (pip install pillow-heif)")
    from PIL import ImageOps

    where = f"image {str(p)!r}"
    f, _ = open_input(p, "image")
    try:
        with f, open_pillow_image(f, where) as im:
            im.load()
            exif = _exif_dict(im)
            upright = ImageOps.exif_transpose(im)
            if upright is not im:
                orientation = exif.get("Orientation")
                if orientation not in (None, 1):
                    notes.append(f"EXIF orientation {orientation} applied")
            im = upright
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                rgb = np.repeat(srgb_to_linear(arr)[..., None], 3, axis=-1)
                notes.append("grayscale image expanded to RGB")
            else:
                if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                    notes.append("alpha channel dropped")
                if mode in ("L", "LA", "1"):
                    notes.append("grayscale image expanded to RGB")
                rgb = _srgb8_lut()[np.asarray(im.convert("RGB"), dtype=np.uint8)]
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"{where}: not enough memory to decode it; use a smaller photo (see docs/limits.md)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # truncated or corrupt data found while decoding
        raise InputError(f"{where} cannot be read: {e}") from None
    return LoadedImage(np.ascontiguousarray(rgb), str(p), exif, notes)


def _exif_dict(im: Any) -> dict[str, Any]:
    """EXIF tags (base IFD and the Exif sub-IFD) by name; {} when missing or corrupt."""
    from PIL import ExifTags

    try:
        raw = im.getexif()
        tags: dict[str, Any] = {ExifTags.TAGS.get(k, str(k)): v for k, v in raw.items()}
        sub = raw.get_ifd(ExifTags.IFD.Exif)
        tags.update({ExifTags.TAGS.get(k, str(k)): v for k, v in sub.items()})
        return tags
    except Exception:  # corrupt EXIF must never stop a photo from loading
        return {}


def save_png(path: str | os.PathLike, image: np.ndarray, *, linear: bool = True) -> None:
    """Write an [H, W], [H, W, 3] or [H, W, 4] image as PNG atomically.

    Float input is encoded to sRGB 8-bit when ``linear`` is True, else scaled by 255;
    uint8/bool/uint16 input is written as is.
    """
    from PIL import Image

    a = np.asarray(image)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        a = to_uint8_srgb(a) if linear else np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    with atomic_file(path, "PNG file") as tmp:
        Image.fromarray(np.ascontiguousarray(a)).save(tmp, format="PNG")
