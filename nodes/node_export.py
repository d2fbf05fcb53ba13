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
)


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

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.inputs.new("AnchorStageSocketPasses", "Passes", identifier="passes")

    def draw_props(self, context, layout):
        layout.prop(self, "format", text="")
        layout.prop(self, "filepath", text="")
        layout.prop(self, "overwrite")

    volatile = True  # checks its own output on disk (see _WRITTEN)

    def job_params(self, context):
        path = os.path.normpath(bpy.path.abspath(self.filepath)) if self.filepath else ""
        return {"format": self.format, "target": path, "overwrite": self.overwrite}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError

        path = params["target"]
        if not path:
            raise InputError("Export node: no output path is set")
        if _WRITTEN.get(path) == (ctx.input_hash, _stamp(path)):
            ctx.note(f"up to date: {path}")
            return {"path": path}
        fmt = params["format"]
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
            p = inputs["passes"]
            write_exr(path, p["passes"], camera=p["camera"])
            out = path
        _WRITTEN[path] = (ctx.input_hash, _stamp(path))
        ctx.note(f"wrote {out}")
        return {"path": str(out)}


register, unregister = bpy.utils.register_classes_factory((AnchorStageExportNode,))
