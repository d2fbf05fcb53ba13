# SPDX-License-Identifier: GPL-3.0-or-later
"""Video node: a camera path of the stage (the Turntable node's, or its own turntable) rendered frame by
frame (raw render, refreshed witness or generated frame), optionally smoothed over time with AnimateDiff,
and encoded as an H.264 MP4 (and a GIF) as ``anchorstage video`` does."""

import os

import bpy

from .base import AnchorStageNode, file_stamp

# path -> (input hash, stamp of the clip written): an unchanged clip is not encoded again, a deleted one is.
_WRITTEN: dict = {}

FRAMES_FROM = (("render", "Render", "The splats' beauty pass"),
               ("refresh", "Refresh", "The refreshed witness (classical fill, no weights)"),
               ("generate", "Generate", "Refresh, then ControlNet inpainting per frame (the add-on's models)"))


class AnchorStageVideoNode(AnchorStageNode, bpy.types.Node):
    """Render a camera path to an MP4 (and a GIF)"""

    bl_idname = "AnchorStageVideoNode"
    bl_label = "Video"
    bl_icon = "FILE_MOVIE"

    filepath: bpy.props.StringProperty(name="MP4", subtype="FILE_PATH", default="//anchorstage_turntable.mp4",
                                       description="The MP4 to write; '//' is the .blend's folder")
    gif: bpy.props.BoolProperty(name="GIF", default=False, description="Also write a GIF beside the MP4")
    fps: bpy.props.FloatProperty(name="FPS", default=24.0, min=0.1, max=240.0)
    frames: bpy.props.IntProperty(name="Frames", default=24, min=1, max=100000,
                                  description="Frames of the node's own turntable (when no Camera Path is connected)")
    frames_from: bpy.props.EnumProperty(name="Frames", items=FRAMES_FROM, default="render")
    prompt: bpy.props.StringProperty(name="Prompt", default="")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    steps: bpy.props.IntProperty(name="Steps", default=30, min=1, max=1000, description="Generation denoising steps")
    smooth: bpy.props.BoolProperty(name="AnimateDiff Smoothing", default=False,
                                   description="Denoise the frames together in windows with AnimateDiff")
    smooth_model: bpy.props.StringProperty(name="Base Model", default="",
                                           description="SD 1.5 hub id or folder (empty: environment, then default)")
    motion_adapter: bpy.props.StringProperty(name="Motion Adapter", default="",
                                             description="AnimateDiff motion adapter (empty: environment, then default)")
    smooth_strength: bpy.props.FloatProperty(name="Strength", default=0.3, min=0.01, max=1.0)
    smooth_steps: bpy.props.IntProperty(name="Smoothing Steps", default=20, min=1, max=1000)

    required_inputs = ("scene",)
    volatile = True  # checks its own output on disk (see _WRITTEN)

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketCameras", "Camera Path", identifier="cameras")

    def draw_props(self, context, layout):
        layout.prop(self, "filepath", text="")
        row = layout.row(align=True)
        row.prop(self, "fps")
        row.prop(self, "gif")
        if not self.inputs["cameras"].is_linked:
            layout.prop(self, "frames")
        layout.prop(self, "frames_from", text="")
        if self.frames_from == "generate":
            col = layout.column(align=True)
            for name in ("prompt", "seed", "steps"):
                col.prop(self, name)
        layout.prop(self, "smooth")
        if self.smooth:
            col = layout.column(align=True)
            for name in ("smooth_model", "motion_adapter", "smooth_strength", "smooth_steps"):
                col.prop(self, name)

    def job_params(self, context, services):
        path = os.path.normpath(bpy.path.abspath(self.filepath)) if self.filepath else ""
        r = context.scene.render
        params = {"path": path, "gif": self.gif, "fps": self.fps, "frames": self.frames,
                  "frames_from": self.frames_from, "prompt": self.prompt, "seed": self.seed, "steps": self.steps,
                  "resolution": [r.resolution_x * r.resolution_percentage // 100,
                                 r.resolution_y * r.resolution_percentage // 100],
                  "device": services.device(context), "smooth": None, "config": None}
        if self.frames_from == "generate":
            params["config"] = services.generation_config(context)
        if self.smooth:
            params["smooth"] = {"model": self.smooth_model, "motion_adapter": self.motion_adapter,
                                "strength": self.smooth_strength, "steps": self.smooth_steps}
        return params

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.stages import render_video, turntable_cameras

        if not params["path"]:
            raise InputError("Video node: no MP4 path is set")
        cams = inputs.get("cameras") or turntable_cameras(inputs["scene"], params["frames"],
                                                          resolution=tuple(params["resolution"]))
        generation = smoothing = None
        if params["config"] is not None:
            from anchorstage.diffusion import MemorySettings, model_set
            from anchorstage.generation import GenerationSettings

            cfg = params["config"]
            generation = GenerationSettings(models=model_set(**cfg["models"]), memory=MemorySettings(**cfg["memory"]),
                                            steps=params["steps"])
        if params["smooth"]:
            from anchorstage.temporal import SmoothingSettings

            s = params["smooth"]
            smoothing = SmoothingSettings.resolved(model=s["model"], motion_adapter=s["motion_adapter"],
                                                   strength=s["strength"], steps=s["steps"], seed=params["seed"])
        gif = os.path.splitext(params["path"])[0] + ".gif" if params["gif"] else None
        stamp = lambda: (file_stamp(params["path"]), file_stamp(gif) if gif else None)  # noqa: E731
        if _WRITTEN.get(params["path"]) == (ctx.input_hash, stamp()):
            ctx.note(f"up to date: {params['path']}")
            return {"path": params["path"]}
        res = render_video(inputs["scene"], cams, params["path"], fps=params["fps"], gif=gif,
                           frames_from=params["frames_from"], prompt=params["prompt"], seed=params["seed"],
                           generation=generation, smoothing=smoothing, device=params["device"], progress=ctx.report,
                           cancel=ctx.cancel)
        _WRITTEN[params["path"]] = (ctx.input_hash, stamp())
        ctx.note(f"{res.frames} frames {res.width}x{res.height} at {res.fps:g} fps: {res.path}"
                 + (" (+ GIF)" if res.gif else ""))
        return {"path": str(res.path)}


register, unregister = bpy.utils.register_classes_factory((AnchorStageVideoNode,))
