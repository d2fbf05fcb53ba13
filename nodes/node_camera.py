# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera node: a Blender camera object (or the scene camera) as a metric core camera."""

import bpy

from .base import AnchorStageNode


def _is_camera(self, obj):
    return obj.type == "CAMERA"


class AnchorStageCameraNode(AnchorStageNode, bpy.types.Node):
    """A Blender camera at the current frame: lens mm, sensor mm, resolution and pose in metres"""

    bl_idname = "AnchorStageCameraNode"
    bl_label = "Camera"
    bl_icon = "CAMERA_DATA"

    use_scene_camera: bpy.props.BoolProperty(name="Scene Camera", default=True,
                                             description="Follow the scene's active camera")
    camera: bpy.props.PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera)

    def init(self, context):
        self.outputs.new("AnchorStageSocketCamera", "Camera", identifier="camera")

    def draw_props(self, context, layout):
        layout.prop(self, "use_scene_camera")
        if not self.use_scene_camera:
            layout.prop(self, "camera", text="")

    def job_params(self, context, services):
        scene = context.scene
        obj = scene.camera if self.use_scene_camera else self.camera
        if obj is None:
            return {"error": "the scene has no camera" if self.use_scene_camera else "no camera object is set"}
        try:
            return {"camera": services.camera_json(obj, scene), "name": obj.name}
        except Exception as e:  # noqa: BLE001 - reported on the node by compute
            return {"error": str(e)}

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import Camera, InputError

        if "error" in params:
            raise InputError(f"Camera node: {params['error']}")
        camera = Camera.from_json_dict(params["camera"], source=f"camera {params['name']!r}")
        ctx.note(f"{params['name']}: {camera.lens_mm:.4g} mm, {camera.width}x{camera.height}")
        return {"camera": camera}


register, unregister = bpy.utils.register_classes_factory((AnchorStageCameraNode,))
