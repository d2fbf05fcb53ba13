# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage Blender extension: registration only; the work lives in submodules and the core."""

from . import nodes

_modules = (nodes,)


def register() -> None:
    for m in _modules:
        m.register()


def unregister() -> None:
    for m in reversed(_modules):
        m.unregister()
