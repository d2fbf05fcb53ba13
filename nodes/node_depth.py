# SPDX-License-Identifier: GPL-3.0-or-later
"""Metric Depth node: estimate depth from the photo, or load the user's depth map."""

import bpy

from .base import AnchorStageNode, file_stamp


class AnchorStageDepthNode(AnchorStageNode, bpy.types.Node):
    """Metric depth in metres (planar z) with per-pixel confidence"""

    bl_idname = "AnchorStageDepthNode"
    bl_label = "Metric Depth"
    bl_icon = "MOD_DISPLACE"

    source: bpy.props.EnumProperty(
        name="Source",
        items=(("ESTIMATE", "Estimate", "Run the metric depth model on the photo"),
               ("FILE", "File", "Load a depth map: .npy or .exr in metres, 16-bit .png in millimetres")),
        default="ESTIMATE")
    filepath: bpy.props.StringProperty(name="Depth File", subtype="FILE_PATH")
    model: bpy.props.StringProperty(name="Model", description="Hub id, alias or local folder; empty: the preference")

    required_inputs = ("image",)

    def init(self, context):
        self.inputs.new("AnchorStageSocketImage", "Photo", identifier="image")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketDepth", "Depth", identifier="depth")

    def draw_props(self, context, layout):
        from .base import services

        layout.prop(self, "source", expand=True)
        if self.source == "FILE":
            layout.prop(self, "filepath", text="")
        else:
            layout.prop(self, "model", text="", placeholder=services().pref("depth_model", "", context) or "model")

    def job_params(self, context, services):
        if self.source == "FILE":
            return {"source": "FILE", "file": file_stamp(self.filepath)}
        return {"source": "ESTIMATE", "model": self.model or services.pref("depth_model", "", context),
                "device": services.device(context)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.stages import metric_depth, with_camera

        photo = inputs["image"]
        if "camera" in inputs:  # a linked camera overrides the photo's own
            photo = with_camera(photo, inputs["camera"], "camera input")
        if params["source"] == "FILE":
            if not params["file"][0]:
                raise InputError("Metric Depth node: no depth file is set")
            depth = metric_depth(photo, depth_file=params["file"][0])
        else:
            depth = metric_depth(photo, model=params["model"] or None, device=params["device"], progress=ctx.report)
        for n in depth.notes:
            ctx.note(n)
        return {"depth": depth}


register, unregister = bpy.utils.register_classes_factory((AnchorStageDepthNode,))
