# SPDX-License-Identifier: GPL-3.0-or-later
"""A scene folder's memory-mappable splat files: the working arrays and the level-of-detail hierarchy.

Both are folders of plain ``.npy`` files (little-endian, C order) that :func:`numpy.load` maps
with ``mmap_mode``, so opening them reads only headers and a frame reads only the rows it touches::

    splats_mmap/    means.npy [N, 3] f4, quats.npy [N, 4] f4, scales.npy [N, 3] f4, opacities.npy [N] f4,
                    colors.npy [N, 3] f4, confidence.npy [N] f4, region_ids.npy [N] i4,
                    sh_rest.npy [N, K, 3] f4 (with SH), info.json {"count", "sh_encoding"}
    lod/            lod.json {"version", "count", "fingerprint", "levels": [M_1, ...], "sh_rest": K},
                    leaf_order.npy [N] i8, and per level i (1 = finest)
                    level<i>_<field>.npy for the fields of :class:`anchorstage.lod.LodLevel`

Every header is checked (dtype, shape, size against the file) before it is mapped; values are
checked where they are read (the renderer refuses NaN / inf, the cut refuses indices out of range).
Files are mapped copy-on-write: nothing writes back to the scene.

A mapped page read once stays in the process's resident memory. A level-of-detail cut reads most
of a big scene's rows and copies what it draws, so once it has copied a piece it gives those pages
back (:func:`release_pages`): the data stays in the system's page cache and the next frame maps it
again at no I/O. Pages a writer changed (the copy-on-write copies) hold the only copy of that
change and are never given back; :func:`release_pages` tells them apart with the kernel's page map.
"""

from __future__ import annotations

import functools
import json
import mmap
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from .arrays import is_tensor
from .errors import InputError
from .input_files import open_input
from .npy_io import read_npy_header
from .safe_json import load_json
from .splats import Splats

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["MMAP_MIN_SPLATS", "MMAP_DIR", "LOD_DIR", "write_splat_arrays", "open_splat_arrays", "write_lod", "open_lod",
           "release_pages"]

#: Scenes with at least this many splats are saved with ``splats_mmap/`` and load memory-mapped.
MMAP_MIN_SPLATS = 1_000_000
MMAP_DIR = "splats_mmap"
LOD_DIR = "lod"
_LOD_VERSION = 1
_SPLAT_FIELDS = {"means": ("f", (3,)), "quats": ("f", (4,)), "scales": ("f", (3,)), "opacities": ("f", ()),
                 "colors": ("f", (3,)), "confidence": ("f", ()), "region_ids": ("i", ())}
_LEVEL_FIELDS = {**_SPLAT_FIELDS, "radius": ("f", ()), "opacity_sum": ("f", ()), "area_sum": ("f", ())}


def _save(path: Path, array: np.ndarray, dtype: str) -> None:
    np.save(path, np.ascontiguousarray(array, dtype=dtype), allow_pickle=False)


