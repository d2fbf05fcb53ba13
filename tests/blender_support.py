# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for tests that run inside real Blender (imported after bpy is available)."""

import bpy

ADDON_MODULE = "bl_ext.user_default.anchorstage"


def registered_addon_classes(module: str = ADDON_MODULE) -> set[str]:
    """Names of the add-on's classes Blender currently has registered."""
    found, stack = set(), [bpy.types.bpy_struct]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith(module) and getattr(cls, "is_registered", False):
            found.add(cls.__name__)
    return found


def read_factory_settings() -> None:
    """``bpy.ops.wm.read_factory_settings(use_empty=True)``, safe on Blender 4.2.

    Blender 4.2 (not 4.5 or 5.x) crashes in a factory reset after an AnchorStage node tree was
    used: the reset unregisters the add-on's node types, then frees the depsgraph's evaluated copy
    of the tree through their stale callbacks (``node_free_node``). The reset discards the trees
    anyway, so on 4.2 they are removed first, while their types are still registered.
    """
    if bpy.app.version < (4, 5, 0):
        for tree in [t for t in bpy.data.node_groups if t.bl_idname == "AnchorStageNodeTree"]:
            bpy.data.node_groups.remove(tree)
    bpy.ops.wm.read_factory_settings(use_empty=True)


def factory_reset() -> "bpy.types.Scene":
    """Load empty factory settings and enable the add-on again (factory settings disable it)."""
    import addon_utils

    read_factory_settings()
    if not addon_utils.check(ADDON_MODULE)[1]:
        addon_utils.enable(ADDON_MODULE, default_set=True)
    return bpy.context.scene
