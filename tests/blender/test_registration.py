# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole add-on against this Blender's Python API, on every Blender of the matrix (4.2, 4.5,
5.0, 5.3): every class registers (render engine, node tree, sockets, nodes, operators, panels,
properties), the panels and node bodies draw with properties and operators that exist in this
Blender's RNA, the compositor is wired for this version (4.x: ``scene.node_tree``; 5.x: a
compositing node group), and unregistering leaves nothing behind.

Blender 5.1+ runs Python 3.13, where torch is not installed here (a multi-GB download): there the
add-on registers only its preferences and says torch is missing (``test_addon_preferences``). To
check the rest of the add-on against 5.3's API anyway, these tests open the dependency gate
(``preferences.missing_dependencies`` reports nothing missing): registering and drawing import no
torch, so what is checked is Blender's side, not the computation.
"""

import importlib
import importlib.util

import pytest

import bpy
from blender_support import ADDON_MODULE, registered_addon_classes

HAS_TORCH = importlib.util.find_spec("torch") is not None

pytestmark = pytest.mark.no_torch

EXPECTED = {"AnchorStageRenderEngine", "AnchorStagePreferences", "AnchorStageNodeTree", "AnchorStageSocketScene",
            "AnchorStageImageNode", "AnchorStageDepthNode", "AnchorStageRenderNode", "AnchorStageExportNode",
            "ANCHORSTAGE_OT_new_stage", "ANCHORSTAGE_OT_execute", "ANCHORSTAGE_OT_setup_compositor",
            "ANCHORSTAGE_PT_stage", "ANCHORSTAGE_PT_camera", "ANCHORSTAGE_PT_passes", "ANCHORSTAGE_PT_splats"}


@pytest.fixture
def full_addon(fresh_scene, monkeypatch):
    """The add-on fully registered on this Blender (with the dependency gate opened where torch is absent)."""
    import addon_utils

    addon = importlib.import_module(ADDON_MODULE)
    if not HAS_TORCH:
        prefs = importlib.import_module(f"{ADDON_MODULE}.preferences")
        monkeypatch.setattr(prefs, "missing_dependencies", lambda include_optional=True: [])
        assert addon.register_rest(), prefs.IMPORT_ERROR[0]
    yield fresh_scene
    if not HAS_TORCH:  # back to what this Blender does without torch: preferences only
        addon_utils.disable(ADDON_MODULE, default_set=True)
        monkeypatch.undo()
        addon_utils.enable(ADDON_MODULE, default_set=True)


def test_every_class_registers_and_unregisters(full_addon):
    import addon_utils

    before = registered_addon_classes()
    missing = EXPECTED - before
    assert not missing, f"not registered on Blender {bpy.app.version_string}: {sorted(missing)}"
    assert hasattr(bpy.types.Scene, "anchorstage")
    assert "ANCHORSTAGE" in {getattr(c, "bl_idname", "") for c in bpy.types.RenderEngine.__subclasses__()
                             if getattr(c, "is_registered", False)}
    addon_utils.disable(ADDON_MODULE, default_set=True)
    try:
        assert registered_addon_classes() == set()
        assert not hasattr(bpy.types.Scene, "anchorstage")
    finally:
        addon_utils.enable(ADDON_MODULE, default_set=True)
    if HAS_TORCH:
        assert registered_addon_classes() == before


def test_panels_and_node_bodies_draw_against_this_blenders_rna(full_addon):
    from test_addon_ui import RecordingLayout, _draw_panel

    ui = importlib.import_module(f"{ADDON_MODULE}.ui")
    scene = full_addon
    cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.engine = "ANCHORSTAGE"
    log = _draw_panel(ui.ANCHORSTAGE_PT_stage, bpy.context)
    assert ("operator", "anchorstage.execute") in log
    log = _draw_panel(ui.ANCHORSTAGE_PT_camera, bpy.context)
    assert ("operator", "anchorstage.camera_orbit") in log
    log = _draw_panel(ui.ANCHORSTAGE_PT_passes, bpy.context)
    assert ("operator", "anchorstage.setup_compositor") in log
    tree = bpy.data.node_groups.new("Stage", "AnchorStageNodeTree")
    kinds = sorted(c.bl_idname for c in bpy.types.Node.__subclasses__()
                   if c.__module__.startswith(ADDON_MODULE) and getattr(c, "is_registered", False))
    assert len(kinds) >= 8, kinds
    for kind in kinds:
        node = tree.nodes.new(kind)
        node.draw_buttons(bpy.context, RecordingLayout([]))


def test_compositor_is_wired_for_this_blender(full_addon):
    compositor = importlib.import_module(f"{ADDON_MODULE}.compositor")
    scene = full_addon
    assert bpy.ops.anchorstage.setup_compositor() == {"FINISHED"}
    assert bpy.ops.anchorstage.setup_compositor() == {"FINISHED"}  # a second call duplicates nothing
    tree = compositor.compositor_tree(scene)
    assert tree is not None
    if bpy.app.version >= (5, 0, 0):
        assert scene.compositing_node_group == tree
        out_type = "NodeGroupOutput"
    else:
        assert scene.use_nodes and scene.node_tree == tree
        out_type = "CompositorNodeComposite"
    rls = [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]
    outs = [n for n in tree.nodes if n.bl_idname == out_type]
    assert len(rls) == 1 and len(outs) == 1
    src = outs[0].inputs[0]
    assert src.is_linked
    node = src.links[0].from_node
    while node.bl_idname == "NodeReroute":  # 4.x's default tree routes Render Layers through a reroute
        node = node.inputs[0].links[0].from_node
    assert node == rls[0]
