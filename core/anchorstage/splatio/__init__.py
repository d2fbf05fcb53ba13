# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat files in and out: one reader/writer pair for every common format (see docs/formats.md).

=================  ===========================  ==========================================
format             files                        module
=================  ===========================  ==========================================
``ply``            ``*.ply`` (3DGS, SHARP's)    :mod:`~anchorstage.splatio.ply`
``sharp``          ``*.ply`` written for SHARP  :mod:`~anchorstage.splatio.sharp`
``compressed_ply`` ``*.compressed.ply``         :mod:`~anchorstage.splatio.compressed_ply`
``splat``          ``*.splat``                  :mod:`~anchorstage.splatio.splat`
``spz``            ``*.spz``                    :mod:`~anchorstage.splatio.spz`
=================  ===========================  ==========================================

:func:`read_splats` picks the reader from the file's content (PLY header, gzip/NGSP magic) and
then its extension; :func:`write_splats` from ``format`` or the extension. Splats read keep what
their file stored (``Splats.stored``) so writing the same format again reproduces it bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import InputError

if TYPE_CHECKING:  # torch loads only when a file is read or written (keeps `anchorstage --help` fast)
    from ..camera import Camera
    from ..splats import Splats

__all__ = ["FORMATS", "detect_format", "format_for_path", "read_splats", "write_splats", "SplatFileInfo", "splat_file_info"]

#: Format name → (description, extensions).
FORMATS = {
    "ply": ("standard 3DGS PLY", (".ply",)),
    "sharp": ("SHARP-flavoured PLY (apple/ml-sharp)", (".ply",)),
    "compressed_ply": ("SuperSplat / PlayCanvas compressed PLY", (".compressed.ply",)),
    "splat": ("antimatter15 .splat", (".splat",)),
    "spz": ("Niantic .spz (versions 2-3)", (".spz",)),
}


def format_for_path(path: str | os.PathLike) -> Optional[str]:
    """The format a file name implies (``*.compressed.ply`` before ``*.ply``), or None."""
    name = Path(path).name.lower()
    if name.endswith(".compressed.ply"):
        return "compressed_ply"
    return {".ply": "ply", ".splat": "splat", ".spz": "spz"}.get(Path(name).suffix)


def detect_format(path: str | os.PathLike) -> str:
    """The format of an existing file: from its content where it has a signature, else its name.

    Raises:
        InputError: missing file, or neither content nor name tells a known format.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"splat file {str(p)!r} does not exist")
    if not p.is_file():
        raise InputError(f"splat file {str(p)!r} is not a regular file")
    try:
        with open(p, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise InputError(f"splat file {str(p)!r} cannot be read: {e.strerror or e}") from None
    if head.startswith(b"ply"):
        from ._plyfile import read_header_only
        from .compressed_ply import is_compressed

        header = read_header_only(p, f"PLY file {str(p)!r}")
        names = {name: [q for q, _ in props] for name, _, props in header.elements}
        return "compressed_ply" if is_compressed(names) else "ply"
    if head[:2] == b"\x1f\x8b" or head == b"NGSP":
        return "spz"
    fmt = format_for_path(p)
    if fmt in ("splat", "spz"):
        return fmt
    if fmt is not None:  # a .ply without the PLY magic
        raise InputError(f"splat file {str(p)!r} is named like a {FORMATS[fmt][0]} but does not start with 'ply'")
    raise InputError(f"splat file {str(p)!r}: unknown format (expected " +
                     ", ".join(sorted({e for _, exts in FORMATS.values() for e in exts})) + ")")


def read_splats(path: str | os.PathLike, *, numpy: bool = False) -> Splats:
    """Read a splat file of any supported format.

    ``numpy=True`` gives numpy-backed splats (:attr:`Splats.numpy_backed`); a PLY is then read
    without loading torch (the other formats decode through it).

    Returns:
        Splats in the file's own frame (colours linear; SH, raw values, extra properties and
        elements in ``Splats.stored``). SHARP files stay in their camera frame: see
        :func:`anchorstage.splatio.sharp.placed` for AnchorStage's Z-up world.

    Raises:
        InputError: missing, unknown or malformed file (the message names the format detected).
    """
    fmt = detect_format(path)
    if fmt == "ply":
        from .ply import read_ply

        return read_ply(path, numpy=numpy)
    if fmt == "compressed_ply":
        from .compressed_ply import read_compressed_ply as read
    elif fmt == "splat":
        from .splat import read_splat as read
    else:
        from .spz import read_spz as read
    splats = read(path)
    return splats.numpy() if numpy else splats


def write_splats(path: str | os.PathLike, splats: Splats, format: Optional[str] = None, *,
                 camera: Optional[Camera] = None) -> str:
    """Write splats in one of :data:`FORMATS`, atomically.

    Args:
        path: destination file.
        splats: the splats (in the frame the file should hold).
        format: a key of :data:`FORMATS`, or None to pick it from the file name.
        camera: for ``"sharp"``: the photo camera (world frame); the splats are written in its
            OpenCV frame. Without it the splats must come from a SHARP file (its camera is kept).

    Returns:
        The format written.

    Raises:
        InputError: unknown format or name, or a SHARP export without a camera.
    """
    from ..splats import Splats

    if not isinstance(splats, Splats):
        raise InputError(f"write_splats needs Splats (got {type(splats).__name__})")
    if splats.numpy_backed:  # the writers encode from tensors
        splats = splats.to("cpu")
    fmt = format or format_for_path(path)
    if fmt not in FORMATS:
        raise InputError(f"splat file {str(path)!r}: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"
                         if format else f"splat file {str(path)!r}: cannot tell the format from the name; "
                         f"use one of {', '.join(dict.fromkeys(e for _, exts in FORMATS.values() for e in exts))} or pass a format")
    if camera is not None and fmt != "sharp":
        raise InputError(f"a camera is only written by the 'sharp' format (not {fmt!r})")
    if fmt == "ply":
        from .ply import write_ply

        write_ply(path, splats)
    elif fmt == "sharp":
        from .sharp import write_sharp

        write_sharp(path, splats, camera)
    elif fmt == "compressed_ply":
        from .compressed_ply import write_compressed_ply

        write_compressed_ply(path, splats)
    elif fmt == "splat":
        from .splat import write_splat

        write_splat(path, splats)
    else:
        from .spz import write_spz

        write_spz(path, splats)
    return fmt


@dataclass
class SplatFileInfo:
    """A summary of a splat file (``anchorstage info``).

    Attributes:
        path: the file.
        format: a key of :data:`FORMATS` (``"sharp"`` for PLYs with SHARP's camera elements).
        count: number of splats.
        sh_degree: 0..3.
        sh_encoding: ``"sRGB"`` or ``"linearRGB"``.
        bounds_min: [3] smallest centre coordinates, metres, the file's frame.
        bounds_max: [3] largest centre coordinates, metres, the file's frame.
        camera: the photo camera (SHARP files; placed as AnchorStage places photos) or None.
        extra_properties: per-splat properties beyond the format's own (e.g. ``object_id``).
        extra_elements: file-level elements beyond the splats (e.g. SHARP's ``intrinsic``).
        comments: header comments.
    """

    path: str
    format: str
    count: int
    sh_degree: int
    sh_encoding: str
    bounds_min: list[float]
    bounds_max: list[float]
    camera: Optional[Camera]
    extra_properties: list[str]
    extra_elements: list[str]
    comments: list[str]


def splat_file_info(path: str | os.PathLike, splats: Optional[Splats] = None) -> SplatFileInfo:
    """Read a splat file (or take ``splats`` already read from it) and summarise it."""
    from .sharp import camera, is_sharp

    sp = read_splats(path) if splats is None else splats
    st = sp.stored
    fmt = st.format if st is not None else format_for_path(path) or "ply"
    if fmt == "ply" and is_sharp(sp):
        fmt = "sharp"
    means = sp.means.detach().cpu().numpy()
    known = {"x", "y", "z", "opacity", "packed_position", "packed_rotation", "packed_scale", "packed_color", "chunk",
             "rgba", "rot", "position", "alpha", "color", "scale", "rotation", "sh"}
    extra_props = [] if st is None or st.format != "ply" else \
        [c for c in st.columns if c not in known and not c.startswith(("f_dc_", "f_rest_", "scale_", "rot_"))]
    return SplatFileInfo(
        path=str(path), format=fmt, count=len(sp), sh_degree=sp.sh_degree, sh_encoding=sp.sh_encoding,
        bounds_min=means.min(0).tolist() if len(sp) else [0.0] * 3, bounds_max=means.max(0).tolist() if len(sp) else [0.0] * 3,
        camera=camera(sp, str(path)) if fmt == "sharp" else None,
        extra_properties=extra_props,
        extra_elements=[e for e in (st.elements if st is not None and st.format == "ply" else {})],
        comments=list(st.comments) if st is not None else [],
    )
