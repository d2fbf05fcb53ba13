# SPDX-License-Identifier: GPL-3.0-or-later
"""The committed Cycles ground-truth fixture (tests/data/cycles_gt), made by scripts/cycles_stage.py.

A 320x180 stage of known geometry (ground z = 0, facade y = 10 m, a sphere, a box, sky)
rendered by Blender's Cycles from views ``v0`` (reference), ``v1`` (trucked 0.5 m right,
panned 5° left), ``v2`` (dollied 1 m forward, raised 0.3 m) and the witness-refresh moves from
``v0``: ``dolly`` (1.5 m forward), ``orbit`` (10° about a pivot 7 m ahead) and ``truckzoom``
(0.6 m left, zoom 1.2x). Colours come from emission shaders (view-independent, noise-free) and
every sample is taken at the pixel centre, so depth is exact there. :func:`witness_sees` gives the
true covisibility (and so the true disocclusions) of a view against the witness, by ray casting
the analytic geometry.

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
           "witness_sees", "covisible"]

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


def _blocked(origin: np.ndarray, points: np.ndarray, margin_m: float = 0.02) -> np.ndarray:
    """[N] bool: the segment from ``origin`` [3] to each of ``points`` [N, 3] (world metres) meets one of
    the fixture's surfaces more than ``margin_m`` before its end (so the point's own surface, and the
    sphere's 1 mm facets, never count)."""
    d = points - origin
    length = np.linalg.norm(d, axis=1)
    out = np.zeros(len(points), bool)

    def rect(axis: int, value: float, bounds: dict) -> None:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - origin[axis]) / d[:, axis]
        q = origin + t[:, None] * d
        hit = (t > 0) & ((1 - t) * length > margin_m)
        for ax, (lo, hi) in bounds.items():
            hit &= (q[:, ax] >= lo) & (q[:, ax] <= hi)
        out[:] |= hit

    g, f = TRUTH["ground"], TRUTH["facade"]
    rect(2, 0.0, {0: g["x_range"], 1: g["y_range"]})
    rect(1, -f["plane"][3], {0: f["x_range"], 2: f["z_range"]})
    s = TRUTH["sphere"]
    oc = origin - np.asarray(s["center"])
    a, b, c = (d * d).sum(1), 2 * (d @ oc), oc @ oc - s["radius"] ** 2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t1 = (-b - np.sqrt(disc)) / (2 * a)
    out |= (disc > 0) & (t1 > 0) & ((1 - t1) * length > margin_m)
    bx = TRUTH["box"]
    yaw = np.radians(bx["yaw_deg"])
    rot = np.array([[np.cos(yaw), -np.sin(yaw), 0.0], [np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    o_l, d_l = rot.T @ (origin - np.asarray(bx["center"])), d @ rot  # the box's own frame
    half = bx["size"] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        ta, tb = (-half - o_l) / d_l, (half - o_l) / d_l
    t_in, t_out = np.nanmax(np.minimum(ta, tb), axis=1), np.nanmin(np.maximum(ta, tb), axis=1)
    out |= (t_out >= t_in) & (t_in > 0) & ((1 - t_in) * length > margin_m)
    return out


def witness_sees(view: dict, witness: dict) -> np.ndarray:
    """[H, W] bool: pixels of ``view`` whose surface point (or, for the sky, whose direction at
    infinity) the ``witness`` view sees: inside its frame and not hidden by any fixture surface.
    The complement is the true void: disocclusions and out of frame."""
    cam, cw = view["camera"], witness["camera"]
    depth = view["depth_m"]
    h, w = depth.shape
    fin = np.isfinite(depth).reshape(-1)
    pts = cam.unproject(cam.pixel_centers().reshape(-1, 2), np.where(fin, depth.reshape(-1), 1.0))
    # the sky is a direction: the witness sees it along the same direction from its own centre
    target = np.where(fin[:, None], pts, cw.position + 1e5 * (pts - cam.position))
    uv, z = cw.project(target)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cw.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cw.height)
    return (inside & ~_blocked(cw.position, target)).reshape(h, w)
