# SPDX-License-Identifier: GPL-3.0-or-later
"""The committed Cycles ground-truth fixture (tests/data/cycles_gt), made by scripts/cycles_stage.py.

A 320x180 stage of known geometry (ground z = 0, facade y = 10 m, a sphere, a box, sky)
rendered by Blender's Cycles from views ``v0`` (reference), ``v1`` (trucked 0.5 m right,
panned 5° left) and ``v2`` (dollied 1 m forward, raised 0.3 m). Colours come from emission
shaders (view-independent, noise-free) and every sample is taken at the pixel centre, so
depth is exact there.

Usage::

    from gt_fixture import TRUTH, VIEWS, load_view, PASS_INDEX
    v = load_view("v0")
    v["depth_m"]       # [H, W] float32 planar z, metres; inf where the sky is
    v["object_index"]  # [H, W] uint8: 0 sky, 1 ground, 2 facade, 3 sphere, 4 box
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from anchorstage.camera import Camera, load_camera_json

__all__ = ["FIXTURE_DIR", "TRUTH", "VIEWS", "PASS_INDEX", "load_view", "surface_distance", "reference_camera",
           "covisible"]

FIXTURE_DIR = Path(__file__).resolve().parent / "data" / "cycles_gt"
TRUTH: dict[str, Any] = json.loads((FIXTURE_DIR / "truth.json").read_text(encoding="utf-8"))
VIEWS: tuple[str, ...] = tuple(TRUTH["views"])
#: object name -> pass index in ``object_index``.
PASS_INDEX: dict[str, int] = {k: TRUTH[k]["pass_index"] for k in ("sky", "ground", "facade", "sphere", "box")}


@functools.lru_cache(maxsize=None)
def _load(name: str, folder: Path = FIXTURE_DIR) -> dict[str, Any]:
    import OpenEXR
    from PIL import Image

    if folder == FIXTURE_DIR and name not in VIEWS:
        raise KeyError(f"unknown fixture view {name!r}; have {', '.join(VIEWS)}")
    with OpenEXR.File(str(folder / f"{name}_rgb.exr"), separate_channels=True) as f:
        ch = {n: np.array(c.pixels) for n, c in f.parts[0].channels.items()}
    rgb = np.stack([ch[c] for c in "RGB"], axis=-1).astype(np.float32)
    with Image.open(folder / f"{name}_rgb.png") as im:
        srgb = np.asarray(im.convert("RGB"))
    with Image.open(folder / f"{name}_index.png") as im:
        index = np.asarray(im)
    return {
        "image_linear": rgb,
        "image_srgb_u8": srgb,
        "depth_m": np.load(folder / f"{name}_depth.npy"),
        "object_index": index,
        "camera": load_camera_json(folder / f"{name}_camera.json"),
    }


def load_view(name: str, folder: Path = FIXTURE_DIR) -> dict[str, Any]:
    """One view of the fixture, or of another folder written by scripts/cycles_stage.py
    (fresh array copies, so callers may modify them).

    Returns:
        dict with ``image_linear`` [H, W, 3] float32 linear Rec.709, ``image_srgb_u8``
        [H, W, 3] uint8, ``depth_m`` [H, W] float32 planar z in metres (inf = sky),
        ``object_index`` [H, W] uint8 (see ``PASS_INDEX``) and ``camera`` (:class:`Camera`).
    """
    v = _load(name, Path(folder))
    return {k: (x.copy() if isinstance(x, np.ndarray) else x) for k, x in v.items()}


def covisible(view: dict, ref: dict, tol: float = 0.01) -> np.ndarray:
    """[H, W] bool: pixels of ``view`` whose surface point ``ref`` also sees (planar depth within ``tol``).

    Args:
        view: a view (``depth_m``, ``camera``) as :func:`load_view` returns it.
        ref: the reference view the scene was reconstructed from.
        tol: relative depth tolerance.
    """
    cam, cam0 = view["camera"], ref["camera"]
    d = view["depth_m"]
    h, w = d.shape
    h0, w0 = ref["depth_m"].shape
    fin = np.isfinite(d)
    pw = cam.unproject(cam.pixel_centers().reshape(-1, 2), np.where(fin, d, 1.0).reshape(-1))
    uv0, z0 = cam0.project(pw)
    ix, iy = np.floor(uv0[:, 0]).astype(int), np.floor(uv0[:, 1]).astype(int)
    inside = (ix >= 0) & (ix < w0) & (iy >= 0) & (iy < h0) & (z0 > 0)
    seen = np.full(len(pw), np.inf)
    seen[inside] = ref["depth_m"][iy[inside], ix[inside]]
    return (fin.reshape(-1) & inside & (np.abs(seen - z0) < tol * z0)).reshape(h, w)


def surface_distance(points: np.ndarray, obj: str) -> np.ndarray:
    """Distance of world points to an analytic surface of the fixture.

    Args:
        points: [N, 3] metres, world frame.
        obj: ``"ground"`` or ``"facade"`` (infinite planes) or ``"sphere"``.

    Returns:
        [N] unsigned distances in metres.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if obj in ("ground", "facade"):
        plane = np.asarray(TRUTH[obj]["plane"])
        return np.abs(p @ plane[:3] + plane[3])
    if obj == "sphere":
        s = TRUTH["sphere"]
        return np.abs(np.linalg.norm(p - np.asarray(s["center"]), axis=1) - s["radius"])
    raise KeyError(f"no analytic surface for {obj!r}")


def reference_camera() -> Camera:
    """The camera of view ``v0``."""
    return _load("v0")["camera"]
