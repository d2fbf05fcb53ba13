# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness refresh: warp the reference photo (the witness) to a new camera through the metric proxy,
find what the witness never saw (the void), keep locked regions, fill the rest, and grow the stage.

The pieces (see docs/refresh.md):

* **Warp** (:func:`warp_witness`). The witness's pixels are a surface: each pixel centre at its
  metric depth (``Scene.depth_m``, the depth the splats were built from), joined to its neighbours
  by triangles except across depth discontinuities. That mesh is rasterised into the target camera
  with a z-buffer, so occlusion is exact and the colour at a pixel is the photo's own colour at the
  point the target sees (interpolated on the surface). Sky and everything masked as infinitely far
  (depth inf, or a region labelled ``sky``) are directions at infinity: they move with the
  camera's rotation only. The proxy's depth confidence comes with it: the splats' confidence pass as
  the witness sees them (rendered once per stage). Splats of earlier fills are rendered at the
  target: where they are the nearest surface they show through.
* **Void**: the pixels no witness triangle covers (disocclusions and out of frame) that no earlier
  refresh filled either. Sky the witness saw is never void.
* **Locks** (:func:`lock_mask`): pixels whose region (the witness's region where it saw the pixel,
  the fill splats' region where an earlier fill shows) is locked, by region id or label; the void
  belongs to no region. No fill or blend writes there: they stay bit-identical to the warp in every
  output.
* **Classical inpainting** (:func:`fill_classical`): a revealed area belongs to the farther surface,
  so each void pixel takes the inverse-distance average of its nearest seen neighbours along eight
  directions, only those on the background side (inverse depth within :data:`BACKGROUND_BAND` of the
  farthest); a one-pixel feather softens the seam on the background side, never over locks.
* **Incremental splats** (:func:`append_fill`): filled pixels become splats at the background
  surface continued (the source region's plane, else the neighbours' interpolated depth), appended
  to the scene with a record of the step in ``Scene.meta["refresh_steps"]``; the next refresh shows
  them instead of a new hole.

Diffusion inpainting lives in :mod:`anchorstage.inpaint_diffusion`; the confidence formula in
:mod:`anchorstage.confidence`; the stage function is :func:`anchorstage.stages.refresh`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

import numpy as np

from .camera import Camera
from .errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .confidence import Confidence
    from .scene import Scene

__all__ = ["Warp", "Refresh", "warp_witness", "void_pass", "resolve_locks", "lock_mask", "fill_classical",
           "composite_fill", "append_fill", "refresh_steps", "save_refresh", "REFRESH_FILES", "INPAINT_METHODS",
           "BACKGROUND_BAND", "FILL_CONFIDENCE", "FEATHER_PX"]

#: Inpainting methods: ``classical`` (no weights, fast) and ``diffusion`` (diffusers ControlNet inpainting).
INPAINT_METHODS = ("classical", "diffusion")
#: A fill candidate is on the background side when its inverse depth is within this relative band of
#: the farthest candidate's.
BACKGROUND_BAND = 0.25
#: Confidence given to splats made from filled pixels (inferred, not observed: like the second layer).
FILL_CONFIDENCE = 0.3
#: Width in pixels of the feather that blends the fill into the background next to it.
FEATHER_PX = 1
#: The files :func:`save_refresh` writes.
REFRESH_FILES = ("witness.png", "witness.exr", "void_map.png", "locks.png", "confidence.json",
                 "confidence_overlay.png", "camera.json")

# Surface continuity of the witness: neighbouring pixels are joined unless their inverse depths jump
# by more than _JUMP_REL of the larger and the jump is not the continuation of either side
# (second difference above _KINK of the jump), which keeps creases and grazing planes joined.
_JUMP_REL = 0.02
_KINK = 0.5
_JUMP_ALONE = 0.05  # both outer neighbours unknown: a jump above this is a discontinuity
_OCCLUDE_REL = 0.03  # a fill splat hides a witness surface when it is this much nearer
_MAX_WALK = 1024  # pixels a fill walks to find a neighbour
_CONF_MAX_SIDE = 640  # the witness's depth confidence is rendered at most this large


def _kernels():
    try:
        from . import _refresh_kernels
    except ImportError as e:  # pragma: no cover - numba is a core dependency
        raise MissingDependencyError(f"witness refresh needs numba (pip install 'numba>=0.60'): {e}") from None
    return _refresh_kernels


# ---------------------------------------------------------------------------------------------- witness mesh
@dataclass
class _WitnessMesh:
    """The witness surface on a grid padded by one vertex on each side (the frame edge).

    Attributes:
        camera: the witness camera.
        winv: [Hp, Wp] float64 witness inverse depth, 1/metres (0: a direction at infinity).
        rays: [Hp, Wp, 3] float64 camera-frame rays (x, y, 1) of the vertices (OpenCV).
        conn_h, conn_v, conn_d: [Hp, Wp-1], [Hp-1, Wp], [Hp-1, Wp-1] bool: vertex (i, j) lies on one
            continuous surface with (i, j+1), (i+1, j), (i+1, j+1).
        image: [Hp, Wp, 3] float32 linear colours of the vertices.
        region: [Hp, Wp] int32 region index of each vertex (-1 none).
        confidence: [Hp, Wp] float32 the proxy's depth confidence at each vertex as the witness sees
            the splats (1 at infinity), or None until :func:`_witness_confidence` fills it.
    """

    camera: Camera
    winv: np.ndarray
    rays: np.ndarray
    conn_h: np.ndarray
    conn_v: np.ndarray
    conn_d: np.ndarray
    image: np.ndarray
    region: np.ndarray
    confidence: Optional[np.ndarray] = None


def _continuous(w: np.ndarray, di: int, dj: int) -> np.ndarray:
    """[Hp - di, Wp - dj] bool: vertex (i, j) and (i + di, j + dj) lie on one continuous surface.

    ``w`` is the inverse depth (0 = at infinity). Two directions at infinity are continuous; a
    finite vertex and a direction never are; two finite vertices are unless their inverse depths
    jump by more than ``_JUMP_REL`` of the larger and the jump is not the linear continuation of the
    pixels beyond either end (a step, not a crease or a grazing plane).
    """
    hp, wp = w.shape
    h, ww = hp - di, wp - dj
    p, q = w[:h, :ww], w[di:, dj:]
    fin_p, fin_q = p > 0, q > 0
    delta = q - p
    jump = np.abs(delta)
    pad = np.pad(w, ((di, di), (dj, dj)), constant_values=0.0)  # beyond the grid: unknown (0)
    before = pad[:h, :ww]          # vertex (i - di, j - dj)
    after = pad[2 * di:2 * di + h, 2 * dj:2 * dj + ww]  # vertex (i + 2 di, j + 2 dj)
    has_b, has_a = before > 0, after > 0
    # second differences at both ends, relative to the jump
    step_p = ~has_b | (np.abs(delta - (p - before)) > _KINK * jump)
    step_q = ~has_a | (np.abs((after - q) - delta) > _KINK * jump)
    big = jump > _JUMP_REL * np.maximum(p, q)
    alone = ~has_b & ~has_a
    disc = big & step_p & step_q & (~alone | (jump > _JUMP_ALONE * np.maximum(p, q)))
    return np.where(fin_p & fin_q, ~disc, ~fin_p & ~fin_q)


def _witness_mesh(scene: "Scene") -> _WitnessMesh:
    """The witness mesh of a scene, cached on the scene while its camera and its depth, image and region
    mask arrays stay the same objects (edit them in place and the cache is stale: make a new Scene)."""
    from .region import label_map

    cam = scene.camera
    depth = np.asarray(scene.depth_m, dtype=np.float32)
    image = np.asarray(scene.image_linear, dtype=np.float32)
    h, w = cam.height, cam.width
    if depth.shape != (h, w) or image.shape != (h, w, 3):
        raise InputError(f"scene: the witness image {list(image.shape)} and depth {list(depth.shape)} must match "
                         f"its camera ({w}x{h})")
    key = (id(depth), id(image), tuple(id(r.mask) for r in scene.regions), tuple(r.label for r in scene.regions),
           json.dumps(cam.to_json_dict()))
    cached = scene.__dict__.get("_witness_mesh")
    if cached is not None and cached[0] == key:
        return cached[1]
    region = label_map(scene.regions, (h, w))
    sky_ids = [r.index for r in scene.regions if r.label == "sky"]
    infinite = ~np.isfinite(depth) | (depth <= 0)
    if sky_ids:
        infinite |= np.isin(region, sky_ids)
    winv = np.where(infinite, 0.0, 1.0 / np.where(infinite, 1.0, depth.astype(np.float64)))
    # Pad by one vertex: the outer ring sits on the frame edge with its neighbour's depth and colour,
    # so the mesh covers the witness frame to its border, not only to the outer pixel centres.
    winv_p = np.pad(winv, 1, mode="edge")
    u = np.clip(np.arange(-1, w + 1) + 0.5, 0.0, float(w))
    v = np.clip(np.arange(-1, h + 1) + 0.5, 0.0, float(h))
    xs = cam.normalized(np.stack([u, np.zeros_like(u)], -1))[:, 0]
    ys = cam.normalized(np.stack([np.zeros_like(v), v], -1))[:, 1]
    rays = np.empty((h + 2, w + 2, 3))
    rays[..., 0], rays[..., 1], rays[..., 2] = xs[None, :], ys[:, None], 1.0
    mesh = _WitnessMesh(cam, winv_p, rays, _continuous(winv_p, 0, 1), _continuous(winv_p, 1, 0), _continuous(winv_p, 1, 1),
                        np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge"), _padded(region))
    scene.__dict__["_witness_mesh"] = (key, mesh)
    return mesh


def _witness_confidence(scene: "Scene", mesh: _WitnessMesh, backend: str = "auto", device: str = "auto") -> np.ndarray:
    """[Hp, Wp] float32 depth confidence of the witness vertices: the scene's per-pixel depth
    confidence when it has one (what the splats' confidence was made from); else the confidence pass
    (normalised by alpha) of the stage's own splats (not earlier fills) rendered at the witness camera — at most
    :data:`_CONF_MAX_SIDE` pixels on the long side, a statistic needs no more — once per stage; 1 for
    directions at infinity."""
    known = getattr(scene, "depth_confidence", None)
    if mesh.confidence is None and known is not None and known.shape == (mesh.camera.height, mesh.camera.width):
        # the per-pixel confidence the splats were made from: no render needed
        mesh.confidence = np.where(mesh.winv == 0, np.float32(1.0), np.pad(known.astype(np.float32), 1, mode="edge"))
    if mesh.confidence is None:
        from .stages import render_frame

        steps = refresh_steps(scene)
        n = min([s["splats"][0] for s in steps], default=len(scene.splats))
        own = scene.splats if n == len(scene.splats) else scene.splats.subset(slice(0, n))
        cam = mesh.camera
        scale = min(1.0, _CONF_MAX_SIDE / max(cam.width, cam.height))
        small = cam.with_resolution(max(1, round(cam.width * scale)), max(1, round(cam.height * scale)))
        p = render_frame(own, small, ("alpha", "confidence"), backend=backend, device=device).passes
        a = p["alpha"]
        conf = np.clip(np.where(a > 1e-3, p["confidence"] / np.maximum(a, 1e-3), 0.0), 0.0, 1.0).astype(np.float32)
        # each witness pixel takes the reduced pixel it falls in
        xs = np.minimum(((np.arange(cam.width) + 0.5) * small.width / cam.width).astype(int), small.width - 1)
        ys = np.minimum(((np.arange(cam.height) + 0.5) * small.height / cam.height).astype(int), small.height - 1)
        conf = np.pad(conf[np.ix_(ys, xs)], 1, mode="edge")
        mesh.confidence = np.where(mesh.winv == 0, np.float32(1.0), conf)
    return mesh.confidence


def _mesh_to_target(mesh: _WitnessMesh, cam: Camera, kern: Any) -> dict[str, np.ndarray]:
    """Rasterise the witness mesh into ``cam``.

    Returns:
        ``seen`` [H, W] bool (covered by the mesh), ``sky`` [H, W] bool (covered at infinity),
        ``winv`` [H, W] float64 target inverse depth (0 sky, -1 uncovered), ``color`` [H, W, 3] float32
        and ``wit_idx`` [H, W] int64 flat padded-grid index of the dominant witness vertex.
    """
    # Witness vertices in the target: q = m ray + b winv is the target camera-frame point times winv
    # (a direction when winv = 0), so one formula moves surfaces and the sky at infinity.
    wc, tc = mesh.camera, cam
    h, w = tc.height, tc.width
    m = tc.cam_from_world[:3, :3] @ wc.world_from_cam[:3, :3]
    b = tc.cam_from_world[:3, :3] @ (wc.position - tc.position)
    cx, cy = tc.principal_point_px
    zbuf = np.full((h, w), -1.0)
    color = np.zeros((h, w, 3), np.float32)
    wit_idx = np.full((h, w), -1, np.int64)
    kern.mesh_warp(mesh.rays, mesh.winv, mesh.conn_h, mesh.conn_v, mesh.conn_d, mesh.image, np.ascontiguousarray(m),
                   np.ascontiguousarray(b), tc.focal_px, cx, cy, tc.clip_start, tc.clip_end, w, h, zbuf, color, wit_idx)
    return {"seen": zbuf >= 0.0, "sky": zbuf == 0.0, "winv": zbuf, "color": color, "wit_idx": wit_idx}


def _angles(winv: np.ndarray, mask: np.ndarray, tc: Camera, wc: Camera) -> np.ndarray:
    """[H, W] float32 angle in degrees at each ``mask`` pixel's point (planar depth 1 / ``winv``)
    between the rays from the target camera ``tc`` and from the witness camera ``wc``; 0 elsewhere."""
    angle = np.zeros(winv.shape, np.float32)
    xs, ys = tc.pixel_rays()
    _kernels().view_angles(np.where(mask, winv, 0.0), xs, ys, np.ascontiguousarray(tc.world_from_cam[:3, :3]),
                           tc.position - wc.position, angle)
    return angle


# ---------------------------------------------------------------------------------------------- warp
@dataclass
class Warp:
    """The witness seen from a target camera.

    Attributes:
        camera: the target camera.
        color: [H, W, 3] float32 linear: the photo's colour where the witness saw the pixel, the
            splats' where an earlier fill covers it, 0 in the void.
        seen: [H, W] bool: the witness saw the pixel (its surface, or the sky as a direction).
        sky: [H, W] bool: seen as a direction at infinity.
        covered: [H, W] bool: not seen by the witness, but shown by the splats of an earlier fill.
        void: [H, W] bool: what the witness never saw and no fill covers (disocclusions, out of frame).
        winv: [H, W] float64 inverse depth of what the pixel shows, 1/metres (0: at infinity; -1 void).
        region: [H, W] int32 region index per pixel (-1 none or void).
        depth_confidence: [H, W] float32 in [0, 1]: the proxy's depth confidence (1 for sky, 0 in voids).
        angle_deg: [H, W] float32 angle between the target's and the witness's rays to the point (0 sky, voids).
    """

    camera: Camera
    color: np.ndarray
    seen: np.ndarray
    sky: np.ndarray
    covered: np.ndarray
    void: np.ndarray
    winv: np.ndarray
    region: np.ndarray
    depth_confidence: np.ndarray
    angle_deg: np.ndarray

    @property
    def depth_m(self) -> np.ndarray:
        """[H, W] float32 planar depth in metres (inf: at infinity or unknown)."""
        with np.errstate(divide="ignore"):
            return np.where(self.winv > 0, 1.0 / np.where(self.winv > 0, self.winv, 1.0), np.inf).astype(np.float32)


def refresh_steps(scene: "Scene") -> list[dict[str, Any]]:
    """The refresh steps recorded in ``scene.meta["refresh_steps"]`` (checked against the splat count).

    Raises:
        InputError: a malformed record.
    """
    steps = scene.meta.get("refresh_steps", []) if isinstance(scene.meta, dict) else []
    if not isinstance(steps, list):
        raise InputError("scene meta refresh_steps must be a list")
    n = len(scene.splats)
    for s in steps:
        rng = s.get("splats") if isinstance(s, dict) else None
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int) for v in rng)
                and 0 <= rng[0] <= rng[1] <= n):
            raise InputError(f"scene meta refresh_steps: malformed step record {s!r} (splats [start, end] within "
                             f"the {n} splats)")
    return steps


