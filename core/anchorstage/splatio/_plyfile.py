# SPDX-License-Identifier: GPL-3.0-or-later
"""The PLY container (header, binary little/big endian and ASCII bodies), validated before allocating.

Shared by the standard 3DGS PLY, SuperSplat's compressed PLY and SHARP's PLY. Every declared
count is checked against the bytes the file really holds (and the splat count against
:func:`anchorstage.limits.check_count`) before anything is allocated; a malformed header, a
count/data mismatch (too little or trailing data), ASCII rows that disagree with the header
and non-finite float values raise :class:`~anchorstage.errors.InputError` naming the format
and the problem. List properties (a mesh's faces) are not splat data and are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..atomic import atomic_file
from ..errors import InputError
from ..limits import check_count

__all__ = ["PlyData", "read_ply_file", "write_ply_file", "PLY_TYPES", "ply_type_name", "read_header_only"]

#: PLY scalar type names → numpy dtype codes (without byte order).
PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TYPE_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
               "f4": "float", "f8": "double"}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_MAX_HEADER_BYTES = 1 << 20  # a header past 1 MiB is not a PLY header
_MAX_ELEMENTS = 1024


def ply_type_name(dtype: np.dtype) -> str:
    """The PLY type name of a numpy scalar dtype."""
    code = np.dtype(dtype).str[1:]
    if code not in _TYPE_NAMES:
        raise InputError(f"PLY cannot store values of type {np.dtype(dtype)}")
    return _TYPE_NAMES[code]


@dataclass
class PlyData:
    """A parsed PLY file.

    Attributes:
        format: ``"binary_little_endian"``, ``"binary_big_endian"`` or ``"ascii"``.
        elements: element name → structured array (native little-endian dtypes), in file order.
        comments: the ``comment`` lines' text.
        obj_info: the ``obj_info`` lines' text.
    """

    format: str
    elements: dict[str, np.ndarray] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    obj_info: list[str] = field(default_factory=list)


@dataclass
class _Header:
    format: str
    elements: list[tuple[str, int, list[tuple[str, str]]]]  # (name, count, [(prop, dtype code)])
    comments: list[str]
    obj_info: list[str]
    size: int  # bytes up to and including end_header's newline


def _parse_header(raw: bytes, where: str, count_element: Optional[str]) -> _Header:
    if not raw.startswith(b"ply\n") and not raw.startswith(b"ply\r\n"):
        raise InputError(f"{where} is not a PLY file (no 'ply' magic)")
    end = raw.find(b"end_header")
    if end < 0:
        raise InputError(f"{where}: PLY header has no end_header line" +
                         (" within its first 1 MiB" if len(raw) >= _MAX_HEADER_BYTES else ""))
    nl = raw.find(b"\n", end)
    if nl < 0:
        raise InputError(f"{where}: PLY header's end_header line is not terminated")
    if raw[end:nl].rstrip(b"\r") != b"end_header" or (end > 0 and raw[end - 1:end] != b"\n"):
        raise InputError(f"{where}: PLY header's end_header line is malformed")
    try:
        text = raw[:end].decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{where}: PLY header is not ASCII text") from None
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    comments: list[str] = []
    obj_info: list[str] = []
    for lineno, line in enumerate(text.splitlines()[1:], start=2):
        words = line.split()
        if not words:
            continue
        key = words[0]
        if key == "comment":
            comments.append(line.strip()[len("comment"):].strip())
        elif key == "obj_info":
            obj_info.append(line.strip()[len("obj_info"):].strip())
        elif key == "format":
            if fmt is not None:
                raise InputError(f"{where}: PLY header has two format lines")
            if len(words) != 3 or words[1] not in _FORMATS or words[2] != "1.0":
                raise InputError(f"{where}: unsupported PLY format line {line.strip()!r} "
                                 f"(expected 'format ascii|binary_little_endian|binary_big_endian 1.0')")
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise InputError(f"{where}: PLY header line {lineno} {line.strip()!r} must be 'element NAME COUNT'")
            if any(e[0] == words[1] for e in elements):
                raise InputError(f"{where}: PLY header declares element {words[1]!r} twice")
            if len(elements) >= _MAX_ELEMENTS:
                raise InputError(f"{where}: PLY header declares more than {_MAX_ELEMENTS} elements")
            count = int(words[2])
            if words[1] == count_element:
                check_count("splats", count, f"{where} (element {words[1]!r})")
            elements.append((words[1], count, []))
        elif key == "property":
            if not elements:
                raise InputError(f"{where}: PLY header line {lineno}: property before any element")
            if len(words) >= 2 and words[1] == "list":
                raise InputError(f"{where}: element {elements[-1][0]!r} has a list property ({line.strip()!r}); "
                                 "list properties (mesh faces) are not splat data")
            if len(words) != 3:
                raise InputError(f"{where}: PLY header line {lineno} {line.strip()!r} must be 'property TYPE NAME'")
            if words[1] not in PLY_TYPES:
                raise InputError(f"{where}: unknown PLY property type {words[1]!r} (line {lineno})")
            props = elements[-1][2]
            if any(p[0] == words[2] for p in props):
                raise InputError(f"{where}: element {elements[-1][0]!r} declares property {words[2]!r} twice")
            props.append((words[2], PLY_TYPES[words[1]]))
        else:
            raise InputError(f"{where}: unknown PLY header line {lineno}: {line.strip()!r}")
    if fmt is None:
        raise InputError(f"{where}: PLY header has no format line")
    for name, count, props in elements:
        if not props and count:
            raise InputError(f"{where}: element {name!r} has {count} rows but no properties")
    return _Header(fmt, elements, comments, obj_info, nl + 1)


def read_header_only(path: Path, where: str) -> Optional[_Header]:
    """The parsed header of a PLY file, or None when the file does not start with the PLY magic."""
    with open(path, "rb") as f:
        raw = f.read(_MAX_HEADER_BYTES)
    if not raw.startswith(b"ply"):
        return None
    return _parse_header(raw, where, None)


def _check_finite(arr: np.ndarray, element: str, where: str) -> None:
    for name in arr.dtype.names or ():
        col = arr[name]
        if col.dtype.kind == "f" and col.size and not np.isfinite(col).all():
            bad = int(np.count_nonzero(~np.isfinite(col)))
            raise InputError(f"{where}: {bad:,} non-finite value(s) in property {name!r} of element {element!r}")


def _read_binary(data: memoryview, header: _Header, where: str) -> dict[str, np.ndarray]:
    order = _FORMATS[header.format]
    sizes = []
    for name, count, props in header.elements:
        dt = np.dtype([(p, order + t) for p, t in props])
        sizes.append((name, count, dt))
    need = sum(c * dt.itemsize for _, c, dt in sizes)
    have = len(data)
    if have < need:
        raise InputError(f"{where}: PLY ({header.format}) is truncated: its header declares {need:,} bytes of "
                         f"element data, the file holds {have:,}")
    if have > need:
        raise InputError(f"{where}: PLY ({header.format}) has {have - need:,} bytes of trailing data after the "
                         "elements its header declares (a count that disagrees with the data?)")
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, count, dt in sizes:
        arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
        offset += count * dt.itemsize
        out[name] = arr.astype(dt.newbyteorder("<")) if order == ">" else arr.copy()
    return out


def _read_ascii(data: bytes, header: _Header, where: str) -> dict[str, np.ndarray]:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise InputError(f"{where}: ASCII PLY body holds non-ASCII bytes") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    need = sum(c for _, c, _ in header.elements)
    if len(lines) < need:
        raise InputError(f"{where}: ASCII PLY is truncated: its header declares {need:,} rows, the file holds {len(lines):,}")
    if len(lines) > need:
        raise InputError(f"{where}: ASCII PLY has {len(lines) - need:,} rows more than its header declares")
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, count, props in header.elements:
        rows = [ln.split() for ln in lines[start:start + count]]
        bad = next((i for i, r in enumerate(rows) if len(r) != len(props)), None)
        if bad is not None:
            raise InputError(f"{where}: ASCII PLY row {bad + 1} of element {name!r} has {len(rows[bad])} values, "
                             f"the header declares {len(props)}")
        arr = np.zeros(count, dtype=[(p, "<" + t) for p, t in props])
        for i, (p, t) in enumerate(props):
            tokens = [r[i] for r in rows]
            try:
                if t[0] == "f":
                    arr[p] = np.array(tokens, dtype=np.float64)
                else:
                    values = np.array([int(tok) for tok in tokens], dtype=np.int64)
                    info = np.iinfo(t)
                    if values.size and (values.min() < info.min or values.max() > info.max):
                        raise ValueError(f"out of range for {_TYPE_NAMES[t]}")
                    arr[p] = values
            except (ValueError, OverflowError) as e:
                raise InputError(f"{where}: ASCII PLY property {p!r} of element {name!r} holds a value that is not a "
                                 f"valid {_TYPE_NAMES[t]} ({e})") from None
        out[name] = arr
        start += count
    return out


def read_ply_file(path: str | os.PathLike, what: str, count_element: str = "vertex") -> PlyData:
    """Read and validate a whole PLY file.

    Args:
        path: the file.
        what: how to name the file in messages (e.g. ``"PLY file 'a.ply'"``).
        count_element: the element whose row count is checked against the ``splats`` limit.

    Raises:
        InputError: unreadable, malformed, inconsistent or non-finite (see the module docstring).
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(_MAX_HEADER_BYTES)
            header = _parse_header(head, what, count_element)
            size = os.fstat(f.fileno()).st_size
            body_size = size - header.size
            if header.format != "ascii":
                need = sum(c * sum(np.dtype(t).itemsize for _, t in props) for _, c, props in header.elements)
                if body_size != need:  # refuse before reading (and allocating) anything
                    if body_size < need:
                        raise InputError(f"{what}: PLY ({header.format}) is truncated: its header declares {need:,} bytes "
                                         f"of element data, the file holds {max(body_size, 0):,}")
                    raise InputError(f"{what}: PLY ({header.format}) has {body_size - need:,} bytes of trailing data "
                                     "after the elements its header declares (a count that disagrees with the data?)")
            else:
                # Each ASCII value takes at least 2 bytes (digit + separator): bound the rows first.
                need = sum(c * 2 * len(props) for _, c, props in header.elements)
                if body_size < need:
                    raise InputError(f"{what}: ASCII PLY is truncated: its header declares more values than "
                                     f"{max(body_size, 0):,} bytes can hold")
            f.seek(header.size)
            body = f.read()
    except OSError as e:
        raise InputError(f"{what} cannot be read: {e.strerror or e}") from None
    elements = _read_binary(memoryview(body), header, what) if header.format != "ascii" else _read_ascii(body, header, what)
    for name, arr in elements.items():
        _check_finite(arr, name, what)
    return PlyData(header.format, elements, header.comments, header.obj_info)


def write_ply_file(path: str | os.PathLike, elements: dict[str, np.ndarray], comments: list[str] = (),
                   obj_info: list[str] = (), what: str = "PLY file") -> None:
    """Write structured arrays as a binary little-endian PLY, atomically.

    Args:
        path: destination.
        elements: element name → structured array (scalar fields only), in file order.
        comments: header comment lines (without ``comment``).
        obj_info: header ``obj_info`` lines.
        what: how to name the file in messages.
    """
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header += [f"obj_info {c}" for c in obj_info]
    blobs = []
    for name, arr in elements.items():
        header.append(f"element {name} {len(arr)}")
        header += [f"property {ply_type_name(arr.dtype[k])} {k}" for k in arr.dtype.names]
        le = np.dtype([(k, "<" + arr.dtype[k].str[1:]) for k in arr.dtype.names])
        blobs.append(np.ascontiguousarray(arr.astype(le, copy=False)).tobytes())
    header.append("end_header")
    for line in header:
        if "\n" in line or "\r" in line:
            raise InputError(f"{what}: a PLY header line cannot hold a line break ({line[:40]!r})")
    with atomic_file(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii", errors="replace"))
            for b in blobs:
                f.write(b)
