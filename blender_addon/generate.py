# SPDX-License-Identifier: GPL-3.0-or-later
"""Generation off the UI thread: the Generate node's job on a background thread, its progress per
diffusion step shown while Blender stays usable, Esc to cancel, the result applied on the main thread.

:class:`GenerateJob` brings the node's inputs up to date on the main thread (the tree's own run:
cached nodes cost nothing), then runs the node's ``compute`` on a thread with a cancel flag (the node
writes no Blender data there) and keeps its progress. :meth:`GenerateJob.finish`, on the main thread,
caches the outputs in the tree's executor (so Execute sees the node up to date), marks the node and
shows the frame (image, compositor). ``anchorstage.generate`` is the operator: modal with a timer in
the UI, blocking under ``blender -b`` and from scripts (``execute``).
"""

from __future__ import annotations

import threading

import bpy

from . import stage

_ACTIVE: list = [None]  # one generation at a time


class GenerateJob:
    """One Generate node run in the background (create and :meth:`finish` on the main thread).

    Raises:
        ValueError: no such tree or node, or its inputs failed (the message says which).
    """

    def __init__(self, context, tree, node_name: str, *, force: bool = False) -> None:
        from .nodes import runner
        from .nodes.base import services

        node = tree.nodes.get(node_name)
        if node is None or node.bl_idname != "AnchorStageGenerateNode":
            raise ValueError(f"tree {tree.name!r} has no Generate node {node_name!r}")
        self.tree, self.node_name = tree, node_name
        self.services = services()
        jobs, problems = runner.build_jobs(tree, context, self.services)
        if node_name in problems:
            raise ValueError(problems[node_name])
        self.job = jobs[node_name]
        missing = [s for s in self.job.required if s not in self.job.inputs]
        if missing:
            raise ValueError(f"{node_name}: input {', '.join(map(repr, missing))} is not connected")
        # the inputs, brought up to date in line (cached nodes cost nothing; a refresh takes seconds)
        upstream = sorted({link.source for link in self.job.inputs.values()})
        report = stage.run_with_progress(tree, context, targets=upstream) if upstream else None
        if report is not None and (report.errors or report.blocked):
            first, msg = next(iter({**report.blocked, **report.errors}.items()))
            raise ValueError(f"{first}: {msg}")
        self.executor = runner.executor_for(tree)
        order = self.executor.plan(jobs, [node_name])
        self.input_hash = self.executor.input_hashes(jobs, order)[node_name]
        outputs = report.outputs if report is not None else {}
        self.inputs = {sock: outputs[link.source][link.socket] for sock, link in self.job.inputs.items()}
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self.fraction, self.message = 0.0, "starting"
        self.history: list[tuple[float, str]] = []
        self.outputs, self.error, self.notes = None, None, []
        self.cached = not force and self.executor.cached_hash(node_name) == self.input_hash
        self._thread = None
        if self.cached:
            self.outputs = self.executor.cached_outputs(node_name)
            self.message = "cached"
        else:
            self._thread = threading.Thread(target=self._run, name="anchorstage-generate", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ background thread
    def _progress(self, fraction: float, message: str = "") -> None:
        with self._lock:
            self.fraction, self.message = float(fraction), message or self.message
            self.history.append((self.fraction, self.message))

    def _run(self) -> None:
        from anchorstage.errors import error_message
        from anchorstage.graph import RunContext

        ctx = RunContext(key=self.node_name, input_hash=self.input_hash, progress=self._progress,
                         services=self.services, cancel=self._cancel.is_set)
        try:
            self.outputs = dict(self.job.run(self.job.params, self.inputs, ctx))
        except Exception as e:  # noqa: BLE001 - shown on the node, never raised into Blender
            self.error = error_message(e, f"node {self.node_name!r}")
        self.notes = list(ctx.notes)

    # ------------------------------------------------------------------ main thread
    @property
    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def progress(self) -> tuple[float, str]:
        with self._lock:
            return self.fraction, self.message

    def cancel(self) -> None:
        """Ask the job to stop at its next diffusion step (a remote job is cancelled on the worker)."""
        self._cancel.set()

    def wait(self, timeout_s: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.done

    def finish(self) -> tuple[bool, str]:
        """Cache and show the result, mark the node (main thread, once done). Returns (ok, message)."""
        node = self.tree.nodes.get(self.node_name)
        if self.error is not None:
            if node is not None:
                node.set_status("ERROR", self.error)
            return False, self.error
        gen = self.outputs["generation"]
        if not self.cached:
            self.executor.remember(self.node_name, self.input_hash, self.outputs)
        params = self.job.params
        self.services.show_generation(gen, params["preview"], params["to_compositor"])
        message = "\n".join(self.notes) or (node.as_message if node is not None else "")
        if node is not None:
            node.set_status("CACHED" if self.cached else "RAN", message)
        return True, message


def _find(context, tree_name: str, node_name: str):
    tree = stage.stage_tree(context, tree_name)
    if tree is None:
        raise ValueError(f"no AnchorStage tree {tree_name!r}" if tree_name else "no AnchorStage tree")
    if not node_name:
        gens = [n.name for n in tree.nodes if n.bl_idname == "AnchorStageGenerateNode"]
        if len(gens) != 1:
            raise ValueError(f"tree {tree.name!r} has {len(gens)} Generate nodes; name one (node=...)")
        node_name = gens[0]
    return tree, node_name


class ANCHORSTAGE_OT_generate(bpy.types.Operator):
    """Generate the frame of a Generate node in the background: progress per diffusion step, Blender stays
    usable, Esc cancels; the result lands in the node's image (and the compositor on request)"""

    bl_idname = "anchorstage.generate"
    bl_label = "Generate Frame"
    bl_options = {"REGISTER"}

    tree: bpy.props.StringProperty(name="Tree", default="", description="Tree name; empty: the scene's stage tree")
    node: bpy.props.StringProperty(name="Node", default="", description="Generate node; empty: the tree's only one")
    force: bpy.props.BoolProperty(name="Force", default=False, description="Generate again even when up to date")

    _job = None
    _timer = None

    def _start(self, context) -> bool:
        if _ACTIVE[0] is not None and not _ACTIVE[0].done:
            self.report({"ERROR"}, "Generate: a generation is already running (Esc in its window cancels it)")
            return False
        try:
            tree, name = _find(context, self.tree, self.node)
            self._job = GenerateJob(context, tree, name, force=self.force)
        except Exception as e:  # noqa: BLE001 - reported, never raised into Blender
            from anchorstage.errors import error_message

            self.report({"ERROR"}, f"Generate: {error_message(e, 'anchorstage.generate')}")
            return False
        _ACTIVE[0] = self._job
        return True

    def _end(self, context) -> set:
        ok, message = self._job.finish()
        _ACTIVE[0] = None
        for area in getattr(context.screen, "areas", None) or []:
            area.tag_redraw()
        if not ok:
            self.report({"ERROR"}, f"Generate: {message}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Generate: {message.splitlines()[0] if message else 'done'}")
        return {"FINISHED"}

    # -------------------------------------------------------------- blocking (scripts, background)
    def execute(self, context):
        if not self._start(context):
            return {"CANCELLED"}
        last = -1.0
        while not self._job.wait(0.2):
            f, msg = self._job.progress()
            if bpy.app.background and (f - last >= 0.1 or msg.startswith("diffusion step")):
                last = f
                print(f"AnchorStage generate: {100 * f:5.1f}% {msg}", flush=True)
        return self._end(context)

    # -------------------------------------------------------------- modal (the UI stays responsive)
    def invoke(self, context, event):
        if not self._start(context):
            return {"CANCELLED"}
        if self._job.done:
            return self._end(context)
        wm = context.window_manager
        wm.progress_begin(0, 1000)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        f, msg = self._job.progress()
        context.window_manager.progress_update(int(1000 * f))
        node = self._job.tree.nodes.get(self._job.node_name)
        if node is not None:
            node.as_state, node.as_message = "BLOCKED", f"{100 * f:.0f}% {msg} (Esc cancels)"
        if context.area is not None:
            context.area.header_text_set(f"AnchorStage Generate: {100 * f:.0f}% {msg}  (Esc to cancel)")
        for area in getattr(context.screen, "areas", None) or []:
            if area.type in ("NODE_EDITOR", "IMAGE_EDITOR"):
                area.tag_redraw()
        if not self._job.done:
            return {"PASS_THROUGH"}
        self._cleanup(context)
        return self._end(context)

    def _cleanup(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.area is not None:
            context.area.header_text_set(None)

    def cancel(self, context):
        if self._job is not None:
            self._job.cancel()
        self._cleanup(context)
        _ACTIVE[0] = None


classes = (ANCHORSTAGE_OT_generate,)
register, unregister = bpy.utils.register_classes_factory(classes)
