# SPDX-License-Identifier: GPL-3.0-or-later
"""SHARP-flavoured PLY (apple/ml-sharp): a 3DGS PLY in the photo camera's OpenCV frame plus
SHARP's elements, each one property of the same name:

=============  ================  ==================================================
element        values            meaning
=============  ================  ==================================================
extrinsic      16 float          world → camera 4x4, row-major (identity: splats in
                                 the camera frame); legacy files: 12 values, R transposed
intrinsic      9 float           K, row-major, pixels (legacy: fx, fy, width, height)
image_size     2 uint            width, height in pixels
frame          2 int             1, number of splats
disparity      2 float           10th / 90th percentile of 1 / z
color_space    1 uchar           0 = DC colours sRGB-encoded, 1 = linear
version        3 uchar           1, 5, 0
=============  ================  ==================================================

SHARP's own loader finds each value by property name and reads a file without ``color_space``
as linear; every PLY AnchorStage writes carries the element. Reading is the standard PLY reader
(the elements are kept in ``Splats.stored``); :func:`camera` and :func:`placement` interpret them.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from ..camera import Camera, look_at
from ..errors import InputError
from ..splats import Splats
from ._plyfile import write_ply_file
from .ply import ply_elements

__all__ = ["is_sharp", "camera", "placement", "placed", "write_sharp", "sharp_elements"]

_KEYS = ("extrinsic", "intrinsic", "image_size")


def _values(splats: Splats) -> dict[str, np.ndarray]:
    """SHARP's supplementary values by property name (found in any element, as SHARP does)."""
    out: dict[str, np.ndarray] = {}
    st = splats.stored
    if st is None:
        return out
    for arr in st.elements.values():
        for name in arr.dtype.names or ():
            out.setdefault(name, np.asarray(arr[name]))
    return out


def is_sharp(splats: Splats) -> bool:
    """True for splats read from a SHARP-style file (they sit in the photo camera's frame)."""
    v = _values(splats)
    return "intrinsic" in v or "extrinsic" in v


def _view_matrix(v: dict[str, np.ndarray], where: str) -> np.ndarray:
    e = np.asarray(v.get("extrinsic", np.eye(4).ravel()), dtype=np.float64).ravel()
    m = np.eye(4)
    if e.size == 16:
        m[:] = e.reshape(4, 4)
    elif e.size == 12:  # legacy SHARP: 3x4 with the rotation transposed
        m[:3] = e.reshape(3, 4)
        m[:3, :3] = m[:3, :3].T.copy()
    else:
        raise InputError(f"{where} (SHARP PLY): 'extrinsic' must hold 12 or 16 values (got {e.size})")
    r = m[:3, :3]
    if not np.all(np.isfinite(m)) or not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) <= 0 \
            or not np.allclose(m[3], [0, 0, 0, 1]):
        raise InputError(f"{where} (SHARP PLY): 'extrinsic' is not a rigid world → camera matrix")
    return m


def camera(splats: Splats, where: str = "splat file") -> Optional[Camera]:
    """The photo's camera of a SHARP-style file, posed as AnchorStage poses a photo (at the origin
    looking along world +Y, Z up); None for files without intrinsics.

    Raises:
        InputError: intrinsics that are neither 9 values with an image size nor 4 legacy values.
    """
    v = _values(splats)
    k = v.get("intrinsic")
    if k is None:
        return None
    k = np.asarray(k, dtype=np.float64).ravel()
    if k.size == 4:  # legacy SHARP: fx, fy, width, height
        fx, fy, w, h = k
        K = np.array([[fx, 0.0, w / 2.0], [0.0, fy, h / 2.0], [0.0, 0.0, 1.0]])
    elif k.size == 9 and "image_size" in v and np.asarray(v["image_size"]).size >= 2:
        K = k.reshape(3, 3)
        w, h = np.asarray(v["image_size"], dtype=np.float64).ravel()[:2]
    else:
        raise InputError(f"{where} (SHARP PLY): 'intrinsic' needs 9 values plus 'image_size', or 4 legacy values")
    if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0 and w >= 1 and h >= 1):
        raise InputError(f"{where} (SHARP PLY): the camera's focal length and image size must be positive")
    return Camera.from_K(K, int(w), int(h), look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)))


