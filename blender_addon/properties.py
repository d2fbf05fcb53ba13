# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-scene AnchorStage settings (``scene.anchorstage``)."""

import bpy


def _is_stage_tree(self, tree):
    return tree.bl_idname == "AnchorStageNodeTree"


def _is_camera(self, obj):
    return obj.type == "CAMERA"


class AnchorStageSceneSettings(bpy.types.PropertyGroup):
    tree: bpy.props.PointerProperty(name="Stage Tree", type=bpy.types.NodeTree, poll=_is_stage_tree,
                                    description="The AnchorStage node tree that Execute runs")
    witness_camera: bpy.props.PointerProperty(name="Witness Camera", type=bpy.types.Object, poll=_is_camera,
                                              description="The camera of the reference photo")
    move_distance: bpy.props.FloatProperty(name="Step", default=0.5, min=0.0, unit="LENGTH",
                                           description="Distance of a dolly/truck/pedestal step (metres)")
    move_angle: bpy.props.FloatProperty(name="Angle", default=5.0, min=0.0, max=180.0,
                                        description="Angle of a pan/tilt/roll/orbit step (degrees)")
    orbit_distance: bpy.props.FloatProperty(name="Pivot Distance", default=5.0, min=0.01, unit="LENGTH",
                                            description="Orbit pivot distance ahead of the camera (metres)")
    keyframe: bpy.props.BoolProperty(name="Keyframe", default=False,
                                     description="Insert keyframes on the camera after each move")


classes = (AnchorStageSceneSettings,)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.Scene.anchorstage = bpy.props.PointerProperty(type=AnchorStageSceneSettings)


def unregister():
    del bpy.types.Scene.anchorstage
    _unregister()
