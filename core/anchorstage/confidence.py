# SPDX-License-Identifier: GPL-3.0-or-later
"""How safe a shot is: the confidence of a camera move away from the witness.

The product spec's formula, per shot::

    confidence = (1 - void_coverage) * depth_confidence * angle_confidence

* ``void_coverage``: the share of the frame's pixels the witness never saw (the void,
  :mod:`anchorstage.witness`).
* ``depth_confidence``: the mean over the seen pixels of the proxy's depth confidence (the splats'
  confidence composited like colour; 1 for the sky, which is a direction and needs no depth).
* ``angle_confidence``: the mean over the seen pixels of ``a(θ) = clip(1 - θ / 45°, 0, 1)``,
  where θ is the angle at the surface point between the target camera's ray and the witness's ray
  to it (0 for the sky, seen along the same direction). Beyond 45° the photo says little about how
  a surface looks (view-dependent shading, stretched splats); a pure rotation scores 1.

The per-pixel map is ``(1 - void) * depth_confidence * a(θ)`` (0 in the void); the overlay tints it
green (≥ :data:`GREEN` = 0.7), yellow (≥ :data:`YELLOW` = 0.4) or red (below, and every void pixel)
over the image's luminance. The shot's level uses the same thresholds on the scalar; the CLI warns
below green.

:func:`estimate` is the quick form for a live meter: the same warp and formula with the witness
decimated to at most 256 pixels and the target to at most 160 pixels on the long side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .camera import Camera

if TYPE_CHECKING:  # pragma: no cover
    from .scene import Scene
    from .witness import Warp

__all__ = ["Confidence", "GREEN", "YELLOW", "MAX_ANGLE_DEG", "angle_confidence", "from_warp", "level", "overlay",
           "estimate", "MeterProxy", "meter_proxy"]

#: Confidence at or above which a pixel / shot is green (safe).
GREEN = 0.7
#: Confidence at or above which it is yellow (check it); below is red (refresh or regenerate).
YELLOW = 0.4
#: Viewing-angle change (degrees) at which the angle confidence reaches 0.
MAX_ANGLE_DEG = 45.0
_COLORS = {"green": (0.1, 0.8, 0.2), "yellow": (0.95, 0.8, 0.1), "red": (0.9, 0.1, 0.1)}


def level(value: float) -> str:
    """``"green"``, ``"yellow"`` or ``"red"`` for a confidence in [0, 1]."""
    return "green" if value >= GREEN else "yellow" if value >= YELLOW else "red"


def angle_confidence(angle_deg: np.ndarray) -> np.ndarray:
    """``clip(1 - θ / 45°, 0, 1)`` of angles in degrees (any shape)."""
    return np.clip(1.0 - np.asarray(angle_deg, dtype=np.float32) / MAX_ANGLE_DEG, 0.0, 1.0)


@dataclass
class Confidence:
    """A shot's confidence.

    Attributes:
        value: the shot's confidence in [0, 1] (the formula of the module docstring).
        void_coverage: share of void pixels in [0, 1].
        depth_confidence: mean depth confidence over the seen pixels.
        angle_confidence: mean angle confidence over the seen pixels.
        mean_angle_deg: mean viewing-angle change over the seen pixels, degrees.
        map: [H, W] float32 per-pixel confidence in [0, 1] (0 in the void).
    """

    value: float
    void_coverage: float
    depth_confidence: float
    angle_confidence: float
    mean_angle_deg: float
    map: np.ndarray

    @property
    def level(self) -> str:
        return level(self.value)

    def to_json_dict(self) -> dict[str, Any]:
        return {"confidence": round(self.value, 6), "level": self.level, "void_coverage": round(self.void_coverage, 6),
                "depth_confidence": round(self.depth_confidence, 6), "angle_confidence": round(self.angle_confidence, 6),
                "mean_angle_deg": round(self.mean_angle_deg, 4),
                "formula": "(1 - void_coverage) * depth_confidence * angle_confidence",
                "thresholds": {"green": GREEN, "yellow": YELLOW, "max_angle_deg": MAX_ANGLE_DEG}}


def _combine(void: np.ndarray, depth_conf: np.ndarray, angle_deg: np.ndarray) -> Confidence:
    seen = ~void
    a = angle_confidence(angle_deg)
    cov = float(void.mean()) if void.size else 1.0
    if seen.any():
        d_mean, a_mean, ang = float(depth_conf[seen].mean()), float(a[seen].mean()), float(angle_deg[seen].mean())
    else:
        d_mean = a_mean = ang = 0.0
    per_px = np.where(seen, np.clip(depth_conf, 0.0, 1.0) * a, 0.0).astype(np.float32)
    return Confidence(value=(1.0 - cov) * d_mean * a_mean, void_coverage=cov, depth_confidence=d_mean,
                      angle_confidence=a_mean, mean_angle_deg=ang, map=per_px)


def from_warp(warp: "Warp") -> Confidence:
    """The confidence of a warp (:func:`anchorstage.witness.warp_witness`)."""
    return _combine(warp.void, warp.depth_confidence, warp.angle_deg)


def overlay(image_linear: np.ndarray, conf_map: np.ndarray, void: Optional[np.ndarray] = None) -> np.ndarray:
    """[H, W, 3] float32 sRGB in [0, 1]: the image's luminance tinted green / yellow / red by confidence.

    Args:
        image_linear: [H, W, 3] linear RGB.
        conf_map: [H, W] per-pixel confidence in [0, 1].
        void: [H, W] bool void pixels (always red), optional.
    """
    from .image_io import linear_to_srgb

    srgb = linear_to_srgb(np.asarray(image_linear, dtype=np.float32))
    luma = (0.2126 * srgb[..., 0] + 0.7152 * srgb[..., 1] + 0.0722 * srgb[..., 2])[..., None]
    c = np.asarray(conf_map, dtype=np.float32)
    tint = np.where((c >= GREEN)[..., None], _COLORS["green"], np.where((c >= YELLOW)[..., None], _COLORS["yellow"],
                                                                        _COLORS["red"])).astype(np.float32)
    if void is not None:
        tint[void] = _COLORS["red"]
    return np.clip(0.45 * luma + 0.55 * tint, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------- live meter
@dataclass
class MeterProxy:
    """A stage decimated for :func:`estimate` (built once per stage by :func:`meter_proxy`).

    Attributes:
        scene: the stage with its witness at reduced resolution (every ``stride``-th pixel of the
            photo, depth and region masks; the same splats); its witness mesh and depth confidence are
            cached on it.
        stride: the decimation step in witness pixels.
    """

    scene: "Scene"
    stride: int


def meter_proxy(scene: "Scene", max_side: int = 256, device: str = "auto") -> MeterProxy:
    """Decimate a stage for the live meter: its witness at most ``max_side`` pixels on the long side.

    Builds (and caches on the result) the reduced witness mesh and its depth confidence (one render of
    the splats' confidence pass at the reduced witness camera).
    """
    from dataclasses import replace

    from .witness import _witness_confidence, _witness_mesh

    cam = scene.camera
    stride = max(1, int(np.ceil(max(cam.width, cam.height) / max(8, int(max_side)))))
    h, w = -(-cam.height // stride), -(-cam.width // stride)
    small = cam.with_resolution(w, h)
    # the pixel of each block nearest its centre, so the reduced camera sees the same rays
    xs = np.minimum(((np.arange(w) + 0.5) * cam.width / w).astype(int), cam.width - 1)
    ys = np.minimum(((np.arange(h) + 0.5) * cam.height / h).astype(int), cam.height - 1)
    regions = [replace(r, mask=None if r.mask is None else np.asarray(r.mask)[np.ix_(ys, xs)]) for r in scene.regions]
    reduced = replace(scene, camera=small, image_linear=np.asarray(scene.image_linear, np.float32)[np.ix_(ys, xs)],
                      depth_m=np.asarray(scene.depth_m, np.float32)[np.ix_(ys, xs)], regions=regions)
    _witness_confidence(reduced, _witness_mesh(reduced), device=device)
    return MeterProxy(reduced, stride)


def estimate(proxy: MeterProxy, camera: Camera, max_side: int = 160, device: str = "auto") -> Confidence:
    """A quick confidence of ``camera`` for a live meter: the refresh's own warp and confidence at
    reduced resolution (no inpainting).

    Args:
        proxy: from :func:`meter_proxy`.
        camera: the target camera; assessed at most ``max_side`` pixels on its long side.
        max_side: the reduced target size.
        device: where earlier fills' splats render.

    Returns:
        The :class:`Confidence` (its map at the reduced size).
    """
    from .witness import warp_witness

    scale = min(1.0, max_side / max(camera.width, camera.height))
    small = camera.with_resolution(max(1, round(camera.width * scale)), max(1, round(camera.height * scale)))
    return from_warp(warp_witness(proxy.scene, small, device=device))
