# SPDX-License-Identifier: GPL-3.0-or-later
"""Standard 3DGS PLY (binary little/big endian and ASCII, every element kept).

Vertex properties (``float`` when AnchorStage writes them; any PLY scalar type is read)::

    x y z                 centre, metres, the file's frame
    nx ny nz              normals: kept as stored; AnchorStage writes each splat's thinnest axis
    f_dc_0 f_dc_1 f_dc_2  SH degree 0: colour = 0.5 + C0 * f_dc, C0 = 0.28209479177387814
    f_rest_0 ..           SH degrees 1-3, channel-major: f_rest_{c * K + k}, K = 3, 8 or 15
    opacity               logit(opacity)
    scale_0..2            log(standard deviation in metres)
    rot_0..3              quaternion w x y z (local → frame), kept unnormalised
    anything else         kept per splat (``object_id``, ...)

Colour encoding. The SH expansion is read and written in ``Splats.sh_encoding``: files marked
linear (SHARP's ``color_space`` element = 1, or a ``comment color_space linearRGB``) are
``"linearRGB"``; every other file, marked sRGB or unmarked, is ``"sRGB"`` (3DGS trainers fit
sRGB photos). Written files carry both a ``comment color_space ...`` line and SHARP's
machine-readable ``color_space`` element (``uchar``, 0 = sRGB, 1 = linearRGB), which SHARP's
loader honours and other viewers skip.

Every other element (SHARP's ``extrinsic``, ``intrinsic``, ``image_size``, ...) and the header
comments are kept in ``Splats.stored`` and written back, as are the property order and types.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..rotation import thin_axis
from ..sh import rest_count
from ..splats import Splats, StoredSplats
from . import _codec as C
from ._plyfile import PlyData, read_ply_file, write_ply_file

__all__ = ["read_ply", "write_ply", "splats_from_ply_data", "ply_elements", "color_space_of", "FORMAT_NAME"]

FORMAT_NAME = "3DGS PLY"
_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
_GROUPS = {
    "means": ["x", "y", "z"],
    "quats": ["rot_0", "rot_1", "rot_2", "rot_3"],
    "scales": ["scale_0", "scale_1", "scale_2"],
    "opacities": ["opacity"],
    "colors": ["f_dc_0", "f_dc_1", "f_dc_2"],
}
_GENERATOR = "generator AnchorStage"


def _rest_names(k: int) -> list[str]:
    return [f"f_rest_{i}" for i in range(3 * k)]


def _stack(cols: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.stack([np.asarray(cols[n], dtype=np.float64) for n in names], axis=1)


def _decoders(encoding: str) -> dict:
    """Group name → raw columns → float32 working values (shared by reading and the write-time check)."""
    return {
        "means": lambda c: C.f32(_stack(c, _GROUPS["means"])),
        "quats": lambda c: C.f32(_stack(c, _GROUPS["quats"])),
        "scales": lambda c: C.f32(np.exp(_stack(c, _GROUPS["scales"]))),
        "opacities": lambda c: C.decode_opacity_logit(c["opacity"]),
        "colors": lambda c: C.decode_dc(_stack(c, _GROUPS["colors"]), encoding),
    }


def _encoders(encoding: str) -> dict:
    """Group name → working values → float64 columns."""
    def split(a, names):
        return {n: a[:, i] for i, n in enumerate(names)}

    return {
        "means": lambda v: split(np.asarray(v, np.float64), _GROUPS["means"]),
        "quats": lambda v: split(np.asarray(v, np.float64), _GROUPS["quats"]),
        "scales": lambda v: split(np.log(np.maximum(np.asarray(v, np.float64), 1e-30)), _GROUPS["scales"]),
        "opacities": lambda v: {"opacity": C.encode_opacity_logit(v)},
        "colors": lambda v: split(C.encode_dc(v, encoding), _GROUPS["colors"]),
    }


def color_space_of(data: PlyData) -> str:
    """``"linearRGB"`` or ``"sRGB"``: SHARP's ``color_space`` property (0 = sRGB) wins, then a
    ``color_space`` comment; unmarked files are sRGB."""
    for name, arr in data.elements.items():
        if name != "vertex" and arr.dtype.names and "color_space" in arr.dtype.names and len(arr):
            return "sRGB" if int(arr["color_space"][0]) == 0 else "linearRGB"
    for c in data.comments:
        words = c.split()
        if len(words) == 2 and words[0] == "color_space" and words[1] in ("sRGB", "linearRGB"):
            return words[1]
    return "sRGB"


def splats_from_ply_data(data: PlyData, where: str, fmt: str = FORMAT_NAME, *, numpy: bool = False) -> Splats:
    """Splats (and everything else the file holds, in ``Splats.stored``) from a parsed 3DGS PLY;
    numpy-backed with ``numpy=True`` (:attr:`Splats.numpy_backed`: torch is not loaded).

    Raises:
        InputError: no vertex element, missing 3DGS properties, an SH coefficient count that is
            not degree 1-3, or zero rotations.
    """
    v = data.elements.get("vertex")
    if v is None:
        raise InputError(f"{where} ({fmt}) has no 'vertex' element")
    names = list(v.dtype.names or ())
    missing = [k for k in _REQUIRED if k not in names]
    if missing:
        raise InputError(f"{where} is not a 3D Gaussian-splat PLY ({fmt}): missing vertex properties {', '.join(missing)}")
    rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: (len(n), n))
    k = len(rest) // 3
    if len(rest) % 3 or (k and rest_count({3: 1, 8: 2, 15: 3}.get(k, 0)) != k) or rest != _rest_names(k):
        raise InputError(f"{where} ({fmt}): {len(rest)} f_rest_* properties; SH degrees 1-3 need f_rest_0.. "
                         "f_rest_8, f_rest_23 or f_rest_44")
    encoding = color_space_of(data)
    cols = {n: v[n] for n in names}
    dec, enc = _decoders(encoding), _encoders(encoding)
    values = {g: dec[g](cols) for g in _GROUPS}
    C.quats_checked(values["quats"], f"{where} ({fmt})")
    stored_cols: dict[str, np.ndarray] = {}
    for g, group in _GROUPS.items():
        C.keep_raw(stored_cols, {n: cols[n] for n in group}, enc[g](values[g]))
    sh_rest = None
    if k:
        raw = _stack(cols, rest)  # [N, 3K] channel-major
        sh_rest = C.f32(raw.reshape(-1, 3, k).transpose(0, 2, 1))
        C.keep_raw(stored_cols, {n: cols[n] for n in rest}, {n: sh_rest[:, i % k, i // k] for i, n in enumerate(rest)})
    known = set(_REQUIRED) | set(rest)
    stored_cols.update({n: np.array(cols[n]) for n in names if n not in known})
    layout = np.dtype([(n, v.dtype[n].str[1:]) for n in names])
    stored = StoredSplats("ply", stored_cols, {n: a for n, a in data.elements.items() if n != "vertex"}, layout,
                          list(data.comments) + [f"obj_info {t}" for t in data.obj_info])
    sp = Splats(means=C.floats(values["means"]), quats=C.floats(values["quats"]), scales=C.floats(values["scales"]),
                opacities=C.floats(values["opacities"]), colors=C.floats(values["colors"]),
                sh_rest=None if sh_rest is None else C.floats(sh_rest), sh_encoding=encoding, stored=stored)
    return sp if numpy else sp.to("cpu")


def read_ply(path: str | os.PathLike, *, numpy: bool = False) -> Splats:
    """Read a 3DGS PLY (ours, SHARP's or any trainer's) with everything it carries.

    ``numpy=True`` gives numpy-backed splats (:attr:`Splats.numpy_backed`) and never loads torch.

    Returns:
        Splats in the file's own frame (for SHARP files that is SHARP's OpenCV camera frame; see
        :mod:`anchorstage.splatio.sharp`), colours linear, the rest in ``Splats.stored``.

    Raises:
        InputError: missing, unreadable or malformed file (the message names the format).
    """
    p = Path(path)
    where = f"PLY file {str(p)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist" if not p.exists() else f"{where} is not a file")
    return splats_from_ply_data(read_ply_file(p, where), where, numpy=numpy)


def _vertex(splats: Splats, layout: Optional[np.dtype], stored_cols: Optional[dict[str, np.ndarray]]) -> np.ndarray:
    """The vertex element: working values encoded in ``sh_encoding``, stored raw values put back
    where they still decode to the working values, stored extra properties kept."""
    n = len(splats)
    enc_name = splats.sh_encoding
    dec, enc = _decoders(enc_name), _encoders(enc_name)
    w = C.working(splats)
    k = splats.sh_rest.shape[1] if splats.sh_rest is not None else 0
    if layout is not None:
        k = max(k, sum(1 for name in layout.names if name.startswith("f_rest_")) // 3)
    values: dict[str, np.ndarray] = {}
    for g, group in _GROUPS.items():
        values.update(C.use_raw(enc[g](w[g]), stored_cols, group, dec[g], w[g]))
    if k:
        rest = C.sh_rest_of(splats, k)
        names = _rest_names(k)
        fresh = {name: rest[:, i % k, i // k] for i, name in enumerate(names)}
        values.update(C.use_raw(fresh, stored_cols, names,
                                lambda c: C.f32(_stack(c, names).reshape(-1, 3, k).transpose(0, 2, 1)), rest))
    if stored_cols is not None:
        values.update({name: col for name, col in stored_cols.items() if name not in values})
    if not all(name in values for name in ("nx", "ny", "nz")):
        nrm = thin_axis(splats.quats.detach().cpu().double(), splats.scales.detach().cpu().double())
        values.update({"nx": nrm[0].numpy(), "ny": nrm[1].numpy(), "nz": nrm[2].numpy()})
    order = list(layout.names) if layout is not None else []
    default = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *_rest_names(k), "opacity",
               "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    order = list(dict.fromkeys(order + default + list(values)))
    types = {name: (layout[name].str[1:] if layout is not None and name in layout.names else
                    (np.asarray(values[name]).dtype.str[1:] if stored_cols is not None and name in stored_cols else "f4"))
             for name in order}
    out = np.empty(n, dtype=[(name, "<" + types[name]) for name in order])
    for name in order:
        col = np.asarray(values[name])
        out[name] = col if col.dtype == out.dtype[name] else col.astype(out.dtype[name])
    return out


def ply_elements(splats: Splats, extra: Optional[dict[str, np.ndarray]] = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The elements and comments of the PLY AnchorStage writes for ``splats``.

    Args:
        splats: the splats.
        extra: elements to write (replacing stored ones of the same name), e.g. SHARP's.

    Returns:
        (element name → structured array in file order, header comments).
    """
    st = splats.stored if splats.stored is not None and splats.stored.format == "ply" else None
    vertex = _vertex(splats, st.layout if st else None, st.columns if st else None)
    elements = {"vertex": vertex}
    others = dict(st.elements) if st else {}
    others.update(extra or {})
    marker = 0 if splats.sh_encoding == "sRGB" else 1
    marked = False
    for name, arr in others.items():
        if arr.dtype.names and "color_space" in arr.dtype.names:
            arr = arr.copy()
            arr["color_space"] = marker
            marked = True
        if name == "frame" and arr.dtype.names == ("frame",) and len(arr) == 2 and arr["frame"][1] != len(vertex):
            arr = arr.copy()  # SHARP's (frames, splats per frame) follows the splats
            arr["frame"][1] = len(vertex)
        elements[name] = arr
    if not marked:
        elements["color_space"] = np.array([(marker,)], dtype=[("color_space", "u1")])
    comments = [c for c in (st.comments if st else []) if not c.startswith("color_space ") and c != _GENERATOR]
    comments = [_GENERATOR] + comments + [f"color_space {splats.sh_encoding}"]
    return elements, comments


def write_ply(path: str | os.PathLike, splats: Splats) -> None:
    """Write splats as a standard 3DGS PLY (binary little endian), atomically.

    Args:
        path: destination ``.ply`` file.
        splats: the splats (``means`` [N, 3] metres, ``quats`` [N, 4] wxyz, ``scales`` [N, 3]
            metres, ``opacities`` [N], ``colors`` [N, 3] linear RGB, optional ``sh_rest``);
            written in ``splats.sh_encoding`` with the colour marker, everything in
            ``splats.stored`` from a PLY kept (see the module docstring). ``confidence`` and
            ``region_ids`` are not part of the layout (a scene folder stores them beside it).
    """
    if not isinstance(splats, Splats):
        raise InputError(f"write_ply needs Splats (got {type(splats).__name__})")
    elements, comments = ply_elements(splats.to("cpu") if splats.numpy_backed else splats)
    obj_info = [c[len("obj_info "):] for c in comments if c.startswith("obj_info ")]
    write_ply_file(path, elements, [c for c in comments if not c.startswith("obj_info ")], obj_info, what="PLY file")
