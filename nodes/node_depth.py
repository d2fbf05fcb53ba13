# SPDX-License-Identifier: GPL-3.0-or-later
"""Metric Depth node: estimate depth from the photo, or load the user's depth map."""

import bpy

from .base import AnchorStageNode, file_stamp, pref


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

    def init(self, context):
        self.inputs.new("AnchorStageSocketImage", "Photo", identifier="image")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketDepth", "Depth", identifier="depth")

    required_inputs = ("image",)

    def draw_props(self, context, layout):
        layout.prop(self, "source", expand=True)
        if self.source == "FILE":
            layout.prop(self, "filepath", text="")
        else:
            layout.prop(self, "model", text="", placeholder=pref("depth_model", "", context) or "model")

    def job_params(self, context):
        if self.source == "FILE":
            return {"source": "FILE", "file": file_stamp(self.filepath)}
        return {"source": "ESTIMATE", "model": self.model or pref("depth_model", "", context),
                "device": pref("device", "auto", context).lower()}

    @staticmethod
    def compute(params, inputs, ctx):
        import numpy as np

        from anchorstage import InputError

        image = inputs["image"]
        if params["source"] == "FILE":
            from anchorstage import load_depth

            if not params["file"][0]:
                raise InputError("Metric Depth node: no depth file is set")
            depth, notes = load_depth(params["file"][0], expected_hw=(image.height, image.width))
            for n in notes:
                ctx.note(n)
            confidence = np.isfinite(depth).astype(np.float32)
            return {"depth": {"depth_m": depth, "confidence": confidence, "source": params["file"][0]}}
        from anchorstage import estimate_depth

        kwargs = {"device": params["device"], "progress": ctx.report}
        if params["model"]:
            kwargs["model"] = params["model"]
        est = estimate_depth(image, inputs.get("camera"), **kwargs)
        for n in est.notes:
            ctx.note(n)
        return {"depth": {"depth_m": est.depth_m, "confidence": est.confidence, "source": est.model}}


register, unregister = bpy.utils.register_classes_factory((AnchorStageDepthNode,))
