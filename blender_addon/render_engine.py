# SPDX-License-Identifier: GPL-3.0-or-later
"""The ANCHORSTAGE render engine: renders the scene's splat objects from the scene camera with the
core renderer and fills Combined, Depth and Normal plus the custom passes Confidence, Void and
Region. Blender then shows them on the compositor's Render Layers node and writes them into its
own multilayer EXR — in the UI (F12), from ``bpy.ops.render.render()`` and under
``blender -b file.blend -f N`` / ``-a``. Its Rendered viewport draws real Gaussians with the GPU
drawer of :mod:`.viewport` (the CPU renderer as a texture only if that drawer fails).

When a splat object carries its stage's witness (the Splat Object node stores it), the Void pass is
what that photo never saw (not merely where no splat is). With the scene's Beauty set to Refreshed
Witness, Combined is the witness refreshed for the frame's camera (classical inpainting, the
object's locked regions kept) and Confidence is the refresh's per-pixel confidence.
"""

from __future__ import annotations

import numpy as np

import bpy

from . import boundary, splat_cache

ENGINE_ID = "ANCHORSTAGE"


def _prefs():
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def gather_splats(depsgraph):
    """All visible splat objects of the evaluated scene, in world space, as one core Splats (or None).

    The splats come from :mod:`.splat_cache`: an object whose mesh and matrix did not change since
    the last frame costs nothing (see docs/rendering.md, "Warm paths").
    """
    parts, seen = [], set()
    for obj in depsgraph.objects:
        orig = obj.original
        if orig.type != "MESH" or orig.name in seen or orig.hide_render:
            continue
        if not boundary.is_splat_mesh(orig.data):
            continue
        seen.add(orig.name)
        if len(orig.data.vertices):
            parts.append(splat_cache.object_splats(orig, obj.matrix_world))
    splat_cache.prune()
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return splat_cache.joined(parts)


def render_passes(depsgraph, camera_obj=None) -> tuple[dict[str, np.ndarray], "object"]:
    """Core passes (numpy, top-down rows) for the evaluated scene's camera, and that core Camera."""
    from anchorstage import InputError, render
    from anchorstage.passes import PASSES, background_array

    scene = depsgraph.scene
    cam = camera_obj or scene.camera
    if cam is None:
        raise InputError(f"scene {scene.name!r} has no camera to render from")
    camera = boundary.camera_from_blender(cam.evaluated_get(depsgraph), scene)
    splats = gather_splats(depsgraph)
    w, h = camera.resolution
    if splats is None or len(splats) == 0:
        return {name: background_array(name, h, w) for name in PASSES}, camera
    prefs = _prefs()
    device = (getattr(prefs, "device", "AUTO") or "AUTO").lower()
    out = render(splats, camera, passes=PASSES, backend="auto", device=device)
    passes = {k: v.detach().cpu().numpy() for k, v in out.items()}
    witness = next((o.original for o in depsgraph.objects if o.original.type == "MESH" and not o.original.hide_render
                    and boundary.is_splat_mesh(o.original.data) and boundary.has_witness(o.original.data)), None)
    refresh_mode = getattr(getattr(scene, "anchorstage", None), "engine_output", "PROXY") == "REFRESH"
    if refresh_mode and witness is None:
        raise InputError("Beauty is Refreshed Witness but no splat object carries a witness (run the Splat Object "
                         "node, or New Stage + Execute)")
    if witness is not None:
        stage = splat_cache.object_stage(witness)
        if refresh_mode:
            from anchorstage.stages import refresh

            res = refresh(stage, camera, device=device)
            passes.update(color=res.witness, alpha=np.ones((h, w), np.float32), void=res.void.astype(np.float32),
                          confidence=res.confidence.map)
        else:
            from anchorstage.witness import void_pass

            passes["void"] = void_pass(stage, camera, device=device)
    return passes, camera


