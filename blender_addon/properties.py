# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-scene AnchorStage settings (``scene.anchorstage``) and the region list of a splat mesh
(``mesh.anchorstage_regions``: id, label, index and the lock an artist toggles)."""

import bpy


def _is_stage_tree(self, tree):
    return tree.bl_idname == "AnchorStageNodeTree"


def _is_camera(self, obj):
    return obj.type == "CAMERA"


def _viewport_pass_items():
    from anchorstage.passes import spec
    from anchorstage.viewport_layout import VIEWPORT_PASSES

    return [(p, p.title(), spec(p).description) for p in VIEWPORT_PASSES]


def _viewport_display_update(self, context):
    from . import splat_object

    for obj in splat_object.splat_objects(context.scene):
        splat_object.apply_viewport_display(obj, self.viewport_display)


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
    viewport_display: bpy.props.EnumProperty(
        name="Viewport Display", default="GAUSSIANS", update=_viewport_display_update,
        items=(("GAUSSIANS", "Gaussians", "Draw every splat as a real Gaussian with the GPU over Solid and Material "
                "Preview (the Geometry Nodes proxies are hidden in the viewport; Cycles/EEVEE renders keep them)"),
               ("PROXIES", "Proxies", "Show the Geometry Nodes proxies of a random subset (what Cycles and EEVEE "
                "render), no Gaussians"),
               ("BOTH", "Both", "Gaussians over the proxies")),
        description="How splat objects look in Solid and Material Preview shading (the AnchorStage engine's "
                    "Rendered view always draws Gaussians)")
    viewport_pass: bpy.props.EnumProperty(
        name="Viewport Pass", items=_viewport_pass_items(), default="color",
        description="The render pass the viewport's Gaussians show")
    engine_output: bpy.props.EnumProperty(
        name="Beauty",
        items=(("PROXY", "Splat Render", "Combined is the splats rendered from the camera"),
               ("REFRESH", "Refreshed Witness", "Combined is the photo warped to the camera with the void filled "
                                                "(classical inpainting, locked regions kept); Void and Confidence "
                                                "passes come from the refresh")),
        default="PROXY", description="What the AnchorStage engine writes into Combined")
    show_meter: bpy.props.BoolProperty(name="Confidence Meter", default=True,
                                       description="Rate the scene camera's shot as it moves (reduced resolution)")


class AnchorStageRegionItem(bpy.types.PropertyGroup):
    region_id: bpy.props.StringProperty(name="Region", description="The region's id in the stage")
    label: bpy.props.StringProperty(name="Label", description="sky, ground, facade or object")
    index: bpy.props.IntProperty(name="Index", description="The region's index (Region pass value)")
    locked: bpy.props.BoolProperty(name="Locked", default=False,
                                   description="Witness refresh and generation keep this region's pixels unchanged")


classes = (AnchorStageSceneSettings, AnchorStageRegionItem)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.Scene.anchorstage = bpy.props.PointerProperty(type=AnchorStageSceneSettings)
    bpy.types.Mesh.anchorstage_regions = bpy.props.CollectionProperty(type=AnchorStageRegionItem)


def unregister():
    del bpy.types.Mesh.anchorstage_regions
    del bpy.types.Scene.anchorstage
    _unregister()
