# SPDX-License-Identifier: GPL-3.0-or-later
"""Image node: a photo and its camera (a camera JSON file, else EXIF, else a default lens)."""

import bpy

from .base import AnchorStageNode, file_stamp


class AnchorStageImageNode(AnchorStageNode, bpy.types.Node):
    """Load a photo; its camera comes from a camera JSON file when given, else from EXIF"""

    bl_idname = "AnchorStageImageNode"
    bl_label = "Image"
    bl_icon = "IMAGE_DATA"

    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH",
                                       description="PNG, JPEG, TIFF, WebP, EXR (HEIC where pillow-heif is installed)")
    camera_json: bpy.props.StringProperty(
        name="Camera JSON", subtype="FILE_PATH",
        description="Optional camera file (lens, sensor, resolution, matrix_world); without it the lens and "
                    "sensor come from EXIF and the camera sits at the origin looking down +Y")

    def init(self, context):
        self.outputs.new("AnchorStageSocketImage", "Photo", identifier="image")
        self.outputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")

    def draw_props(self, context, layout):
        layout.prop(self, "filepath", text="")
        layout.prop(self, "camera_json", text="Camera")

    def job_params(self, context, services):
        return {"image": file_stamp(self.filepath), "camera_json": file_stamp(self.camera_json)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.stages import load_photo

        if not params["image"][0]:
            raise InputError("Image node: no photo file is set")
        photo = load_photo(params["image"][0], camera=params["camera_json"][0] or None)
        cam = photo.camera
        ctx.note(f"{cam.lens_mm:.4g} mm on {cam.sensor_width_mm:.4g} mm ({photo.camera_source})")
        for n in photo.notes:
            ctx.note(n)
        return {"image": photo, "camera": cam}


register, unregister = bpy.utils.register_classes_factory((AnchorStageImageNode,))
