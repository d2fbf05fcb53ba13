# SPDX-License-Identifier: GPL-3.0-or-later
"""Capture fusion: several posed views of one product → one metric splat scene.

A capture folder holds views ``NAME.png|jpg|jpeg|exr``, each with ``NAME_camera.json`` (the
camera JSON of docs/conventions.md), a foreground (the PNG's alpha, or ``NAME_mask.png``, or
the depth fallback of :mod:`anchorstage.product`) and optionally ``NAME_depth.npy|.exr`` (else
a depth model). An optional ``manifest.json`` may name the ``frontal_view`` and, for a fixed
camera over a turntable, give one camera for every view without its own::

    {"turntable": {"camera": "camera.json", "center_m": [0, 0, 0.12],
                   "angles_deg": {"front": 0, "left": 45, ...}}}

where an angle is how far the turntable turned the product, counter-clockwise seen from above
(world +Z up), when that view was taken: the view's camera is the given one orbited about the
centre by minus that angle.

:func:`fuse` regresses every view on its own (:func:`anchorstage.regression.reconstruct`, the
background outside the view's mask masked like sky, no colour fit yet), places the splats by the
view's pose, and merges them:

* **empty space** — a splat whose centre or reach (its centre ± ``REACH_SIGMA`` standard
  deviations along each axis) lands, in another view, in front of everything that view saw around
  that pixel (its 3x3 nearest depth, background counting as infinitely far) by more than the
  tolerance is (partly) in space that view proves empty: dropped. The reach catches the long
  splats of grazing surfaces that would spill past the other views' silhouettes;
* **duplicates** — a splat on a surface another view also saw (its depth there agrees within the
  tolerance, inside that view's mask) is kept only by the view that sees it best: the smallest
  pixel footprint on the surface, ``distance / (focal_px · |cos(normal, ray)|)``;
* **colours** — one colour fit over every view: the blending weights ``W_j`` of all views are
  stacked into one linear map and solved with the conjugate gradients of
  :mod:`anchorstage.colorfit` (``|W x - photos|² + λ |x - x₀|²`` over the masked pixels).

The tolerance is ``FREE_SPACE_REL · z + FREE_SPACE_PX · z / focal_px`` metres (z the splat's
depth in the other view). The fused scene uses the frontal view as its witness camera and photo,
so it saves, renders, exports and refreshes like any scene.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .camera import Camera
from .errors import InputError
from .progress import ProgressFn, report

if TYPE_CHECKING:  # pragma: no cover
    from .scene import Scene
    from .splats import Splats

__all__ = ["CaptureView", "FusionReport", "load_capture", "fuse", "regress_view", "IMAGE_SUFFIXES",
           "FREE_SPACE_REL", "FREE_SPACE_PX", "REACH_SIGMA"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr")
#: Relative part of the depth tolerance (of the splat's depth in the other view).
FREE_SPACE_REL = 0.01
#: Pixel part of the depth tolerance (pixel footprints at the splat's depth in the other view).
FREE_SPACE_PX = 2.0
#: How far (in standard deviations along each axis) a splat must stay clear of proven empty space.
REACH_SIGMA = 1.5
_MIN_COS = 0.05  # grazing clamp, as in the regression
_AUX = ("_mask", "_depth", "_camera")


@dataclass
class CaptureView:
    """One posed view of a capture.

    Attributes:
        name: the view's name (its file stem).
        image_linear: [H, W, 3] float32 linear Rec.709 (straight, not premultiplied).
        mask: [H, W] bool the product's pixels.
        depth_m: [H, W] float32 planar z in metres; inf outside the mask and where unknown.
        camera: the view's camera (OpenCV frame, world Z up, metres), at the image's resolution.
        mask_source: where the mask came from (``"alpha"``, ``"mask file"``, ``"depth fallback"``, ...).
        depth_source: where the depth came from.
    """

    name: str
    image_linear: np.ndarray
    mask: np.ndarray
    depth_m: np.ndarray
    camera: Camera
    mask_source: str = "alpha"
    depth_source: str = "file"


@dataclass
class FusionReport:
    """What fusion kept and dropped, per view (JSON-ready through :meth:`to_json_dict`)."""

    views: list[str]
    regressed: list[int]
    empty_space: list[int]
    duplicates: list[int]
    kept: list[int]
    color_fit: Optional[dict[str, Any]] = None

    def to_json_dict(self) -> dict[str, Any]:
        per_view = [{"view": v, "regressed": r, "dropped_empty_space": e, "dropped_duplicates": d, "kept": k}
                    for v, r, e, d, k in zip(self.views, self.regressed, self.empty_space, self.duplicates, self.kept)]
        return {"views": per_view, "splats": int(sum(self.kept)), "color_fit": self.color_fit}


# ---------------------------------------------------------------------------------------------- loading
def _view_files(folder: Path) -> list[Path]:
    files = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.endswith(_AUX):
            files.append(p)
    return files


def load_capture(folder: Union[str, os.PathLike], *, depth_model: Optional[str] = None, mask_model: Optional[str] = None,
                 device: str = "auto", progress: Optional[ProgressFn] = None) -> list[CaptureView]:
    """Read a capture folder (layout in the module docstring), the frontal view first.

    Args:
        folder: the capture folder.
        depth_model: depth model for views without a depth file (default: the documented default).
        mask_model: transformers segmentation model for views with neither alpha nor a mask file
            (default: the depth fallback, no weights).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        The views; the manifest's ``frontal_view`` (else the first by name) comes first.

    Raises:
        InputError: not a folder, no views, a view without its camera JSON, a mask or depth of
            another size, a view whose mask is empty.
    """
    from .product import foreground_mask, read_alpha
    from .safe_json import load_json
    from .stages import load_photo, metric_depth

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"capture folder {str(root)!r} does not exist or is not a folder")
    files = _view_files(root)
    if not files:
        raise InputError(f"capture folder {str(root)!r} has no views (expected NAME.png|jpg|exr, each with "
                         "NAME_camera.json; see docs/multiview.md)")
    frontal, turntable = None, {}
    if (root / "manifest.json").is_file():
        manifest = load_json(root / "manifest.json", "capture manifest")
        manifest = manifest if isinstance(manifest, dict) else {}
        frontal = manifest.get("frontal_view")
        if frontal is not None and (not isinstance(frontal, str) or frontal not in {p.stem for p in files}):
            raise InputError(f"capture manifest {str(root / 'manifest.json')!r} names frontal_view {frontal!r}, "
                             "which is not a view of the folder")
        if "turntable" in manifest:
            turntable = _turntable_cameras(root, manifest["turntable"])
    if frontal is not None:
        files.sort(key=lambda p: p.stem != frontal)
    views = []
    for k, img in enumerate(files):
        report(progress, k / len(files), f"view {img.stem}")
        cam_file = root / f"{img.stem}_camera.json"
        if not cam_file.is_file() and img.stem not in turntable:
            raise InputError(f"capture view {img.name!r} has no camera file {cam_file.name!r} (every view needs its "
                             "camera JSON, or an angle in the manifest's turntable)")
        photo = load_photo(img, camera=cam_file if cam_file.is_file() else turntable[img.stem])
        hw = (photo.height, photo.width)
        depth_file = next((root / f"{img.stem}_depth{s}" for s in (".npy", ".exr")
                           if (root / f"{img.stem}_depth{s}").is_file()), None)
        depth = metric_depth(photo, depth_file=depth_file, model=None if depth_file else depth_model, device=device)
        mask_file = root / f"{img.stem}_mask.png"
        if mask_file.is_file():
            mask = read_alpha(mask_file, luminance=True)
            if mask.shape != hw:
                raise InputError(f"capture mask {mask_file.name!r} is {mask.shape[1]}x{mask.shape[0]} but its view "
                                 f"{img.name!r} is {hw[1]}x{hw[0]}")
            fg, source = mask >= 0.5, "mask file"
        else:
            found = foreground_mask(photo, depth.depth_m, model=mask_model, device=device)
            fg, source = found.mask, found.source
        depth_m = np.where(fg, depth.depth_m, np.inf).astype(np.float32)
        if not np.isfinite(depth_m).any():
            raise InputError(f"capture view {img.name!r}: its mask ({source}) leaves no pixel with depth")
        views.append(CaptureView(img.stem, photo.image.rgb_linear, fg, depth_m, photo.camera, source,
                                 depth.model))
    report(progress, 1.0, f"{len(views)} views")
    return views


def _turntable_cameras(root: Path, spec: Any) -> dict[str, Camera]:
    """View name → camera from a manifest's ``turntable`` entry (see the module docstring)."""
    from .camera import load_camera_json

    where = f"capture manifest {str(root / 'manifest.json')!r}: turntable"
    if not isinstance(spec, dict) or not isinstance(spec.get("camera"), str) or not isinstance(spec.get("angles_deg"), dict):
        raise InputError(f"{where} needs \"camera\" (a camera JSON file name) and \"angles_deg\" (view name → degrees)")
    centre = spec.get("center_m", [0.0, 0.0, 0.0])
    if not (isinstance(centre, list) and len(centre) == 3 and all(isinstance(c, (int, float)) and math.isfinite(c)
                                                                  for c in centre)):
        raise InputError(f"{where}: center_m must be three finite numbers of metres (got {centre!r})")
    base = load_camera_json(root / Path(spec["camera"]).name)
    cams = {}
    for name, angle in spec["angles_deg"].items():
        if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not math.isfinite(angle):
            raise InputError(f"{where}: the angle of view {name!r} must be a finite number of degrees (got {angle!r})")
        cams[str(name)] = base.orbit(centre, yaw_deg=-float(angle))
    return cams