def _check_camera(camera: Any) -> Camera:
    if not isinstance(camera, Camera):
        raise InputError(f"refresh: camera must be an anchorstage.Camera (got {type(camera).__name__})")
    return camera


def warp_witness(scene: "Scene", camera: Camera, *, backend: str = "auto", device: str = "auto") -> Warp:
    """Warp the scene's witness (its photo) to ``camera`` through the metric proxy.

    Args:
        scene: the stage: witness photo ``image_linear`` [H, W, 3] linear, ``depth_m`` [H, W] metres
            (inf = sky), ``camera``, ``regions`` and ``splats``.
        camera: the target camera (OpenCV frame, metres).
        backend: render backend (the splats of earlier fills, the witness's depth confidence).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        The :class:`Warp`.

    Raises:
        InputError: bad camera or scene.
    """
    cam = _check_camera(camera)
    kern = _kernels()
    mesh = _witness_mesh(scene)
    steps = refresh_steps(scene)
    fills = [s["splats"] for s in steps if s["splats"][1] > s["splats"][0]]
    h, w = cam.height, cam.width
    m = _mesh_to_target(mesh, cam, kern)
    seen, sky, winv, color, wit_idx = m["seen"], m["sky"], m["winv"], m["color"], m["wit_idx"]
    flat = np.maximum(wit_idx, 0)
    region = np.where(seen, mesh.region.reshape(-1)[flat], -1).astype(np.int32)
    dconf = np.where(seen, _witness_confidence(scene, mesh, backend, device).reshape(-1)[flat], 0.0).astype(np.float32)

    # Splats of earlier fills show where they are the nearest surface: they hide the witness there.
    covered = np.zeros((h, w), bool)
    if fills:
        from .stages import render_frame

        sub = scene.splats.subset(np.concatenate([np.arange(a, e) for a, e in fills]))
        fp = render_frame(sub, cam, ("color", "alpha", "depth", "confidence", "region"), backend=backend,
                          device=device).passes
        fa = fp["alpha"]
        fw = np.where(fa >= 0.5, 1.0 / np.maximum(fp["depth"], 1e-6), -1.0)
        covered = (fa >= 0.5) & (fw > np.where(seen, winv, -1.0) * (1.0 + _OCCLUDE_REL))
        seen &= ~covered
        sky &= ~covered
        winv = np.where(covered, fw, winv)
        color = np.where(covered[..., None], fp["color"] / np.maximum(fa, 1e-6)[..., None], color)
        region = np.where(covered, fp["region"], region)
        dconf = np.where(covered, np.clip(fp["confidence"] / np.maximum(fa, 1e-6), 0.0, 1.0), dconf)
    void = ~seen & ~covered
    angle = _angles(winv, ~void & (winv > 0), cam, mesh.camera)
    return Warp(camera=cam, color=np.where(void[..., None], np.float32(0.0), color).astype(np.float32), seen=seen,
                sky=sky, covered=covered, void=void, winv=np.where(void, -1.0, winv), region=region,
                depth_confidence=dconf.astype(np.float32), angle_deg=angle)


