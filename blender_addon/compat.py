# SPDX-License-Identifier: GPL-3.0-or-later
"""Differences between the Blender versions the add-on supports (4.2 LTS to 5.3), in one place.

The add-on is tested on Blender 4.2, 4.5, 5.0 and 5.3 (``scripts/blender_matrix.py``). What
changed between them and is handled here:

* Output format: Blender 5.0 added ``ImageFormatSettings.media_type``; a multilayer EXR is
  ``media_type = "MULTI_LAYER_IMAGE"`` there, after which ``file_format`` reads
  ``OPEN_EXR_MULTILAYER``. Blender 4.x has no ``media_type``: ``file_format`` is set directly.
* The compositor (``compositor.py``): 5.0+ uses a node group in ``scene.compositing_node_group``;
  4.x ``scene.use_nodes`` and ``scene.node_tree``.
"""

from __future__ import annotations

import bpy

__all__ = ["set_multilayer_exr", "uses_compositor_node_groups"]


def uses_compositor_node_groups() -> bool:
    """True on Blender 5.0+, where the compositor is a node group (no ``scene.node_tree``)."""
    return bpy.app.version >= (5, 0, 0)


def set_multilayer_exr(image_settings: "bpy.types.ImageFormatSettings") -> None:
    """Make render output (or a File Output node) write Blender's multilayer OpenEXR."""
    if hasattr(image_settings, "media_type"):  # Blender 5.0+: the media type first
        image_settings.media_type = "MULTI_LAYER_IMAGE"
    image_settings.file_format = "OPEN_EXR_MULTILAYER"
