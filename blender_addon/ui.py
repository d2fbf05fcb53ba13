# SPDX-License-Identifier: GPL-3.0-or-later
"""Panels: the stage (node editor sidebar), camera moves, the shot's confidence meter and the
viewport's Gaussians (3D viewport sidebar), the splat object's display note and region locks
(object properties) and the render engine's passes (view layer)."""

import bpy

from . import splat_object
from .boundary import is_splat_mesh


class ANCHORSTAGE_PT_stage(bpy.types.Panel):
    bl_label = "AnchorStage"
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "AnchorStage"

    @classmethod
    def poll(cls, context):
        return context.space_data.tree_type == "AnchorStageNodeTree"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.anchorstage
        layout.operator("anchorstage.new_stage", icon="ADD")
        layout.prop(settings, "tree")
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("anchorstage.execute", icon="PLAY")
        row.operator("anchorstage.execute", text="", icon="FILE_REFRESH").force = True
        tree = settings.tree
        gens = [] if tree is None else [n for n in tree.nodes if n.bl_idname == "AnchorStageGenerateNode"]
        for n in gens:  # one button per Generate node: the operator needs to know which one when there are several
            op = layout.operator("anchorstage.generate", icon="SHADERFX",
                                 text="Generate Frame" if len(gens) == 1 else f"Generate: {n.name}")
            op.tree, op.node = tree.name, n.name
        layout.operator("anchorstage.clear_cache", icon="TRASH")


def draw_camera_moves(layout, context):
    from anchorstage.camera import MOVES

    s = context.scene.anchorstage
    for unit, step, prop in (("m", s.move_distance, "move_distance"), ("deg", s.move_angle, "move_angle")):
        col = layout.column(align=True)
        col.prop(s, prop)
        for move, (u, _) in MOVES.items():
            if u != unit or move == "orbit":
                continue
            op, label = f"anchorstage.camera_{move}", move.title()
            row = col.row(align=True)
            for sign, text in ((-1, f"{label} -"), (1, f"{label} +")):
                o = row.operator(op, text=text)
                setattr(o, "distance" if unit == "m" else "angle", sign * step)
                o.keyframe = s.keyframe
    col = layout.column(align=True)
    col.prop(s, "orbit_distance")
    row = col.row(align=True)
    for sign, text in ((-1, "Orbit ◀"), (1, "Orbit ▶")):
        o = row.operator("anchorstage.camera_orbit", text=text)
        o.yaw, o.pitch, o.pivot_mode, o.distance, o.keyframe = sign * s.move_angle, 0.0, "AHEAD", s.orbit_distance, s.keyframe
    row = col.row(align=True)
    for sign, text in ((1, "Orbit ▲"), (-1, "Orbit ▼")):
        o = row.operator("anchorstage.camera_orbit", text=text)
        o.yaw, o.pitch, o.pivot_mode, o.distance, o.keyframe = 0.0, sign * s.move_angle, "AHEAD", s.orbit_distance, s.keyframe
    layout.label(text="Focal Length")
    row = layout.row(align=True)
    from anchorstage import FOCAL_PRESETS_MM

    for f in FOCAL_PRESETS_MM:
        op = row.operator("anchorstage.camera_focal_preset", text=f"{f:g}")
        op.lens, op.keyframe = f"{f:g}", s.keyframe
    layout.prop(s, "keyframe")


class ANCHORSTAGE_PT_camera(bpy.types.Panel):
    bl_label = "AnchorStage Camera"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AnchorStage"

    def draw(self, context):
        layout = self.layout
        cam = context.scene.camera
        if cam is None:
            layout.label(text="The scene has no camera", icon="ERROR")
            layout.operator("anchorstage.turntable_setup", icon="CON_ROTLIKE")
            return
        layout.label(text=f"{cam.name}: {cam.data.lens:.4g} mm / {cam.data.sensor_width:.4g} mm", icon="CAMERA_DATA")
        draw_meter(layout, context)
        draw_camera_moves(layout, context)
        layout.operator("anchorstage.turntable_setup", icon="CON_ROTLIKE")


_LEVEL_ICONS = {"green": "CHECKMARK", "yellow": "ERROR", "red": "CANCEL"}


