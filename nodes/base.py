# SPDX-License-Identifier: GPL-3.0-or-later
"""What every AnchorStage node shares: the tree poll, the status/error display, the job contract.

A node subclass declares its sockets in ``init``, its parameters in ``job_params(context,
services)`` (a JSON-able dict read on the main thread, part of the cache key) and does its work
in the static ``compute(params, inputs, ctx)``: one call into the core's stage layer
(:mod:`anchorstage.stages`). Socket values are core types. Blender-side work (reading a camera
object, the splat object, previews, preferences) goes through the services the add-on hands
over: ``ctx.services`` in ``compute``, :func:`services` elsewhere. See :mod:`anchorstage.graph`.
"""

import os
import textwrap

import bpy

ERROR_COLOR = (0.75, 0.12, 0.12)
_SERVICES = [None]


def set_services(services) -> None:
    """Called by the add-on when it registers the nodes."""
    _SERVICES[0] = services


def services():
    """The add-on's Blender-side services (see ``blender_addon/services.py``)."""
    if _SERVICES[0] is None:
        raise RuntimeError("AnchorStage nodes are registered without the add-on's services")
    return _SERVICES[0]


class AnchorStageNode:
    """Mixin for the nodes of ``AnchorStageNodeTree`` (put before ``bpy.types.Node``)."""

    bl_width_default = 220
    #: input identifiers that must be linked for the node to run.
    required_inputs: tuple = ()
    #: run on every execution (the node writes Blender data the user may have changed).
    volatile = False

    as_state: bpy.props.EnumProperty(
        name="State",
        items=(("NONE", "Not run", ""), ("RAN", "Up to date", ""), ("CACHED", "Cached", ""),
               ("ERROR", "Error", ""), ("BLOCKED", "Waiting", "")),
        default="NONE")
    as_message: bpy.props.StringProperty(name="Message", description="The last run's error or notes")

    @classmethod
    def poll(cls, ntree):
        return ntree.bl_idname == "AnchorStageNodeTree"

    # ------------------------------------------------------------------ job contract
    def job_params(self, context, services) -> dict:
        return {}

    @staticmethod
    def compute(params, inputs, ctx) -> dict:  # pragma: no cover - every node overrides it
        raise NotImplementedError

    # ------------------------------------------------------------------ status
    def set_status(self, state: str, message: str = "") -> None:
        self.as_state = state
        self.as_message = message
        failed = state in ("ERROR",)
        self.use_custom_color = failed
        if failed:
            self.color = ERROR_COLOR

    def draw_status(self, layout) -> None:
        if self.as_state == "NONE" and not self.as_message:
            return
        box = layout.box()
        col = box.column(align=True)
        if self.as_state in ("ERROR", "BLOCKED"):
            col.alert = self.as_state == "ERROR"
            icon = "ERROR" if self.as_state == "ERROR" else "INFO"
        else:
            icon = "CHECKMARK" if self.as_state in ("RAN", "CACHED") else "NONE"
        lines = []
        for para in (self.as_message or dict(RAN="up to date", CACHED="cached", NONE="").get(self.as_state, "")).split("\n"):
            lines.extend(textwrap.wrap(para, 38) or [""])
        for i, line in enumerate(lines[:8]):
            col.label(text=line, icon=icon if i == 0 else "BLANK1")

    def draw_buttons(self, context, layout):
        self.draw_props(context, layout)
        self.draw_status(layout)

    def draw_props(self, context, layout) -> None:
        pass

    def draw_buttons_ext(self, context, layout):
        self.draw_buttons(context, layout)


def file_stamp(path: str) -> list:
    """[absolute path, size, mtime_ns] of a file (or [path, None, None] when absent) for cache keys."""
    if not path:
        return ["", None, None]
    p = bpy.path.abspath(path)
    try:
        st = os.stat(p)
    except OSError:
        return [p, None, None]
    return [os.path.normpath(p), st.st_size, st.st_mtime_ns]


def folder_stamp(path: str) -> list:
    """[absolute folder, [(name, size, mtime_ns), ...]] for cache keys: any added, removed or edited file counts."""
    if not path:
        return ["", []]
    p = os.path.normpath(bpy.path.abspath(path))
    try:
        entries = sorted((e.name, st.st_size, st.st_mtime_ns) for e in os.scandir(p) if e.is_file()
                         for st in (e.stat(),))
    except OSError:
        return [p, None]
    return [p, [list(e) for e in entries]]
