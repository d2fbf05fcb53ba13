# SPDX-License-Identifier: GPL-3.0-or-later
"""Export node: write the splat scene as a scene folder or a standard 3DGS PLY, or rendered
passes as a Blender-named multilayer EXR."""

import os

import bpy

from .base import AnchorStageNode

# path -> (input hash, stamp of what was written): an unchanged export is not written again,
# a deleted or replaced output is.
_WRITTEN: dict = {}


def _stamp(path: str):
    p = os.path.join(path, "scene.json") if os.path.isdir(path) else path
    try:
        st = os.stat(p)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)

FORMATS = (
    ("SCENE", "Scene Folder", "scene.json, splats.ply (+ exact extras), image, depth, region masks"),
    ("PLY", "3DGS PLY", "Standard 3D Gaussian Splatting PLY that other splat viewers open"),
    ("EXR", "Multilayer EXR", "The rendered passes (connect Passes) in Blender's layer naming"),
    ("FRAME", "Compositing Frame", "Render the connected Camera at the current frame and write the compositing "
                                   "package: EXR(s), void map, region masks, proxy render, metadata.json"),
)
PRESETS = (("blender", "Blender", "One multilayer EXR, Blender's layer names"),
           ("nuke", "Nuke", "One multilayer EXR, layer names Nuke shows"),
           ("after-effects", "After Effects", "One EXR per pass"))


class AnchorStageExportNode(AnchorStageNode, bpy.types.Node):
    """Write the stage or its passes to disk (atomically)"""

    bl_idname = "AnchorStageExportNode"
    bl_label = "Export"
    bl_icon = "EXPORT"

    format: bpy.props.EnumProperty(name="Format", items=FORMATS, default="SCENE")
    filepath: bpy.props.StringProperty(name="Path", subtype="FILE_PATH", default="//anchorstage_scene",
                                       description="Folder (scene) or file (.ply / .exr); '//' is the .blend's folder")
    overwrite: bpy.props.BoolProperty(name="Overwrite", default=True,
                                      description="Replace an existing scene folder or file")
    preset: bpy.props.EnumProperty(name="Preset", items=PRESETS, default="blender")

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketPasses", "Passes", identifier="passes")
        self.inputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")

    def draw_props(self, context, layout):
        layout.prop(self, "format", text="")
        layout.prop(self, "filepath", text="")
        if self.format == "FRAME":
            layout.prop(self, "preset", text="")
        else:
            layout.prop(self, "overwrite")

    volatile = True  # checks its own output on disk (see _WRITTEN)

    def job_params(self, context, services):
        path = os.path.normpath(bpy.path.abspath(self.filepath)) if self.filepath else ""
        params = {"format": self.format, "target": path, "overwrite": self.overwrite}
        if self.format == "FRAME":
            params.update(preset=self.preset, frame=context.scene.frame_current, device=services.device(context))
        return params

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError

        path = params["target"]
        fmt = params["format"]
        if not path:
            raise InputError("Export node: no output path is set")
        if fmt == "FRAME":
            return AnchorStageExportNode._export_frame(params, inputs, ctx)
        if _WRITTEN.get(path) == (ctx.input_hash, _stamp(path)):
            ctx.note(f"up to date: {path}")
            return {"path": path}
        if fmt in ("SCENE", "PLY") and "scene" not in inputs:
            raise InputError(f"Export node: {fmt.lower()} export needs the Splat Scene input connected")
        if fmt == "SCENE":
            from anchorstage import save_scene

            out = save_scene(inputs["scene"], path, force=params["overwrite"])
        elif fmt == "PLY":
            from anchorstage import OutputError, write_ply

            if os.path.exists(path) and not params["overwrite"]:
                raise OutputError(f"PLY file {path!r} exists (enable Overwrite to replace it)")
            write_ply(path, inputs["scene"].splats)
            out = path
        else:
            if "passes" not in inputs:
                raise InputError("Export node: EXR export needs the Passes input connected")
            from anchorstage import OutputError, write_exr

            if os.path.exists(path) and not params["overwrite"]:
                raise OutputError(f"EXR file {path!r} exists (enable Overwrite to replace it)")
            frame = inputs["passes"]
            write_exr(path, frame.passes, camera=frame.camera)
            out = path
        _WRITTEN[path] = (ctx.input_hash, _stamp(path))
        ctx.note(f"wrote {out}")
        return {"path": str(out)}


    @staticmethod
    def _export_frame(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.export import export_frames

        if "scene" not in inputs or "camera" not in inputs:
            raise InputError("Export node: a compositing frame needs the Splat Scene and Camera inputs connected")
        key = (params["target"], params["frame"], params["preset"])
        marker = os.path.join(params["target"], f"frame_{params['frame']:04d}", "metadata.json")
        if _WRITTEN.get(key) == (ctx.input_hash, _stamp(marker)):
            ctx.note(f"up to date: frame {params['frame']}")
            return {"path": params["target"]}
        records = export_frames(inputs["scene"], [(params["frame"], inputs["camera"])], params["target"],
                                preset=params["preset"], device=params["device"], progress=ctx.report)
        _WRITTEN[key] = (ctx.input_hash, _stamp(marker))
        ctx.note(f"frame {params['frame']} ({params['preset']}) in {params['target']}")
        return {"path": params["target"], "records": records}


register, unregister = bpy.utils.register_classes_factory((AnchorStageExportNode,))
