# SPDX-License-Identifier: GPL-3.0-or-later
"""Confidence node: how safe the refreshed shot is: (1 - void coverage) x depth confidence x angle
confidence, shown on the node, with the green / yellow / red overlay in the image "AnchorStage Confidence"."""

import bpy

from .base import AnchorStageNode

OVERLAY_IMAGE = "AnchorStage Confidence"


class AnchorStageConfidenceNode(AnchorStageNode, bpy.types.Node):
    """Rate a refreshed shot and show its confidence overlay"""

    bl_idname = "AnchorStageConfidenceNode"
    bl_label = "Confidence"
    bl_icon = "INFO"

    overlay: bpy.props.StringProperty(name="Overlay Image", default=OVERLAY_IMAGE,
                                      description="Image that receives the green/yellow/red overlay (empty: none)")

    required_inputs = ("refresh",)
    volatile = True  # it writes the overlay image, which the user may have deleted

    def init(self, context):
        self.inputs.new("AnchorStageSocketRefresh", "Refreshed Witness", identifier="refresh")

    def confidence(self):
        """The last run's :class:`anchorstage.confidence.Confidence`, or None."""
        from .runner import node_outputs

        out = node_outputs(self.id_data, self.name)
        return out.get("confidence") if out else None

    def draw_props(self, context, layout):
        layout.prop(self, "overlay", text="", icon="IMAGE_DATA")

    def job_params(self, context, services):
        return {"overlay": self.overlay}

    @staticmethod
    def compute(params, inputs, ctx):
        import numpy as np

        from anchorstage.confidence import GREEN, YELLOW, overlay

        res = inputs["refresh"]
        c = res.confidence
        if params["overlay"]:
            rgb = overlay(res.witness, c.map, res.void)  # sRGB: shown as a non-colour-managed float image
            from anchorstage.image_io import srgb_to_linear

            h, w = res.void.shape
            ctx.services.show_preview(params["overlay"], np.concatenate([srgb_to_linear(rgb), np.ones((h, w, 1), np.float32)], -1))
        ctx.note(f"{c.value:.2f} {c.level.upper()} (green ≥ {GREEN:g}, yellow ≥ {YELLOW:g})\n"
                 f"void {c.void_coverage:.1%} · depth {c.depth_confidence:.2f} · angle {c.angle_confidence:.2f} "
                 f"({c.mean_angle_deg:.1f}°)")
        return {"confidence": c}


register, unregister = bpy.utils.register_classes_factory((AnchorStageConfidenceNode,))
