# SPDX-License-Identifier: GPL-3.0-or-later
"""Turntable node: N cameras on a circle about the product's centre (radius in metres, elevation in
degrees), each looking at it; with an output folder, every pass rendered per angle as a compositing
package (as ``anchorstage turntable`` does). Its Camera Path feeds the Video node."""

import os

import bpy

from .base import AnchorStageNode, file_stamp

# folder -> (input hash, stamp of its cameras.json): unchanged angles are not rendered again, deleted ones are.
_WRITTEN: dict = {}


class AnchorStageTurntableNode(AnchorStageNode, bpy.types.Node):
    """Cameras around the product's centre, and optionally a compositing package per angle"""

    bl_idname = "AnchorStageTurntableNode"
    bl_label = "Turntable"
    bl_icon = "CON_ROTLIKE"

    views: bpy.props.IntProperty(name="Views", default=8, min=1, max=100000, description="Angles (8: 45° apart)")
    radius: bpy.props.FloatProperty(name="Radius", default=0.0, min=0.0, unit="LENGTH",
                                    description="Distance from the centre in metres (0: the stage camera's)")
    use_elevation: bpy.props.BoolProperty(name="Set Elevation", default=False,
                                          description="Off: the stage camera's elevation")
    elevation: bpy.props.FloatProperty(name="Elevation", default=15.0, min=-89.0, max=89.0,
                                       description="Degrees above the centre's horizontal plane")
    use_centre: bpy.props.BoolProperty(name="Set Centre", default=False,
                                       description="Off: the middle of the foreground splats")
    centre: bpy.props.FloatVectorProperty(name="Centre", size=3, subtype="TRANSLATION", unit="LENGTH",
                                          description="World metres")
    sweep: bpy.props.FloatProperty(name="Sweep", default=360.0, min=-360.0, max=360.0,
                                   description="Degrees covered (360: a full turn)")
    output_dir: bpy.props.StringProperty(name="Output Folder", subtype="DIR_PATH", default="",
                                         description="Render every pass per angle here (empty: cameras only)")

    required_inputs = ("scene",)
    volatile = True  # checks its own output on disk (see _WRITTEN)

    def init(self, context):
        self.inputs.new("AnchorStageSocketScene", "Splat Scene", identifier="scene")
        self.outputs.new("AnchorStageSocketCameras", "Camera Path", identifier="cameras")

    def draw_props(self, context, layout):
        layout.prop(self, "views")
        layout.prop(self, "radius")
        row = layout.row(align=True)
        row.prop(self, "use_elevation", text="")
        row.prop(self, "elevation")
        layout.prop(self, "use_centre")
        if self.use_centre:
            layout.prop(self, "centre", text="")
        layout.prop(self, "sweep")
        layout.prop(self, "output_dir", text="")

    def job_params(self, context, services):
        r = context.scene.render
        return {"views": self.views, "radius_m": self.radius or None,
                "elevation_deg": self.elevation if self.use_elevation else None,
                "centre": list(self.centre) if self.use_centre else None, "sweep_deg": self.sweep,
                "resolution": [r.resolution_x * r.resolution_percentage // 100,
                               r.resolution_y * r.resolution_percentage // 100],
                "output_dir": os.path.normpath(bpy.path.abspath(self.output_dir)) if self.output_dir else "",
                "device": services.device(context)}

    @staticmethod
    def compute(params, inputs, ctx):
        import math

        from anchorstage.stages import product_centre, turntable_cameras

        centre = params["centre"] if params["centre"] is not None else product_centre(inputs["scene"])
        cams = turntable_cameras(inputs["scene"], params["views"], radius_m=params["radius_m"],
                                 elevation_deg=params["elevation_deg"], centre=centre,
                                 sweep_deg=params["sweep_deg"], resolution=tuple(params["resolution"]))
        note = (f"{len(cams)} views about ({', '.join(f'{v:.2f}' for v in centre)}) m, "
                f"radius {math.dist(cams[0].position, centre):.2f} m")
        out = params["output_dir"]
        listing = os.path.join(out, "cameras.json") if out else ""
        if out and _WRITTEN.get(out) == (ctx.input_hash, file_stamp(listing)):
            note += f", up to date in {out}"
        elif out:
            from anchorstage.stages import export_turntable

            export_turntable(inputs["scene"], cams, out, centre=centre, centre_given=params["centre"] is not None,
                             sweep_deg=params["sweep_deg"], device=params["device"], progress=ctx.report)
            _WRITTEN[out] = (ctx.input_hash, file_stamp(listing))
            note += f", rendered into {out}"
        ctx.note(note)
        return {"cameras": cams}


register, unregister = bpy.utils.register_classes_factory((AnchorStageTurntableNode,))
