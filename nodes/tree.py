# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``AnchorStageNodeTree`` type ("AnchorStage" in the node editor's tree menu)."""

import bpy


class AnchorStageNodeTree(bpy.types.NodeTree):
    """Photo to metric Gaussian-splat stage, passes and exports."""

    bl_idname = "AnchorStageNodeTree"
    bl_label = "AnchorStage"
    bl_icon = "OUTLINER_OB_POINTCLOUD"


register, unregister = bpy.utils.register_classes_factory((AnchorStageNodeTree,))