def _padded(a: np.ndarray) -> np.ndarray:
    """A witness-resolution map padded by one pixel on each side (as the mesh's vertex grid)."""
    return np.pad(a, 1, mode="edge")


def void_pass(scene: "Scene", camera: Camera, **kw: Any) -> np.ndarray:
    """[H, W] float32 Void pass of a scene: 1 where the witness never saw the pixel and no fill covers it."""
    return warp_witness(scene, camera, **kw).void.astype(np.float32)


# ---------------------------------------------------------------------------------------------- locks
def resolve_locks(scene: "Scene", locks: Iterable[str] = ()) -> list[int]:
    """Region indices locked by ids or labels in ``locks`` plus the regions the scene already locks.

    Args:
        scene: the scene with its regions.
        locks: region ids (``"facade_001"``) or labels (``"ground"``: every ground region).

    Returns:
        Sorted region indices.

    Raises:
        InputError: a name that is neither a region id nor a label of the scene.
    """
    if isinstance(locks, str):
        locks = [locks]
    out = {r.index for r in scene.regions if r.locked}
    for name in locks:
        hit = [r.index for r in scene.regions if r.id == name or r.label == name]
        if not hit:
            known = sorted({r.id for r in scene.regions} | {r.label for r in scene.regions})
            raise InputError(f"refresh: no region {name!r} to lock; the scene's regions are "
                             f"{', '.join(known) if known else 'none (segment the scene first)'}")
        out.update(hit)
    return sorted(out)