class AnchorStageRenderEngine(bpy.types.RenderEngine):
    """Render the splat stage with the AnchorStage core renderer (GPU when available)"""

    bl_idname = ENGINE_ID
    bl_label = "AnchorStage"
    bl_use_postprocess = True     # compositor and sequencer run after it
    bl_use_preview = False
    bl_use_eevee_viewport = True  # Material Preview shading uses Eevee (the splat proxies)
    bl_use_shading_nodes_custom = False

    def update_render_passes(self, scene=None, renderlayer=None):
        """Blender's passes from the core's pass registry: Combined (colour + alpha), the built-in
        ones the view layer switches on (Depth, Normal), and the custom ones."""
        from anchorstage.passes import PASSES, REGISTRY, blender_layers, spec

        types = {p.name: p.blender_type for p in REGISTRY}
        for blender, chan_ids, ours in blender_layers(PASSES):
            flag = spec(ours[0]).view_layer_flag
            if flag is None or getattr(renderlayer, flag):
                self.register_pass(scene, renderlayer, blender, len(chan_ids), chan_ids, types[ours[0]])

    def render(self, depsgraph):
        scene = depsgraph.scene
        w, h = boundary.render_resolution(scene)
        self.update_stats("AnchorStage", "Reading splats")
        try:
            passes, camera = render_passes(depsgraph, self.camera_override)
        except Exception as e:  # noqa: BLE001 - never raise into Blender; say what went wrong
            from anchorstage.errors import error_message

            msg = error_message(e, "the AnchorStage render engine")
            self.report({"ERROR"}, f"AnchorStage render: {msg}")
            if hasattr(self, "error_set"):
                self.error_set(f"AnchorStage render: {msg}")
            return
        if self.test_break():
            return
        self.update_stats("AnchorStage", "Writing passes")
        from anchorstage.passes import blender_layers

        values = {blender: np.concatenate([np.asarray(passes[n], np.float32).reshape(h, w, -1) for n in ours], axis=-1)
                  for blender, _, ours in blender_layers(passes)}
        result = self.begin_result(0, 0, w, h)
        try:
            for layer in result.layers:
                for p in layer.passes:
                    v = values.get(p.name)
                    if v is None:
                        continue
                    boundary.set_render_pass(p, v)
        finally:
            self.end_result(result)
        self.update_progress(1.0)


    # ------------------------------------------------------------------ viewport (Rendered shading)
    _VIEW_MAX_SIDE = 640  # CPU fallback: render the viewport at most this large, then stretch

    def view_update(self, context, depsgraph):
        """Scene changed: the GPU drawer notices changed splat meshes itself; the CPU fallback
        (used only when the GPU drawer fails) reads them again."""
        if getattr(self, "_view_cpu", False):
            self._cpu_view_update(context, depsgraph)

    def view_draw(self, context, depsgraph):
        """Real Gaussians with the GPU drawer (:mod:`.viewport`); the CPU renderer as a texture if it fails."""
        from . import viewport

        if not getattr(self, "_view_cpu", False) and viewport.engine_view_draw(self, context, depsgraph):
            return
        self._view_cpu = True
        self._cpu_view_draw(context, depsgraph)

    def _cpu_view_update(self, context, depsgraph):
        """Read the splat objects again (once per change, not per redraw)."""
        try:
            self._view_splats = gather_splats(depsgraph)
            self._view_error = ""
        except Exception as e:  # noqa: BLE001
            self._view_splats, self._view_error = None, str(e)
        self._view_key = None

    def _cpu_view_draw(self, context, depsgraph):
        import gpu
        from gpu_extras.presets import draw_texture_2d

        region, rv3d = context.region, context.region_data
        if not hasattr(self, "_view_splats"):
            self._cpu_view_update(context, depsgraph)
        scale = min(1.0, self._VIEW_MAX_SIDE / max(region.width, region.height, 1))
        w, h = max(1, int(region.width * scale)), max(1, int(region.height * scale))
        key = (w, h, tuple(map(tuple, rv3d.view_matrix)), tuple(map(tuple, rv3d.window_matrix)))
        if key != getattr(self, "_view_key", None):
            self._view_key = key
            self._view_texture = None
            if self._view_splats is not None and len(self._view_splats):
                try:
                    from anchorstage import render

                    space = context.space_data
                    camera = boundary.camera_from_view(rv3d.view_matrix, rv3d.window_matrix, w, h,
                                                       space.clip_start, space.clip_end)
                    device = (getattr(_prefs(), "device", "AUTO") or "AUTO").lower()
                    out = render(self._view_splats, camera, passes=("color", "alpha"), device=device)
                    rgba = np.concatenate([out["color"].cpu().numpy(), out["alpha"].cpu().numpy()[..., None]], -1)
                    buf = gpu.types.Buffer("FLOAT", w * h * 4, boundary.image_to_render_rect(rgba).ravel())
                    self._view_texture = gpu.types.GPUTexture((w, h), format="RGBA16F", data=buf)
                except Exception as e:  # noqa: BLE001 - shown in the header, never raised
                    self._view_error = str(e)
            if self._view_error:
                self.update_stats("AnchorStage", self._view_error)
        if self._view_texture is None:
            return
        gpu.state.blend_set("ALPHA_PREMULT")
        self.bind_display_space_shader(depsgraph.scene)
        draw_texture_2d(self._view_texture, (0, 0), region.width, region.height)
        self.unbind_display_space_shader()
        gpu.state.blend_set("NONE")


def compatible_panels():
    """Blender's own panels that make sense with this engine (output, dimensions, film, passes)."""
    wanted = {"RENDER_PT_format", "RENDER_PT_frame_range", "RENDER_PT_output", "RENDER_PT_encoding",
              "RENDER_PT_post_processing", "RENDER_PT_stamp", "RENDER_PT_color_management",
              "VIEWLAYER_PT_layer_passes", "VIEWLAYER_PT_layer", "DATA_PT_lens", "DATA_PT_camera",
              "DATA_PT_camera_dof", "DATA_PT_context_camera", "RENDER_PT_format_presets",
              "RENDER_PT_output_color_management", "RENDER_PT_time_stretching", "RENDER_PT_frame_remapping"}
    out = []
    for name in dir(bpy.types):
        panel = getattr(bpy.types, name, None)
        engines = getattr(panel, "COMPAT_ENGINES", None)
        if isinstance(engines, set) and name in wanted:
            out.append(panel)
    return out


def register():
    bpy.utils.register_class(AnchorStageRenderEngine)
    for panel in compatible_panels():
        panel.COMPAT_ENGINES.add(ENGINE_ID)


def unregister():
    for panel in compatible_panels():
        panel.COMPAT_ENGINES.discard(ENGINE_ID)
    bpy.utils.unregister_class(AnchorStageRenderEngine)
