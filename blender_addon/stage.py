# SPDX-License-Identifier: GPL-3.0-or-later
"""Building a stage: the default node tree, the witness camera, scene settings, and running the tree
with Blender's progress indicator."""

from __future__ import annotations

import bpy

from .boundary import apply_camera_to_blender
from .compositor import ensure_compositor
from .nodes import runner

WITNESS_NAME = "AnchorStage Witness"


def build_default_tree(name: str, image_path: str, depth_path: str = "", camera_json: str = ""):
    """Image → Metric Depth (estimated, or the given file) → Gaussian Regression → Regions →
    Splat Object, Regions + Camera (scene camera) → Splat Render, and Regions + Camera → Witness
    Refresh → Confidence."""
    tree = bpy.data.node_groups.new(name, "AnchorStageNodeTree")
    nodes, links = tree.nodes, tree.links

    def add(idname, x, y):
        n = nodes.new(idname)
        n.location = (x, y)
        return n

    image = add("AnchorStageImageNode", -900, 0)
    image.filepath, image.camera_json = image_path, camera_json
    depth = add("AnchorStageDepthNode", -620, 160)
    if depth_path:
        depth.source, depth.filepath = "FILE", depth_path
    regression = add("AnchorStageRegressionNode", -340, 0)
    regions = add("AnchorStageRegionsNode", -60, 0)
    splat_obj = add("AnchorStageSplatObjectNode", 240, 160)
    camera = add("AnchorStageCameraNode", -60, -260)
    render = add("AnchorStageRenderNode", 240, -120)
    refresh = add("AnchorStageRefreshNode", 240, -420)
    confidence = add("AnchorStageConfidenceNode", 540, -420)

    # The photo carries its camera; linking a camera into Depth or Regression would override it.
    links.new(image.outputs["image"], depth.inputs["image"])
    links.new(image.outputs["image"], regression.inputs["image"])
    links.new(depth.outputs["depth"], regression.inputs["depth"])
    links.new(regression.outputs["scene"], regions.inputs["scene"])
    links.new(regions.outputs["scene"], splat_obj.inputs["scene"])
    links.new(regions.outputs["scene"], render.inputs["scene"])
    links.new(camera.outputs["camera"], render.inputs["camera"])
    links.new(regions.outputs["scene"], refresh.inputs["scene"])
    links.new(camera.outputs["camera"], refresh.inputs["camera"])
    links.new(refresh.outputs["refresh"], confidence.inputs["refresh"])
    return tree


def ensure_witness_camera(scene, camera, name: str = WITNESS_NAME):
    """Create or update the witness camera from a core Camera; it becomes the scene camera and sets
    the render resolution to the photo's."""
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "CAMERA":
        obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    if obj.name not in scene.collection.all_objects:
        scene.collection.objects.link(obj)
    apply_camera_to_blender(camera, obj, scene, set_resolution=True)
    scene.camera = obj
    return obj


def prepare_scene(scene, *, set_engine: bool = True) -> None:
    """Metric units, the passes the engine fills, the compositor (once) and optionally the engine."""
    from anchorstage.passes import REGISTRY

    scene.unit_settings.system = "METRIC"
    scene.unit_settings.scale_length = 1.0
    for vl in scene.view_layers:
        for p in REGISTRY:
            if p.view_layer_flag:
                setattr(vl, p.view_layer_flag, True)
    if set_engine:
        scene.render.engine = "ANCHORSTAGE"
    ensure_compositor(scene)


def stage_tree(context, name: str = ""):
    """The tree to run: by name, else the scene's stage tree, else the node editor's, else the only one."""
    if name:
        tree = bpy.data.node_groups.get(name)
        return tree if tree is not None and tree.bl_idname == "AnchorStageNodeTree" else None
    tree = context.scene.anchorstage.tree
    if tree is not None:
        return tree
    space = getattr(context, "space_data", None)
    if space is not None and getattr(space, "type", "") == "NODE_EDITOR" and space.edit_tree is not None \
            and space.edit_tree.bl_idname == "AnchorStageNodeTree":
        return space.edit_tree
    trees = [t for t in bpy.data.node_groups if t.bl_idname == "AnchorStageNodeTree"]
    return trees[0] if len(trees) == 1 else None


def run_with_progress(tree, context, *, targets=None, force: bool = False):
    """Run the tree with the window manager's progress indicator (and console lines in background)."""
    wm = context.window_manager
    wm.progress_begin(0, 1000)
    last = [-1.0]

    def progress(fraction: float, message: str) -> None:
        wm.progress_update(int(1000 * fraction))
        if bpy.app.background and (fraction - last[0] >= 0.1 or fraction >= 1.0):
            last[0] = fraction
            print(f"AnchorStage: {100 * fraction:5.1f}% {message}", flush=True)

    try:
        return runner.run_tree(tree, context, targets=targets, progress=progress, force=force)
    finally:
        wm.progress_end()
