# SPDX-License-Identifier: GPL-3.0-or-later
"""Generate node: a finished frame from a refreshed witness (the conditioning stack: image, depth,
normals, void, locks, camera, prompt, seed) through diffusers ControlNet inpainting, on this computer or
on a remote GPU worker (the add-on's preferences). Locked pixels and everything outside the void stay
bit-identical. The result lands in the image "AnchorStage Generate" and, with To Compositor, as the
compositor's output. The Generate Frame operator (``anchorstage.generate``) runs it off the UI thread
with progress per step (Esc cancels); Execute runs it in line like any node."""

import bpy

from .base import AnchorStageNode

PREVIEW_IMAGE = "AnchorStage Generate"


class AnchorStageGenerateNode(AnchorStageNode, bpy.types.Node):
    """Generate the frame's void with a diffusion model, locked regions kept bit-exact"""

    bl_idname = "AnchorStageGenerateNode"
    bl_label = "Generate"
    bl_icon = "SHADERFX"
    bl_width_default = 240

    prompt: bpy.props.StringProperty(name="Prompt", default="", description="Style prompt")
    negative_prompt: bpy.props.StringProperty(name="Negative", default="blurry, distorted, text, watermark, people",
                                              description="What to avoid")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    strength: bpy.props.FloatProperty(name="Strength", default=1.0, min=0.01, max=1.0,
                                      description="How far the void is re-noised (1: generated from scratch)")
    steps: bpy.props.IntProperty(name="Steps", default=30, min=1, max=1000)
    guidance: bpy.props.FloatProperty(name="Guidance", default=6.0, min=0.0, max=30.0)
    max_side: bpy.props.IntProperty(name="Max Side", default=0, min=0, max=8192,
                                    description="Processing size, long side in pixels (0: the model family's)")
    use_reference: bpy.props.BoolProperty(name="Appearance from Photo", default=True,
                                          description="Use the IP-Adapter of the preferences with the stage's photo "
                                                      "(when one is set there)")
    to_compositor: bpy.props.BoolProperty(name="To Compositor", default=False,
                                          description="Show the generated frame as the compositor's output (Combined)")
    preview: bpy.props.StringProperty(name="Image", default=PREVIEW_IMAGE,
                                      description="Image that receives the generated frame (empty: none)")

    required_inputs = ("refresh",)

    def init(self, context):
        self.inputs.new("AnchorStageSocketRefresh", "Refreshed Witness", identifier="refresh")
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.outputs.new("AnchorStageSocketGeneration", "Generated Frame", identifier="generation")

    def draw_props(self, context, layout):
        col = layout.column(align=True)
        col.prop(self, "prompt")
        col.prop(self, "negative_prompt")
        row = layout.row(align=True)
        row.prop(self, "seed")
        row.prop(self, "steps")
        row = layout.row(align=True)
        row.prop(self, "strength")
        row.prop(self, "guidance")
        layout.prop(self, "max_side")
        layout.prop(self, "use_reference")
        layout.prop(self, "to_compositor")
        layout.prop(self, "preview", text="", icon="IMAGE_DATA")
        op = layout.operator("anchorstage.generate", icon="SHADERFX")
        op.node = self.name
        op.tree = self.id_data.name

    def job_params(self, context, services):
        return {"prompt": self.prompt, "negative_prompt": self.negative_prompt, "seed": self.seed,
                "strength": self.strength, "steps": self.steps, "guidance": self.guidance, "max_side": self.max_side,
                "use_reference": self.use_reference, "to_compositor": self.to_compositor, "preview": self.preview,
                "config": services.generation_config(context)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage.diffusion import MemorySettings, model_set
        from anchorstage.generation import GenerationSettings
        from anchorstage.stages import condition, generate

        cfg = params["config"]
        cond = condition(inputs["refresh"], inputs.get("scene"), prompt=params["prompt"],
                         negative_prompt=params["negative_prompt"], seed=params["seed"], strength=params["strength"],
                         reference=params["use_reference"])
        knobs = {"steps": params["steps"], "guidance_scale": params["guidance"], "max_side": params["max_side"]}
        if cfg["compute"] == "REMOTE":
            gen = ctx.services.generate_remote(cfg["remote"], cond, knobs, progress=ctx.report, cancelled=ctx.cancel)
            where = f"on {cfg['remote']['url']}"
        else:
            models = dict(cfg["models"])
            if not params["use_reference"]:
                models["ip_adapter"] = "none"
            settings = GenerationSettings(models=model_set(**models), memory=MemorySettings(**cfg["memory"]), **knobs)
            gen = generate(cond, settings, device=cfg["device"], progress=ctx.report, cancel=ctx.cancel)
            where = "on this computer"
        if ctx.cancel is None:  # in line on the main thread: show it now (a background job shows it when done)
            ctx.services.show_generation(gen, params["preview"], params["to_compositor"])
        ctx.note(f"generated {int(gen.generated.sum()):,} px {where}: {gen.steps_run} steps, {gen.step_s:.3g} s/step; "
                 f"{int(cond.locked.sum()):,} locked px kept")
        return {"generation": gen}


register, unregister = bpy.utils.register_classes_factory((AnchorStageGenerateNode,))
