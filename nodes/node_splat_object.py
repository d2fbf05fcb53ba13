# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat Object node: put the scene's splats into Blender as the splat object (point attributes +
Geometry Nodes display); the ANCHORSTAGE render engine renders from it. The stage's witness (photo,
depth, regions with their locks, refresh steps) is stored on it, so refreshes work from the .blend
alone. The scene's witness camera takes the stage's camera (lens, sensor, pose)."""

import bpy

from .base import AnchorStageNode


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
        from .base import services

        layout.prop(self, "object_name", text="")
        counts = services().display_counts(self.object_name)
        if counts is not None and counts[0] < counts[1]:
            layout.label(text=f"Display: {counts[0]:,} of {counts[1]:,} splats", icon="INFO")

    def job_params(self, context, services):
        return {"object": self.object_name or "AnchorStage Splats", "scene": context.scene.name,
                "max_display": services.pref("display_max_splats", 200_000, context)}

    @staticmethod
    def compute(params, inputs, ctx):
        stage = inputs["scene"]
        name, shown, total = ctx.services.update_splat_object(stage.splats, name=params["object"],
                                                              scene_name=params["scene"], source=ctx.input_hash,
                                                              max_display=params["max_display"])
        ctx.services.update_witness(name, stage)
        ctx.note(f"{name}: {total:,} splats" + (f", {shown:,} displayed (decimated)" if shown < total else ""))
        if ctx.services.update_witness_camera(params["scene"], stage.camera):
            ctx.note(f"witness camera: {stage.camera.lens_mm:.4g} mm on {stage.camera.sensor_width_mm:.4g} mm")
        return {"object": name}


register, unregister = bpy.utils.register_classes_factory((AnchorStageSplatObjectNode,))
