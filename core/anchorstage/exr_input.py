# SPDX-License-Identifier: GPL-3.0-or-later
"""EXR files from outside: the header is read and checked before any pixel is.

OpenEXR allocates every channel at the size of the part's data window before it reads a pixel,
and a data window is four integers anyone can write. :func:`read_exr_channels` reads the headers
alone first and refuses: special files, deep images, subsampled channels, empty or inverted data
windows, a part over the ``image_pixels`` limit, and files whose parts hold more channel samples in
all than the ``exr_samples`` limit. Only then are the pixels read. Every reader of EXR input
(photos, depth maps, scene folders, ``read_exr``) goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .input_files import open_input
from .limits import check_count

__all__ = ["ExrChannels", "read_exr_channels"]


@dataclass
class ExrChannels:
    """The channels of an EXR file.

    Attributes:
        header: the first part's header (attribute name → value; ``channels`` as (name, x sampling,
            y sampling) tuples).
        channels: channel name → [H, W] numpy array (HALF → float16, FLOAT → float32, UINT → uint32),
            over all parts (a later part's channel of the same name wins).
    """

    header: dict[str, Any]
    channels: dict[str, np.ndarray]


def _window(header: dict[str, Any], where: str, index: int) -> tuple[int, int]:
    try:
        lo, hi = header["dataWindow"]
        width, height = int(hi[0]) - int(lo[0]) + 1, int(hi[1]) - int(lo[1]) + 1
    except (KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{where}: part {index} has no usable data window") from None
    if width <= 0 or height <= 0:
        raise InputError(f"{where}: part {index} has an empty data window ({width}x{height})")
    return width, height


def _check_headers(headers: list[dict[str, Any]], where: str) -> dict[str, tuple[int, int]]:
    """Refuse what the module docstring lists; return every declared channel's (height, width)."""
    if not headers:
        raise InputError(f"{where} holds no image parts")
    samples = 0
    declared: dict[str, tuple[int, int]] = {}
    for i, header in enumerate(headers):
        kind = str(header.get("type", ""))
        if "deep" in kind.lower():
            raise InputError(f"{where}: part {i} is a deep image ({kind}); only flat scanline or tiled EXRs are read")
        width, height = _window(header, where, i)
        check_count("image_pixels", width * height, f"{where} part {i} ({width}x{height})")
        chans = header["channels"]
        for name, xs, ys in chans:
            if (xs, ys) != (1, 1):
                raise InputError(f"{where}: channel {name!r} is subsampled ({xs}x{ys}); only full-resolution channels "
                                 "are read")
        samples += width * height * len(chans)
        declared.update({name: (height, width) for name, _, _ in chans})
    check_count("exr_samples", samples, where)
    return declared


def read_exr_channels(path: Any, what: str) -> ExrChannels:
    """Read every channel of an EXR after checking its headers (see the module docstring).

    Args:
        path: the ``.exr`` file.
        what: how messages name it (e.g. ``"depth file"``); the path is added.

    Raises:
        InputError: not a regular file, not a readable EXR, or over a limit.
    """
    import OpenEXR

    f, _ = open_input(path, what)
    where = f"{what} {str(path)!r}"
    with f:
        try:
            # .header converts every attribute; a corrupt string attribute raises UnicodeDecodeError here.
            headers = []
            for part in OpenEXR.File(f, header_only=True).parts:
                h = dict(part.header)
                h["channels"] = [(c.name, int(c.xSampling), int(c.ySampling)) for c in h.get("channels") or []]
                headers.append(h)
        except Exception as e:  # OpenEXR raises plain exceptions for corrupt files
            raise InputError(f"{where} cannot be read as EXR: {e}") from None
        declared = _check_headers(headers, where)
        f.seek(0)
        try:
            with OpenEXR.File(f, separate_channels=True) as exr:
                channels = {n: np.array(c.pixels) for part in exr.parts for n, c in part.channels.items()}
        except Exception as e:
            raise InputError(f"{where} cannot be read as EXR: {e}") from None
    # OpenEXR reports some failures (a truncated part) as a printed warning and drops or empties the part.
    for name, hw in declared.items():
        got = channels.get(name)
        if got is None or got.shape != hw:
            raise InputError(f"{where}: channel {name!r} could not be read (truncated or corrupt file)")
    return ExrChannels(headers[0], channels)
