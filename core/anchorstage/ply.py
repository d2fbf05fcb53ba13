# SPDX-License-Identifier: GPL-3.0-or-later
"""Gaussian splats in the standard 3DGS PLY layout.

Written files (binary little endian, one ``vertex`` element, all ``float``)::

    x y z                 centre, metres, world frame
    nx ny nz              unit surface normal (the splat's thinnest axis), for viewers that show normals
    f_dc_0 f_dc_1 f_dc_2  SH degree-0 colour: colour = 0.5 + C0 * f_dc, C0 = 0.28209479177387814
    opacity               logit(opacity)
    scale_0..2            log(standard deviation in metres)
    rot_0..3              unit quaternion w x y z (local → world)

Colours: splat colours are linear Rec.709 in AnchorStage, but other splat viewers show the
DC colour as a display value, so the file holds them sRGB-encoded (as SHARP's files do; the
curve is not clipped above 1, so HDR values survive) and a ``comment color_space sRGB``
header line says so. Reading decodes back to linear. Plain 3DGS training output carries no
marker and holds sRGB values as well (trainers fit sRGB photos), so it is decoded the same
way; only files marked ``linearRGB`` are read as stored.

Reading accepts our files, SHARP's files (apple/ml-sharp: extra elements ``extrinsic``,
``intrinsic``, ``image_size``, ``frame``, ``disparity``, ``color_space``, ``version``;
colour space 0 = sRGB-encoded DC colours, converted to linear here) and generic 3DGS PLYs,
including ones with higher-order SH coefficients ``f_rest_*`` (only the DC term is kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .atomic import atomic_file
from .camera import Camera, look_at
from .errors import InputError
from .image_io import linear_to_srgb, srgb_to_linear
from .rotation import thin_axis
from .splats import Splats

__all__ = ["write_ply", "read_ply", "read_ply_info", "PlyInfo", "SH_C0"]

#: Degree-0 real spherical-harmonic constant 1 / (2 sqrt(pi)).
SH_C0 = 0.28209479177387814

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_VERTEX_FIELDS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]


def write_ply(path: str | os.PathLike, splats: Splats) -> None:
    """Write splats as a standard 3DGS PLY, atomically.

    Args:
        path: destination ``.ply`` file.
        splats: the splats; ``means`` [N, 3] metres world frame, ``quats`` [N, 4] wxyz,
            ``scales`` [N, 3] metres, ``opacities`` [N] in (0, 1), ``colors`` [N, 3] linear RGB
            (written sRGB-encoded, see the module docstring; negative values become 0).
            ``confidence`` and ``region_ids`` are not part of the standard layout (the scene
            folder stores them beside the PLY).
    """
    n = len(splats)
    f64 = {k: getattr(splats, k).detach().to("cpu", torch.float64).numpy()
           for k in ("means", "quats", "scales", "opacities", "colors")}
    quats = f64["quats"]  # stored as given (unit by the Splats contract), so they read back bit-exact
    # Clamp so the logit and log stay finite for (numerically) 0 or 1 opacities and zero scales.
    op = np.clip(f64["opacities"], 1e-7, 1 - 1e-7)
    data = np.empty(n, dtype=[(name, "<f4") for name in _VERTEX_FIELDS])
    data["x"], data["y"], data["z"] = f64["means"].T
    data["nx"], data["ny"], data["nz"] = (a.numpy() for a in thin_axis(splats.quats.detach().cpu().double(), splats.scales.detach().cpu().double()))
    dc = (linear_to_srgb(f64["colors"], clip=False).astype(np.float64) - 0.5) / SH_C0
    data["f_dc_0"], data["f_dc_1"], data["f_dc_2"] = dc.T
    data["opacity"] = np.log(op / (1 - op))
    data["scale_0"], data["scale_1"], data["scale_2"] = np.log(np.maximum(f64["scales"], 1e-30)).T
    data["rot_0"], data["rot_1"], data["rot_2"], data["rot_3"] = quats.T
    header = ["ply", "format binary_little_endian 1.0", "comment generator AnchorStage",
              "comment color_space sRGB", f"element vertex {n}"]
    header += [f"property float {name}" for name in _VERTEX_FIELDS]
    header += ["end_header"]
    with atomic_file(path, "PLY file") as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(data.tobytes())


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str]] = field(default_factory=list)  # (name, numpy dtype code)
    has_list: bool = False


@dataclass
class PlyInfo:
    """Everything :func:`read_ply_info` learnt from a PLY file.

    Attributes:
        splats: the splats (colours linear RGB).
        color_space: ``"linearRGB"`` or ``"sRGB"``: how the file's DC colours were encoded.
        sh_degree: degree of the SH coefficients in the file (only degree 0 is kept).
        supplements: SHARP-style extra elements by name (e.g. ``intrinsic`` [9], ``extrinsic`` [16],
            ``image_size`` [2]), each the element's single property as a 1-D array.
        comments: the header's comment lines.
    """

    splats: Splats
    color_space: str
    sh_degree: int
    supplements: dict[str, np.ndarray]
    comments: list[str]

    @property
    def in_camera_frame(self) -> bool:
        """True for SHARP-style files, whose splats sit in the photo camera's OpenCV frame."""
        return "intrinsic" in self.supplements or "extrinsic" in self.supplements

    def _view_matrix(self, where: str) -> np.ndarray:
        """The file's ``extrinsic`` (SHARP: world → camera; legacy 12 values hold R transposed)."""
        e = np.asarray(self.supplements.get("extrinsic", np.eye(4).ravel()), dtype=np.float64).ravel()
        m = np.eye(4)
        if e.size == 16:
            m[:] = e.reshape(4, 4)
        elif e.size == 12:
            m[:3] = e.reshape(3, 4)
            m[:3, :3] = m[:3, :3].T.copy()
        else:
            raise InputError(f"{where}: 'extrinsic' must hold 12 or 16 values (got {e.size})")
        return m

    def camera(self, where: str = "PLY file") -> Optional[Camera]:
        """The photo's camera for a SHARP-style file, posed as AnchorStage poses a photo
        (at the origin looking along world +Y, Z up); None for files without intrinsics."""
        k = self.supplements.get("intrinsic")
        if k is None:
            return None
        k = np.asarray(k, dtype=np.float64).ravel()
        if k.size == 4:  # legacy SHARP: fx, fy, width, height
            fx, fy, w, h = k
            K = np.array([[fx, 0.0, w / 2.0], [0.0, fy, h / 2.0], [0.0, 0.0, 1.0]])
        elif k.size == 9 and "image_size" in self.supplements:
            K = k.reshape(3, 3)
            w, h = np.asarray(self.supplements["image_size"], dtype=np.float64).ravel()[:2]
        else:
            raise InputError(f"{where}: 'intrinsic' needs 9 values plus 'image_size', or 4 legacy values")
        return Camera.from_K(K, int(w), int(h), look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)))

    def world_splats(self, where: str = "PLY file") -> Splats:
        """The splats in AnchorStage's world (Z up). SHARP-style files are taken from their camera
        frame (through ``extrinsic``) to a photo camera at the origin looking along +Y; other
        files are returned as stored."""
        if not self.in_camera_frame:
            return self.splats
        return self.splats.transformed(look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)) @ self._view_matrix(where))