def _map(path: Path, where: str, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Map one ``.npy`` file after checking its header: a ``kind`` number array of ``shape``."""
    if not path.is_file():
        raise InputError(f"{where}: {path.parent.name}/{path.name} is missing")
    f, size = open_input(path, f"{where}: {path.name}")
    with f:
        hdr = read_npy_header(f, size, f"{where}: {path.parent.name}/{path.name}", kinds=kind)
    if hdr.shape != shape or hdr.fortran_order or hdr.dtype.byteorder == ">":
        raise InputError(f"{where}: {path.parent.name}/{path.name} must be a C-order little-endian array of shape "
                         f"{list(shape)} (got {list(hdr.shape)}{', Fortran order' if hdr.fortran_order else ''})")
    if hdr.count == 0:
        return np.zeros(shape, hdr.dtype)
    array = np.load(path, mmap_mode="c", allow_pickle=False)
    start = array.ctypes.data
    _MAPPED[start] = start + array.nbytes
    weakref.finalize(array, _MAPPED.pop, start, None)
    return array


# ------------------------------------------------------------------------------------ mapped pages
_MAPPED: dict[int, int] = {}  # first data byte -> end of each array mapped from a scene folder
_PAGE = mmap.PAGESIZE
_PRESENT, _FILE_PAGE = 1 << 63, 1 << 61  # /proc/<pid>/pagemap entry bits (Linux)


def release_pages(array: Union["torch.Tensor", np.ndarray], rows: Optional[tuple[int, int]] = None) -> None:
    """Give back the resident pages of a mapped scene array that hold the file's data unchanged.

    They stay in the page cache; reading them again maps them again. Pages a writer changed (their
    copy-on-write copies), and arrays that were not mapped from a scene folder, are left alone.
    Where the kernel's page map cannot be read (not Linux), nothing is given back.

    Args:
        array: an array from :func:`open_splat_arrays` or :func:`open_lod` (or a tensor on it).
        rows: ``(start, stop)`` rows of it (default: all).
    """
    if is_tensor(array):
        if array.device.type != "cpu":
            return
        array = array.detach().numpy()
    a = array
    start = a.ctypes.data if a.size else 0
    end = _MAPPED.get(start)
    if end is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    lo, hi = start, end
    if rows is not None:
        step = a.strides[0]
        lo, hi = start + max(rows[0], 0) * step, min(end, start + rows[1] * step)
    first, last = lo // _PAGE, -(-hi // _PAGE)
    if last <= first:
        return
    try:
        with open("/proc/self/pagemap", "rb", buffering=0) as f:
            f.seek(first * 8)
            entries = np.frombuffer(f.read((last - first) * 8), np.uint64)
    except OSError:
        return
    unchanged = (entries & np.uint64(_PRESENT | _FILE_PAGE)) == np.uint64(_PRESENT | _FILE_PAGE)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], unchanged.view(np.int8), [0]]))).reshape(-1, 2)
    for a0, a1 in edges.tolist():
        _madvise((first + a0) * _PAGE, (a1 - a0) * _PAGE)


def _madvise(address: int, length: int) -> None:
    import ctypes

    _libc().madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), ctypes.c_int(mmap.MADV_DONTNEED))


@functools.lru_cache(maxsize=1)
def _libc():
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


# ------------------------------------------------------------------------------------ splat arrays
def write_splat_arrays(folder: Path, splats: Splats) -> None:
    """Write ``splats_mmap/`` for ``splats`` into ``folder`` (a scene folder being written)."""
    d = folder / MMAP_DIR
    d.mkdir()
    sp = splats.numpy()
    for name, (kind, _) in _SPLAT_FIELDS.items():
        _save(d / f"{name}.npy", getattr(sp, name), "<f4" if kind == "f" else "<i4")
    if sp.sh_rest is not None:
        _save(d / "sh_rest.npy", sp.sh_rest, "<f4")
    (d / "info.json").write_text(json.dumps({"count": len(sp), "sh_encoding": sp.sh_encoding}), encoding="utf-8")


def open_splat_arrays(folder: Path, count: int, where: str) -> Splats:
    """The splats of ``splats_mmap/`` memory-mapped: numpy-backed (:meth:`Splats.to` makes tensors of
    them without a copy), not checked finite (see :class:`Splats`).

    Args:
        folder: the scene folder.
        count: the splat count the scene declares.
        where: how messages name the scene.

    Raises:
        InputError: a missing file, or a header of another dtype or shape.
    """
    d = folder / MMAP_DIR
    info = load_json(d / "info.json", "splat arrays info", where=f"{where}: {MMAP_DIR}/info.json")
    if not isinstance(info, dict) or info.get("count") != count or info.get("sh_encoding") not in ("sRGB", "linearRGB"):
        raise InputError(f"{where}: {MMAP_DIR}/info.json must give count {count} and an sh_encoding")
    arrays = {name: _map(d / f"{name}.npy", where, kind, (count, *tail))
              for name, (kind, tail) in _SPLAT_FIELDS.items()}
    sh = None
    if (d / "sh_rest.npy").exists():
        f, size = open_input(d / "sh_rest.npy", f"{where}: sh_rest.npy")
        with f:
            k = read_npy_header(f, size, f"{where}: {MMAP_DIR}/sh_rest.npy", kinds="f").shape
        sh = _map(d / "sh_rest.npy", where, "f", (count, k[1] if len(k) == 3 else -1, 3))
    return Splats(**arrays, sh_rest=sh, sh_encoding=info["sh_encoding"], check_finite=False)


# ------------------------------------------------------------------------------------ hierarchy
def write_lod(folder: Path, tree) -> None:
    """Write ``lod/`` for a :class:`~anchorstage.lod.LodTree` into ``folder``."""
    d = folder / LOD_DIR
    d.mkdir()
    _save(d / "leaf_order.npy", tree.leaf_order, "<i8")
    for i, lv in enumerate(tree.levels, start=1):
        for name, (kind, _) in _LEVEL_FIELDS.items():
            _save(d / f"level{i}_{name}.npy", getattr(lv, name), "<f4" if kind == "f" else "<i4")
        _save(d / f"level{i}_child_start.npy", lv.child_start, "<i8")
        if lv.sh_rest is not None:
            _save(d / f"level{i}_sh_rest.npy", lv.sh_rest, "<f4")
    k = tree.levels[0].sh_rest.shape[1] if tree.levels and tree.levels[0].sh_rest is not None else 0
    doc = {"version": _LOD_VERSION, "count": tree.n_leaves, "fingerprint": tree.fingerprint,
           "levels": [len(lv) for lv in tree.levels], "sh_rest": k}
    (d / "lod.json").write_text(json.dumps(doc), encoding="utf-8")


def open_lod(folder: Path, count: int, where: str):
    """The ``lod/`` hierarchy memory-mapped, or None when its ``lod.json`` says it is of another
    version or splat count (then it is rebuilt when needed).

    Raises:
        InputError: a malformed ``lod.json``, a missing file, a header of another dtype or
            shape, or child ranges that do not tile the level below.
    """
    from .lod import LodLevel, LodTree

    d = folder / LOD_DIR
    doc = load_json(d / "lod.json", "level-of-detail index", where=f"{where}: {LOD_DIR}/lod.json")
    if not isinstance(doc, dict) or doc.get("version") != _LOD_VERSION or doc.get("count") != count:
        return None
    sizes, k, fp = doc.get("levels"), doc.get("sh_rest"), doc.get("fingerprint")
    if not (isinstance(sizes, list) and all(isinstance(m, int) and not isinstance(m, bool) and 0 < m <= count for m in sizes)
            and isinstance(k, int) and k in (0, 3, 8, 15) and isinstance(fp, str)):
        raise InputError(f"{where}: {LOD_DIR}/lod.json must list level sizes, the SH coefficient count and a fingerprint")
    levels = []
    below = count
    for i, m in enumerate(sizes, start=1):
        fields = {name: _map(d / f"level{i}_{name}.npy", where, kind, (m, *tail)) for name, (kind, tail) in _LEVEL_FIELDS.items()}
        cs = _map(d / f"level{i}_child_start.npy", where, "i", (m + 1,))
        # Small (a fraction of the splats): checked whole, so the cut's ranges stay inside the level below.
        if cs[0] != 0 or cs[-1] != below or np.any(np.diff(cs) <= 0):
            raise InputError(f"{where}: {LOD_DIR}/level{i}_child_start.npy must rise from 0 to {below}")
        sh = _map(d / f"level{i}_sh_rest.npy", where, "f", (m, k, 3)) if k else None
        levels.append(LodLevel(**fields, sh_rest=sh, child_start=np.asarray(cs)))
        below = m
    order = _map(d / "leaf_order.npy", where, "i", (count,))
    return LodTree(n_leaves=count, leaf_order=order,
                   levels=levels, fingerprint=fp)
