# SPDX-License-Identifier: GPL-3.0-or-later
"""Socket types of the AnchorStage tree. They carry Python objects between nodes at execution
time (the executor passes values; sockets only describe the type and colour)."""

import bpy


class _AnchorStageSocket:
    bl_label = "AnchorStage"
    _color = (0.6, 0.6, 0.6, 1.0)

    def draw(self, context, layout, node, text):
        layout.label(text=text)

    @classmethod
    def draw_color_simple(cls):
        return cls._color


class AnchorStageSocketImage(_AnchorStageSocket, bpy.types.NodeSocket):
    """A photo with its camera (``anchorstage.stages.Photo``)."""

    bl_idname = "AnchorStageSocketImage"
    bl_label = "Photo"
    _color = (0.78, 0.78, 0.16, 1.0)


class AnchorStageSocketCamera(_AnchorStageSocket, bpy.types.NodeSocket):
    """A metric camera (``anchorstage.Camera``: intrinsics and world pose)."""

    bl_idname = "AnchorStageSocketCamera"
    bl_label = "Camera"
    _color = (0.39, 0.39, 0.78, 1.0)


class AnchorStageSocketDepth(_AnchorStageSocket, bpy.types.NodeSocket):
    """Metric depth with per-pixel confidence (``anchorstage.DepthEstimate``, metres, planar z)."""

    bl_idname = "AnchorStageSocketDepth"
    bl_label = "Depth"
    _color = (0.63, 0.63, 0.63, 1.0)


class AnchorStageSocketScene(_AnchorStageSocket, bpy.types.NodeSocket):
    """A splat scene (``anchorstage.Scene``: splats, camera, image, depth and regions)."""

    bl_idname = "AnchorStageSocketScene"
    bl_label = "Splat Scene"
    _color = (0.0, 0.84, 0.64, 1.0)


class AnchorStageSocketPasses(_AnchorStageSocket, bpy.types.NodeSocket):
    """Rendered passes and their camera (``anchorstage.Frame``)."""

    bl_idname = "AnchorStageSocketPasses"
    bl_label = "Passes"
    _color = (0.85, 0.45, 0.2, 1.0)


class AnchorStageSocketRefresh(_AnchorStageSocket, bpy.types.NodeSocket):
    """A refreshed witness with its void, locks and confidence (``anchorstage.Refresh``)."""

    bl_idname = "AnchorStageSocketRefresh"
    bl_label = "Refreshed Witness"
    _color = (0.9, 0.3, 0.55, 1.0)


class AnchorStageSocketGeneration(_AnchorStageSocket, bpy.types.NodeSocket):
    """A generated frame with its conditioning stack (``anchorstage.Generation``)."""

    bl_idname = "AnchorStageSocketGeneration"
    bl_label = "Generated Frame"
    _color = (0.95, 0.6, 0.1, 1.0)


class AnchorStageSocketCameras(_AnchorStageSocket, bpy.types.NodeSocket):
    """A camera path: a list of metric cameras, one per frame (``list[anchorstage.Camera]``)."""

    bl_idname = "AnchorStageSocketCameras"
    bl_label = "Camera Path"
    _color = (0.55, 0.45, 0.9, 1.0)


classes = (AnchorStageSocketImage, AnchorStageSocketCamera, AnchorStageSocketDepth, AnchorStageSocketScene,
           AnchorStageSocketPasses, AnchorStageSocketRefresh, AnchorStageSocketGeneration, AnchorStageSocketCameras)
register, unregister = bpy.utils.register_classes_factory(classes)