def lock_mask(warp: Warp, locked: Sequence[int]) -> np.ndarray:
    """[H, W] bool pixels of locked regions in the target view: what the witness (or an earlier fill)
    shows of them. The void belongs to no region: nobody saw it."""
    if not len(locked):
        return np.zeros(warp.void.shape, bool)
    return np.isin(warp.region, np.asarray(list(locked), dtype=np.int32)) & ~warp.void


# ---------------------------------------------------------------------------------------------- classical fill
@dataclass
class Fill:
    """A fill of the void.

    Attributes:
        mask: [H, W] bool the pixels the fill writes (the void: it is never locked).
        color: [H, W, 3] float32 linear fill colour (valid inside ``mask``).
        winv: [H, W] float64 inverse depth of the background continued (0: at infinity; -1: unknown).
        source: [H, W] int64 flat index of the supporting pixel each filled pixel continues (-1 none).
        method: ``"classical"`` or ``"diffusion"``.
        notes: what happened (model, steps ...).
        written: [H, W] bool pixels the inpainting wrote when they differ from ``mask`` (diffusion
            regenerates the void grown to the latent grid, less the locks), else None.
    """

    mask: np.ndarray
    color: np.ndarray
    winv: np.ndarray
    source: np.ndarray
    method: str = "classical"
    notes: list[str] = field(default_factory=list)
    written: Optional[np.ndarray] = None