# ---------------------------------------------------------------------------------------------- fusion
def regress_view(view: CaptureView, *, max_splats: Optional[int] = None, fit_colors: bool = False,
                 device: str = "auto") -> "Scene":
    """One view's splats (world frame), its background masked; the regression of a single photo."""
    from .regression import reconstruct

    return reconstruct(view.image_linear, view.depth_m, view.camera, max_splats=max_splats, second_layer=False,
                       fit_colors=fit_colors, device=device,
                       meta={"source_image": view.name, "intrinsics_source": "camera file",
                             "depth_source": view.depth_source})


def _footprint_m(means: np.ndarray, normals: np.ndarray, cam: Camera) -> np.ndarray:
    """[N] metres one pixel of ``cam`` covers on each splat's surface (smaller = seen better)."""
    ray = means - cam.position[None]
    dist = np.linalg.norm(ray, axis=1)
    cos = np.abs(np.einsum("ij,ij->i", ray, normals)) / np.maximum(dist, 1e-12)
    return dist / (cam.focal_px * np.maximum(cos, _MIN_COS))


def _nearest_around(depth_m: np.ndarray) -> np.ndarray:
    """[H, W] the nearest depth in each pixel's 3x3 neighbourhood (inf where all are background)."""
    from scipy.ndimage import minimum_filter

    return minimum_filter(depth_m, size=3, mode="nearest")


