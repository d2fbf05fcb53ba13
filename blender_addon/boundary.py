# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place Blender data meets the core's conventions.

Blender cameras look down their local -Z with +Y up and carry lens/sensor in
millimetres; the core's :class:`anchorstage.Camera` is OpenCV-framed. The flip itself
is written once, in ``anchorstage.camera.BLENDER_FROM_CV``; this module only moves data
between bpy objects and the core.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from anchorstage import Camera, InputError

__all__ = ["render_resolution", "camera_from_blender", "apply_camera_to_blender", "camera_json_from_blender"]


def render_resolution(scene: bpy.types.Scene) -> tuple[int, int]:
    """The output resolution in pixels, after ``resolution_percentage``."""
    r = scene.render
    pct = r.resolution_percentage / 100.0
    return max(1, int(r.resolution_x * pct)), max(1, int(r.resolution_y * pct))


def _rigid_matrix_world(obj: bpy.types.Object) -> np.ndarray:
    # Blender ignores object scale when projecting through a camera; drop it likewise.
    loc, rot, _scale = obj.matrix_world.decompose()
    return np.array(Matrix.LocRotScale(loc, rot, None), dtype=np.float64)


def camera_json_from_blender(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> dict:
    """The camera JSON of the brief for a Blender camera object at the current frame."""
    if obj is None or obj.type != "CAMERA":
        raise InputError(f"object {getattr(obj, 'name', None)!r} is not a camera")
    cam = obj.data
    if cam.type != "PERSP":
        raise InputError(f"camera {obj.name!r} is {cam.type}; only perspective cameras are supported")
    scene = scene or bpy.context.scene
    r = scene.render
    if r.pixel_aspect_x != r.pixel_aspect_y:
        raise InputError(f"scene {scene.name!r}: non-square pixel aspect is not supported")
    w, h = render_resolution(scene)
    return {
        "lens_mm": cam.lens,
        "sensor_width_mm": cam.sensor_width,
        "sensor_height_mm": cam.sensor_height,
        "sensor_fit": cam.sensor_fit,
        "resolution": [w, h],
        "shift_x": cam.shift_x,
        "shift_y": cam.shift_y,
        "clip_start": cam.clip_start,
        "clip_end": cam.clip_end,
        "matrix_world": _rigid_matrix_world(obj).tolist(),
    }


def camera_from_blender(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> Camera:
    """A core Camera from a Blender camera object (pose at the current frame)."""
    return Camera.from_json_dict(camera_json_from_blender(obj, scene), source=f"camera {obj.name!r}")


def apply_camera_to_blender(camera: Camera, obj: bpy.types.Object, scene: bpy.types.Scene | None = None,
                            *, set_resolution: bool = False) -> None:
    """Write a core Camera's pose and lens onto a Blender camera object."""
    cam = obj.data
    cam.type = "PERSP"
    cam.lens_unit = "MILLIMETERS"
    cam.lens = camera.lens_mm
    cam.sensor_width = camera.sensor_width_mm
    cam.sensor_height = camera.sensor_height_mm
    cam.sensor_fit = camera.sensor_fit
    cam.shift_x = camera.shift_x
    cam.shift_y = camera.shift_y
    cam.clip_start = camera.clip_start
    cam.clip_end = camera.clip_end
    obj.matrix_world = Matrix(camera.matrix_world.tolist())
    if set_resolution:
        scene = scene or bpy.context.scene
        scene.render.resolution_x, scene.render.resolution_y = camera.width, camera.height
        scene.render.resolution_percentage = 100