def _parse_header(f: Any, where: str) -> tuple[str, list[_Element], list[str]]:
    if f.readline().strip() != b"ply":
        raise InputError(f"{where} is not a PLY file (no 'ply' magic)")
    fmt, elements, comments = None, [], []
    while True:
        line = f.readline()
        if not line:
            raise InputError(f"{where}: PLY header has no end_header")
        words = line.decode("ascii", errors="replace").split()
        if not words:
            continue
        if words[0] == "end_header":
            break
        if words[0] == "format":
            fmt = words[1]
        elif words[0] in ("comment", "obj_info"):
            comments.append(" ".join(words[1:]))
        elif words[0] == "element":
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property":
            if not elements:
                raise InputError(f"{where}: PLY property before any element")
            if words[1] == "list":
                elements[-1].has_list = True
                elements[-1].props.append((words[-1], "list"))
            elif words[1] in _PLY_TYPES:
                elements[-1].props.append((words[2], _PLY_TYPES[words[1]]))
            else:
                raise InputError(f"{where}: unknown PLY property type {words[1]!r}")
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise InputError(f"{where}: unsupported PLY format {fmt!r}")
    return fmt, elements, comments


def _read_elements(f: Any, fmt: str, elements: list[_Element], where: str) -> dict[str, np.ndarray]:
    """Structured arrays of every element up to the last one with only scalar properties we can size."""
    out: dict[str, np.ndarray] = {}
    if fmt == "ascii":
        # ASCII files: read the vertex rows only (3DGS PLYs put the vertex element first).
        first = elements[0] if elements else None
        if first is None or first.has_list:
            return out
        dtype = np.dtype([(n, t) for n, t in first.props])
        rows = np.loadtxt(f, dtype=np.float64, max_rows=first.count, ndmin=2)
        arr = np.empty(first.count, dtype=dtype)
        for i, (n, _) in enumerate(first.props):
            arr[n] = rows[:, i]
        out[first.name] = arr
        return out
    endian = "<" if fmt == "binary_little_endian" else ">"
    for el in elements:
        if el.has_list:
            break  # cannot size it without parsing; nothing we need comes after one
        dtype = np.dtype([(n, endian + t) for n, t in el.props])
        raw = f.read(dtype.itemsize * el.count)
        if len(raw) < dtype.itemsize * el.count:
            raise InputError(f"{where}: PLY file is truncated in element {el.name!r}")
        out[el.name] = np.frombuffer(raw, dtype=dtype, count=el.count)
    return out


