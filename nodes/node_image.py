# SPDX-License-Identifier: GPL-3.0-or-later
"""Image node: a photo (linear RGB) and its camera (EXIF intrinsics, or a camera JSON file)."""

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

    def job_params(self, context):
        return {"image": file_stamp(self.filepath), "camera_json": file_stamp(self.camera_json)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError, load_camera_json, load_image, read_intrinsics

        path = params["image"][0]
        if not path:
            raise InputError("Image node: no photo file is set")
        image = load_image(path)
        for n in image.notes:
            ctx.note(n)
        if params["camera_json"][0]:
            camera = load_camera_json(params["camera_json"][0])
            if camera.resolution != (image.width, image.height):
                if abs(camera.width / camera.height - image.width / image.height) > 0.01 * image.width / image.height:
                    raise InputError(f"camera file {params['camera_json'][0]!r}: resolution {camera.width}x{camera.height} "
                                     f"does not have the aspect of the photo ({image.width}x{image.height})")
                ctx.note(f"camera resolution {camera.width}x{camera.height} scaled to the photo's {image.width}x{image.height}")
                camera = camera.with_resolution(image.width, image.height)
            ctx.note(f"camera from file: {camera.lens_mm:.4g} mm on {camera.sensor_width_mm:.4g} mm")
        else:
            intr = read_intrinsics(image)
            camera = intr.camera(image.width, image.height)
            ctx.note(f"{intr.lens_mm:.4g} mm on {intr.sensor_width_mm:.4g} mm ({intr.source})")
            for n in intr.notes:
                ctx.note(n)
        return {"image": image, "camera": camera}


register, unregister = bpy.utils.register_classes_factory((AnchorStageImageNode,))
