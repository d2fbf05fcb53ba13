# SPDX-License-Identifier: GPL-3.0-or-later
"""Fuse node: a capture folder of posed product views → one fused metric splat scene."""

import bpy

from .base import AnchorStageNode, folder_stamp


class AnchorStageFuseNode(AnchorStageNode, bpy.types.Node):
    """Fuse a capture folder (views with alpha or masks, camera JSONs, optional depth maps) into one splat scene"""

    bl_idname = "AnchorStageFuseNode"
    bl_label = "Fuse Capture"
    bl_icon = "MOD_ARRAY"

    capture_dir: bpy.props.StringProperty(
        name="Capture", subtype="DIR_PATH",
        description="Folder of views NAME.png (RGBA or with NAME_mask.png), each with NAME_camera.json and optionally "
                    "NAME_depth.npy (see docs/multiview.md)")
    max_splats_per_view: bpy.props.IntProperty(name="Max Splats per View", default=0, min=0,
                                               description="Splat budget per view; 0: by pixel count")
    fit_colors: bpy.props.BoolProperty(name="Colour Fit", default=True,
                                       description="Fit the splat colours so every view re-renders faithfully")

    def init(self, context):
        self.outputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")

    def draw_props(self, context, layout):
        layout.prop(self, "capture_dir", text="")
        layout.prop(self, "max_splats_per_view")
        layout.prop(self, "fit_colors")

    def job_params(self, context, services):
        return {"capture": folder_stamp(self.capture_dir), "max_splats_per_view": self.max_splats_per_view or None,
                "fit_colors": self.fit_colors, "device": services.device(context)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.stages import fuse_capture

        if not params["capture"][0]:
            raise InputError("Fuse node: no capture folder is set")
        scene = fuse_capture(params["capture"][0], max_splats_per_view=params["max_splats_per_view"],
                             fit_colors=params["fit_colors"], device=params["device"], progress=ctx.report)
        views = scene.meta["fusion"]["views"]
        ctx.note(f"{len(scene.splats):,} splats from {len(views)} views")
        return {"scene": scene}


register, unregister = bpy.utils.register_classes_factory((AnchorStageFuseNode,))
