# SPDX-License-Identifier: GPL-3.0-or-later
"""What the add-on offers the node files at run time (the executor's ``ctx.services``).

``nodes/`` imports only the core and Blender; everything that needs the add-on's own modules
(the Blender↔core boundary, the splat object, preferences, the witness camera) reaches the
nodes through this one object, handed over when the nodes register and to every run.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import boundary, splat_object

__all__ = ["BlenderServices"]


class BlenderServices:
    """Blender-side services for node jobs (main thread only)."""

    def __init__(self, package: str) -> None:
        self.package = package

    # ------------------------------------------------------------------ preferences
    def pref(self, name: str, default, context=None):
        """An add-on preference (``default`` when the add-on's preferences are not available)."""
        context = context or bpy.context
        addon = context.preferences.addons.get(self.package)
        return getattr(addon.preferences, name, default) if addon is not None else default

    def device(self, context=None) -> str:
        return str(self.pref("device", "AUTO", context)).lower()

    # ------------------------------------------------------------------ cameras
    def camera_json(self, obj, scene) -> dict:
        """The camera JSON of a Blender camera object at the current frame."""
        return boundary.camera_json_from_blender(obj, scene)

    def update_witness_camera(self, scene_name: str, camera) -> bool:
        """Give the scene's witness camera (if it has one) the stage's camera; True when it did."""
        scene = bpy.data.scenes.get(scene_name)
        witness = getattr(getattr(scene, "anchorstage", None), "witness_camera", None)
        if witness is None:
            return False
        boundary.apply_camera_to_blender(camera, witness, scene, set_resolution=scene.camera == witness)
        return True

    # ------------------------------------------------------------------ splat object
    def update_splat_object(self, splats, *, name: str, scene_name: str, source: str, max_display: int):
        """Create or update the splat object; returns (object name, splats displayed, splats total)."""
        obj = splat_object.update_splat_object(splats, name=name, scene=bpy.data.scenes.get(scene_name),
                                               source=source, max_display=max_display)
        return (obj.name, *splat_object.display_counts(obj))

    def update_witness(self, name: str, stage) -> None:
        """Store a core Scene's witness (photo, depth, regions, camera, refresh steps) on splat object ``name``."""
        obj = bpy.data.objects.get(name)
        if obj is not None and obj.type == "MESH":
            boundary.witness_to_mesh(stage, obj.data)

    def locked_regions(self, name: str) -> list:
        """Ids of the regions locked in splat object ``name``'s region list ([] without one)."""
        obj = bpy.data.objects.get(name)
        return boundary.locked_region_ids(obj.data) if obj is not None and obj.type == "MESH" else []

    def display_counts(self, name: str):
        """(splats displayed, splats total) of a splat object, or None when there is none."""
        obj = bpy.data.objects.get(name)
        return None if obj is None else splat_object.display_counts(obj)

    # ------------------------------------------------------------------ images
    def show_preview(self, image_name: str, rgba: np.ndarray) -> None:
        """Put an [H, W, 4] linear RGBA image (rows top-down) into a float image datablock."""
        boundary.set_float_image(image_name, rgba)