def read_ply_info(path: str | os.PathLike) -> PlyInfo:
    """Read a 3DGS PLY with everything it carries (see module docstring for accepted layouts).

    Raises:
        InputError: when the file is missing, not a PLY, or lacks the 3DGS vertex properties.
    """
    p = Path(path)
    where = f"PLY file {str(p)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist")
    try:
        with open(p, "rb") as f:
            fmt, elements, comments = _parse_header(f, where)
            data = _read_elements(f, fmt, elements, where)
    except OSError as e:
        raise InputError(f"{where} cannot be read: {e}") from None
    except ValueError as e:  # malformed counts or ASCII rows
        raise InputError(f"{where} is malformed: {e}") from None
    v = data.get("vertex")
    if v is None:
        raise InputError(f"{where} has no 'vertex' element")
    missing = [k for k in _REQUIRED if k not in v.dtype.names]
    if missing:
        raise InputError(f"{where} is not a 3D Gaussian-splat PLY: missing vertex properties {', '.join(missing)}")

    def cols(*names: str) -> np.ndarray:
        return np.stack([v[n].astype(np.float64) for n in names], axis=1)

    supplements = {name: np.asarray(arr[arr.dtype.names[0]]) for name, arr in data.items()
                   if name != "vertex" and arr.dtype.names and len(arr.dtype.names) == 1}
    # Unmarked files come from 3DGS trainers fed sRGB photos: their DC colours are sRGB values too.
    color_space = "sRGB"
    if "color_space" in supplements and supplements["color_space"].size:
        color_space = "sRGB" if int(supplements["color_space"][0]) == 0 else "linearRGB"
    elif any(c.strip() == "color_space linearRGB" for c in comments):
        color_space = "linearRGB"
    colors = 0.5 + SH_C0 * cols("f_dc_0", "f_dc_1", "f_dc_2")
    if color_space == "sRGB":
        colors = srgb_to_linear(np.clip(colors, 0.0, None))
    n_rest = sum(1 for n in v.dtype.names if n.startswith("f_rest_"))
    sh_degree = int(round(np.sqrt(n_rest / 3 + 1))) - 1 if n_rest else 0
    quats = cols("rot_0", "rot_1", "rot_2", "rot_3")
    norm = np.linalg.norm(quats, axis=1, keepdims=True)
    if np.any(~np.isfinite(norm)) or np.any(norm < 1e-12):
        raise InputError(f"{where} has zero or non-finite rotation quaternions")
    # Trained 3DGS files store unnormalised rotations; ours are unit already and stay bit-exact.
    norm = np.where(np.abs(norm - 1.0) > 1e-6, norm, 1.0)
    with np.errstate(over="ignore"):  # extreme logits saturate to 0 or 1
        opacities = 1.0 / (1.0 + np.exp(-v["opacity"].astype(np.float64)))

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))

    splats = Splats(means=t(cols("x", "y", "z")), quats=t(quats / norm), scales=t(np.exp(cols("scale_0", "scale_1", "scale_2"))),
                    opacities=t(opacities), colors=t(colors))
    return PlyInfo(splats, color_space, sh_degree, supplements, comments)


def read_ply(path: str | os.PathLike) -> Splats:
    """Read splats (colours linear RGB) from a 3DGS PLY: ours, SHARP's or a generic one.

    Returns:
        Splats in the file's own frame (for SHARP files that is SHARP's OpenCV camera frame).
    """
    return read_ply_info(path).splats
