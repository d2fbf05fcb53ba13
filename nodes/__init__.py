# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage node editor: the node tree type and one module per node."""


from . import tree

_modules = (tree,)


def register() -> None:
    for m in _modules:
        m.register()


def unregister() -> None:
    for m in reversed(_modules):
        m.unregister()
