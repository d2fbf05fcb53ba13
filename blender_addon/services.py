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

    def generation_config(self, context=None) -> dict:
        """Where and with what generation runs, from the preferences (JSON-able; part of the Generate
        node's cache key): compute (LOCAL / REMOTE), device, models ("" = environment, then defaults),
        memory savers, and the remote worker (URL, API key, timeout)."""
        p = lambda name, default="": self.pref(name, default, context)  # noqa: E731
        return {"compute": str(p("compute", "LOCAL")), "device": self.device(context),
                "models": {"family": str(p("generation_family", "AUTO")).lower(), "model": p("generation_model"),
                           "controlnet_depth": p("controlnet_depth"), "controlnet_normal": p("controlnet_normal"),
                           "ip_adapter": p("ip_adapter"), "ip_adapter_weight": p("ip_adapter_weight"),
                           "image_encoder": ""},
                "memory": {"dtype": "auto", "attention_slicing": str(p("attention_slicing", "AUTO")).lower(),
                           "cpu_offload": str(p("cpu_offload", "AUTO")).lower()},
                "remote": {"url": p("worker_url", "http://127.0.0.1:8000"), "api_key": p("worker_api_key"),
                           "timeout_s": float(p("worker_timeout", 3600.0))}}

    # ------------------------------------------------------------------ generation (any thread)
    def generate_remote(self, remote: dict, cond, knobs: dict, *, progress=None, cancelled=None):
        """Generate on the remote worker (no Blender data touched: safe off the main thread).

        Returns:
            The core ``Generation``. Raises ``InputError`` with the worker's one-line message on failure.
        """
        import tempfile

        from anchorstage.errors import Cancelled, InputError
        from anchorstage.remote.jobs import generate_job, read_generation

        from .remote_client import WorkerClient, WorkerError

        try:
            client = WorkerClient(remote["url"], remote.get("api_key", ""))
            output = client.run(generate_job(cond, knobs), progress=progress, cancelled=cancelled,
                                timeout_s=float(remote.get("timeout_s", 3600.0)))
        except WorkerError as e:
            if str(e) == "cancelled":
                raise Cancelled("generation cancelled (the remote job was cancelled too)") from None
            raise InputError(str(e)) from None
        with tempfile.TemporaryDirectory(prefix="anchorstage-answer-") as tmp:
            return read_generation(output, f"{tmp}/answer", cond)

    def show_generation(self, gen, image_name: str, to_compositor: bool) -> None:
        """Put a generated frame into image ``image_name`` and, on request, the compositor's output (main thread)."""
        if not image_name:
            return
        h, w = gen.image.shape[:2]
        self.show_preview(image_name, np.concatenate([gen.image, np.ones((h, w, 1), np.float32)], -1))
        if to_compositor:
            from .compositor import show_image_as_output

            show_image_as_output(bpy.context.scene, bpy.data.images[image_name])

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
