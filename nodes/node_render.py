# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat Render node: render the splat scene from a camera with the core renderer (every pass of the
registry) and show the beauty pass in the image "AnchorStage Preview"."""

import bpy

from .base import AnchorStageNode

PREVIEW_IMAGE = "AnchorStage Preview"


class AnchorStageRenderNode(AnchorStageNode, bpy.types.Node):
    """Render colour, alpha, depth, normal, confidence, region and void passes"""

    bl_idname = "AnchorStageRenderNode"
    bl_label = "Splat Render"
    bl_icon = "RENDER_STILL"

    preview: bpy.props.StringProperty(name="Preview Image", default=PREVIEW_IMAGE,
                                      description="Image that receives the colour pass (empty: none)")
    level_of_detail: bpy.props.BoolProperty(
        name="Level of Detail", default=True,
        description="Render big scenes (2,000,000 splats and more) through their level-of-detail hierarchy: "
                    "sub-pixel splats drawn through merged parents, off-screen ones culled. Off: every splat, exactly")

    required_inputs = ("scene", "camera")

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketPasses", "Passes", identifier="passes")

    def draw_props(self, context, layout):
        layout.prop(self, "preview", text="", icon="IMAGE_DATA")
        layout.prop(self, "level_of_detail")

    def job_params(self, context, services):
        return {"device": services.device(context), "preview": self.preview, "lod": self.level_of_detail}

    @staticmethod
    def compute(params, inputs, ctx):
        import numpy as np

        from anchorstage.stages import render_frame

        camera = inputs["camera"]
        ctx.report(0.0, "rendering")
        frame = render_frame(inputs["scene"], camera, device=params["device"], lod=params.get("lod", True))
        if params["preview"]:
            ctx.services.show_preview(params["preview"], np.concatenate([frame.passes["color"],
                                                                         frame.passes["alpha"][..., None]], axis=-1))
        ctx.note(f"{camera.width}x{camera.height}, {len(inputs['scene'].splats):,} splats")
        return {"passes": frame}


register, unregister = bpy.utils.register_classes_factory((AnchorStageRenderNode,))
