# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat Render node: render the splat scene from a camera with the core renderer (all passes) and
show the beauty pass in the image "AnchorStage Preview"."""

import bpy

from .base import AnchorStageNode, pref

PREVIEW_IMAGE = "AnchorStage Preview"


class AnchorStageRenderNode(AnchorStageNode, bpy.types.Node):
    """Render colour, alpha, depth, normal, confidence, region and void passes"""

    bl_idname = "AnchorStageRenderNode"
    bl_label = "Splat Render"
    bl_icon = "RENDER_STILL"

    preview: bpy.props.StringProperty(name="Preview Image", default=PREVIEW_IMAGE,
                                      description="Image that receives the colour pass (empty: none)")

    required_inputs = ("scene", "camera")

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketPasses", "Passes", identifier="passes")

    def draw_props(self, context, layout):
        layout.prop(self, "preview", text="", icon="IMAGE_DATA")

    def job_params(self, context):
        return {"device": pref("device", "AUTO", context).lower(), "preview": self.preview}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import render

        from ..boundary import image_to_pixels

        camera = inputs["camera"]
        ctx.report(0.0, "rendering")
        passes = render(inputs["scene"].splats, camera, backend="auto", device=params["device"])
        passes = {k: v.detach().cpu().numpy() for k, v in passes.items()}
        if params["preview"]:
            import numpy as np

            rgba = np.concatenate([passes["color"], passes["alpha"][..., None]], axis=-1)
            img = bpy.data.images.get(params["preview"])
            if img is None or tuple(img.size) != (camera.width, camera.height) or img.source != "GENERATED":
                if img is not None:
                    bpy.data.images.remove(img)
                img = bpy.data.images.new(params["preview"], camera.width, camera.height, alpha=True, float_buffer=True)
            img.pixels.foreach_set(image_to_pixels(rgba))
            img.update()
        ctx.note(f"{camera.width}x{camera.height}, {len(inputs['scene'].splats):,} splats")
        return {"passes": {"passes": passes, "camera": camera}}


register, unregister = bpy.utils.register_classes_factory((AnchorStageRenderNode,))
