# SPDX-License-Identifier: GPL-3.0-or-later
"""SuperSplat / PlayCanvas compressed PLY (``*.compressed.ply``), read and written per PlayCanvas's
published layout (the PlayCanvas engine and splat-transform readers and writers).

Splats come in chunks of 256, in file order. Elements::

    chunk   one row per chunk, float: min_x min_y min_z max_x max_y max_z
            min_scale_x min_scale_y min_scale_z max_scale_x max_scale_y max_scale_z
            [min_r min_g min_b max_r max_g max_b]          (older files: no colour range)
    vertex  one row per splat, uint: packed_position packed_rotation packed_scale packed_color
    sh      optional, one row per splat, uchar f_rest_0 .. f_rest_{3K-1} (K = 3, 8 or 15)

Bit layout (``u(v, b)`` = the b-bit field read as v / (2^b - 1); ``lerp(a, b, t)`` = a (1 - t) + b t)::

    packed_position  x: bits 21-31 (11), y: bits 11-20 (10), z: bits 0-10 (11), lerp in the chunk's box
    packed_scale     the same 11-10-11 split of log scales, lerp in the chunk's log-scale range
    packed_color     r: bits 24-31, g: 16-23, b: 8-15 (lerp in the chunk's colour range, or as is),
                     the sRGB-encoded DC colour 0.5 + C0 f_dc; opacity (activated): bits 0-7
    packed_rotation  bits 30-31: index of the largest of (rot_0..rot_3); then the other three in
                     order, 10 bits each (bits 20-29, 10-19, 0-9), value = (u - 0.5) sqrt(2); the
                     largest (made positive) = sqrt(1 - sum of squares)
    sh byte n        value = (t - 0.5) 8 with t = 0 (n = 0), 1 (n = 255), else (n + 0.5) / 256

Writing packs each chunk from its splats' range (the last chunk padded with its last splat for
the range, as PlayCanvas does); fresh files are sorted into Morton order first so chunks are
compact. Splats read from a compressed file keep their packed words and chunk ranges, reused
wherever they still decode to the splat's values, so a round trip is bit-exact.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..sh import SH_C0, degree_of
from ..splats import Splats, StoredSplats
from . import _codec as C
from ._plyfile import PlyData, read_ply_file, write_ply_file

__all__ = ["read_compressed_ply", "write_compressed_ply", "is_compressed", "splats_from_compressed", "FORMAT_NAME",
           "CHUNK_SIZE", "CHUNK_PROPS", "pack_chunks", "unpack"]

FORMAT_NAME = "SuperSplat compressed PLY"
CHUNK_SIZE = 256
CHUNK_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
               "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
               "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
_PACKED = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_SQRT2 = math.sqrt(2.0)


def is_compressed(data_or_names) -> bool:
    """True when a PLY's elements look like the compressed layout (a ``chunk`` element and packed vertices)."""
    names = data_or_names.elements if isinstance(data_or_names, PlyData) else data_or_names
    if "chunk" not in names or "vertex" not in names:
        return False
    v = names["vertex"]
    fields = v.dtype.names if isinstance(v, np.ndarray) else v
    return "packed_position" in (fields or ())


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((v >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float64) / ((1 << bits) - 1)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) * (1.0 - t) + b.astype(np.float64) * t


