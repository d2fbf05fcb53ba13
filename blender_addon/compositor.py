# SPDX-License-Identifier: GPL-3.0-or-later
"""Compositor wiring, created once and reused.

Blender 5.0 keeps the compositor in a node group assigned to ``scene.compositing_node_group``
(output through a Group Output ``Image`` socket); Blender 4.2–4.5 use ``scene.use_nodes`` and
``scene.node_tree`` with a Composite node. ``ensure_compositor`` finds or makes the tree and its
one Render Layers node; calling it again never duplicates anything.
"""

from __future__ import annotations

import os

import bpy

from .compat import uses_compositor_node_groups as _uses_node_groups

TREE_NAME = "AnchorStage Compositor"
RLAYERS_NODE = "AnchorStage Render Layers"
_TAG = "anchorstage_compositor"


def compositor_tree(scene: bpy.types.Scene):
    """The scene's compositor node tree, or None."""
    if _uses_node_groups():
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def ensure_compositor(scene: bpy.types.Scene):
    """The scene's compositor tree with a Render Layers node feeding the output (created once).

    An existing compositor tree (the artist's own) is kept and only gains the Render Layers node
    if it has none.
    """
    if _uses_node_groups():
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.get(TREE_NAME)
            if tree is None or tree.bl_idname != "CompositorNodeTree":
                tree = bpy.data.node_groups.new(TREE_NAME, "CompositorNodeTree")
            scene.compositing_node_group = tree
        if not any(i.item_type == "SOCKET" and i.in_out == "OUTPUT" for i in tree.interface.items_tree):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        output_type = "NodeGroupOutput"
    else:  # Blender 4.2 - 4.5
        scene.use_nodes = True
        tree = scene.node_tree
        output_type = "CompositorNodeComposite"
    rl = tree.nodes.get(RLAYERS_NODE)
    if rl is None:
        rl = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None)
    if rl is None:
        rl = tree.nodes.new("CompositorNodeRLayers")
        rl.name = rl.label = RLAYERS_NODE
        rl.location = (-300, 0)
    rl.scene = scene
    out = next((n for n in tree.nodes if n.bl_idname == output_type), None)
    if out is None:
        out = tree.nodes.new(output_type)
        out.location = (200, 0)
    if not out.inputs[0].is_linked:
        tree.links.new(rl.outputs["Image"], out.inputs[0])
    tree[_TAG] = 1
    return tree


def render_layers_node(scene: bpy.types.Scene):
    tree = compositor_tree(scene)
    if tree is None:
        return None
    return tree.nodes.get(RLAYERS_NODE) or next((n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"), None)


def add_exr_image_node(scene: bpy.types.Scene, filepath: str):
    """Load a (multilayer) EXR and show it in the compositor as an Image node (reused per file).

    Returns (node, image). Raises OSError/RuntimeError from Blender when the file cannot be read.
    """
    from anchorstage import InputError

    path = bpy.path.abspath(filepath)
    if not os.path.isfile(path):
        raise InputError(f"EXR file {path!r} does not exist")
    image = bpy.data.images.load(path, check_existing=True)
    image.reload()
    if tuple(image.size) == (0, 0) and image.type != "MULTILAYER":  # Blender "loads" any file; a bad one has no pixels
        bpy.data.images.remove(image)
        raise InputError(f"EXR file {path!r} cannot be read as an image (corrupt or not an EXR)")
    tree = ensure_compositor(scene)
    node = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeImage" and n.image == image), None)
    if node is None:
        node = tree.nodes.new("CompositorNodeImage")
        node.image = image
        node.label = os.path.basename(path)
        node.location = (-300, -400 - 60 * sum(1 for n in tree.nodes if n.bl_idname == "CompositorNodeImage"))
    return node, image


GENERATED_NODE = "AnchorStage Generated"


def show_image_as_output(scene: bpy.types.Scene, image) -> "bpy.types.Node":
    """Make ``image`` the compositor's output (the frame's Combined): an Image node (reused) linked into
    the output in place of the Render Layers' image, whose node stays for the other passes."""
    tree = ensure_compositor(scene)
    node = tree.nodes.get(GENERATED_NODE)
    if node is None or node.bl_idname != "CompositorNodeImage":
        node = tree.nodes.new("CompositorNodeImage")
        node.name = node.label = GENERATED_NODE
        node.location = (-300, 300)
    node.image = image
    output_type = "NodeGroupOutput" if _uses_node_groups() else "CompositorNodeComposite"
    out = next(n for n in tree.nodes if n.bl_idname == output_type)
    for link in list(out.inputs[0].links):
        tree.links.remove(link)
    tree.links.new(node.outputs["Image"], out.inputs[0])
    return node