def placement(splats: Splats, where: str = "splat file") -> np.ndarray:
    """[4, 4] world_from_file: where AnchorStage places a file's splats in its Z-up world.

    SHARP-style files go from their frame through ``extrinsic`` into the photo camera's OpenCV
    frame, and that camera sits at the origin looking along +Y (as AnchorStage places a photo);
    other files are placed as stored (identity).
    """
    if not is_sharp(splats):
        return np.eye(4)
    return look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)) @ _view_matrix(_values(splats), where)


def placed(splats: Splats, where: str = "splat file") -> Splats:
    """The splats in AnchorStage's Z-up world (see :func:`placement`); plain files as they are."""
    m = placement(splats, where)
    return splats if np.array_equal(m, np.eye(4)) else splats.transformed(m)


def sharp_elements(splats: Splats, cam: Optional[Camera]) -> tuple[Splats, dict[str, np.ndarray]]:
    """The splats in the photo camera's frame and SHARP's elements for them.

    With ``cam`` (the photo camera, world frame) the splats are taken from the world into its
    OpenCV frame and the elements describe it; without, the splats must come from a SHARP file
    and its elements are kept (the splat count in ``frame`` follows the splats).
    """
    n = len(splats)
    if cam is None:
        if not is_sharp(splats):
            raise InputError("SHARP PLY export needs the photo camera (these splats carry none): pass a camera "
                             "(--camera CAMERA.json on the command line)")
        return splats, {}  # the file's own elements are kept (ply_elements updates the splat count)
    in_cam = splats.transformed(cam.cam_from_world)
    z = in_cam.means[:, 2].double()
    z = z[z > 0]
    disparity = np.quantile((1.0 / z).numpy(), [0.1, 0.9]) if len(z) else np.zeros(2)

    def one(name: str, values, dtype: str) -> np.ndarray:
        return np.array([(x,) for x in np.asarray(values).ravel()], dtype=[(name, dtype)])

    elements = {
        "extrinsic": one("extrinsic", np.eye(4), "f4"),
        "intrinsic": one("intrinsic", cam.K, "f4"),
        "image_size": one("image_size", [cam.width, cam.height], "u4"),
        "frame": one("frame", [1, n], "i4"),
        "disparity": one("disparity", disparity, "f4"),
        "color_space": one("color_space", [0 if splats.sh_encoding == "sRGB" else 1], "u1"),
        "version": one("version", [1, 5, 0], "u1"),
    }
    return in_cam, elements


def write_sharp(path: str | os.PathLike, splats: Splats, cam: Optional[Camera] = None) -> None:
    """Write a SHARP-flavoured PLY that SHARP's loader reads with the same colours and camera.

    Args:
        path: destination ``.ply``.
        splats: the splats: in the world frame when ``cam`` is given, else read from a SHARP
            file (in its frame, with its elements).
        cam: the photo camera (world frame), or None to keep a SHARP file's own.

    Raises:
        InputError: no camera for splats that do not come from a SHARP file.
    """
    in_cam, extra = sharp_elements(splats, cam)
    elements, comments = ply_elements(in_cam, extra)
    order = ["vertex", "extrinsic", "intrinsic", "image_size", "frame", "disparity", "color_space", "version"]
    ordered = {k: elements[k] for k in order if k in elements}
    ordered.update({k: v for k, v in elements.items() if k not in ordered})
    obj_info = [c[len("obj_info "):] for c in comments if c.startswith("obj_info ")]
    write_ply_file(path, ordered, [c for c in comments if not c.startswith("obj_info ")], obj_info,
                   what="SHARP PLY file")
