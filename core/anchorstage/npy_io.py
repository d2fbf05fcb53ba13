# SPDX-License-Identifier: GPL-3.0-or-later
"""NumPy ``.npy`` files and ``.npz`` archives from outside, validated before anything is allocated.

An ``.npy`` header declares a dtype and a shape; numpy allocates that much before reading the data.
Here the header is parsed with numpy's own format helpers and checked first: the declared bytes
must equal what the file (or zip member) really holds, the element count must be within the
documented limit, and the dtype must be plain numbers (object arrays, which are pickles, and
structured dtypes are refused). An ``.npz`` archive saved under a ``.npy`` name is recognised and
named as such.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Mapping, Optional

import numpy as np

from .errors import InputError
from .input_files import open_input
from .limits import check_count

__all__ = ["NpyHeader", "read_npy_header", "read_npy", "ArraySpec", "read_npz"]

_ZIP_MAGIC = b"PK\x03\x04"
_MAX_HEADER = 10_000  # numpy's own default cap on a header's length
_KIND_WORDS = {"f": "floating-point", "i": "signed integer", "u": "unsigned integer", "b": "boolean",
               "U": "text", "V": "record (plain number fields)"}


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header declares.

    Attributes:
        shape: the array's shape.
        fortran_order: whether the data is column-major.
        dtype: the element type.
        offset: bytes before the data (magic + header).
    """

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int

    @property
    def count(self) -> int:
        """Number of elements (a Python int: no overflow however large the shape)."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def read_npy_header(f: BinaryIO, size: int, where: str, *, kinds: str = "fiub") -> NpyHeader:
    """Parse and check an ``.npy`` header at the stream's position.

    Args:
        f: a binary stream at the start of the ``.npy`` data.
        size: bytes the file (or member) really holds from that position.
        where: how messages name the array (e.g. ``"depth file 'd.npy'"``).
        kinds: accepted numpy dtype kinds (``f`` float, ``i`` / ``u`` integers, ``b`` bool).

    Raises:
        InputError: not ``.npy`` (an ``.npz`` named as such is said so), a pickle, a dtype of
            another kind, or a declared size that differs from the real one.
    """
    base = f.tell()
    start = f.read(6)
    if start.startswith(_ZIP_MAGIC):
        raise InputError(f"{where} is an .npz (zip) archive, not a single .npy array: save it with numpy.save, "
                         "or load the archive and save the one array you need")
    if not start.startswith(b"\x93NUMPY"):
        raise InputError(f"{where} cannot be read as .npy: it does not start with the NUMPY magic")
    rest = f.read(2)
    if len(rest) != 2:
        raise InputError(f"{where} cannot be read as .npy: the header is truncated")
    version = (rest[0], rest[1])
    try:
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
        else:
            raise InputError(f"{where} cannot be read as .npy: format version {version[0]}.{version[1]} is not "
                             "supported (numpy writes 1.0 and 2.0 for plain number arrays)")
    except InputError:
        raise
    except Exception as e:  # numpy's header parser raises ValueError, SyntaxError, tokenize.TokenError, ...
        raise InputError(f"{where} cannot be read as .npy: the header is malformed ({e})") from None
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise InputError(f"{where} holds Python objects (a pickle); refused for safety, save plain numbers")
    # Records ("V") are allowed only where asked for, and only of plain number fields.
    record_ok = "V" in kinds and dtype.fields is not None and all(
        dtype.fields[n][0].kind in "fiub" and dtype.fields[n][0].subdtype is None for n in dtype.names)
    if (dtype.fields is not None and not record_ok) or dtype.subdtype is not None or dtype.kind not in kinds:
        want = " or ".join(_KIND_WORDS.get(k, k) for k in kinds)
        raise InputError(f"{where} must hold {want} numbers (got dtype {dtype})")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise InputError(f"{where} cannot be read as .npy: the header declares an invalid shape {shape!r}")
    hdr = NpyHeader(tuple(int(n) for n in shape), bool(fortran), dtype, int(f.tell() - base))
    data = size - hdr.offset
    if hdr.nbytes != data:
        raise InputError(f"{where}: the header declares shape {list(hdr.shape)} of {dtype} ({hdr.nbytes:,} bytes) "
                         f"but the file holds {max(data, 0):,} bytes of data (truncated or corrupt)")
    return hdr


def read_npy(path: Any, what: str, *, limit_name: str = "image_pixels", kinds: str = "fiub") -> np.ndarray:
    """Read an ``.npy`` array after checking its header (see the module docstring).

    Args:
        path: the ``.npy`` file (a FIFO, device or folder is refused).
        what: how messages name it (e.g. ``"depth file"``); the path is added.
        limit_name: the :mod:`anchorstage.limits` entry bounding the element count.
        kinds: accepted numpy dtype kinds.

    Raises:
        InputError: see :func:`read_npy_header`, or over the limit.
    """
    f, size = open_input(path, what)
    where = f"{what} {str(path)!r}"
    with f:
        hdr = read_npy_header(f, size, where, kinds=kinds)
        check_count(limit_name, hdr.count, where)
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False, max_header_size=_MAX_HEADER)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(f"{where} cannot be read as .npy: {e}") from None


@dataclass(frozen=True)
class ArraySpec:
    """What one member of an ``.npz`` archive must be.

    Attributes:
        kinds: accepted dtype kinds (``"f"``, ``"iu"``, ...).
        shape: the exact shape; ``None`` in a position accepts any length there; ``None`` as a
            whole accepts any shape (then bound it with ``max_count``).
        required: whether the member must be present.
        max_count: at most this many elements (for shapes with ``None``).
    """

    kinds: str
    shape: Optional[tuple[Optional[int], ...]]
    required: bool = True
    max_count: Optional[int] = None


def _check_shape(name: str, hdr: NpyHeader, spec: ArraySpec, where: str) -> None:
    ok = spec.shape is None or (len(hdr.shape) == len(spec.shape)
                                and all(s is None or s == n for s, n in zip(spec.shape, hdr.shape)))
    if not ok:
        want = "[" + ", ".join("*" if s is None else str(s) for s in spec.shape) + "]"
        raise InputError(f"{where}: array {name!r} must have shape {want} (got {list(hdr.shape)})")
    if spec.max_count is not None and hdr.count > spec.max_count:
        raise InputError(f"{where}: array {name!r} has {hdr.count:,} elements (at most {spec.max_count:,})")


def read_npz(path: Any, what: str, specs: Mapping[str, ArraySpec],
             prefix_specs: Optional[Mapping[str, ArraySpec]] = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read the members of an ``.npz`` archive that ``specs`` describe, each checked before it is read.

    Args:
        path: the ``.npz`` file.
        what: how messages name it (e.g. ``"scene folder 'x': splats_extra.npz"``).
        specs: member name (without ``.npy``) → what it must be.
        prefix_specs: name prefix → spec, for families of members (e.g. ``region_splats_``).

    Returns:
        (name → array for every described member present, names of members not described:
        they are not read).

    Raises:
        InputError: not a zip archive, corrupt, a required member missing, or a member of the
            wrong dtype / shape / size (pickles included).
    """
    prefix_specs = prefix_specs or {}
    f, _ = open_input(path, what)
    out: dict[str, np.ndarray] = {}
    unknown: list[str] = []
    with f:
        try:
            with zipfile.ZipFile(f) as zf:
                members = {zi.filename[:-4] if zi.filename.endswith(".npy") else zi.filename: zi for zi in zf.infolist()}
                missing = [k for k, s in specs.items() if s.required and k not in members]
                if missing:
                    raise InputError(f"{what} lacks the array(s) {', '.join(map(repr, missing))}")
                for name, zi in members.items():
                    spec = specs.get(name) or next((s for p, s in prefix_specs.items() if name.startswith(p)), None)
                    if spec is None or not zi.filename.endswith(".npy"):
                        unknown.append(name)
                        continue
                    where = f"{what}: array {name!r}"
                    with zf.open(zi) as m:
                        hdr = read_npy_header(m, zi.file_size, where, kinds=spec.kinds)
                    _check_shape(name, hdr, spec, what)
                    with zf.open(zi) as m:
                        out[name] = np.lib.format.read_array(m, allow_pickle=False, max_header_size=_MAX_HEADER)
        except InputError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError) as e:  # corrupt, truncated, encrypted, unknown compression
            raise InputError(f"{what} is not a readable .npz archive: {e}") from None
    return out, unknown
