# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's draw code, run headless: Blender gives no UI layout in background mode, so the
panels, node bodies and preferences draw into a recording layout that checks every property and
operator they name against Blender's real RNA (a typo there would otherwise only show in the UI)."""

import pytest

import bpy
from blender_support import ADDON_MODULE


class _OpProps:
    def __init__(self, idname):
        mod, name = idname.split(".")
        op = getattr(getattr(bpy.ops, mod), name)
        self.__dict__["_names"] = set(op.get_rna_type().properties.keys())
        self.__dict__["_idname"] = idname

    def __setattr__(self, key, value):
        assert key in self._names, f"operator {self._idname} has no property {key!r}"


class RecordingLayout:
    """Records what is drawn; asserts that named properties and operators exist."""

    def __init__(self, log):
        self.log = log
        self.alert = self.enabled = self.active = False
        self.scale_y = 1.0
        self.operator_context = "INVOKE_DEFAULT"

    def _child(self, *a, **k):
        return RecordingLayout(self.log)

    row = column = box = split = _child

    def separator(self, *a, **k):
        pass

    def label(self, *, text="", icon="NONE", **k):
        self.log.append(("label", text))

    def prop(self, data, name, **k):
        if name.startswith('["'):
            key = name[2:-2]
            assert key in data.keys(), f"{data!r} has no custom property {key!r}"
        else:
            assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name))

    def operator(self, idname, **k):
        mod, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, mod), name), f"no operator {idname}"
        self.log.append(("operator", idname))
        return _OpProps(idname)


def _draw_panel(cls, context):
    import types

    log = []
    cls.draw(types.SimpleNamespace(layout=RecordingLayout(log)), context)
    return log


@pytest.fixture
def stage_scene(fresh_scene):
    from gt_fixture import FIXTURE_DIR

    assert bpy.ops.anchorstage.new_stage(image_path=str(FIXTURE_DIR / "v0_rgb.png"),
                                         depth_path=str(FIXTURE_DIR / "v0_depth.npy")) == {"FINISHED"}
    return fresh_scene


def test_panels_draw(stage_scene):
    import importlib

    ui = importlib.import_module(f"{ADDON_MODULE}.ui")
    splat_object = importlib.import_module(f"{ADDON_MODULE}.splat_object")
    ctx = bpy.context
    log = _draw_panel(ui.ANCHORSTAGE_PT_stage, ctx)
    assert ("operator", "anchorstage.execute") in log
    tree = ctx.scene.anchorstage.tree
    for _ in range(2):  # several Generate nodes: a button for each, naming its node
        tree.nodes.new("AnchorStageGenerateNode")
    log = _draw_panel(ui.ANCHORSTAGE_PT_stage, ctx)
    assert log.count(("operator", "anchorstage.generate")) == 2
    log = _draw_panel(ui.ANCHORSTAGE_PT_camera, ctx)
    ops = {x[1] for x in log if x[0] == "operator"}
    assert {"anchorstage.camera_dolly", "anchorstage.camera_orbit", "anchorstage.camera_focal_preset"} <= ops
    log = _draw_panel(ui.ANCHORSTAGE_PT_passes, ctx)
    assert ("operator", "anchorstage.import_exr") in log

    import torch
    from anchorstage import Splats

    n = 3000
    splats = Splats(means=torch.randn(n, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                    scales=torch.full((n, 3), 0.01), opacities=torch.full((n,), 0.5), colors=torch.rand(n, 3))
    obj = splat_object.update_splat_object(splats, name="S", max_display=1000)

    class Ctx:
        object = obj

    log = _draw_panel(ui.ANCHORSTAGE_PT_splats, Ctx)
    labels = " ".join(t for kind, t in log if kind == "label")
    assert "every splat as a Gaussian" in labels  # the default display: GPU Gaussians, no proxies
    ctx.scene.anchorstage.viewport_display = "PROXIES"
    log = _draw_panel(ui.ANCHORSTAGE_PT_splats, Ctx)
    labels = " ".join(t for kind, t in log if kind == "label")
    assert "1,000 of 3,000" in labels and "decimated" in labels
    log = _draw_panel(ui.ANCHORSTAGE_PT_viewport, ctx)
    props = {x[1] for x in log if x[0] == "prop"}
    assert {"viewport_pass", "viewport_display", "viewport_sort", "sort_angle", "sort_distance"} <= props


def test_node_bodies_draw(stage_scene):
    tree = stage_scene.anchorstage.tree
    bpy.ops.anchorstage.execute()
    extra = [tree.nodes.new("AnchorStageExportNode") for _ in range(4)]
    for node, fmt in zip(extra, ("SCENE", "PLY", "EXR", "FRAME")):
        node.format = fmt
    for node in tree.nodes:
        log = []
        node.draw_buttons(bpy.context, RecordingLayout(log))
        if node.as_state in ("RAN", "CACHED"):
            assert log, node.name
    depth = next(n for n in tree.nodes if n.bl_idname == "AnchorStageDepthNode")
    depth.set_status("ERROR", "depth file 'x.npy' does not exist " * 3)
    log = []
    depth.draw_buttons(bpy.context, RecordingLayout(log))
    assert sum(1 for kind, _ in log if kind == "label") >= 2  # long messages wrap


@pytest.mark.no_torch
def test_preferences_draw(fresh_scene):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    log = []
    layout = RecordingLayout(log)
    type(prefs).draw(_WithLayout(prefs, layout), bpy.context)
    assert ("operator", "anchorstage.install_dependencies") in log
    assert {("prop", "viewport_sort"), ("prop", "sort_angle"), ("prop", "sort_distance")} <= set(log)
    assert any(kind == "label" and "Installs into" in t for kind, t in log)


class _WithLayout:
    """``self`` for AddonPreferences.draw: the real preferences plus a layout."""

    def __init__(self, prefs, layout):
        object.__setattr__(self, "_p", prefs)
        object.__setattr__(self, "layout", layout)

    def __getattr__(self, name):
        return getattr(self._p, name)
