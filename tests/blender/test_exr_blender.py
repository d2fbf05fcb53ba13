# SPDX-License-Identifier: GPL-3.0-or-later
"""Our multilayer EXR opens in real Blender as MULTILAYER with one compositor socket per pass."""

from __future__ import annotations

import pytest
import torch

import bpy
from anchorstage import write_exr


@pytest.mark.blender
def test_exr_is_multilayer_with_one_socket_per_pass(tmp_path):
    h, w = 12, 20
    g = torch.Generator().manual_seed(1)
    depth = torch.rand(h, w, generator=g) * 10 + 1
    passes = {"color": torch.rand(h, w, 3, generator=g), "alpha": torch.ones(h, w), "depth": depth,
              "normal": torch.nn.functional.normalize(torch.randn(h, w, 3, generator=g), dim=-1),
              "confidence": torch.rand(h, w, generator=g), "void": torch.zeros(h, w),
              "region": torch.randint(-1, 5, (h, w), generator=g, dtype=torch.int32)}
    path = write_exr(tmp_path / "frame.exr", passes)

    from blender_support import read_factory_settings

    read_factory_settings()
    img = bpy.data.images.load(str(path))
    img.size[:]  # reading an attribute that needs the buffer makes Blender open the file
    assert img.type == "MULTILAYER"
    scene = bpy.context.scene
    if bpy.app.version >= (5, 0, 0):
        tree = bpy.data.node_groups.new("Comp", "CompositorNodeTree")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
    node = tree.nodes.new("CompositorNodeImage")
    node.image = img
    sockets = {s.name for s in node.outputs if s.enabled}
    # One socket per pass: Combined (+ its Alpha) and each of our passes.
    assert sockets == {"Combined", "Alpha", "Depth", "Normal", "Confidence", "Void", "Region"}, sockets