def unpack(packed: dict[str, np.ndarray], chunks: np.ndarray, chunk_of_row: np.ndarray,
           sh: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Decode packed splats into float32 PLY-style values.

    Args:
        packed: ``packed_position`` .. ``packed_color`` [N] uint32.
        chunks: the chunk table (structured, fields of :data:`CHUNK_PROPS`; colour range optional).
        chunk_of_row: [N] int index of each splat's chunk row.
        sh: optional ``f_rest_i`` [N] uint8 columns.

    Returns:
        ``means`` [N, 3], ``quats`` [N, 4] (rot_0..3), ``log_scales`` [N, 3], ``f_dc`` [N, 3],
        ``opacities`` [N], and with ``sh`` ``f_rest`` [N, 3K] (channel-major), all float32.
    """
    ch = chunks[chunk_of_row]
    pos, rot, scl, col = (packed[k].astype(np.uint32) for k in _PACKED)
    axes = (("x", 21, 11), ("y", 11, 10), ("z", 0, 11))
    means = np.stack([_lerp(ch[f"min_{a}"], ch[f"max_{a}"], _unorm(pos, s, b)) for a, s, b in axes], 1)
    logs = np.stack([_lerp(ch[f"min_scale_{a}"], ch[f"max_scale_{a}"], _unorm(scl, s, b)) for a, s, b in axes], 1)
    t = [_unorm(col, s, 8) for s in (24, 16, 8)]
    if "min_r" in (chunks.dtype.names or ()):
        t = [_lerp(ch[f"min_{c}"], ch[f"max_{c}"], tt) for c, tt in zip("rgb", t)]
    f_dc = (C.f32(np.stack(t, 1)).astype(np.float64) - 0.5) / SH_C0
    opac = _unorm(col, 0, 8)
    abc = [(_unorm(rot, s, 10) - 0.5) * _SQRT2 for s in (20, 10, 0)]
    m = np.sqrt(np.maximum(0.0, 1.0 - (abc[0] ** 2 + abc[1] ** 2 + abc[2] ** 2)))
    which = (rot >> np.uint32(30)).astype(np.int64)
    q = np.empty((len(rot), 4))
    for w in range(4):
        sel = which == w
        others = [i for i in range(4) if i != w]
        q[sel, w] = m[sel]
        for j, i in enumerate(others):
            q[sel, i] = abc[j][sel]
    out = {"means": C.f32(means), "quats": C.f32(q), "log_scales": C.f32(logs), "f_dc": C.f32(f_dc),
           "opacities": C.f32(opac)}
    if sh:
        out["f_rest"] = _sh_values(np.stack([sh[f"f_rest_{i}"] for i in range(len(sh))], 1))
    return out


def _sh_values(n: np.ndarray) -> np.ndarray:
    """SH bytes → float32 coefficients in [-4, 4]."""
    n = n.astype(np.float64)
    t = np.where(n == 0, 0.0, np.where(n == 255, 1.0, (n + 0.5) / 256.0))
    return C.f32((t - 0.5) * 8.0)


def _check_layout(data: PlyData, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    bad = lambda msg: InputError(f"{where} ({FORMAT_NAME}): {msg}")  # noqa: E731
    extra = [k for k in data.elements if k not in ("chunk", "vertex", "sh")]
    if extra:
        raise bad(f"unexpected element(s) {', '.join(extra)} (the layout has chunk, vertex and sh)")
    chunks, v, sh = data.elements["chunk"], data.elements["vertex"], data.elements.get("sh")
    names = list(chunks.dtype.names or ())
    if names not in (CHUNK_PROPS[:12], CHUNK_PROPS) or any(chunks.dtype[k] != np.float32 for k in names):
        raise bad("the chunk element must hold the 12 or 18 float properties " + " ".join(CHUNK_PROPS))
    if list(v.dtype.names or ()) != _PACKED or any(v.dtype[k] != np.uint32 for k in _PACKED):
        raise bad("the vertex element must hold the uint properties " + " ".join(_PACKED))
    if len(chunks) != -(-len(v) // CHUNK_SIZE):
        raise bad(f"{len(chunks):,} chunks for {len(v):,} splats (expected {-(-len(v) // CHUNK_SIZE):,}, "
                  f"{CHUNK_SIZE} splats each)")
    if sh is not None:
        k = len(sh.dtype.names or ()) // 3
        if len(sh) != len(v) or degree_of(k) < 1 or list(sh.dtype.names) != [f"f_rest_{i}" for i in range(3 * k)] \
                or any(sh.dtype[n] != np.uint8 for n in sh.dtype.names):
            raise bad("the sh element must hold one row per splat of uchar f_rest_0.. with 9, 24 or 45 properties")
    return chunks, v, sh


def splats_from_compressed(data: PlyData, where: str) -> Splats:
    """Splats from a parsed compressed PLY (packed words and chunk ranges kept in ``stored``)."""
    chunks, v, sh = _check_layout(data, where)
    n = len(v)
    chunk_of_row = np.arange(n, dtype=np.int32) // CHUNK_SIZE
    packed = {k: np.array(v[k]) for k in _PACKED}
    sh_cols = {k: np.array(sh[k]) for k in sh.dtype.names} if sh is not None else None
    u = unpack(packed, chunks, chunk_of_row, sh_cols)
    C.quats_checked(u["quats"], f"{where} ({FORMAT_NAME})")
    colors = C.decode_dc(u["f_dc"], "sRGB")
    stored_cols = dict(packed)
    stored_cols["chunk"] = chunk_of_row
    sh_rest = None
    if sh_cols:
        k = len(sh_cols) // 3
        sh_rest = u["f_rest"].reshape(-1, 3, k).transpose(0, 2, 1)
        stored_cols.update(sh_cols)
    stored = StoredSplats("compressed_ply", stored_cols, {"chunk": np.array(chunks)}, None, list(data.comments))
    return Splats(means=C.tensor(u["means"]), quats=C.tensor(u["quats"]),
                  scales=C.tensor(np.exp(u["log_scales"].astype(np.float64))), opacities=C.tensor(u["opacities"]),
                  colors=C.tensor(colors), sh_rest=None if sh_rest is None else C.tensor(sh_rest),
                  sh_encoding="sRGB", stored=stored)


def read_compressed_ply(path: str | os.PathLike) -> Splats:
    """Read a SuperSplat / PlayCanvas compressed PLY.

    Raises:
        InputError: missing, unreadable, malformed, or not the compressed layout.
    """
    p = Path(path)
    where = f"compressed PLY file {str(p)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist")
    data = read_ply_file(p, where)
    if not is_compressed(data):
        raise InputError(f"{where} ({FORMAT_NAME}) lacks the 'chunk' element and packed vertex properties")
    return splats_from_compressed(data, where)


def _pack_unorm(t: np.ndarray, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(t * top + 0.5), 0, top).astype(np.uint32)


def _normalize(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(hi - lo < 1e-5, 0.0, (x - lo) / (hi - lo))
    return np.where(x <= lo, 0.0, np.where(x >= hi, 1.0, t))


def pack_chunks(means: np.ndarray, log_scales: np.ndarray, dc_colors: np.ndarray, opacities: np.ndarray,
                quats: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pack splats into chunks of 256 in order (float32 inputs, as in the file).

    Args:
        means: [N, 3] centres.
        log_scales: [N, 3] log standard deviations.
        dc_colors: [N, 3] sRGB-encoded DC colours 0.5 + C0 f_dc.
        opacities: [N] activated opacities.
        quats: [N, 4] rot_0..rot_3 (any non-zero norm).

    Returns:
        ([ceil(N / 256), 18] float32 chunk ranges in :data:`CHUNK_PROPS` order, ``packed_*`` [N] uint32).
    """
    n = len(means)
    chunks = -(-n // CHUNK_SIZE)
    pad = chunks * CHUNK_SIZE - n

    def per_chunk(a):  # the last chunk padded with its last splat (for the ranges only), as PlayCanvas does
        a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) if pad else a
        return a.reshape(chunks, CHUNK_SIZE, -1)

    mp, sp_, cp = per_chunk(means), per_chunk(log_scales), per_chunk(dc_colors)
    lo_p, hi_p = mp.min(1), mp.max(1)
    lo_s, hi_s = np.clip(sp_.min(1), -20, 20).astype(np.float32), np.clip(sp_.max(1), -20, 20).astype(np.float32)
    lo_c, hi_c = cp.min(1), cp.max(1)
    row_chunk = np.arange(n) // CHUNK_SIZE

    def fields(x, lo, hi):
        return [_normalize(x[:, i].astype(np.float64), lo[row_chunk, i].astype(np.float64),
                           hi[row_chunk, i].astype(np.float64)) for i in range(3)]

    def p111011(t):
        return (_pack_unorm(t[0], 11) << np.uint32(21)) | (_pack_unorm(t[1], 10) << np.uint32(11)) | _pack_unorm(t[2], 11)

    tc = fields(dc_colors, lo_c, hi_c)
    color = (_pack_unorm(tc[0], 8) << np.uint32(24)) | (_pack_unorm(tc[1], 8) << np.uint32(16)) \
        | (_pack_unorm(tc[2], 8) << np.uint32(8)) | _pack_unorm(opacities.astype(np.float64), 8)
    q = quats.astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    rows = np.arange(n)
    largest = np.argmax(np.abs(q), axis=1)  # the first of equal magnitudes, as PlayCanvas picks
    q = np.where(q[rows, largest][:, None] < 0, -q, q)
    rot = largest.astype(np.uint32)
    others = np.where(np.arange(3)[None, :] < largest[:, None], np.arange(3)[None, :], np.arange(3)[None, :] + 1)
    for j in range(3):
        rot = (rot << np.uint32(10)) | _pack_unorm(q[rows, others[:, j]] * (_SQRT2 * 0.5) + 0.5, 10)
    table = np.concatenate([lo_p, hi_p, lo_s, hi_s, lo_c, hi_c], axis=1).astype(np.float32)
    return table, {"packed_position": p111011(fields(means, lo_p, hi_p)), "packed_rotation": rot,
                   "packed_scale": p111011(fields(log_scales, lo_s, hi_s)), "packed_color": color}


def _morton_order(means: np.ndarray) -> np.ndarray:
    lo, hi = means.min(0), means.max(0)
    q = np.clip(((means - lo) / np.maximum(hi - lo, 1e-12) * 1023).astype(np.int64), 0, 1023)
    code = np.zeros(len(means), np.int64)
    for bit in range(10):
        for axis in range(3):
            code |= ((q[:, axis] >> bit) & 1) << (3 * bit + axis)
    return np.argsort(code, kind="stable")


def _sh_bytes(values: np.ndarray) -> np.ndarray:
    return np.clip(np.trunc((values.astype(np.float64) / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8)


def _reusable_chunks(st: StoredSplats, w: dict[str, np.ndarray], n_chunks: int):
    """Which output chunks can keep their stored packed words and range: all their splats come from
    one stored chunk and still decode to their working values. Returns (ok [C] bool, stored chunk
    index [C]) or None."""
    table = st.elements.get("chunk")
    if table is None or "chunk" not in st.columns or not all(p in st.columns for p in _PACKED):
        return None
    n = len(w["means"])
    src_row = st.columns["chunk"].astype(np.int64)
    valid = (src_row >= 0) & (src_row < len(table))
    u = unpack({p: st.columns[p] for p in _PACKED}, table, np.where(valid, src_row, 0))
    row_ok = valid & C.rows_equal(w["means"], u["means"]) & C.rows_equal(w["quats"], u["quats"]) \
        & C.rows_equal(w["opacities"], u["opacities"]) \
        & C.rows_equal(w["scales"], C.f32(np.exp(u["log_scales"].astype(np.float64)))) \
        & C.rows_equal(w["colors"], C.decode_dc(u["f_dc"], "sRGB"))
    pad = n_chunks * CHUNK_SIZE - n
    first = src_row[::CHUNK_SIZE]
    same_src = np.concatenate([src_row, np.repeat(src_row[-1:], pad)]).reshape(n_chunks, CHUNK_SIZE) == first[:, None]
    oks = np.concatenate([row_ok, np.repeat(row_ok[-1:], pad)]).reshape(n_chunks, CHUNK_SIZE)
    return (same_src & oks).all(axis=1), first


def write_compressed_ply(path: str | os.PathLike, splats: Splats) -> None:
    """Write splats as a SuperSplat / PlayCanvas compressed PLY, atomically (sRGB colours; SH
    coefficients quantised to a byte in [-4, 4]; normals and extra properties are not part of
    the layout).

    Args:
        path: destination (conventionally ``*.compressed.ply``).
        splats: the splats; ones read from a compressed PLY keep their packed words and order.
    """
    n = len(splats)
    w = C.working(splats)
    st = splats.stored if splats.stored is not None and splats.stored.format == "compressed_ply" else None
    order = np.arange(n) if st is not None or n == 0 else _morton_order(w["means"])
    w = {k: v[order] for k, v in w.items()}
    k = splats.sh_rest.shape[1] if splats.sh_rest is not None else 0
    rest = C.sh_rest_of(splats, k)[order]
    f_rest = rest.transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major
    log_s = C.f32(np.log(np.maximum(w["scales"].astype(np.float64), 1e-30)))
    dc = C.f32(C.srgb_bytes(w["colors"]))
    n_chunks = -(-n // CHUNK_SIZE)
    table = np.zeros(n_chunks, dtype=[(p, "<f4") for p in CHUNK_PROPS])
    sh_out = _sh_bytes(f_rest)
    if st is not None and k and all(f"f_rest_{i}" in st.columns for i in range(3 * k)):
        raw = np.stack([st.columns[f"f_rest_{i}"] for i in range(3 * k)], 1)[order]
        same = C.rows_equal(C.f32(f_rest), _sh_values(raw))
        sh_out[same] = raw[same]
    if n:
        fresh, words = pack_chunks(w["means"], log_s, dc, w["opacities"], w["quats"])
        for i, p in enumerate(CHUNK_PROPS):
            table[p] = fresh[:, i]
        reuse = _reusable_chunks(st, w, n_chunks) if st is not None else None
        if reuse is not None:
            ok, src = reuse
            stored_table = st.elements["chunk"]
            for p in CHUNK_PROPS:  # older tables without colour ranges: 0..1 lerps exactly to t
                old = stored_table[p][src[ok]] if p in stored_table.dtype.names else float(p.startswith("max_"))
                table[p][ok] = old
            rows = np.repeat(ok, CHUNK_SIZE)[:n]
            for p in _PACKED:
                words[p][rows] = st.columns[p][rows]
    else:
        words = {p: np.zeros(0, np.uint32) for p in _PACKED}
    vertex = np.zeros(n, dtype=[(p, "<u4") for p in _PACKED])
    for p in _PACKED:
        vertex[p] = words[p]
    elements = {"chunk": table, "vertex": vertex}
    if k:
        sh = np.zeros(n, dtype=[(f"f_rest_{i}", "u1") for i in range(3 * k)])
        for i in range(3 * k):
            sh[f"f_rest_{i}"] = sh_out[:, i]
        elements["sh"] = sh
    comments = [c for c in (st.comments if st else []) if c != "generator AnchorStage"] or ["generator AnchorStage"]
    write_ply_file(path, elements, comments, what="compressed PLY file")
