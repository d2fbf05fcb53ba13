# SPDX-License-Identifier: GPL-3.0-or-later
"""antimatter15 ``.splat`` (the web viewer's layout): no header, 32 bytes per splat, little endian::

    bytes  0-11   position x y z, float32, the file's frame (as a 3DGS PLY's)
    bytes 12-23   scale, float32, activated (standard deviations, not log)
    bytes 24-27   r g b a, uint8: the sRGB-encoded DC colour 0.5 + C0 f_dc and the activated
                  opacity, times 255
    bytes 28-31   rotation w x y z, uint8: the unit quaternion times 128, plus 128

No spherical harmonics, normals or extra properties fit. Colours are read as sRGB. Splats read
from a ``.splat`` keep their colour and rotation bytes, reused wherever they still decode to the
splat's values, so a round trip is bit-exact.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError
from ..limits import check_count
from ..splats import Splats, StoredSplats
from . import _codec as C

__all__ = ["read_splat", "write_splat", "FORMAT_NAME", "RECORD"]

FORMAT_NAME = "antimatter15 .splat"
#: One splat's record.
RECORD = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)), ("rot", "u1", (4,))])


def _decode_colors(rgba: np.ndarray) -> np.ndarray:
    return C.linear_from_srgb(rgba[:, :3].astype(np.float64) / 255.0)


def _decode_opacity(rgba: np.ndarray) -> np.ndarray:
    return C.f32(rgba[:, 3].astype(np.float64) / 255.0)


def _decode_quats(rot: np.ndarray) -> np.ndarray:
    return C.f32((rot.astype(np.float64) - 128.0) / 128.0)


def _bytes(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _encode(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    q = w["quats"].astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rgba = np.concatenate([_bytes(np.clip(C.srgb_bytes(w["colors"]), 0, 1) * 255.0),
                           _bytes(np.clip(w["opacities"].astype(np.float64), 0, 1) * 255.0)[:, None]], axis=1)
    return {"rgba": rgba, "rot": _bytes(q * 128.0 + 128.0)}


def read_splat(path: str | os.PathLike) -> Splats:
    """Read an antimatter15 ``.splat`` file.

    Raises:
        InputError: missing, empty, not a whole number of 32-byte records, non-finite or
            non-positive scales, zero rotations.
    """
    p = Path(path)
    where = f".splat file {str(p)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist")
    size = p.stat().st_size
    if size == 0 or size % RECORD.itemsize:
        raise InputError(f"{where} ({FORMAT_NAME}): {size:,} bytes is not a whole, non-zero number of "
                         f"{RECORD.itemsize}-byte splat records")
    n = size // RECORD.itemsize
    check_count("splats", n, where)
    try:
        rec = np.fromfile(p, dtype=RECORD, count=n)
    except OSError as e:
        raise InputError(f"{where} cannot be read: {e.strerror or e}") from None
    if len(rec) != n:
        raise InputError(f"{where} ({FORMAT_NAME}) changed while it was read")
    means, scales = C.f32(rec["position"]), C.f32(rec["scale"])
    for name, a in (("position", means), ("scale", scales)):
        if not np.isfinite(a).all():
            raise InputError(f"{where} ({FORMAT_NAME}): {int((~np.isfinite(a)).sum()):,} non-finite {name} values")
    if (scales < 0).any():
        raise InputError(f"{where} ({FORMAT_NAME}): {int((scales < 0).sum()):,} negative scale values")
    rgba, rot = np.array(rec["rgba"]), np.array(rec["rot"])
    quats = C.quats_checked(_decode_quats(rot), f"{where} ({FORMAT_NAME})")
    w = {"colors": _decode_colors(rgba), "opacities": _decode_opacity(rgba), "quats": quats}
    columns: dict[str, np.ndarray] = {}
    C.keep_raw(columns, {"rgba": rgba, "rot": rot}, _encode(w))
    return Splats(means=C.tensor(means), quats=C.tensor(quats), scales=C.tensor(scales),
                  opacities=C.tensor(w["opacities"]), colors=C.tensor(w["colors"]), sh_encoding="sRGB",
                  stored=StoredSplats("splat", columns))


def write_splat(path: str | os.PathLike, splats: Splats) -> None:
    """Write splats as an antimatter15 ``.splat`` file, atomically (DC colour only, sRGB bytes;
    colours and opacities clipped to [0, 1]).

    Args:
        path: destination ``.splat``.
        splats: the splats; ones read from a ``.splat`` keep their bytes where unchanged.
    """
    w = C.working(splats)
    enc = _encode(w)
    st = splats.stored.columns if splats.stored is not None and splats.stored.format == "splat" else None
    if st is not None and "rgba" in st:
        raw = st["rgba"]
        same = C.rows_equal(w["colors"], _decode_colors(raw)) & C.rows_equal(w["opacities"], _decode_opacity(raw))
        enc["rgba"][same] = raw[same]
    enc = C.use_raw(enc, st, ["rot"], lambda c: _decode_quats(c["rot"]), w["quats"])
    rec = np.zeros(len(splats), dtype=RECORD)
    rec["position"], rec["scale"], rec["rgba"], rec["rot"] = w["means"], w["scales"], enc["rgba"], enc["rot"]
    with atomic_file(path, ".splat file") as tmp:
        rec.tofile(tmp)
