# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth order of splats for a viewer that blends them back to front, computed off the caller's thread.

A viewer that draws Gaussians with hardware blending (the Blender add-on's GPU drawer) needs them
sorted by view depth. Blending back to front with the premultiplied *over* operator gives exactly
the renderer's front-to-back sum (see :mod:`anchorstage.projection`), so the order here is the
renderer's order reversed: farthest first, and splats at equal depth in *descending* input order
(the renderer keeps input order among ties, front to back).

The order depends on the view only through the camera's position and viewing direction, and a
slightly stale order is hard to see, so a viewer re-sorts only when the view has moved beyond a
:class:`ResortPolicy` threshold, and does it on a :class:`BackgroundSorter` thread so a redraw never
waits: it keeps drawing with the last order until the new one is ready.

Frames: everything here is in the splat set's own frame ("object"); a viewer passes
``cam_from_object`` (OpenCV camera: x right, y down, z forward; metres or object units).
"""

from __future__ import annotations

import importlib.util
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Hashable, Optional

import numpy as np

__all__ = ["view_depths", "back_to_front", "affine_inverse", "ViewPose", "ResortPolicy", "SortResult",
           "sort_for_view", "BackgroundSorter"]

#: Depth percentiles reported with an order (the viewer's depth colour ramp).
_RANGE_PERCENTILES = (1.0, 99.0)
_RANGE_SAMPLE = 65536  # splats sampled for the percentiles


def view_depths(means: np.ndarray, cam_from_object: np.ndarray) -> np.ndarray:
    """Depth of each splat centre along the camera's view axis.

    Args:
        means: [N, 3] float32 centres in the object frame.
        cam_from_object: [4, 4] object → camera (OpenCV, z forward).

    Returns:
        [N] float32 z in the camera frame (positive in front of the camera).
    """
    m = np.asarray(cam_from_object, dtype=np.float64)
    row = m[2, :3].astype(np.float32)
    return np.asarray(means, dtype=np.float32) @ row + np.float32(m[2, 3])


def _kernels():
    if os.environ.get("ANCHORSTAGE_NUMBA", "1").strip() == "0" or importlib.util.find_spec("numba") is None:
        return None
    from . import _sort_kernels

    return _sort_kernels


def back_to_front(depths: np.ndarray) -> np.ndarray:
    """Drawing order for back-to-front blending: the exact reverse of the renderer's stable
    front-to-back order.

    Args:
        depths: [N] float32 view depths.

    Returns:
        [N] int32 indices, farthest first; equal depths in descending index order.
    """
    d = np.ascontiguousarray(depths, dtype=np.float32)
    kern = _kernels()
    # A compiled LSD radix sort (3 passes of 11 bits) is ~10x faster than numpy's stable sort.
    ascending = kern.radix_argsort_f32(d) if kern is not None else np.argsort(d, kind="stable").astype(np.int32)
    return np.ascontiguousarray(ascending[::-1])


def affine_inverse(m: np.ndarray) -> np.ndarray:
    """The inverse of a [4, 4] affine matrix (last row 0, 0, 0, 1), float64.

    Closed form (adjugate of the 3x3 part): a viewer calls it every redraw, and LAPACK's general
    inverse costs milliseconds when its thread pool is busy.
    """
    m = np.asarray(m, dtype=np.float64)
    a = m[:3, :3]
    adj = np.array([np.cross(a[1], a[2]), np.cross(a[2], a[0]), np.cross(a[0], a[1])]).T
    det = float(a[0] @ adj[:, 0])
    out = np.eye(4)
    out[:3, :3] = adj / det
    out[:3, 3] = -out[:3, :3] @ m[:3, 3]
    return out


@dataclass(frozen=True)
class ViewPose:
    """Where a camera is and where it looks, in a splat set's frame.

    Attributes:
        eye: [3] camera position.
        forward: [3] unit viewing direction (the camera's +z).
    """

    eye: tuple[float, float, float]
    forward: tuple[float, float, float]

    @classmethod
    def from_cam_from_object(cls, cam_from_object: np.ndarray) -> "ViewPose":
        """The pose of an OpenCV ``cam_from_object`` (rotation may carry a uniform scale)."""
        m = np.asarray(cam_from_object, dtype=np.float64)
        inv = affine_inverse(m)
        f = m[2, :3] / max(np.linalg.norm(m[2, :3]), 1e-300)
        return cls(eye=tuple(float(v) for v in inv[:3, 3]), forward=tuple(float(v) for v in f))


@dataclass(frozen=True)
class ResortPolicy:
    """When a view has moved enough to sort again.

    Attributes:
        angle_deg: re-sort when the viewing direction has turned by more than this, degrees.
        distance: re-sort when the eye has moved by more than this fraction of the splats'
            median depth at the last sort (0.01: 1 %).
    """

    angle_deg: float = 1.0
    distance: float = 0.01

    def needs_resort(self, sorted_pose: ViewPose, pose: ViewPose, median_depth: float) -> bool:
        """True when ``pose`` is beyond the thresholds from the pose the last order was sorted for."""
        cos = float(np.clip(np.dot(sorted_pose.forward, pose.forward), -1.0, 1.0))
        if math.degrees(math.acos(cos)) > self.angle_deg:
            return True
        moved = float(np.linalg.norm(np.subtract(pose.eye, sorted_pose.eye)))
        return moved > self.distance * max(abs(float(median_depth)), 1e-6)


@dataclass(frozen=True)
class SortResult:
    """An order and what it was sorted for.

    Attributes:
        order: [N] int32 back-to-front drawing order (:func:`back_to_front`).
        pose: the view it was sorted for.
        tag: the caller's tag of the splat data it was sorted from (a generation counter).
        median_depth: median view depth of the splats in front of the camera (0 when none).
        depth_range: (near, far) 1st and 99th percentile of those depths (the viewer's depth ramp).
        seconds: time spent computing it.
    """

    order: np.ndarray
    pose: ViewPose
    tag: Hashable
    median_depth: float
    depth_range: tuple[float, float]
    seconds: float


def sort_for_view(means: np.ndarray, cam_from_object: np.ndarray, tag: Hashable = None) -> SortResult:
    """Sort splats back to front for one view (on the calling thread).

    Args:
        means: [N, 3] float32 centres in the object frame.
        cam_from_object: [4, 4] object → camera (OpenCV).
        tag: carried into the result unchanged.
    """
    t0 = time.perf_counter()
    depths = view_depths(means, cam_from_object)
    order = back_to_front(depths)
    ahead = depths[:: max(1, depths.shape[0] // _RANGE_SAMPLE)]
    ahead = ahead[ahead > 0]
    if ahead.size:
        lo, med, hi = np.percentile(ahead, (_RANGE_PERCENTILES[0], 50.0, _RANGE_PERCENTILES[1]))
    else:
        lo = med = hi = 0.0
    return SortResult(order=order, pose=ViewPose.from_cam_from_object(cam_from_object), tag=tag,
                      median_depth=float(med), depth_range=(float(lo), float(hi)),
                      seconds=time.perf_counter() - t0)


class BackgroundSorter:
    """Sorts splat sets for views on one worker thread; callers never wait for it.

    ``request(key, ...)`` queues a sort of one splat set (``key``: the caller's name for it),
    replacing a request for the same key that has not started; ``take(key)`` returns the newest
    finished order once (or None). The worker holds no lock while sorting (numpy and the compiled
    sort release the GIL), so the caller's thread keeps running.
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._pending: dict[Hashable, tuple[np.ndarray, np.ndarray, Hashable]] = {}
        self._done: dict[Hashable, SortResult] = {}
        self._running: Optional[Hashable] = None
        self._errors: dict[Hashable, str] = {}
        self._forgotten: set = set()  # keys whose running sort is to be dropped, not delivered
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def request(self, key: Hashable, means: np.ndarray, cam_from_object: np.ndarray, tag: Hashable = None) -> None:
        """Queue a sort of ``means`` (kept by reference: do not modify it) for a view."""
        with self._cv:
            if self._closed:
                return
            self._pending[key] = (means, np.array(cam_from_object, dtype=np.float64), tag)
            self._forgotten.discard(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="anchorstage-splat-sort", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def busy(self, key: Hashable) -> bool:
        """True while a sort for ``key`` is queued or running."""
        with self._cv:
            return key in self._pending or self._running == key

    def has_result(self, key: Hashable) -> bool:
        """True when a finished order for ``key`` waits to be taken."""
        with self._cv:
            return key in self._done

    def take(self, key: Hashable) -> Optional[SortResult]:
        """The newest finished order for ``key`` (once), or None; never waits."""
        with self._cv:
            return self._done.pop(key, None)

    def error(self, key: Hashable) -> str:
        """The message of the last failed sort for ``key`` ("" when none), cleared on read."""
        with self._cv:
            return self._errors.pop(key, "")

    def wait(self, key: Hashable, timeout: float = 60.0) -> Optional[SortResult]:
        """Block until no sort for ``key`` is queued or running, then :meth:`take` (tests, batch)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while key in self._pending or self._running == key:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            return self._done.pop(key, None)

    def forget(self, key: Hashable) -> None:
        """Drop queued work and results for ``key``; a sort of it already running is discarded when done."""
        with self._cv:
            self._pending.pop(key, None)
            self._done.pop(key, None)
            self._errors.pop(key, None)
            if self._running == key:
                self._forgotten.add(key)

    def close(self) -> None:
        """Stop the worker after the sort in progress (queued requests are dropped)."""
        with self._cv:
            self._closed = True
            self._pending.clear()
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                key = next(iter(self._pending))
                means, m, tag = self._pending.pop(key)
                self._running = key
            try:
                result, err = sort_for_view(means, m, tag), ""
            except Exception as e:  # noqa: BLE001 - reported to the caller through error(), the thread lives on
                result, err = None, f"{type(e).__name__}: {e}"
            with self._cv:
                self._running = None
                # Kept even when a newer request is queued: while the view keeps moving, each
                # finished order is still fresher than the one being drawn.
                if key in self._forgotten:
                    self._forgotten.discard(key)
                elif result is not None:
                    self._done[key] = result
                else:
                    self._errors[key] = err
                self._cv.notify_all()