def fill_classical(warp: Warp, locks: np.ndarray) -> Fill:
    """Fill the void from its background side (see the module docstring); locks are never written.

    Args:
        warp: from :func:`warp_witness`.
        locks: [H, W] bool locked pixels.

    Returns:
        The :class:`Fill` of ``warp.void & ~locks``.
    """
    kern = _kernels()
    h, w = warp.void.shape
    mask = warp.void & ~locks
    color = np.zeros((h, w, 3), np.float32)
    winv = np.full((h, w), -1.0)
    src = np.full((h, w), -1, np.int64)
    rows = np.flatnonzero(mask.any(1)).astype(np.int64)
    if rows.size:
        support = ~warp.void
        chunks = np.array_split(rows, min(len(rows), max(1, os.cpu_count() or 1)))
        args = (mask, support, warp.color, warp.winv, _MAX_WALK, BACKGROUND_BAND, color, winv, src)
        from concurrent.futures import ThreadPoolExecutor

        if len(chunks) > 1:  # the kernel releases the GIL: row chunks run side by side
            with ThreadPoolExecutor(len(chunks)) as pool:
                list(pool.map(lambda r: kern.directional_fill(r, *args), chunks))
        else:
            kern.directional_fill(rows, *args)
    unfilled = int((mask & (winv < 0)).sum())
    notes = [f"{unfilled} void pixels have no seen neighbour in any direction: left black"] if unfilled else []
    return Fill(mask=mask, color=color, winv=winv, source=src, notes=notes)


