# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat Object node: put the scene's splats into Blender as the splat object (point attributes +
Geometry Nodes display); the ANCHORSTAGE render engine renders from it."""

import bpy

from .base import AnchorStageNode, pref


class AnchorStageSplatObjectNode(AnchorStageNode, bpy.types.Node):
    """Create or update the splat object in the scene"""

    bl_idname = "AnchorStageSplatObjectNode"
    bl_label = "Splat Object"
    bl_icon = "OUTLINER_OB_POINTCLOUD"

    object_name: bpy.props.StringProperty(name="Object", default="AnchorStage Splats")

    required_inputs = ("scene",)
    volatile = True  # the object lives in Blender data the user may delete or edit

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")

    def draw_props(self, context, layout):
        layout.prop(self, "object_name", text="")
        obj = bpy.data.objects.get(self.object_name)
        if obj is not None:
            from ..splat_object import display_counts

            shown, total = display_counts(obj)
            if shown < total:
                layout.label(text=f"Display: {shown:,} of {total:,} splats", icon="INFO")

    def job_params(self, context):
        return {"object": self.object_name or "AnchorStage Splats", "scene": context.scene.name,
                "max_display": pref("display_max_splats", 200_000, context)}

    @staticmethod
    def compute(params, inputs, ctx):
        from ..splat_object import display_counts, update_splat_object

        scene = bpy.data.scenes.get(params["scene"])
        obj = update_splat_object(inputs["scene"].splats, name=params["object"], scene=scene,
                                  source=ctx.input_hash, max_display=params["max_display"])
        shown, total = display_counts(obj)
        ctx.note(f"{obj.name}: {total:,} splats" + (f", {shown:,} displayed (decimated)" if shown < total else ""))
        return {"object": obj.name}


register, unregister = bpy.utils.register_classes_factory((AnchorStageSplatObjectNode,))
