# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage node editor: the node tree type, its sockets, one module per node, and the runner
that hands the tree to the core's executor. The add-on passes its Blender-side services to
:func:`register`; node files import nothing of the add-on."""

import nodeitems_utils
from nodeitems_utils import NodeCategory, NodeItem

from . import (base, node_camera, node_confidence, node_depth, node_export, node_fidelity, node_fuse, node_generate,
               node_image, node_refresh, node_regions, node_regression, node_render, node_splat_object, node_turntable,
               node_video, sockets, tree)

_node_modules = (node_image, node_depth, node_regression, node_regions, node_camera, node_render,
                 node_splat_object, node_export, node_refresh, node_confidence, node_generate, node_fuse, node_fidelity,
                 node_turntable, node_video)
_modules = (tree, sockets, *_node_modules)

NODE_CATEGORIES_ID = "ANCHORSTAGE_NODES"


class AnchorStageNodeCategory(NodeCategory):
    @classmethod
    def poll(cls, context):
        return context.space_data.tree_type == "AnchorStageNodeTree"


def _categories():
    return [
        AnchorStageNodeCategory("ANCHORSTAGE_INPUT", "Input", items=[
            NodeItem("AnchorStageImageNode"), NodeItem("AnchorStageCameraNode")]),
        AnchorStageNodeCategory("ANCHORSTAGE_STAGE", "Stage", items=[
            NodeItem("AnchorStageDepthNode"), NodeItem("AnchorStageRegressionNode"),
            NodeItem("AnchorStageRegionsNode")]),
        AnchorStageNodeCategory("ANCHORSTAGE_REFRESH", "Refresh", items=[
            NodeItem("AnchorStageRefreshNode"), NodeItem("AnchorStageConfidenceNode"),
            NodeItem("AnchorStageGenerateNode")]),
        AnchorStageNodeCategory("ANCHORSTAGE_MULTIVIEW", "Multi-view", items=[
            NodeItem("AnchorStageFuseNode"), NodeItem("AnchorStageFidelityNode")]),
        AnchorStageNodeCategory("ANCHORSTAGE_OUTPUT", "Output", items=[
            NodeItem("AnchorStageRenderNode"), NodeItem("AnchorStageSplatObjectNode"),
            NodeItem("AnchorStageExportNode")]),
        AnchorStageNodeCategory("ANCHORSTAGE_VIDEO", "Turntable & Video", items=[
            NodeItem("AnchorStageTurntableNode"), NodeItem("AnchorStageVideoNode")]),
    ]


def register(services) -> None:
    base.set_services(services)
    for m in _modules:
        m.register()
    nodeitems_utils.register_node_categories(NODE_CATEGORIES_ID, _categories())


def unregister() -> None:
    nodeitems_utils.unregister_node_categories(NODE_CATEGORIES_ID)
    for m in reversed(_modules):
        m.unregister()
    from . import runner

    runner.clear_caches()
    base.set_services(None)