def composite_fill(warp: Warp, fill: Fill, locks: np.ndarray, feather_px: int = FEATHER_PX) -> np.ndarray:
    """The refreshed witness: the warp with the fill inside ``fill.mask`` and a feather of
    ``feather_px`` pixels into the background next to it (half weight at the seam, fading out),
    never into locks or into nearer surfaces.

    Returns:
        [H, W, 3] float32 linear; locked pixels are bit-identical to ``warp.color``.

    Raises:
        RuntimeError: a locked pixel changed (a bug, never a user error).
    """
    out = warp.color.copy()
    m = fill.mask
    out[m] = fill.color[m]
    if feather_px > 0 and m.any():
        _kernels().feather(m, warp.void | locks, warp.winv, fill.color, fill.winv, int(feather_px), BACKGROUND_BAND, out)
    if not np.array_equal(out[locks], warp.color[locks]):
        raise RuntimeError("refresh: a locked pixel changed while compositing the fill (a bug)")
    return out


# ---------------------------------------------------------------------------------------------- incremental splats
def fill_depth(warp: Warp, fill: Fill, regions: Sequence[Any]) -> np.ndarray:
    """[H, W] float32 planar depth (metres) of the filled pixels: the background surface continued.

    The plane of the region the fill continues (its source pixel's region) when the pixel's ray meets
    it in front of the camera within a factor 2 of the neighbours' depth, else the neighbours'
    interpolated inverse depth; inf at infinity (sky) and outside the fill.
    """
    cam = warp.camera
    h, w = fill.mask.shape
    out = np.full((h, w), np.inf, np.float32)
    m = fill.mask & (fill.winv > 0)
    if not m.any():
        return out
    z_interp = 1.0 / fill.winv[m]
    z = z_interp.copy()
    src = fill.source[m]
    reg = np.where(src >= 0, warp.region.reshape(-1)[np.maximum(src, 0)], -1)
    xs, ys = cam.pixel_rays()
    yy, xx = np.nonzero(m)
    d_cam = np.stack([xs[xx], ys[yy], np.ones(len(xx))], 1)  # ray with planar z = 1
    d_world = d_cam @ cam.world_from_cam[:3, :3].T
    for r in regions:
        if r.plane is None:
            continue
        sel = reg == r.index
        if not sel.any():
            continue
        n, d0 = np.asarray(r.plane[:3]), float(r.plane[3])
        denom = d_world[sel] @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -(n @ cam.position + d0) / denom  # planar depth, as the ray has z = 1
        ok = np.isfinite(t) & (t > cam.clip_start) & (t > 0.5 * z_interp[sel]) & (t < 2.0 * z_interp[sel])
        zz = z[sel]
        zz[ok] = t[ok]
        z[sel] = zz
    out[m] = z
    return out


