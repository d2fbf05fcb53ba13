# SPDX-License-Identifier: GPL-3.0-or-later
"""Gaussian Regression node: photo + metric depth → metric splat scene (SHARP-style)."""

import bpy

from .base import AnchorStageNode


class AnchorStageRegressionNode(AnchorStageNode, bpy.types.Node):
    """Regress metric 3D Gaussian splats from the photo and its depth (no training)"""

    bl_idname = "AnchorStageRegressionNode"
    bl_label = "Gaussian Regression"
    bl_icon = "OUTLINER_OB_POINTCLOUD"

    max_splats: bpy.props.IntProperty(name="Max Splats", default=0, min=0,
                                      description="Splat budget; 0: about 1M for a 1080p photo, proportional to pixels")
    second_layer: bpy.props.BoolProperty(name="Background Layer", default=True,
                                         description="Add splats behind depth edges so small moves reveal background")
    fit_colors: bpy.props.BoolProperty(name="Colour Fit", default=True,
                                       description="Fit the splat colours so the photo's own view reproduces the photo")

    required_inputs = ("image", "depth")

    def init(self, context):
        self.inputs.new("AnchorStageSocketImage", "Photo", identifier="image")
        self.inputs.new("AnchorStageSocketDepth", "Depth", identifier="depth")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")

    def draw_props(self, context, layout):
        layout.prop(self, "max_splats")
        layout.prop(self, "second_layer")
        layout.prop(self, "fit_colors")

    def job_params(self, context, services):
        return {"max_splats": self.max_splats or None, "second_layer": self.second_layer,
                "fit_colors": self.fit_colors, "device": services.device(context)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage.stages import build_stage, with_camera

        photo = inputs["image"]
        if "camera" in inputs:  # a linked camera overrides the photo's own
            photo = with_camera(photo, inputs["camera"], "camera input")
        scene = build_stage(photo, inputs["depth"], max_splats=params["max_splats"], second_layer=params["second_layer"],
                            fit_colors=params["fit_colors"], regions=False, device=params["device"], progress=ctx.report)
        ctx.note(f"{len(scene.splats):,} splats; camera: {scene.meta['intrinsics_source']}")
        return {"scene": scene}


register, unregister = bpy.utils.register_classes_factory((AnchorStageRegressionNode,))
