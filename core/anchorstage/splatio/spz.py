# SPDX-License-Identifier: GPL-3.0-or-later
"""Niantic ``.spz`` (versions 2 and 3: one gzip stream), read and written per Niantic's open format.

Inside the gzip stream, little endian::

    header     magic 0x5053474e ("NGSP") uint32, version uint32, count uint32,
               sh_degree uint8, fractional_bits uint8, flags uint8 (1 = antialiased,
               2 = extension records follow the data), reserved uint8
    positions  count x 3 x 24-bit signed fixed point (value / 2^fractional_bits), metres
    alphas     count x uint8: activated opacity x 255
    colors     count x 3 x uint8: f_dc x 0.15 x 255 + 127.5 (the DC term, sRGB as in 3DGS PLYs)
    scales     count x 3 x uint8: (log scale + 10) x 16
    rotations  version 2: count x 3 x uint8, (x, y, z) of the unit quaternion with w >= 0,
               (q + 1) x 127.5; version 3: count x uint32 "smallest three": bits 30-31 index
               of the largest of (x, y, z, w), then the other three in order, 10 bits each
               (sign bit, 9-bit magnitude / 511 x sqrt(1/2))
    sh         count x K x 3 x uint8 (coefficient-major, RGB inner): (byte - 128) / 128

Frame: read and written without an axis change, as Niantic's own ply_to_spz / spz_to_ply tools
and PlayCanvas's splat-transform do (the library's optional RUB conversion is not applied), so
a PLY converted to .spz and back sits where it did. Version 4 (zstd streams) and SH degree 4
are refused. Splats read from an .spz keep every byte that re-encoding would not give back,
reused wherever it still decodes to the splat's values; the header's version, fractional bits
and flags and any extension bytes are kept too, so a round trip is bit-exact.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError
from ..limits import check_count
from ..sh import SH_C0, rest_count
from ..splats import Splats, StoredSplats
from . import _codec as C

__all__ = ["read_spz", "write_spz", "FORMAT_NAME", "MAGIC"]

FORMAT_NAME = "Niantic .spz"
MAGIC = 0x5053474E
_HEADER = np.dtype([("magic", "<u4"), ("version", "<u4"), ("count", "<u4"), ("sh_degree", "u1"),
                    ("fractional_bits", "u1"), ("flags", "u1"), ("reserved", "u1")])
_COLOR_SCALE = 0.15
_SQRT1_2 = math.sqrt(0.5)
_MAX_EXTENSION_BYTES = 1 << 20  # extension records after the data (flag 2): small metadata


def _layout(version: int, count: int, k: int) -> list[tuple[str, int]]:
    return [("position", 9), ("alpha", 1), ("color", 3), ("scale", 3), ("rotation", 3 if version == 2 else 4),
            ("sh", 3 * k)]


def _decode_positions(b: np.ndarray, fb: int) -> np.ndarray:
    v = b.reshape(-1, 3, 3).astype(np.int32)
    fixed = v[..., 0] | (v[..., 1] << 8) | (v[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    return C.f32(fixed.astype(np.float64) / (1 << fb))


def _encode_positions(means: np.ndarray, fb: int) -> np.ndarray:
    fixed = np.round(means.astype(np.float64) * (1 << fb)).astype(np.int64)
    u = (fixed & 0xFFFFFF).astype(np.uint32)
    return np.stack([(u >> s) & 0xFF for s in (0, 8, 16)], axis=-1).astype(np.uint8).reshape(len(means), 9)


def _decode_colors(b: np.ndarray) -> np.ndarray:
    f_dc = (b.astype(np.float64) / 255.0 - 0.5) / _COLOR_SCALE
    return C.decode_dc(f_dc, "sRGB")


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _decode_quats(b: np.ndarray, version: int) -> np.ndarray:
    """Rotation bytes → [N, 4] wxyz float32."""
    if version == 2:
        xyz = b.astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz ** 2).sum(1)))
        return C.f32(np.concatenate([w[:, None], xyz], axis=1))
    comp = b.astype(np.uint32)
    comp = comp[:, 0] | (comp[:, 1] << 8) | (comp[:, 2] << 16) | (comp[:, 3] << 24)
    largest = (comp >> 30).astype(np.int64)
    q = np.zeros((len(comp), 4))  # x y z w
    sum_sq = np.zeros(len(comp))
    for i in (3, 2, 1, 0):
        mine = largest != i
        mag = (comp & 511).astype(np.float64)
        neg = ((comp >> 9) & 1) == 1
        val = _SQRT1_2 * mag / 511.0
        val = np.where(neg, -val, val)
        q[mine, i] = val[mine]
        sum_sq += np.where(mine, val * val, 0.0)
        comp = np.where(mine, comp >> 10, comp)
    q[np.arange(len(q)), largest] = np.sqrt(np.maximum(0.0, 1.0 - sum_sq))
    return C.f32(q[:, [3, 0, 1, 2]])


def _encode_quats(quats: np.ndarray, version: int) -> np.ndarray:
    q = quats.astype(np.float64)[:, [1, 2, 3, 0]]  # x y z w
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if version == 2:
        q = q * np.where(q[:, 3:4] < 0, -127.5, 127.5) + 127.5
        return _to_u8(q[:, :3])
    largest = np.argmax(np.abs(q), axis=1)
    negate = q[np.arange(len(q)), largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        mine = largest != i
        negbit = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.floor(511.0 * np.abs(q[:, i]) / _SQRT1_2 + 0.5), 511).astype(np.uint32)
        comp = np.where(mine, (comp << np.uint32(10)) | (negbit << np.uint32(9)) | mag, comp)
    return np.stack([(comp >> s) & 0xFF for s in (0, 8, 16, 24)], axis=1).astype(np.uint8)


def _quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    bucket = 1 << (8 - bits)
    q = (np.round(x.astype(np.float64) * 128.0) + 128.0).astype(np.int64)
    q = np.trunc((q + bucket // 2) / bucket).astype(np.int64) * bucket  # C++ integer division
    return np.clip(q, 0, 255).astype(np.uint8)


def _encode_sh(rest: np.ndarray) -> np.ndarray:
    """[N, K, 3] → [N, 3K] bytes: 5 bits for degree 1, 4 for higher (Niantic's defaults)."""
    flat = rest.reshape(len(rest), -1)
    out = _quantize_sh(flat, 4)
    out[:, :9] = _quantize_sh(flat[:, :9], 5)
    return out


def _decode_sh(b: np.ndarray, k: int) -> np.ndarray:
    return C.f32((b.astype(np.float64) - 128.0) / 128.0).reshape(len(b), k, 3)


def _decoders(version: int, fb: int, k: int) -> dict:
    return {
        "position": lambda b: _decode_positions(b, fb),
        "alpha": lambda b: C.f32(b.astype(np.float64) / 255.0),
        "color": _decode_colors,
        "scale": lambda b: C.f32(np.exp(b.astype(np.float64) / 16.0 - 10.0)),
        "rotation": lambda b: _decode_quats(b, version),
        "sh": lambda b: _decode_sh(b, k),
    }


def _encoders(version: int, fb: int) -> dict:
    return {
        "position": lambda v: _encode_positions(v, fb),
        "alpha": lambda v: _to_u8(v.astype(np.float64) * 255.0),
        "color": lambda v: _to_u8(C.encode_dc(v, "sRGB") * (_COLOR_SCALE * 255.0) + 127.5),
        "scale": lambda v: _to_u8((np.log(np.maximum(v.astype(np.float64), 1e-30)) + 10.0) * 16.0),
        "rotation": lambda v: _encode_quats(v, version),
        "sh": _encode_sh,
    }


_WORKING = {"position": "means", "alpha": "opacities", "color": "colors", "scale": "scales", "rotation": "quats",
            "sh": "sh_rest"}


def _check_header(head: bytes, where: str) -> tuple[np.ndarray, int, int]:
    """The parsed header, the data bytes it declares and the most it allows (extensions)."""
    if len(head) < _HEADER.itemsize:
        raise InputError(f"{where} ({FORMAT_NAME}): the data ends inside the 16-byte header")
    h = np.frombuffer(head[:_HEADER.itemsize], dtype=_HEADER)[0]
    if int(h["magic"]) != MAGIC:
        raise InputError(f"{where} ({FORMAT_NAME}): no NGSP magic in the header")
    version, count, degree = int(h["version"]), int(h["count"]), int(h["sh_degree"])
    if version not in (2, 3):
        raise InputError(f"{where} ({FORMAT_NAME}): version {version} is not supported; AnchorStage reads versions "
                         "2 and 3 (gzip)" + (" (version 4 uses zstd streams)" if version == 4 else ""))
    if degree > 3:
        raise InputError(f"{where} ({FORMAT_NAME}): SH degree {degree} is not supported (0-3)")
    if int(h["fractional_bits"]) > 30:
        raise InputError(f"{where} ({FORMAT_NAME}): {int(h['fractional_bits'])} fractional bits is not valid")
    check_count("splats", count, where)
    need = count * sum(s for _, s in _layout(version, count, rest_count(degree)))
    return np.array([h]), need, need + (_MAX_EXTENSION_BYTES if int(h["flags"]) & 2 else 0)


def _inflate(p: Path, where: str) -> tuple[np.ndarray, bytes]:
    """The header and the data after it, never inflating past what the header declares."""
    try:
        with open(p, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise InputError(f"{where} cannot be read: {e.strerror or e}") from None
    if raw[:4] == b"NGSP":  # an uncompressed payload (early tools), or version 4
        header, need, cap = _check_header(raw, where)
        body = raw[_HEADER.itemsize:]
        eof, extra = True, b""
    elif raw[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            header, need, cap = _check_header(d.decompress(raw, _HEADER.itemsize), where)
            # A decompression bomb stops here: never more than one byte past the declared size.
            body = d.decompress(d.unconsumed_tail, cap + 1)
        except zlib.error as e:
            raise InputError(f"{where} ({FORMAT_NAME}): corrupt gzip stream ({e})") from None
        eof, extra = d.eof, d.unused_data
    else:
        raise InputError(f"{where} is not an .spz file ({FORMAT_NAME}: a gzip stream)")
    count = int(header[0]["count"])
    if len(body) > cap or extra:
        raise InputError(f"{where} ({FORMAT_NAME}) holds more data than its header declares for {count:,} splats")
    if len(body) < need:
        raise InputError(f"{where} ({FORMAT_NAME}) is truncated: {count:,} splats need {need:,} bytes of data, "
                         f"the stream holds {len(body):,}")
    if not eof:
        raise InputError(f"{where} ({FORMAT_NAME}): the gzip stream is cut short")
    return header, body


def read_spz(path: str | os.PathLike) -> Splats:
    """Read a Niantic ``.spz`` (versions 2 and 3).

    Raises:
        InputError: missing, corrupt, truncated, trailing data, unsupported version or degree.
    """
    p = Path(path)
    where = f".spz file {str(p)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist")
    header, body = _inflate(p, where)
    h = header[0]
    version, count, degree, fb = int(h["version"]), int(h["count"]), int(h["sh_degree"]), int(h["fractional_bits"])
    k = rest_count(degree)
    raw: dict[str, np.ndarray] = {}
    off = 0
    for name, size in _layout(version, count, k):
        raw[name] = np.frombuffer(body, np.uint8, count * size, off).reshape(count, size).copy()
        off += count * size
    raw["alpha"] = raw["alpha"][:, 0]
    extensions = np.frombuffer(body[off:], np.uint8).copy()
    dec, enc = _decoders(version, fb, k), _encoders(version, fb)
    values = {name: dec[name](raw[name]) for name in raw if name != "sh" or k}
    C.quats_checked(values["rotation"], f"{where} ({FORMAT_NAME})")
    columns: dict[str, np.ndarray] = {}
    for name, v in values.items():
        C.keep_raw(columns, {name: raw[name]}, {name: enc[name](v)})
    elements = {"header": header, "extensions": np.array([(b,) for b in extensions], dtype=[("byte", "u1")])}
    w = {_WORKING[n]: C.tensor(v) for n, v in values.items()}
    return Splats(means=w["means"], quats=w["quats"], scales=w["scales"], opacities=w["opacities"], colors=w["colors"],
                  sh_rest=w.get("sh_rest"), sh_encoding="sRGB", stored=StoredSplats("spz", columns, elements))


def write_spz(path: str | os.PathLike, splats: Splats) -> None:
    """Write splats as a Niantic ``.spz`` (gzip), atomically: version 3, or the version of the
    .spz the splats came from (its header fields and extension bytes kept).

    Positions use 12 fractional bits (0.24 mm) as Niantic's writer does, fewer when a splat lies
    beyond ±2048 m; SH coefficients are quantised to 5 bits (degree 1) and 4 bits (higher), as
    Niantic's defaults.
    """
    st = splats.stored if splats.stored is not None and splats.stored.format == "spz" else None
    header = np.zeros(1, _HEADER)
    header["magic"], header["version"], header["fractional_bits"] = MAGIC, 3, 12
    ext = b""
    if st is not None and "header" in st.elements:
        old = st.elements["header"]
        header["version"], header["fractional_bits"] = old["version"], old["fractional_bits"]
        header["flags"], header["reserved"] = old["flags"], old["reserved"]
        if "extensions" in st.elements:
            ext = np.ascontiguousarray(st.elements["extensions"]["byte"]).tobytes()
    w = C.working(splats)
    far = float(np.abs(w["means"]).max()) if len(splats) else 0.0
    fb = int(header["fractional_bits"][0])
    while fb > 0 and far * (1 << fb) >= (1 << 23) - 1:
        fb -= 1
    if far * (1 << fb) >= (1 << 23) - 1:
        raise InputError(f".spz file {str(path)!r}: a splat {far:.3g} m from the origin is beyond what 24-bit "
                         "positions can hold")
    header["fractional_bits"] = fb
    version = int(header["version"][0])
    k = splats.sh_rest.shape[1] if splats.sh_rest is not None else 0
    header["count"], header["sh_degree"] = len(splats), {0: 0, 3: 1, 8: 2, 15: 3}[k]
    current = {"means": w["means"], "opacities": w["opacities"], "colors": w["colors"], "scales": w["scales"],
               "quats": w["quats"], "sh_rest": C.sh_rest_of(splats, k)}
    dec, enc = _decoders(version, fb, k), _encoders(version, fb)
    cols = None if st is None else st.columns
    if st is not None and ("header" not in st.elements or fb != int(st.elements["header"]["fractional_bits"][0])):
        cols = {n: c for n, c in st.columns.items() if n != "position"}
    blobs = []
    for name, _ in _layout(version, len(splats), k):
        v = current[_WORKING[name]]
        if name == "sh" and not k:
            continue
        out = C.use_raw({name: enc[name](v)}, cols, [name], lambda c, n=name: dec[n](c[n]), v)[name]
        blobs.append(np.ascontiguousarray(out, dtype=np.uint8).tobytes())
    data = header.tobytes() + b"".join(blobs) + ext
    with atomic_file(path, ".spz file") as tmp:
        tmp.write_bytes(zlib.compress(data, 6, wbits=16 + zlib.MAX_WBITS))  # zlib's default, as Niantic's writer