def append_fill(scene: "Scene", warp: Warp, fill: Fill, image: np.ndarray, *, step: dict[str, Any],
                fill_depth_m: np.ndarray, device: str = "auto") -> tuple["Scene", int]:
    """A copy of ``scene`` with the filled pixels as new splats and the step recorded.

    The new splats come from the regression itself (:func:`anchorstage.reconstruct` on the filled
    pixels with their continued depth, one splat per pixel), with confidence
    :data:`FILL_CONFIDENCE` and the region of the surface they continue.

    Args:
        scene: the stage.
        warp: the warp of this step.
        fill: the fill of this step.
        image: [H, W, 3] float32 the refreshed witness (linear).
        step: JSON-ready record of the step (camera, locks, confidence ...); ``splats`` is added.
        fill_depth_m: [H, W] float32 :func:`fill_depth` of this fill, metres (inf outside it).
        device: where the regression runs.

    Returns:
        (the new scene, splats added).
    """
    import torch

    from .regression import reconstruct
    from .splats import Splats

    depth = fill_depth_m
    n_fill = int(np.isfinite(depth).sum())
    n0 = len(scene.splats)
    meta = dict(scene.meta)
    splats = scene.splats
    regions = [replace(r) for r in scene.regions]
    if n_fill:
        # No colour fit: these splats join a stage whose other splats the fit would not see.
        add = reconstruct(image, depth, warp.camera, max_splats=n_fill, second_layer=False, fit_colors=False,
                          device=device).splats
        add = add.to(splats.device)
        add.confidence = add.confidence * FILL_CONFIDENCE
        uv, _ = warp.camera.project(add.means.detach().cpu().numpy())
        ix = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, warp.camera.width - 1)
        iy = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, warp.camera.height - 1)
        src = fill.source[iy, ix]
        rid = np.where(src >= 0, warp.region.reshape(-1)[np.maximum(src, 0)], -1).astype(np.int32)
        add.region_ids = torch.from_numpy(rid).to(splats.device)
        splats = Splats.concat([splats, add])
        for r in regions:
            if r.splat_indices is not None:
                r.splat_indices = np.concatenate([r.splat_indices, n0 + np.flatnonzero(rid == r.index)]).astype(np.int64)
    record = dict(step)
    record["splats"] = [n0, len(splats)]
    meta["refresh_steps"] = list(meta.get("refresh_steps", [])) + [record]
    new = replace(scene, splats=splats, regions=regions, meta=meta)
    if "_witness_mesh" in scene.__dict__:  # the witness did not change: its mesh and confidence still hold
        new.__dict__["_witness_mesh"] = scene.__dict__["_witness_mesh"]
    return new, len(splats) - n0


