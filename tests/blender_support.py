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


def factory_reset() -> "bpy.types.Scene":
    """Load empty factory settings and enable the add-on again (factory settings disable it)."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    if not addon_utils.check(ADDON_MODULE)[1]:
        addon_utils.enable(ADDON_MODULE, default_set=True)
    return bpy.context.scene
