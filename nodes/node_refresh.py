# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness Refresh node: the photo warped to a camera through the metric proxy, its void filled
(classical or diffusion inpainting), locked regions kept bit-identical; shows the refreshed witness in
the image "AnchorStage Refresh". With Update Scene the filled pixels become splats of the output scene."""

import bpy

from .base import AnchorStageNode

PREVIEW_IMAGE = "AnchorStage Refresh"


def _ids(text: str) -> list:
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


class AnchorStageRefreshNode(AnchorStageNode, bpy.types.Node):
    """Warp the witness to the camera, fill what it never saw, keep locked regions"""

    bl_idname = "AnchorStageRefreshNode"
    bl_label = "Witness Refresh"
    bl_icon = "FILE_REFRESH"

    inpaint: bpy.props.EnumProperty(
        name="Inpaint", default="classical",
        items=(("classical", "Classical", "Fill from the background side of each disocclusion (no weights, fast)"),
               ("diffusion", "Diffusion", "ControlNet inpainting conditioned on the proxy's depth and normals")))
    locks: bpy.props.StringProperty(name="Lock", default="",
                                    description="Region ids or labels to lock, comma-separated (besides the splat "
                                                "object's locked regions)")
    object_name: bpy.props.StringProperty(name="Splat Object", default="AnchorStage Splats",
                                          description="The splat object whose region locks apply")
    update_scene: bpy.props.BoolProperty(name="Update Scene", default=False,
                                         description="Add the filled pixels as splats to the output scene, so the "
                                                     "next move sees them")
    diffusion_model: bpy.props.StringProperty(name="Model", default="",
                                              description="Inpainting model hub id or folder (empty: the default)")
    controlnet_depth: bpy.props.StringProperty(name="Depth ControlNet", default="")
    controlnet_normal: bpy.props.StringProperty(name="Normal ControlNet", default="")
    prompt: bpy.props.StringProperty(name="Prompt", default="")
    steps: bpy.props.IntProperty(name="Steps", default=20, min=1, max=200)
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    preview: bpy.props.StringProperty(name="Preview Image", default=PREVIEW_IMAGE,
                                      description="Image that receives the refreshed witness (empty: none)")

    required_inputs = ("scene", "camera")

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")
        self.outputs.new("AnchorStageSocketRefresh", "Refreshed Witness", identifier="refresh")
        self.outputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")

    def draw_props(self, context, layout):
        layout.prop(self, "inpaint")
        layout.prop(self, "locks")
        layout.prop(self, "object_name", icon="OUTLINER_OB_POINTCLOUD")
        layout.prop(self, "update_scene")
        if self.inpaint == "diffusion":
            col = layout.column(align=True)
            for name in ("diffusion_model", "controlnet_depth", "controlnet_normal", "prompt", "steps", "seed"):
                col.prop(self, name)
        layout.prop(self, "preview", text="", icon="IMAGE_DATA")

    def job_params(self, context, services):
        locks = sorted(set(_ids(self.locks)) | set(services.locked_regions(self.object_name)))
        params = {"inpaint": self.inpaint, "locks": locks, "update_scene": self.update_scene,
                  "device": services.device(context), "preview": self.preview}
        if self.inpaint == "diffusion":
            params["diffusion"] = {"model": self.diffusion_model, "depth": self.controlnet_depth,
                                   "normal": self.controlnet_normal, "prompt": self.prompt, "steps": self.steps,
                                   "seed": self.seed}
        return params

    @staticmethod
    def compute(params, inputs, ctx):
        import numpy as np

        from anchorstage.stages import refresh

        settings = None
        if params.get("diffusion"):
            from anchorstage import inpaint_diffusion as dif

            d = params["diffusion"]  # empty model fields: the environment, then the defaults
            settings = dif.DiffusionSettings.resolved(model=d["model"], controlnet_depth=d["depth"],
                                                      controlnet_normal=d["normal"], prompt=d["prompt"],
                                                      steps=d["steps"], seed=d["seed"])
        res = refresh(inputs["scene"], inputs["camera"], locks=params["locks"], inpaint=params["inpaint"],
                      diffusion=settings, update_scene=params["update_scene"], device=params["device"],
                      progress=ctx.report)
        if params["preview"]:
            h, w = res.void.shape
            ctx.services.show_preview(params["preview"], np.concatenate([res.witness, np.ones((h, w, 1), np.float32)], -1))
        c = res.confidence
        ctx.note(f"confidence {c.value:.2f} ({c.level}); void {c.void_coverage:.1%}, {int(res.filled.sum()):,} px filled"
                 + (f", {int(res.locks.sum()):,} px locked" if res.locks.any() else "")
                 + (f", {res.added_splats:,} splats added" if res.added_splats else ""))
        return {"refresh": res, "scene": res.scene}


register, unregister = bpy.utils.register_classes_factory((AnchorStageRefreshNode,))
