# SPDX-License-Identifier: GPL-3.0-or-later
"""Split a scene into regions an artist can lock or replace: sky, ground, facades, objects.

The image-space core, :func:`segment_depth`, works on the reference photo, its metric depth and
its camera (no splats needed); :func:`segment` runs it on a scene and labels the splats.

Method (all in the world frame, Z up, metres; see docs/region_data_format.md for the output):

1. Work grid: the image is subsampled by an integer stride so that at most ~250k pixels are
   processed (1080p → stride 3); labels are brought back to full resolution at the end.
2. Points and normals: every valid pixel is unprojected with its planar depth; normals come
   from the cross product of the point map's central differences, box-smoothed.
3. Sky: pixels with invalid/infinite depth, plus far pixels above the horizon with a sky colour
   (blue-dominant, or bright and unsaturated) and little texture that connect to them or to the
   top edge (monocular models often give the sky a large finite depth).
4. Ground: RANSAC over points with near-vertical normals below the camera, hypotheses limited to
   planes within 40° of horizontal (a photo's default pose is level, so a pitched camera tilts
   the ground in the world); the plane with most inliers wins and is refined by a
   least-squares (SVD) fit on its inliers. Inliers are within ``1.5 cm + 2 %`` of the depth.
5. Facades: the same RANSAC over the remaining points, planes within 15° of perpendicular to the
   ground found (world Z without one). A plane's inliers are split into depth-connected parts (a
   jump of more than 5 % in depth between neighbours separates them), and a part becomes facade
   only when it is building-scale on its own: ≥ 2 % of the pixels, at least 2 m wide and 1.5 m
   tall or 4 m wide, at least half of what is left of its depth-connected surface (a cap cut from
   a sphere or a column is not), and that surface does not stand silhouetted in front of a
   larger one (a box before a wall). Other parts are left to the objects, so a compact object
   stays whole. Repeated for up to 8 planes or 4 facades.
6. Objects: the rest is split into depth-connected components; components under 0.3 % of the
   image are merged into their nearest region. The largest become ``object_001``,
   ``object_002``, … up to ``max_regions``.
7. Full resolution: labels are upsampled, and pixels near a label boundary are re-decided per
   pixel (the plane they lie on, else the neighbouring object), so edges are pixel-accurate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy import ndimage

from .camera import Camera
from .errors import InputError
from .progress import ProgressFn, report
from .region import Region, label_map

__all__ = ["segment", "segment_depth", "label_map", "assign_splats", "WORK_PIXELS"]

#: Largest number of pixels the segmentation processes (the image is subsampled above it).
WORK_PIXELS = 250_000

_TAU_ABS_M = 0.015
_TAU_REL = 0.02
_GROUND_MAX_TILT_DEG = 40.0
_FACADE_MAX_TILT_DEG = 15.0
_FACADE_MIN_FRACTION = 0.02
_FACADE_MIN_WIDTH_M = 2.0
_FACADE_MIN_HEIGHT_M = 1.5
_FACADE_WIDE_M = 4.0
_FACADE_DOMINANT = 0.5  # share of its depth-connected surface a facade part must hold
_MAX_FACADES = 4
_FACADE_TRIES = 8  # planes tried, kept or rejected (each costs one RANSAC)
_OBJECT_MIN_FRACTION = 0.003
_DEPTH_JUMP_REL = 0.05
_RANSAC_SAMPLES = 4000
_RANSAC_HYPOTHESES = 300


@dataclass
class _Work:
    """Subsampled inputs shared by the stages."""

    stride: int
    rgb: np.ndarray  # [h, w, 3] linear
    depth: np.ndarray  # [h, w] metres, inf invalid
    valid: np.ndarray  # [h, w] bool
    points: np.ndarray  # [h, w, 3] world metres (0 where invalid)
    normals: np.ndarray  # [h, w, 3] unit world normals (0 where unknown)
    ray_up: np.ndarray  # [h, w] world z of the unit viewing ray (> 0 above the horizon)
    cam_z: float


def _check_inputs(image_linear: np.ndarray, depth_m: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image_linear)
    depth = np.asarray(depth_m)
    if img.ndim != 3 or img.shape[2] < 3:
        raise InputError(f"segmentation image must be [H, W, 3] linear RGB (got shape {list(img.shape)})")
    if depth.ndim != 2 or depth.shape != img.shape[:2]:
        raise InputError(f"segmentation depth must be [H, W] matching the image {list(img.shape[:2])} "
                         f"(got shape {list(depth.shape)})")
    if not isinstance(camera, Camera):
        raise InputError(f"segmentation camera must be an anchorstage.Camera (got {type(camera).__name__})")
    if (camera.width, camera.height) != (depth.shape[1], depth.shape[0]):
        raise InputError(f"camera resolution {camera.width}x{camera.height} does not match the depth map "
                         f"({depth.shape[1]}x{depth.shape[0]})")
    depth = depth.astype(np.float32, copy=False)
    if np.any(np.isnan(depth)):
        raise InputError("segmentation depth has NaN values (use inf for sky/invalid)")
    return img[..., :3].astype(np.float32, copy=False), depth


def _prepare(img: np.ndarray, depth: np.ndarray, camera: Camera) -> _Work:
    H, W = depth.shape
    s = max(1, int(math.ceil(math.sqrt(H * W / WORK_PIXELS))))
    d = np.ascontiguousarray(depth[::s, ::s])
    rgb = np.ascontiguousarray(img[::s, ::s])
    valid = np.isfinite(d) & (d > 0)
    h, w = d.shape
    u, v = (a.astype(np.float32) for a in camera.pixel_rays(s))
    rot = camera.rotation.astype(np.float32)
    # Camera-frame ray (u, v, 1) rotated to world; points = ray * depth + centre.
    ray = u[None, :, None] * rot[:, 0] + v[:, None, None] * rot[:, 1] + rot[:, 2]
    dz = np.where(valid, d, 0.0).astype(np.float32)
    pts = ray * dz[..., None] + camera.position.astype(np.float32)
    ray_up = ray[..., 2] / np.linalg.norm(ray, axis=-1)
    normals = _normals(pts, valid)
    return _Work(s, rgb, d, valid, pts, normals, ray_up, float(camera.position[2]))


def _normals(pts: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[h, w, 3] unit normals from a point map (0 where a neighbour is invalid)."""
    dx = np.zeros_like(pts)
    dy = np.zeros_like(pts)
    dx[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dy[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(dx, dy)
    ok = valid.copy()
    ok[:, 1:-1] &= valid[:, 2:] & valid[:, :-2]
    ok[1:-1] &= valid[2:] & valid[:-2]
    ok[[0, -1], :] = False
    ok[:, [0, -1]] = False
    nn = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(ok[..., None] & (nn > 0), n / np.maximum(nn, 1e-20), 0.0)
    # Box-smooth, then renormalise: steadies per-pixel noise of estimated depth.
    n = ndimage.uniform_filter(n, size=(3, 3, 1), mode="nearest")
    nn = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(nn > 0.5, n / np.maximum(nn, 1e-20), 0.0).astype(np.float32)


def _tau(depth: np.ndarray) -> np.ndarray:
    """Plane-distance tolerance in metres for points at ``depth`` metres (any shape)."""
    return _TAU_ABS_M + _TAU_REL * depth


def _fit_plane(p: np.ndarray) -> np.ndarray:
    """Least-squares plane (a, b, c, d), unit normal, through [N, 3] points."""
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd((p - c).astype(np.float64), full_matrices=False)
    n = vt[-1]
    return np.append(n, -n @ c)


def _ransac(pts: np.ndarray, nrm: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
            accept_normal: Any) -> Optional[np.ndarray]:
    """Best plane for [N, 3] points with [N, 3] normals; ``accept_normal([K, 3]) -> [K] bool`` restricts it."""
    n_pts = len(pts)
    if n_pts < 50:
        return None
    idx = rng.choice(n_pts, size=min(_RANSAC_SAMPLES, n_pts), replace=False)
    sp, sn, sd = pts[idx].astype(np.float64), nrm[idx], depth[idx]
    tri = rng.integers(0, len(sp), size=(_RANSAC_HYPOTHESES, 3))
    a, b, c = sp[tri[:, 0]], sp[tri[:, 1]], sp[tri[:, 2]]
    hn = np.cross(b - a, c - a)
    norm = np.linalg.norm(hn, axis=1)
    keep = norm > 1e-9
    hn = hn[keep] / norm[keep, None]
    a = a[keep]
    keep = accept_normal(hn)
    hn, a = hn[keep], a[keep]
    if len(hn) == 0:
        return None
    hd = -np.einsum("kj,kj->k", hn, a)
    dist = np.abs(sp @ hn.T + hd)  # [S, K]
    agree = np.abs(sn @ hn.T) > math.cos(math.radians(30))
    score = ((dist < _tau(sd)[:, None]) & agree).sum(axis=0)
    best = int(np.argmax(score))
    plane = np.append(hn[best], hd[best])
    # Refine twice on all points: least squares on the current inliers.
    for _ in range(2):
        inl = _inliers(pts, nrm, depth, plane)
        if inl.sum() < 3:
            return None
        plane = _fit_plane(pts[inl])
    return plane


def _inliers(pts: np.ndarray, nrm: np.ndarray, depth: np.ndarray, plane: np.ndarray) -> np.ndarray:
    """[...] bool: points within the distance tolerance whose normal agrees (or that lie very close).

    ``pts`` [..., 3] world metres, ``nrm`` [..., 3] unit normals, ``depth`` [...] metres,
    ``plane`` (a, b, c, d) with a unit normal.
    """
    dist = np.abs(pts @ plane[:3].astype(np.float32) + np.float32(plane[3]))
    tau = _tau(depth)
    agree = np.abs(nrm @ plane[:3].astype(np.float32)) > math.cos(math.radians(30))
    # Near a crease the smoothed normal blends two planes: trust distance alone when it is tiny.
    return (dist < tau) & (agree | (dist < tau / 3))


def _sky(wk: _Work) -> np.ndarray:
    """[h, w] bool sky mask at the work resolution."""
    sky = ~wk.valid
    if wk.valid.any():
        rgb = np.clip(wk.rgb, 0.0, None)
        lum = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
        mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
        sat = (mx - mn) / np.maximum(mx, 1e-6)
        bluish = (rgb[..., 2] > rgb[..., 0] * 1.15) & (rgb[..., 2] >= rgb[..., 1] * 0.9) & (lum > 0.05)
        overcast = (lum > 0.4) & (sat < 0.15)
        texture = ndimage.uniform_filter(lum, 5) - lum
        smooth = np.abs(texture) < 0.03 * np.maximum(lum, 0.05)
        far = wk.depth >= 0.9 * np.percentile(wk.depth[wk.valid], 99)
        cand = wk.valid & far & (wk.ray_up > 0) & (bluish | overcast) & smooth
        if cand.any():
            seeds = sky.copy()
            seeds[0] |= cand[0]
            lab, _ = ndimage.label(cand | sky, structure=np.ones((3, 3)))
            keep = np.unique(lab[seeds & (lab > 0)])
            sky = sky | (np.isin(lab, keep[keep > 0]) & cand)
    return sky


def _plane_extent(pts: np.ndarray, plane: np.ndarray, up: np.ndarray) -> tuple[float, float]:
    """(horizontal, vertical) robust extent in metres of [N, 3] points on a plane standing along ``up``."""
    horiz = np.cross(up, plane[:3])
    horiz /= max(np.linalg.norm(horiz), 1e-12)
    a = pts @ horiz
    z = pts @ up
    lo_a, hi_a = np.percentile(a, [2, 98])
    lo_z, hi_z = np.percentile(z, [2, 98])
    return float(hi_a - lo_a), float(hi_z - lo_z)


def _orient(plane: np.ndarray, toward: np.ndarray) -> tuple[float, ...]:
    """Plane with its normal facing the point ``toward`` (the camera)."""
    if plane[:3] @ toward + plane[3] < 0:
        plane = -plane
    return tuple(float(v) for v in plane)


def _labels(image_linear: np.ndarray, depth_m: np.ndarray, camera: Camera, max_regions: int,
            seed: int, progress: Optional[ProgressFn]) -> tuple[list[Region], np.ndarray]:
    """(regions without masks, [H, W] int32 label map with -1 unassigned)."""
    if isinstance(max_regions, bool) or not isinstance(max_regions, (int, np.integer)) or not 3 <= max_regions <= 255:
        raise InputError(f"max_regions must be an integer from 3 to 255 (got {max_regions!r})")
    img, depth = _check_inputs(image_linear, depth_m, camera)
    rng = np.random.default_rng(seed)
    wk = _prepare(img, depth, camera)
    h, w = wk.depth.shape
    n_px = h * w
    report(progress, 0.2, "sky")
    lab = np.full((h, w), -1, dtype=np.int32)
    kinds: list[tuple[str, Optional[tuple[float, ...]], dict[str, Any]]] = []
    cam = camera.position

    sky = _sky(wk)
    if sky.any():
        lab[sky] = len(kinds)
        kinds.append(("sky", None, {}))
    free = wk.valid & ~sky

    report(progress, 0.35, "ground plane")
    cos_g = math.cos(math.radians(_GROUND_MAX_TILT_DEG))
    up = np.array([0.0, 0.0, 1.0])
    ground = np.zeros_like(free)
    cand = free & (np.abs(wk.normals[..., 2]) > math.cos(math.radians(_GROUND_MAX_TILT_DEG + 10))) & \
        (wk.points[..., 2] < wk.cam_z)
    if cand.sum() >= 0.01 * n_px:
        plane = _ransac(wk.points[cand], wk.normals[cand], wk.depth[cand], rng, lambda n: np.abs(n[:, 2]) > cos_g)
        if plane is not None and abs(plane[2]) > cos_g:
            inl = free & _inliers(wk.points, wk.normals, wk.depth, plane)
            inl = _large_parts(inl, _OBJECT_MIN_FRACTION * n_px)
            if inl.sum() >= 0.01 * n_px:
                lab[inl] = len(kinds)
                ground = inl
                kinds.append(("ground", _orient(plane, cam), _plane_stats(wk, inl, plane)))
                free &= ~inl
                # Facades stand perpendicular to the ground found: robust to a pitched or rolled camera.
                up = np.asarray(kinds[-1][1][:3])

    report(progress, 0.5, "facades")
    jump = _depth_jumps(wk.depth, wk.valid)
    surfaces = _Surfaces(free & ~jump, ground, wk.valid & ~sky)
    sin_f = math.sin(math.radians(_FACADE_MAX_TILT_DEG))
    rejected = np.zeros_like(free)
    for _ in range(_FACADE_TRIES):
        if sum(k[0] == "facade" for k in kinds) >= _MAX_FACADES or len(kinds) >= max_regions:
            break
        cand = free & ~rejected & (np.abs(wk.normals @ up.astype(np.float32)) < math.sin(math.radians(30))) & \
            (np.linalg.norm(wk.normals, axis=-1) > 0)
        if cand.sum() < _FACADE_MIN_FRACTION * n_px:
            break
        plane = _ransac(wk.points[cand], wk.normals[cand], wk.depth[cand], rng, lambda n: np.abs(n @ up) < sin_f)
        if plane is None or abs(plane[:3] @ up) >= sin_f:
            break
        inl = free & _inliers(wk.points, wk.normals, wk.depth, plane)
        if inl.sum() < _FACADE_MIN_FRACTION * n_px:
            break
        wall = _facade_support(wk, inl, jump, free, plane, up, surfaces, n_px)
        rejected |= inl & ~wall  # flat faces and caps of objects: left for the object stage
        if not wall.any():
            continue
        plane = _fit_plane(wk.points[wall])  # refit without the rejected fragments pulling on it
        width_m, height_m = _plane_extent(wk.points[wall], plane, up)
        lab[wall] = len(kinds)
        stats = _plane_stats(wk, wall, plane)
        stats.update(width_m=round(width_m, 3), height_m=round(height_m, 3))
        kinds.append(("facade", _orient(plane, cam), stats))
        free &= ~wall

    report(progress, 0.7, "objects")
    min_obj = max(4, int(_OBJECT_MIN_FRACTION * n_px))
    if free.any():
        comp, n_comp = ndimage.label(free & ~jump)
        if n_comp:
            sizes = np.bincount(comp.ravel(), minlength=n_comp + 1)
            sizes[0] = 0
            order = np.argsort(-sizes)
            room = max_regions - len(kinds)
            for c in order[:max(room, 0)]:
                if sizes[c] < min_obj:
                    break
                m = comp == c
                lab[m] = len(kinds)
                kinds.append(("object", None, {"mean_depth_m": round(float(wk.depth[m].mean()), 4)}))

    report(progress, 0.85, "merging small parts")
    lab = _fill_unassigned(lab, wk.valid | sky)
    full = _upsample(lab, wk.stride, depth.shape)
    has_sky = any(k[0] == "sky" for k in kinds)
    if wk.stride > 1:
        _refine_boundaries(full, lab, depth, camera, [k[1] for k in kinds], has_sky, wk.stride)
    if has_sky:
        full[~(np.isfinite(depth) & (depth > 0))] = 0  # sky is region 0 when present
    counters: dict[str, int] = {}
    regions = []
    for i, (label, plane, extra) in enumerate(kinds):
        counters[label] = counters.get(label, 0) + 1
        rid = "sky" if label == "sky" else f"{label}_{counters[label]:03d}"
        regions.append(Region(index=i, id=rid, label=label, plane=plane, extra=extra))
    return regions, full


def _depth_jumps(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[h, w] bool: pixels whose right or lower neighbour is more than 5 % nearer or farther.

    Removing them from a mask cuts it along depth discontinuities, so its connected components
    are depth-connected surfaces. ``depth`` [h, w] metres, ``valid`` [h, w] bool.
    """
    ld = np.log(np.where(valid, depth, 1.0))
    jump = np.zeros(depth.shape, dtype=bool)
    jump[:, :-1] |= np.abs(ld[:, 1:] - ld[:, :-1]) > _DEPTH_JUMP_REL
    jump[:-1] |= np.abs(ld[1:] - ld[:-1]) > _DEPTH_JUMP_REL
    return jump


class _Surfaces:
    """Depth-connected surfaces of the scene below the sky, for judging facade candidates.

    Args:
        mask: [h, w] bool pixels to split into surfaces (geometry left after sky and ground,
            without depth-jump pixels).
        ground: [h, w] bool ground pixels, one more surface (an object may stand against it).
        geometry: [h, w] bool pixels with valid depth that are not sky.
    """

    def __init__(self, mask: np.ndarray, ground: np.ndarray, geometry: np.ndarray) -> None:
        self.geometry = geometry
        self.label, n = ndimage.label(mask)
        self.label[ground] = n + 1
        self.size = np.bincount(self.label.ravel(), minlength=n + 2)
        self.size[0] = 0  # jump pixels and sky belong to no surface
        self.box = ndimage.find_objects(self.label)


def _stands_in_front(wk: _Work, surfaces: _Surfaces, k: int) -> bool:
    """Whether surface ``k`` is silhouetted against a larger surface behind it (a box before a wall).

    Looks at a 2-pixel ring around the surface: when most of the ring that has geometry (sky is
    neutral: a wall's top edge meets it) lies more than 5 % farther, on a surface larger than
    ``k``, the surface is a compact thing standing in front, not a wall.
    """
    r0, c0 = surfaces.box[k - 1][0].start, surfaces.box[k - 1][1].start
    r1, c1 = surfaces.box[k - 1][0].stop, surfaces.box[k - 1][1].stop
    sl = (slice(max(r0 - 2, 0), r1 + 2), slice(max(c0 - 2, 0), c1 + 2))
    own = surfaces.label[sl] == k
    ld = np.log(np.where(wk.valid[sl], wk.depth[sl], 1.0))
    ring = ndimage.maximum_filter(own, size=5) & ~own & surfaces.geometry[sl]
    # Log depth of the nearest-to-camera pixel of the surface within 2 pixels of each ring pixel.
    near = ndimage.minimum_filter(np.where(own, ld, np.inf), size=5)
    behind = ring & (ld - near > _DEPTH_JUMP_REL)
    if behind.sum() <= 0.5 * ring.sum():
        return False
    return bool(surfaces.size[surfaces.label[sl][behind]].max() > surfaces.size[k])


def _facade_support(wk: _Work, inl: np.ndarray, jump: np.ndarray, free: np.ndarray, plane: np.ndarray,
                    up: np.ndarray, surfaces: _Surfaces, n_px: int) -> np.ndarray:
    """[h, w] bool: the parts of a vertical plane's inliers ``inl`` [h, w] that are a facade.

    A plane through a box face also grazes a column and a disc of a sphere elsewhere in the
    image, so the inliers are split into depth-connected parts and each is judged on its own:
    it is kept when it holds ≥ 2 % of the pixels, is building-sized (≥ 2 m wide and 1.5 m tall, or
    ≥ 4 m wide: a wall cut by the frame may show little height), holds at least half of what is
    left of its depth-connected surface (a cap of a curved object or one face of a box does not),
    and that surface does not stand in front of a larger one (a box or a column against a wall).
    """
    comp, n = ndimage.label(inl & ~jump, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros_like(inl)
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    keep = np.zeros(n + 1, dtype=bool)
    for c in np.flatnonzero(sizes[1:] >= _FACADE_MIN_FRACTION * n_px) + 1:
        part = comp == c
        width_m, height_m = _plane_extent(wk.points[part], plane, up)
        if not ((width_m >= _FACADE_MIN_WIDTH_M and height_m >= _FACADE_MIN_HEIGHT_M) or width_m >= _FACADE_WIDE_M):
            continue
        k = int(np.bincount(surfaces.label[part]).argmax())
        if sizes[c] < _FACADE_DOMINANT * np.count_nonzero((surfaces.label == k) & free):
            continue
        keep[c] = not _stands_in_front(wk, surfaces, k)
    # Give back the jump pixels along the kept parts' edges (they are inliers too).
    return inl & ndimage.binary_dilation(keep[comp])


def _large_parts(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Connected parts of ``mask`` with at least ``min_px`` pixels (stray coplanar specks go)."""
    comp, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    return (sizes >= min_px)[comp]


def _plane_stats(wk: _Work, inl: np.ndarray, plane: np.ndarray) -> dict[str, Any]:
    d = wk.points[inl] @ plane[:3].astype(np.float32) + np.float32(plane[3])
    return {"inlier_rms_m": round(float(np.sqrt(np.mean(d * d))), 5)}


def _fill_unassigned(lab: np.ndarray, assignable: np.ndarray) -> np.ndarray:
    """[h, w] labels: unassigned (-1) pixels where ``assignable`` [h, w] take the nearest label."""
    hole = (lab < 0) & assignable
    if not hole.any() or not (lab >= 0).any():
        return lab
    _, (iy, ix) = ndimage.distance_transform_edt(lab < 0, return_indices=True)
    out = lab.copy()
    out[hole] = lab[iy[hole], ix[hole]]
    return out


def _refine_boundaries(full: np.ndarray, lab: np.ndarray, depth: np.ndarray, camera: Camera,
                       planes: list[Optional[tuple[float, ...]]], has_sky: bool, stride: int) -> None:
    """Re-decide, at full resolution, the pixels near a label boundary of the subsampled grid (in place).

    Each such pixel picks among the labels of its 3x3 work-grid neighbourhood: the planar region
    whose plane it lies on (closest, within tolerance), else the most common other non-sky label;
    pixels without geometry stay sky. Without this, boundaries would be ``stride``-pixel steps.
    """
    band = ndimage.maximum_filter(lab, size=3) != ndimage.minimum_filter(lab, size=3)
    rows, cols = np.nonzero(_upsample(band.astype(np.int32), stride, depth.shape))
    if len(rows) == 0:
        return
    d = depth[rows, cols]
    geo = np.isfinite(d) & (d > 0)
    rows, cols, d = rows[geo], cols[geo], d[geo]
    h, w = lab.shape
    wr, wc = np.minimum(rows // stride, h - 1), np.minimum(cols // stride, w - 1)
    cand = np.stack([lab[np.clip(wr + dr, 0, h - 1), np.clip(wc + dc, 0, w - 1)]
                     for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=1)  # [B, 9]
    pts = camera.unproject(np.stack([cols + 0.5, rows + 0.5], axis=1), d)
    tau = _tau(d)
    best = np.full(len(d), -1, dtype=np.int32)
    best_dist = np.full(len(d), np.inf)
    for k, plane in enumerate(planes):
        if plane is None:
            continue
        dist = np.abs(pts @ np.asarray(plane[:3]) + plane[3])
        ok = (cand == k).any(axis=1) & (dist < tau) & (dist < best_dist)
        best[ok], best_dist[ok] = k, dist[ok]
    other = np.array([p is None for p in planes] + [False], dtype=bool)  # indexable by -1
    if has_sky:
        other[0] = False
    non_planar = np.where(other[cand], cand, -1)
    votes = np.zeros((len(d), len(planes)), dtype=np.int32)
    for j in range(cand.shape[1]):
        ok = non_planar[:, j] >= 0
        votes[np.flatnonzero(ok), non_planar[ok, j]] += 1
    fallback = np.where(votes.max(axis=1) > 0, votes.argmax(axis=1), full[rows, cols])
    full[rows, cols] = np.where(best >= 0, best, fallback)


def _upsample(lab: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour [H, W] copy of a work-grid [h, w] map subsampled by ``stride``."""
    if stride == 1:
        return lab
    H, W = shape
    return lab[np.minimum(np.arange(H) // stride, lab.shape[0] - 1)][:, np.minimum(np.arange(W) // stride,
                                                                                     lab.shape[1] - 1)]


def segment_depth(image_linear: np.ndarray, depth_m: np.ndarray, camera: Camera, *, max_regions: int = 10,
                  seed: int = 0, progress: Optional[ProgressFn] = None) -> list[Region]:
    """Regions of a photo from its metric depth (pure image-space core of :func:`segment`).

    Args:
        image_linear: [H, W, 3] float32 linear Rec.709 reference image.
        depth_m: [H, W] float32 planar depth (z along the view axis), metres; inf/≤0 = no geometry (sky).
        camera: the photo's camera (resolution W x H; world frame Z up, metres).
        max_regions: at most this many regions (3–255).
        seed: RANSAC random seed (results are deterministic for a given seed).
        progress: optional progress callback.

    Returns:
        Regions ordered sky (index 0 when present), ground, facades, objects; each with an
        [H, W] bool ``mask`` (masks are disjoint), ``plane`` for ground/facades, ``locked=False``.
    """
    regions, full = _labels(image_linear, depth_m, camera, max_regions, seed, progress)
    for r in regions:
        r.mask = full == r.index
        r.extra["pixel_fraction"] = round(float(r.mask.mean()), 5)
    report(progress, 1.0, "regions done")
    return regions


def assign_splats(means_world: np.ndarray, camera: Camera, labels: np.ndarray, depth_m: np.ndarray,
                  regions: list[Region]) -> np.ndarray:
    """Region index of each splat.

    A splat takes the label of the pixel its centre projects to. Splats that do not sit on the
    visible surface there (hidden layers, more than 10 % off the pixel's depth) go to a planar
    region whose plane they lie on when there is one, else keep the pixel's label.

    Args:
        means_world: [N, 3] splat centres, world metres.
        camera: the reference camera (resolution W x H).
        labels: [H, W] int32 region index map (-1 unassigned).
        depth_m: [H, W] planar depth, metres (inf = sky).
        regions: the regions (their planes are used for hidden splats).

    Returns:
        [N] int32 region index, -1 for splats outside the image or behind the camera.
    """
    means = np.asarray(means_world, dtype=np.float64).reshape(-1, 3)
    uv, z = camera.project(means)
    H, W = labels.shape
    with np.errstate(invalid="ignore"):
        col = np.floor(uv[:, 0]).astype(np.int64, copy=False) if len(uv) else np.zeros(0, np.int64)
        row = np.floor(uv[:, 1]).astype(np.int64, copy=False) if len(uv) else np.zeros(0, np.int64)
    inside = (z > 0) & np.isfinite(uv).all(axis=1) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    out = np.full(len(means), -1, dtype=np.int32)
    r_in, c_in = row[inside], col[inside]
    out[inside] = labels[r_in, c_in]
    d_pix = depth_m[r_in, c_in]
    hidden = np.zeros(len(means), dtype=bool)
    hidden[inside] = ~(np.abs(z[inside] - d_pix) <= 0.1 * d_pix)
    planar = [r for r in regions if r.plane is not None]
    if hidden.any() and planar:
        p = means[hidden]
        dist = np.stack([np.abs(p @ np.asarray(r.plane[:3]) + r.plane[3]) for r in planar], axis=1)
        best = np.argmin(dist, axis=1)
        on_plane = dist[np.arange(len(p)), best] < _tau(z[hidden])
        idx = np.flatnonzero(hidden)
        out[idx[on_plane]] = np.asarray([r.index for r in planar], dtype=np.int32)[best[on_plane]]
    return out


def segment(scene: Any, *, max_regions: int = 10, progress: Optional[ProgressFn] = None) -> list[Region]:
    """Segment a scene into regions and label its splats.

    Sets ``scene.regions`` and ``scene.splats.region_ids`` ([N] int32, -1 unassigned), and
    each region's ``splat_indices``.

    Args:
        scene: an :class:`anchorstage.Scene` (uses ``image_linear`` [H, W, 3], ``depth_m`` [H, W]
            metres, ``camera`` and ``splats``).
        max_regions: at most this many regions (3–255).
        progress: optional progress callback.

    Returns:
        The regions (also stored on the scene).
    """
    import torch

    for name in ("image_linear", "depth_m", "camera", "splats"):
        if getattr(scene, name, None) is None:
            raise InputError(f"scene has no {name}; segmentation needs the reference image, depth, camera and splats")
    depth = np.asarray(scene.depth_m, dtype=np.float32)
    regions = segment_depth(scene.image_linear, depth, scene.camera, max_regions=max_regions,
                            progress=lambda f, m: report(progress, 0.9 * f, m))
    labels = label_map(regions, depth.shape)
    means = scene.splats.means.detach().cpu().numpy()
    ids = assign_splats(means, scene.camera, labels, depth, regions)
    for r in regions:
        r.splat_indices = np.flatnonzero(ids == r.index).astype(np.int64)
    scene.splats.region_ids = torch.from_numpy(ids).to(device=scene.splats.device, dtype=torch.int32)
    scene.regions = regions
    report(progress, 1.0, "regions done")
    return regions