# ---------------------------------------------------------------------------------------------- result + files
@dataclass
class Refresh:
    """A refreshed witness (the result of :func:`anchorstage.refresh`).

    Attributes:
        camera: the target camera.
        witness: [H, W, 3] float32 linear Rec.709 refreshed witness.
        warp: the warp it was made from (``warp.color`` is the witness before filling).
        void: [H, W] bool pixels the witness never saw (and no earlier fill covers).
        locks: [H, W] bool pixels of locked regions (bit-identical to the warp in every output).
        filled: [H, W] bool pixels the inpainting wrote (void and not locked).
        confidence: the :class:`~anchorstage.confidence.Confidence` of the shot.
        scene: the stage after the step (with the fill's splats when the scene was updated).
        added_splats: splats appended by this step (0 without an update).
        inpaint: ``"classical"`` or ``"diffusion"``.
        locked_regions: ids of the locked regions.
        notes: what happened (inpainting details, warnings).
        fill_depth_m: [H, W] float32 planar depth in metres of the background the fill continued
            (inf outside the fill and at infinity), or None when nothing was filled.
    """

    camera: Camera
    witness: np.ndarray
    warp: Warp
    void: np.ndarray
    locks: np.ndarray
    filled: np.ndarray
    confidence: "Confidence"
    scene: "Scene"
    added_splats: int = 0
    inpaint: str = "classical"
    locked_regions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fill_depth_m: Optional[np.ndarray] = None

    @property
    def depth_m(self) -> np.ndarray:
        """[H, W] float32 planar depth of what each pixel shows, metres (inf: sky or unknown)."""
        return self.warp.depth_m

    @property
    def proxy_depth_m(self) -> np.ndarray:
        """[H, W] float32 planar depth in metres of the proxy: what each pixel shows, and in the void the
        background the fill continued (inf: sky or unknown); what generation is conditioned on."""
        if self.fill_depth_m is None:
            return self.warp.depth_m
        return np.where(np.isfinite(self.fill_depth_m), self.fill_depth_m, self.warp.depth_m).astype(np.float32)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts of the step."""
        return {"camera": self.camera.to_json_dict(), "inpaint": self.inpaint, "locked_regions": self.locked_regions,
                "void_px": int(self.void.sum()), "filled_px": int(self.filled.sum()), "locked_px": int(self.locks.sum()),
                "added_splats": int(self.added_splats), "confidence": self.confidence.to_json_dict(), "notes": self.notes}


def save_refresh(result: Refresh, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a refresh's files into ``out_dir`` (created), each atomically.

    ``witness.png`` (8-bit sRGB), ``witness.exr`` (linear float32, Blender-named multilayer: the refreshed
    witness as Combined, Depth, Void, Confidence and Region), ``void_map.png`` (white = void),
    ``locks.png`` (white = locked), ``confidence.json``, ``confidence_overlay.png`` and ``camera.json``.

    Returns:
        file name → path.

    Raises:
        OutputError: the folder cannot be written.
    """
    from .atomic import atomic_file, ensure_writable_dir
    from .camera import save_camera_json
    from .confidence import overlay
    from .exr import write_exr
    from .image_io import save_png
    from .passes import BACKGROUND_DEPTH

    out = ensure_writable_dir(out_dir, "refresh folder")
    paths = {name: out / name for name in REFRESH_FILES}
    h, w = result.void.shape
    save_png(paths["witness.png"], result.witness)
    depth = result.depth_m
    passes = {"color": result.witness, "alpha": np.ones((h, w), np.float32),
              "depth": np.where(np.isfinite(depth), depth, BACKGROUND_DEPTH).astype(np.float32),
              "confidence": result.confidence.map, "region": result.warp.region, "void": result.void.astype(np.float32)}
    write_exr(paths["witness.exr"], passes, camera=result.camera, half_for=(), meta={"refresh": result.summary()})
    save_png(paths["void_map.png"], result.void)
    save_png(paths["locks.png"], result.locks)
    save_png(paths["confidence_overlay.png"], overlay(result.witness, result.confidence.map, result.void), linear=False)
    with atomic_file(paths["confidence.json"], "confidence file") as tmp:
        tmp.write_text(json.dumps({**result.confidence.to_json_dict(), "refresh": result.summary()}, indent=2),
                       encoding="utf-8")
    save_camera_json(paths["camera.json"], result.camera)
    return paths
