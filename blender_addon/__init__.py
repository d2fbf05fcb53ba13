# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage Blender extension: registration only; the work lives in submodules and the core.

The preferences (with the dependency check and Install button) register first and need nothing
but Blender; the rest needs the core's dependencies (torch, ...). When those are missing, only
the preferences register and say exactly what is missing; after Install the rest registers.
"""

import importlib

from . import preferences

#: modules registered after the preferences, in order (unregistered in reverse).
_MODULE_NAMES = ("properties", "splat_cache", "nodes", "render_engine", "viewport", "operators", "generate", "ui", "meter")
_modules: tuple = ()


def register_rest() -> bool:
    """Register everything beyond the preferences; False (and the reason noted) when a dependency is missing."""
    global _modules
    if _modules:
        return True
    preferences.add_site_folder_to_path()
    # The core imports its heavy dependencies lazily, so check them before registering anything.
    missing = preferences.missing_dependencies(False)
    try:
        if missing:
            raise ImportError(f"No module named {missing[0][0]!r}")
        mods = tuple(importlib.import_module(f".{name}", __package__) for name in _MODULE_NAMES)
    except ImportError as e:
        preferences.IMPORT_ERROR[0] = f"{e}. {preferences.describe_missing(preferences.missing_dependencies(False))}"
        print(f"AnchorStage: not fully enabled: {preferences.IMPORT_ERROR[0]} "
              "(Preferences > Add-ons > AnchorStage > Install)")
        return False
    preferences.IMPORT_ERROR[0] = ""
    from .services import BlenderServices

    services = BlenderServices(__package__)
    for m in mods:
        m.register(services) if m.__name__.endswith(".nodes") else m.register()
    _modules = mods
    return True


def register() -> None:
    preferences.register()
    register_rest()


def unregister() -> None:
    global _modules
    for m in reversed(_modules):
        m.unregister()
    _modules = ()
    preferences.unregister()