def draw_meter(layout, context):
    """The shot's confidence (the meter follows the scene camera; see ``meter.py``)."""
    from . import meter

    s = context.scene.anchorstage
    box = layout.box()
    row = box.row()
    row.prop(s, "show_meter", text="Shot Confidence")
    if not s.show_meter:
        return
    state = meter.STATE.get(context.scene.name) or meter.update(context.scene)
    if state is None:
        box.label(text="No splat object with a witness", icon="INFO")
        return
    if state.get("error"):
        box.label(text=state["error"][:80], icon="ERROR")
        return
    c = state["confidence"]
    box.label(text=f"{c.value:.2f}  {c.level.upper()}", icon=_LEVEL_ICONS[c.level])
    col = box.column(align=True)
    col.label(text=f"Void {c.void_coverage:.1%} · depth {c.depth_confidence:.2f} · angle {c.angle_confidence:.2f}")
    col.label(text=f"View angle {c.mean_angle_deg:.1f}° · {state['ms']:.0f} ms at {meter.MAX_SIDE} px")
    row = box.row(align=True)
    row.operator("anchorstage.refresh_frame", icon="FILE_REFRESH")
    row.operator("anchorstage.show_confidence", text="Overlay", icon="IMAGE_DATA")


class ANCHORSTAGE_PT_splats(bpy.types.Panel):
    bl_label = "AnchorStage Splats"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "object"

    @classmethod
    def poll(cls, context):
        obj = context.object
        return obj is not None and obj.type == "MESH" and is_splat_mesh(obj.data)

    def draw(self, context):
        layout = self.layout
        obj = context.object
        shown, total = splat_object.display_counts(obj)
        layout.label(text=f"{total:,} splats")
        if splat_object.gaussians_drawn(obj):
            layout.label(text="Viewport draws every splat as a Gaussian (GPU)", icon="SHADING_RENDERED")
        elif shown < total:
            box = layout.box()
            box.label(text=f"Viewport shows a random {shown:,} of {total:,} splats", icon="INFO")
            box.label(text="(decimated above the display threshold; renders use all splats)")
        mod = obj.modifiers.get(splat_object.DISPLAY_MODIFIER)
        if mod is not None and mod.node_group is not None:
            for item in mod.node_group.interface.items_tree:
                if getattr(item, "in_out", "") == "INPUT" and item.socket_type != "NodeSocketGeometry":
                    layout.prop(mod, f'["{item.identifier}"]', text=item.name)
        items = getattr(obj.data, "anchorstage_regions", None)
        if items is not None and len(items):
            box = layout.box()
            box.label(text="Regions (locked: kept by refresh and generation)")
            col = box.column(align=True)
            for it in items:
                row = col.row(align=True)
                row.prop(it, "locked", text="", icon="LOCKED" if it.locked else "UNLOCKED")
                row.label(text=f"{it.region_id} ({it.label}, {it.index})")
        layout.operator("anchorstage.export_ply", icon="EXPORT").object_name = obj.name


class ANCHORSTAGE_PT_viewport(bpy.types.Panel):
    bl_label = "AnchorStage Viewport"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "AnchorStage"

    def draw(self, context):
        from . import viewport

        layout = self.layout
        s = context.scene.anchorstage
        layout.prop(s, "viewport_pass", text="Pass")
        layout.prop(s, "viewport_display", text="Display")
        prefs = viewport._prefs(context)
        if prefs is not None:
            col = layout.column(align=True)
            col.prop(prefs, "viewport_sort", text="Sort")
            col.prop(prefs, "sort_angle")
            col.prop(prefs, "sort_distance")
        stats = viewport.drawer_stats()
        if stats is not None and stats.splats:
            col = layout.column(align=True)
            col.label(text=f"{stats.splats:,} Gaussians, {stats.objects} object(s)")
            sort = f"sort: {stats.sort_device}" + (f", last {stats.last_sort_ms:.0f} ms" if stats.last_sort_ms else "")
            col.label(text=sort + (" (sorting…)" if stats.sorting else ""))
        if viewport.message():
            box = layout.box()
            box.alert = True
            box.label(text=viewport.message()[:120], icon="ERROR")


class ANCHORSTAGE_PT_passes(bpy.types.Panel):
    bl_label = "AnchorStage Passes"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "view_layer"
    COMPAT_ENGINES = {"ANCHORSTAGE"}

    @classmethod
    def poll(cls, context):
        return context.engine in cls.COMPAT_ENGINES

    def draw(self, context):
        layout = self.layout
        vl = context.view_layer
        layout.prop(vl, "use_pass_z", text="Depth (metres)")
        layout.prop(vl, "use_pass_normal", text="Normal (world)")
        layout.label(text="Always: Combined, Confidence, Void, Region")
        layout.prop(context.scene.anchorstage, "engine_output")
        layout.operator("anchorstage.setup_compositor", icon="NODE_COMPOSITING")
        layout.operator("anchorstage.import_exr", icon="IMAGE_DATA")


classes = (ANCHORSTAGE_PT_stage, ANCHORSTAGE_PT_camera, ANCHORSTAGE_PT_viewport, ANCHORSTAGE_PT_splats,
           ANCHORSTAGE_PT_passes)
register, unregister = bpy.utils.register_classes_factory(classes)