def _landing(points: np.ndarray, own: np.ndarray, j: int, cam: Camera
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points [N, 3] (world metres) of other views than ``j`` that land in view ``j``'s image in
    front of its near plane: (their indices, pixel rows, pixel columns, depths in metres)."""
    uv, z = cam.project(points)
    col, row = np.floor(uv[:, 0]), np.floor(uv[:, 1])
    inside = (own != j) & (z > cam.clip_start) & (col >= 0) & (col < cam.width) & (row >= 0) & (row < cam.height)
    idx = np.nonzero(inside)[0]
    return idx, row[idx].astype(np.int64), col[idx].astype(np.int64), z[idx]


def _tolerance_m(z: np.ndarray, cam: Camera) -> np.ndarray:
    """How far (metres) a point at depth ``z`` may be from what ``cam`` saw and still count as that surface."""
    return FREE_SPACE_REL * z + FREE_SPACE_PX * z / cam.focal_px


def _judge(means: np.ndarray, normals: np.ndarray, reach: np.ndarray, own: np.ndarray,
           views: Sequence[CaptureView]) -> tuple[np.ndarray, np.ndarray]:
    """Which splats another view proves (partly) empty, and which another view sees better.

    Args:
        means: [N, 3] float64 splat centres, world metres.
        normals: [N, 3] float64 unit normals, world frame.
        reach: [N, K, 3] float64 points each splat covers (its axis ends), world metres.
        own: [N] int the view each splat came from.
        views: the views.

    Returns:
        ([N] bool in empty space, [N] bool a duplicate of a better view's surface).
    """
    empty = np.zeros(len(means), bool)
    dup = np.zeros(len(means), bool)
    own_fp = np.empty(len(means))
    for i, v in enumerate(views):
        sel = own == i
        own_fp[sel] = _footprint_m(means[sel], normals[sel], v.camera)
    for j, v in enumerate(views):
        cam = v.camera
        nearest = _nearest_around(v.depth_m)
        centres = _landing(means, own, j, cam)
        for idx, r, c, z in (centres, *(_landing(p, own, j, cam) for p in np.moveaxis(reach, 1, 0))):
            empty[idx[z < nearest[r, c] - _tolerance_m(z, cam)]] = True
        idx, r, c, z = centres
        cand = idx[v.mask[r, c] & (np.abs(v.depth_m[r, c] - z) < _tolerance_m(z, cam))]
        fp_j = _footprint_m(means[cand], normals[cand], cam)
        better = (fp_j < own_fp[cand]) | ((fp_j == own_fp[cand]) & (j < own[cand]))
        dup[cand[better]] = True
    return empty, dup & ~empty


def fuse(views: Sequence[CaptureView], *, max_splats_per_view: Optional[int] = None, fit_colors: bool = True,
         device: str = "auto", progress: Optional[ProgressFn] = None) -> tuple["Scene", FusionReport]:
    """Fuse posed views into one scene (the algorithm is in the module docstring).

    Args:
        views: from :func:`load_capture`; the first is the scene's witness (frontal) view.
        max_splats_per_view: splat budget per view (default: the regression's, by pixel count).
        fit_colors: fit the colours over every view (False keeps each splat's pixel colour).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        The fused :class:`~anchorstage.scene.Scene` (splats in the world frame, metres; the first
        view's camera, photo and depth as its witness; ``meta["fusion"]`` the report) and the
        :class:`FusionReport`.

    Raises:
        InputError: no views, or not CaptureViews.
    """
    import torch

    from .colorfit import DEFAULT_ITERATIONS, DEFAULT_TIKHONOV, MIN_WEIGHT, solve_colors, stacked_weights, witness_weights
    from .rotation import quat_to_rotmat, thin_axis
    from .scene import Scene
    from .splats import Splats

    views = list(views)
    if not views:
        raise InputError("fuse: no views to fuse")
    for v in views:
        if not isinstance(v, CaptureView):
            raise InputError(f"fuse: views must be CaptureView objects (got {type(v).__name__})")
    parts, scenes = [], []
    for i, v in enumerate(views):
        report(progress, 0.5 * i / len(views), f"regressing {v.name}")
        sc = regress_view(v, max_splats=max_splats_per_view, device=device)
        scenes.append(sc)
        parts.append(sc.splats)
    splats = Splats.concat(parts)
    own = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    report(progress, 0.5, "merging views")
    means = splats.means.detach().cpu().double().numpy()
    normals = torch.stack(thin_axis(splats.quats, splats.scales), 1).detach().cpu().double().numpy()
    axes = (quat_to_rotmat(splats.quats) * splats.scales[:, None, :]).transpose(1, 2).detach().cpu().double().numpy()
    reach = means[:, None] + REACH_SIGMA * np.concatenate([axes, -axes], axis=1)  # [N, 6, 3] axis ends
    empty, dup = _judge(means, normals, reach, own, views)
    keep = ~(empty | dup)
    rep = FusionReport(views=[v.name for v in views], regressed=[len(p) for p in parts],
                       empty_space=[int(empty[own == i].sum()) for i in range(len(views))],
                       duplicates=[int(dup[own == i].sum()) for i in range(len(views))],
                       kept=[int(keep[own == i].sum()) for i in range(len(views))])
    splats = splats.subset(torch.from_numpy(keep).to(splats.device))
    if fit_colors and len(splats):
        report(progress, 0.7, "fitting colours to every view")
        sp, weights, targets = splats, [], []
        for v in views:
            cam = v.camera
            weights.append(witness_weights(sp.means, sp.quats, sp.scales, sp.opacities,
                                           torch.as_tensor(cam.cam_from_world, dtype=torch.float32, device=sp.device),
                                           torch.as_tensor(cam.K, dtype=torch.float32, device=sp.device),
                                           cam.width, cam.height, near=cam.clip_start, far=cam.clip_end,
                                           pixel_ok=torch.from_numpy(v.mask), min_weight=MIN_WEIGHT))
            targets.append(torch.from_numpy(np.ascontiguousarray(v.image_linear.reshape(-1, 3))))
        splats.colors = solve_colors(stacked_weights(weights), sp.colors, torch.cat(targets).to(sp.device),
                                     iterations=DEFAULT_ITERATIONS, tikhonov=DEFAULT_TIKHONOV).contiguous()
        rep.color_fit = {"views": len(views), "iterations": DEFAULT_ITERATIONS, "tikhonov": DEFAULT_TIKHONOV,
                         "min_weight": MIN_WEIGHT}
    report(progress, 1.0, f"{len(splats)} splats from {len(views)} views")
    first = scenes[0]
    meta = {"metric_scale": 1.0, "intrinsics_source": "camera file", "source_image": views[0].name,
            "depth_source": views[0].depth_source, "splat_count": len(splats),
            "fusion": {**rep.to_json_dict(), "cameras": {v.name: v.camera.to_json_dict() for v in views},
                       "masks": {v.name: v.mask_source for v in views}},
            "notes": []}
    return Scene(camera=first.camera, splats=splats, image_linear=first.image_linear, depth_m=first.depth_m, regions=[],
                 meta=meta, depth_confidence=first.depth_confidence), rep
