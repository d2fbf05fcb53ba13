# SPDX-License-Identifier: GPL-3.0-or-later
"""Regions node: split the scene into sky / ground / facade / object regions and label its splats."""

import bpy

from .base import AnchorStageNode


class AnchorStageRegionsNode(AnchorStageNode, bpy.types.Node):
    """Segment the stage into regions an artist can lock or replace"""

    bl_idname = "AnchorStageRegionsNode"
    bl_label = "Regions"
    bl_icon = "MOD_MASK"

    max_regions: bpy.props.IntProperty(name="Max Regions", default=10, min=3, max=255)

    required_inputs = ("scene",)

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.outputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")

    def draw_props(self, context, layout):
        layout.prop(self, "max_regions")

    def job_params(self, context, services):
        return {"max_regions": self.max_regions}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage.stages import segment_stage

        scene = segment_stage(inputs["scene"], max_regions=params["max_regions"], progress=ctx.report)
        ctx.note(", ".join(r.id for r in scene.regions) or "no regions")
        return {"scene": scene}


register, unregister = bpy.utils.register_classes_factory((AnchorStageRegionsNode,))
