# SPDX-License-Identifier: GPL-3.0-or-later
"""Metric pinhole camera in the OpenCV frame, with exact Blender conversion.

Conventions (see docs/conventions.md):
    * Units are metres and degrees at the API, radians nowhere in signatures.
    * The camera frame is OpenCV: x right, y down, z forward (the view axis).
      ``world_from_cam`` maps camera-frame points to world points; ``cam_from_world``
      is its inverse (the "view matrix").
    * The world frame is Blender's: right-handed, +Z up, metres.
    * Pixel centres sit at +0.5: pixel (0, 0) covers [0, 1) x [0, 1).
    * Intrinsics are kept in Blender's own terms (lens, sensor, sensor fit, shift) so that
      a camera converts to Blender and back without loss; ``K`` is derived from them.

Blender's camera looks down its local -Z with +Y up; ``BLENDER_FROM_CV`` is the one place
that flip is written down.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from . import safe_json as jf
from .atomic import atomic_file
from .errors import InputError
from .input_files import path_arg
from .limits import check_count
from .safe_json import describe, load_json

__all__ = [
    "Camera",
    "BLENDER_FROM_CV",
    "FOCAL_PRESETS_MM",
    "SENSOR_FITS",
    "MOVES",
    "MAX_SIDE_PX",
    "look_at",
    "camera_path",
    "turntable_path",
    "load_camera_json",
    "save_camera_json",
]

#: Change of basis from the OpenCV camera frame to Blender's camera frame (x, -y, -z).
BLENDER_FROM_CV = np.diag([1.0, -1.0, -1.0, 1.0])

#: The focal-length presets an artist picks from, in millimetres.
FOCAL_PRESETS_MM = (24.0, 35.0, 50.0, 85.0, 135.0)

SENSOR_FITS = ("AUTO", "HORIZONTAL", "VERTICAL")

#: The camera moves an artist makes, the one list every front end (CLI ``camera``, the add-on's
#: operators and panel, the headless batch, camera paths) is built from: name -> (unit, what a
#: positive amount does). Units: ``"m"`` metres, ``"deg"`` degrees, ``"x"`` a factor.
MOVES: dict[str, tuple[str, str]] = {
    "dolly": ("m", "forward along the view axis"),
    "truck": ("m", "right, along the camera's right axis"),
    "pedestal": ("m", "up, along the camera's up axis"),
    "pan": ("deg", "turn about world +Z through the camera (left)"),
    "tilt": ("deg", "turn about the camera's right axis (up)"),
    "roll": ("deg", "turn about the view axis (counter-clockwise seen from behind)"),
    "orbit": ("deg", "yaw about world +Z through a pivot (counter-clockwise seen from above)"),
    "zoom": ("x", "multiply the focal length"),
}
#: Most cameras in a generated path: Blender's frame range (±1,048,574) holds them all.
MAX_PATH_FRAMES = 1_048_574
#: Largest image side a camera accepts (pixels); whole frames are bounded by the limits in docs/limits.md.
MAX_SIDE_PX = 2**31 - 1

_RIGID_TOL = 1e-4
_WORLD_UP = np.array([0.0, 0.0, 1.0])


def _rot(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """3x3 right-handed rotation about unit ``axis`` by ``angle_deg`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    t = math.radians(angle_deg)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(t) * k + (1.0 - math.cos(t)) * (k @ k)


def _finite_number(name: str, value: Any) -> float:
    # Booleans and strings are not numbers, even though float() accepts them.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InputError(f"camera: {name} must be a number (got {value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise InputError(f"camera: {name} must be finite (got {value!r})")
    return v


def _vec3(name: str, value: Any) -> np.ndarray:
    """[3] float64 from three finite numbers (metres), else an InputError naming ``name``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise InputError(f"camera: {name} must be three numbers (got {value!r})")
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"camera: {name} must be three numbers (got {value!r})") from None
    if v.shape != (3,) or not np.all(np.isfinite(v)):
        raise InputError(f"camera: {name} must be three finite numbers (got {value!r})")
    return v


def _check_rigid(m: np.ndarray, name: str) -> np.ndarray:
    try:
        m = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"camera: {name} must be a 4x4 matrix of numbers") from None
    if m.shape != (4, 4):
        raise InputError(f"camera: {name} must be a 4x4 matrix (got shape {tuple(m.shape)})")
    if not np.all(np.isfinite(m)):
        raise InputError(f"camera: {name} has non-finite values (NaN or inf)")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise InputError(f"camera: {name} last row must be [0, 0, 0, 1] (got {m[3].tolist()})")
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=_RIGID_TOL) or np.linalg.det(r) < 0:
        scales = np.linalg.norm(r, axis=0)
        raise InputError(
            f"camera: {name} is not rigid (rotation must be orthonormal with det +1; "
            f"column lengths {np.round(scales, 6).tolist()}, det {np.linalg.det(r):.6f}); "
            "remove object scale/shear from the camera"
        )
    return m.copy()


@dataclass(frozen=True, eq=False)
class Camera:
    """A metric pinhole camera.

    Attributes:
        width: image width in pixels (after Blender's resolution percentage).
        height: image height in pixels.
        lens_mm: focal length in millimetres (Blender ``lens``).
        sensor_width_mm: sensor width in millimetres (Blender ``sensor_width``).
        sensor_height_mm: sensor height in millimetres; used only with ``sensor_fit="VERTICAL"``.
        sensor_fit: ``"AUTO"``, ``"HORIZONTAL"`` or ``"VERTICAL"`` as in Blender.
        shift_x: horizontal lens shift, in units of the fitted image dimension (Blender).
        shift_y: vertical lens shift, likewise.
        clip_start: near clip distance in metres.
        clip_end: far clip distance in metres.
        world_from_cam: [4, 4] float64 rigid transform, camera (OpenCV) frame to world, metres.
    """

    width: int
    height: int
    lens_mm: float
    sensor_width_mm: float = 36.0
    sensor_height_mm: float = 24.0
    sensor_fit: str = "AUTO"
    shift_x: float = 0.0
    shift_y: float = 0.0
    clip_start: float = 0.1
    clip_end: float = 1000.0
    world_from_cam: np.ndarray = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < int(v) <= MAX_SIDE_PX:
                raise InputError(f"camera: {name} must be a positive integer number of pixels up to {MAX_SIDE_PX} "
                                 f"(got {v!r})")
            set_(self, name, int(v))
        for name in ("lens_mm", "sensor_width_mm", "sensor_height_mm", "clip_start", "clip_end"):
            v = _finite_number(name, getattr(self, name))
            if v <= 0:
                raise InputError(f"camera: {name} must be > 0 (got {v:g})")
            set_(self, name, v)
        for name in ("shift_x", "shift_y"):
            set_(self, name, _finite_number(name, getattr(self, name)))
        if self.clip_end <= self.clip_start:
            raise InputError(f"camera: clip_end ({self.clip_end:g}) must exceed clip_start ({self.clip_start:g})")
        fit = str(self.sensor_fit).upper()
        if fit not in SENSOR_FITS:
            raise InputError(f"camera: sensor_fit must be one of {', '.join(SENSOR_FITS)} (got {self.sensor_fit!r})")
        set_(self, "sensor_fit", fit)
        set_(self, "world_from_cam", _check_rigid(self.world_from_cam, "world_from_cam"))
        self.world_from_cam.setflags(write=False)

    # ------------------------------------------------------------------ intrinsics
    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    @property
    def effective_fit(self) -> str:
        """``"HORIZONTAL"`` or ``"VERTICAL"``: AUTO resolved as Blender does (landscape or square → horizontal)."""
        if self.sensor_fit == "AUTO":
            return "HORIZONTAL" if self.width >= self.height else "VERTICAL"
        return self.sensor_fit

    @property
    def _sensor_and_viewfac(self) -> tuple[float, float]:
        # AUTO always measures against sensor_width, whichever dimension it fits.
        if self.effective_fit == "HORIZONTAL":
            return self.sensor_width_mm, float(self.width)
        sensor = self.sensor_width_mm if self.sensor_fit == "AUTO" else self.sensor_height_mm
        return sensor, float(self.height)

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (square pixels: fx == fy)."""
        sensor, viewfac = self._sensor_and_viewfac
        return self.lens_mm / sensor * viewfac

    @property
    def principal_point_px(self) -> tuple[float, float]:
        """(cx, cy) in pixels, pixel centres at +0.5."""
        _, viewfac = self._sensor_and_viewfac
        return self.width / 2.0 - self.shift_x * viewfac, self.height / 2.0 + self.shift_y * viewfac

    @property
    def K(self) -> np.ndarray:
        """[3, 3] float64 intrinsic matrix (pixels)."""
        f = self.focal_px
        cx, cy = self.principal_point_px
        return np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])

    @property
    def fov_deg(self) -> tuple[float, float]:
        """(horizontal, vertical) full field of view in degrees, through the image centre line."""
        f = self.focal_px
        return (math.degrees(2 * math.atan(self.width / (2 * f))), math.degrees(2 * math.atan(self.height / (2 * f))))

    @property
    def focal_35mm_equiv(self) -> float:
        """35 mm-equivalent focal length (diagonal of a 36x24 mm frame vs. this image's diagonal)."""
        f = self.focal_px
        return f * math.hypot(36.0, 24.0) / math.hypot(self.width, self.height)

    # ------------------------------------------------------------------ extrinsics
    @property
    def cam_from_world(self) -> np.ndarray:
        """[4, 4] float64 view matrix: world → camera (OpenCV), metres."""
        r = self.world_from_cam[:3, :3]
        t = self.world_from_cam[:3, 3]
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ t
        return m

    @property
    def position(self) -> np.ndarray:
        """[3] camera centre in world metres."""
        return self.world_from_cam[:3, 3].copy()

    @property
    def rotation(self) -> np.ndarray:
        """[3, 3] world_from_cam rotation; columns are the camera's right, down, forward axes in world."""
        return self.world_from_cam[:3, :3].copy()

    @property
    def forward(self) -> np.ndarray:
        """[3] unit view direction in world."""
        return self.world_from_cam[:3, 2].copy()

    @property
    def right(self) -> np.ndarray:
        """[3] unit camera right axis in world."""
        return self.world_from_cam[:3, 0].copy()

    @property
    def up(self) -> np.ndarray:
        """[3] unit camera up axis in world (OpenCV's -y)."""
        return -self.world_from_cam[:3, 1]

    @property
    def matrix_world(self) -> np.ndarray:
        """[4, 4] Blender camera ``matrix_world`` (camera looks down its local -Z, +Y up)."""
        return self.world_from_cam @ BLENDER_FROM_CV

    # ------------------------------------------------------------------ projection
    def projection_matrix(self) -> np.ndarray:
        """[4, 4] camera (OpenCV) → clip space.

        After the divide by w (= z), NDC x and y run from -1 at the left/top image edge to
        +1 at the right/bottom edge (u = (x + 1) / 2 * width), and NDC z runs from 0 at
        ``clip_start`` to 1 at ``clip_end``.
        """
        f = self.focal_px
        cx, cy = self.principal_point_px
        n, fa = self.clip_start, self.clip_end
        return np.array(
            [
                [2 * f / self.width, 0.0, 2 * cx / self.width - 1, 0.0],
                [0.0, 2 * f / self.height, 2 * cy / self.height - 1, 0.0],
                [0.0, 0.0, fa / (fa - n), -fa * n / (fa - n)],
                [0.0, 0.0, 1.0, 0.0],
            ]
        )

    def full_projection_matrix(self) -> np.ndarray:
        """[4, 4] world → clip space (``projection_matrix() @ cam_from_world``)."""
        return self.projection_matrix() @ self.cam_from_world

    def project(self, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points to pixels.

        Args:
            points_world: [N, 3] metres, world frame.

        Returns:
            uv: [N, 2] pixel coordinates (pixel centres at +0.5).
            depth_m: [N] z along the view axis in metres (≤ 0 behind the camera).
        """
        p = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
        cam = p @ self.cam_from_world[:3, :3].T + self.cam_from_world[:3, 3]
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = cam[:, :2] / z[:, None]
        uv = uv * self.focal_px + np.asarray(self.principal_point_px)
        return uv, z

    def unproject(self, uv: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
        """Back-project pixels with planar depth to world points.

        Args:
            uv: [N, 2] pixel coordinates (pixel centres at +0.5).
            depth_m: [N] z along the view axis, metres.

        Returns:
            [N, 3] world points, metres.
        """
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(depth_m, dtype=np.float64).reshape(-1)
        xy = self.normalized(uv) * z[:, None]
        cam = np.concatenate([xy, z[:, None]], axis=1)
        return cam @ self.world_from_cam[:3, :3].T + self.world_from_cam[:3, 3]

    def normalized(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates → normalised image coordinates: the camera-frame ray through pixel
        (u, v) is (x, y, 1), and a point at planar depth z is z·(x, y, 1). This is the one
        back-projection every module uses.

        Args:
            uv: [..., 2] pixel coordinates (pixel centres at +0.5).

        Returns:
            [..., 2] float64 (x, y) = ((u - cx) / f, (v - cy) / f).
        """
        return (np.asarray(uv, dtype=np.float64) - np.asarray(self.principal_point_px)) / self.focal_px

    def pixel_rays(self, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Normalised coordinates of every ``stride``-th pixel centre, as separable axes.

        Returns:
            xs [ceil(W / stride)] and ys [ceil(H / stride)], float64: pixel (row i, column j) of the
            strided grid sees the camera-frame ray (xs[j], ys[i], 1).
        """
        u = np.arange(0, self.width, stride) + 0.5
        v = np.arange(0, self.height, stride) + 0.5
        cx, cy = self.principal_point_px
        return (u - cx) / self.focal_px, (v - cy) / self.focal_px

    def pixel_centers(self) -> np.ndarray:
        """[H, W, 2] float64 (u, v) of every pixel centre."""
        u = np.arange(self.width) + 0.5
        v = np.arange(self.height) + 0.5
        uu, vv = np.meshgrid(u, v)
        return np.stack([uu, vv], axis=-1)

    # ------------------------------------------------------------------ derived cameras
    def replace(self, **changes: Any) -> "Camera":
        """A copy with fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise InputError(f"camera: no field(s) {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def with_resolution(self, width: int, height: int) -> "Camera":
        """Same lens and pose at another resolution (intrinsics follow Blender's rules)."""
        return self.replace(width=width, height=height)

    def fitted_to(self, width: int, height: int, what: str = "camera") -> tuple["Camera", str | None]:
        """This camera at an image's size: the one aspect-ratio rule every stage uses.

        A camera of another resolution with the same aspect ratio (within 1 %) is scaled to
        ``width`` x ``height`` (intrinsics follow Blender's rules); another aspect is refused.

        Returns:
            (the camera at that size, a note when it was scaled, else None).

        Raises:
            InputError: the aspect ratios differ.
        """
        if self.resolution == (width, height):
            return self, None
        if abs((self.width / self.height) / (width / height) - 1.0) > 0.01:
            raise InputError(f"{what} resolution {self.width}x{self.height} does not have the aspect ratio of the "
                             f"image {width}x{height}")
        return self.with_resolution(width, height), \
            f"{what} resolution {self.width}x{self.height} scaled to the image size {width}x{height}"

    def with_pose(self, world_from_cam: np.ndarray) -> "Camera":
        return self.replace(world_from_cam=world_from_cam)

    def _with_rt(self, r: np.ndarray, t: np.ndarray) -> "Camera":
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = t
        return self.replace(world_from_cam=m)

    # ------------------------------------------------------------------ moves
    def dolly(self, distance_m: float) -> "Camera":
        """Move along the view axis; positive moves forward."""
        d = _finite_number("dolly distance_m", distance_m)
        return self._with_rt(self.rotation, self.position + d * self.forward)

    def truck(self, distance_m: float) -> "Camera":
        """Move along the camera's right axis; positive moves right."""
        d = _finite_number("truck distance_m", distance_m)
        return self._with_rt(self.rotation, self.position + d * self.right)

    def pedestal(self, distance_m: float) -> "Camera":
        """Move along the camera's up axis; positive moves up."""
        d = _finite_number("pedestal distance_m", distance_m)
        return self._with_rt(self.rotation, self.position + d * self.up)

    def pan(self, angle_deg: float) -> "Camera":
        """Turn about the world +Z axis through the camera; positive turns left (counter-clockwise seen from above)."""
        r = _rot(_WORLD_UP, _finite_number("pan angle_deg", angle_deg))
        return self._with_rt(r @ self.rotation, self.position)

    def tilt(self, angle_deg: float) -> "Camera":
        """Turn about the camera's right axis; positive tilts the view up."""
        r = _rot(self.right, _finite_number("tilt angle_deg", angle_deg))
        return self._with_rt(r @ self.rotation, self.position)

    def roll(self, angle_deg: float) -> "Camera":
        """Turn about the view axis; positive rolls counter-clockwise as seen from behind the camera (Blender's local Z)."""
        r = _rot(-self.forward, _finite_number("roll angle_deg", angle_deg))
        return self._with_rt(r @ self.rotation, self.position)

    def orbit(self, pivot: Sequence[float], yaw_deg: float = 0.0, pitch_deg: float = 0.0) -> "Camera":
        """Orbit about ``pivot`` (world metres), keeping the distance to it.

        Yaw turns about the world +Z axis through the pivot (positive: counter-clockwise seen
        from above); pitch turns about the camera's right axis through the pivot (positive:
        the camera rises). The camera's orientation turns with it.
        """
        p = _vec3("orbit pivot", pivot)
        r = _rot(_WORLD_UP, _finite_number("orbit yaw_deg", yaw_deg)) @ _rot(
            self.right, -_finite_number("orbit pitch_deg", pitch_deg)
        )
        return self._with_rt(r @ self.rotation, p + r @ (self.position - p))

    def zoom(self, factor: float) -> "Camera":
        """Multiply the focal length by ``factor`` (> 0); the pose is unchanged."""
        f = _finite_number("zoom factor", factor)
        if f <= 0:
            raise InputError(f"camera: zoom factor must be > 0 (got {f:g})")
        return self.replace(lens_mm=self.lens_mm * f)

    def moved(self, move: str, amount: float, *, pivot: Sequence[float] | None = None,
              pitch_deg: float = 0.0) -> "Camera":
        """Apply one of :data:`MOVES` by ``amount`` (its unit: metres, degrees or a factor).

        Args:
            move: a :data:`MOVES` name.
            amount: metres (dolly, truck, pedestal), degrees (pan, tilt, roll, orbit yaw) or a
                focal-length factor (zoom).
            pivot: orbit pivot in world metres (required for ``"orbit"``).
            pitch_deg: orbit pitch in degrees (positive: the camera rises).

        Raises:
            InputError: unknown move, non-finite amount, orbit without a pivot.
        """
        if move not in MOVES:
            raise InputError(f"camera: unknown move {move!r}; moves: {', '.join(MOVES)}")
        if move == "orbit":
            if pivot is None:
                raise InputError("camera: an orbit needs a pivot point (world metres)")
            return self.orbit(pivot, amount, pitch_deg)
        return getattr(self, move)(amount)

    def with_lens(self, lens_mm: float) -> "Camera":
        """Change the focal length (a zoom to an absolute focal length)."""
        return self.replace(lens_mm=lens_mm)

    # ------------------------------------------------------------------ Blender / JSON
    @classmethod
    def from_blender(
        cls,
        matrix_world: Any,
        *,
        lens_mm: float,
        resolution: Sequence[int],
        sensor_width_mm: float = 36.0,
        sensor_height_mm: float = 24.0,
        sensor_fit: str = "AUTO",
        shift_x: float = 0.0,
        shift_y: float = 0.0,
        clip_start: float = 0.1,
        clip_end: float = 1000.0,
    ) -> "Camera":
        """Build from Blender camera data. ``matrix_world`` is Blender's (looks down local -Z)."""
        try:
            mw = np.asarray(matrix_world, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("camera: matrix_world must be a 4x4 matrix of numbers") from None
        if mw.shape != (4, 4):
            raise InputError(f"camera: matrix_world must be 4x4 (got shape {tuple(mw.shape)})")
        if not np.all(np.isfinite(mw)):
            raise InputError("camera: matrix_world has non-finite values (NaN or inf)")
        _check_rigid(mw, "matrix_world")
        if isinstance(resolution, (str, bytes)) or not hasattr(resolution, "__len__") or len(resolution) != 2:
            raise InputError(f"camera: resolution must be [width, height] (got {resolution!r})")
        return cls(
            width=resolution[0],
            height=resolution[1],
            lens_mm=lens_mm,
            sensor_width_mm=sensor_width_mm,
            sensor_height_mm=sensor_height_mm,
            sensor_fit=sensor_fit,
            shift_x=shift_x,
            shift_y=shift_y,
            clip_start=clip_start,
            clip_end=clip_end,
            world_from_cam=mw @ BLENDER_FROM_CV,
        )

    @classmethod
    def from_K(
        cls,
        K: np.ndarray,
        width: int,
        height: int,
        world_from_cam: np.ndarray | None = None,
        sensor_width_mm: float = 36.0,
    ) -> "Camera":
        """Build from a pixel intrinsic matrix (square pixels), expressed on a ``sensor_width_mm`` sensor."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise InputError("camera: K must be a finite 3x3 matrix")
        fx, fy = K[0, 0], K[1, 1]
        if fx <= 0 or fy <= 0:
            raise InputError(f"camera: focal lengths in K must be > 0 (got fx={fx:g}, fy={fy:g})")
        if abs(fx - fy) > 1e-6 * fx:
            raise InputError(f"camera: non-square pixels are not supported (fx={fx:g}, fy={fy:g})")
        probe = cls(width=width, height=height, lens_mm=1.0, sensor_width_mm=sensor_width_mm)
        viewfac = probe._sensor_and_viewfac[1]
        return cls(
            width=width,
            height=height,
            lens_mm=fx * sensor_width_mm / viewfac,
            sensor_width_mm=sensor_width_mm,
            shift_x=(width / 2.0 - K[0, 2]) / viewfac,
            shift_y=(K[1, 2] - height / 2.0) / viewfac,
            world_from_cam=np.eye(4) if world_from_cam is None else world_from_cam,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The camera JSON of the brief (Blender ``matrix_world``, row-major)."""
        return {
            "lens_mm": self.lens_mm,
            "sensor_width_mm": self.sensor_width_mm,
            "sensor_height_mm": self.sensor_height_mm,
            "sensor_fit": self.sensor_fit,
            "resolution": [self.width, self.height],
            "shift_x": self.shift_x,
            "shift_y": self.shift_y,
            "clip_start": self.clip_start,
            "clip_end": self.clip_end,
            "matrix_world": self.matrix_world.tolist(),
        }

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any], source: str = "camera JSON") -> "Camera":
        """Parse the camera JSON of the brief, field by field; errors name ``source`` and the field.

        Numbers must be JSON numbers (``true`` and ``"50"`` are refused), finite and in range;
        ``resolution`` is two positive integers whose product is within the ``render_pixels``
        limit (docs/limits.md). Fields not listed in docs/conventions.md are ignored.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: expected a JSON object, got {describe(data)}")
        lens = jf.number(data, "lens_mm", source, minimum=0.0, exclusive_minimum=True)
        res = jf.array(data, "resolution", source, length=2)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE_PX for v in res):
            raise InputError(f"{source}: resolution must be [width, height], two positive integers "
                             f"(got [{', '.join(describe(v) for v in res)}])")
        check_count("render_pixels", res[0] * res[1], f"{source}: resolution {res[0]}x{res[1]}")
        rows = jf.array(data, "matrix_world", source, length=4)
        mw = [jf.array({f"matrix_world[{i}]": r}, f"matrix_world[{i}]", source, length=4) for i, r in enumerate(rows)]
        mw = [[jf.as_number(v, f"matrix_world[{i}][{j}]", source) for j, v in enumerate(r)] for i, r in enumerate(mw)]
        kwargs: dict[str, Any] = {}
        for k in ("sensor_width_mm", "sensor_height_mm", "clip_start", "clip_end"):
            if k in data:
                kwargs[k] = jf.number(data, k, source, minimum=0.0, exclusive_minimum=True)
        for k in ("shift_x", "shift_y"):
            if k in data:
                kwargs[k] = jf.number(data, k, source)
        if "sensor_fit" in data:
            kwargs["sensor_fit"] = jf.string(data, "sensor_fit", source, max_length=16).upper()
        try:
            return cls.from_blender(mw, lens_mm=lens, resolution=res, **kwargs)
        except InputError as e:
            raise InputError(f"{source}: {str(e).removeprefix('camera: ')}") from None

    def allclose(self, other: "Camera", atol: float = 1e-9) -> bool:
        """True when every field matches within ``atol``."""
        a, b = self.to_json_dict(), other.to_json_dict()
        return a["sensor_fit"] == b["sensor_fit"] and a["resolution"] == b["resolution"] and all(
            np.allclose(a[k], b[k], atol=atol, rtol=0) for k in a if k not in ("sensor_fit", "resolution")
        )

    def __repr__(self) -> str:
        p = np.round(self.position, 4).tolist()
        return (f"Camera({self.width}x{self.height}, lens={self.lens_mm:g}mm, sensor={self.sensor_width_mm:g}mm "
                f"{self.sensor_fit}, shift=({self.shift_x:g}, {self.shift_y:g}), position={p})")


def look_at(eye: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """[4, 4] world_from_cam (OpenCV) for a camera at ``eye`` looking at ``target``, world metres."""
    e = _vec3("look_at eye", eye)
    z = _vec3("look_at target", target) - e
    up = _vec3("look_at up", up)
    if not np.all(np.isfinite(z)) or np.linalg.norm(z) < 1e-12:
        raise InputError("camera: look_at needs distinct, finite eye and target")
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise InputError("camera: look_at up vector is parallel to the view direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, e
    return m


def camera_path(reference: Camera, move: str, start: float, end: float, frames: int, *,
                pivot: Sequence[float] | None = None) -> list[Camera]:
    """A camera per frame moving ``reference`` by amounts evenly spaced from ``start`` to ``end``.

    Every camera is the reference moved once by its own amount (an orbit stays on its circle,
    not on chords between frames).

    Args:
        reference: the camera the move starts from.
        move: a :data:`MOVES` name.
        start: the first frame's amount (metres, degrees or factor, as the move's unit).
        end: the last frame's amount.
        frames: number of cameras (≥ 1; one camera takes ``end``).
        pivot: orbit pivot, world metres.

    Returns:
        ``frames`` cameras.

    Raises:
        InputError: bad move, amounts or frame count.
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise InputError(f"camera path: frames must be a positive integer (got {frames!r})")
    a, b = _finite_number("path start", start), _finite_number("path end", end)
    amounts = np.linspace(a, b, int(frames)) if frames > 1 else np.array([b])
    return [reference.moved(move, float(t), pivot=pivot) for t in amounts]


def turntable_path(reference: Camera, centre: Sequence[float], views: int, *, radius_m: float | None = None,
                   elevation_deg: float | None = None, start_deg: float | None = None,
                   sweep_deg: float = 360.0) -> list[Camera]:
    """Cameras on a circle about the vertical (world +Z) axis through ``centre``, each looking at it.

    Camera ``k`` sits at azimuth ``start + sweep * k / views`` (counter-clockwise seen from above, as
    :meth:`Camera.orbit`), ``radius_m`` from the centre, ``elevation_deg`` above its horizontal
    plane. A full sweep has no repeated end view, so the views are evenly spaced (8 views: 45° apart)
    and a looping clip does not stutter. Each camera keeps the reference's lens and resolution.

    Args:
        reference: gives the lens and resolution, and the defaults below.
        centre: [3] world metres, the point every camera looks at (the product's centre).
        views: number of cameras (≥ 1).
        radius_m: distance from the centre in metres (default: the reference camera's).
        elevation_deg: angle above the centre's horizontal plane, in (-90, 90) degrees (default:
            the reference camera's).
        start_deg: azimuth of the first camera (default: the reference camera's, so view 0 stands
            where the photo was taken).
        sweep_deg: the azimuth covered by the path, degrees (360: a full turn).

    Returns:
        ``views`` cameras.

    Raises:
        InputError: bad count, radius, elevation, sweep, or a reference camera at the centre.
    """
    if not isinstance(reference, Camera):
        raise InputError(f"turntable: reference must be a Camera (got {type(reference).__name__})")
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or not 1 <= views <= MAX_PATH_FRAMES:
        raise InputError(f"turntable: views must be an integer from 1 to {MAX_PATH_FRAMES:,} (got {views!r})")
    c = _vec3("turntable centre", centre)
    offset = reference.position - c
    dist = float(np.linalg.norm(offset))
    if radius_m is None:
        if dist < 1e-9:
            raise InputError("turntable: the reference camera sits at the centre; give a radius in metres")
        radius_m = dist
    radius = _finite_number("turntable radius_m", radius_m)
    if radius <= 0:
        raise InputError(f"turntable: radius_m must be > 0 metres (got {radius:g})")
    if elevation_deg is None:
        elevation_deg = math.degrees(math.asin(np.clip(offset[2] / dist, -1.0, 1.0))) if dist >= 1e-9 else 0.0
    elev = _finite_number("turntable elevation_deg", elevation_deg)
    if not -90.0 < elev < 90.0:
        raise InputError(f"turntable: elevation_deg must be between -90 and 90 degrees, exclusive (got {elev:g})")
    if start_deg is None:
        start_deg = math.degrees(math.atan2(offset[1], offset[0])) if np.hypot(offset[0], offset[1]) > 1e-9 else -90.0
    start = _finite_number("turntable start_deg", start_deg)
    sweep = _finite_number("turntable sweep_deg", sweep_deg)
    if not 0.0 < abs(sweep) <= 360.0:
        raise InputError(f"turntable: sweep_deg must be non-zero and at most 360 degrees (got {sweep:g})")
    # A full turn ends one step short of its start; a partial sweep reaches both ends.
    steps = views if abs(sweep) == 360.0 or views == 1 else views - 1
    cams = []
    for k in range(int(views)):
        az = math.radians(start + sweep * k / steps)
        el = math.radians(elev)
        eye = c + radius * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        cams.append(reference.with_pose(look_at(eye, c)))
    return cams


def load_camera_json(path: str | os.PathLike) -> Camera:
    """Read a camera JSON file (see docs/conventions.md).

    Raises:
        InputError: missing, a FIFO / device / folder, too large or too deeply nested
            (docs/limits.md), not JSON, or a field of the wrong type or range.
    """
    data = load_json(path, "camera file")
    return Camera.from_json_dict(data, source=f"camera file {str(path)!r}")


def save_camera_json(path: str | os.PathLike, camera: Camera) -> None:
    """Write a camera JSON file atomically."""
    if not isinstance(camera, Camera):
        raise InputError(f"save_camera_json: camera must be a Camera (got {type(camera).__name__})")
    with atomic_file(path_arg(path, "save_camera_json: path"), "camera file") as tmp:
        tmp.write_text(json.dumps(camera.to_json_dict(), indent=2), encoding="utf-8")
