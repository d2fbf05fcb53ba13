# SPDX-License-Identifier: GPL-3.0-or-later
"""Bridge between an ``AnchorStageNodeTree`` and the core's executor (:mod:`anchorstage.graph`).

``run_tree`` reads every node's parameters on the main thread, builds the job graph (following
reroutes, ignoring muted nodes and invalid links), runs it with the tree's own
:class:`~anchorstage.graph.Executor` (whose cache survives between runs) and the add-on's
services, and writes each node's state and message back onto the node. It never raises for a
failing node.
"""

from __future__ import annotations

from typing import Callable, Optional

import bpy

from anchorstage.graph import Executor, GraphError, Job, Link, RunReport

from .base import services as registered_services

_EXECUTORS: dict[str, Executor] = {}


def _tree_key(tree) -> str:
    return f"{getattr(tree, 'session_uid', 0)}:{tree.name}"


def executor_for(tree) -> Executor:
    """The executor (and cache) that belongs to ``tree``."""
    return _EXECUTORS.setdefault(_tree_key(tree), Executor())


def clear_caches() -> None:
    _EXECUTORS.clear()


def _is_stage_node(node) -> bool:
    return callable(getattr(type(node), "compute", None)) and hasattr(node, "job_params")


_INVALID = object()


def _source_of(socket):
    """(node, socket) feeding an input socket, through reroutes; None when unlinked/muted;
    ``_INVALID`` when Blender marked a link invalid (it closes a cycle)."""
    seen = 0
    while socket.is_linked and seen < 64:
        link = socket.links[0]
        if link.is_muted:
            return None
        if not link.is_valid:
            return _INVALID
        node = link.from_node
        if node.bl_idname == "NodeReroute":
            socket = node.inputs[0]
            seen += 1
            continue
        return node, link.from_socket
    return None


def build_jobs(tree, context, services) -> tuple[dict[str, Job], dict[str, str]]:
    """Jobs for the tree's stage nodes, and node name → problem for nodes that cannot run."""
    jobs: dict[str, Job] = {}
    problems: dict[str, str] = {}
    for node in tree.nodes:
        if not _is_stage_node(node) or node.mute:
            continue
        inputs = {}
        for sock in node.inputs:
            src = _source_of(sock)
            if src is None:
                continue
            if src is _INVALID:
                problems[node.name] = f"the link into {sock.name!r} is invalid: the node links form a cycle"
                continue
            from_node, from_socket = src
            if not _is_stage_node(from_node) or from_node.mute:
                continue
            if from_socket.bl_idname != sock.bl_idname:
                problems[node.name] = (f"input {sock.name!r} is linked to {from_node.name!r}.{from_socket.name} "
                                       f"of another type")
                continue
            inputs[sock.identifier] = Link(from_node.name, from_socket.identifier)
        try:
            params = node.job_params(context, services)
        except Exception as e:  # noqa: BLE001 - shown on the node
            problems[node.name] = f"cannot read parameters: {e}"
            params = {}
        jobs[node.name] = Job(key=node.name, kind=node.bl_idname, run=type(node).compute, params=params,
                              inputs=inputs, required=tuple(node.required_inputs), volatile=node.volatile,
                              label=node.name)
    return jobs, problems


def run_tree(tree, context=None, *, targets: Optional[list[str]] = None,
             progress: Optional[Callable[[float, str], None]] = None, force: bool = False, services=None) -> RunReport:
    """Execute ``tree`` and mark every node with its result. Returns the executor's report.

    ``services`` (default: the ones the add-on registered) reach every job as ``ctx.services``.
    A malformed graph (a cycle) is reported as an error on every node of the cycle's tree and
    returned as a report with ``errors``; nothing is raised.
    """
    context = context or bpy.context
    services = services or registered_services()
    jobs, problems = build_jobs(tree, context, services)
    for name, msg in problems.items():
        def failing(params, inputs, ctx, _msg=msg):
            from anchorstage import InputError

            raise InputError(_msg)
        # Run the failing stand-in whatever its inputs, so the problem is shown on this node.
        jobs[name].run, jobs[name].required, jobs[name].inputs = failing, (), {}
    try:
        report = executor_for(tree).run(jobs, targets=targets, progress=progress, force=force, services=services)
    except GraphError as e:
        report = RunReport(errors={k: str(e) for k in jobs})
    for node in tree.nodes:
        if node.name not in jobs:
            continue
        notes = "\n".join(report.notes.get(node.name, []))
        status = report.status(node.name)
        if status == "error":
            node.set_status("ERROR", report.errors[node.name] + (f"\n{notes}" if notes else ""))
        elif status == "blocked":
            node.set_status("BLOCKED", report.blocked[node.name])
        elif status == "ran":
            node.set_status("RAN", notes)
        elif status == "cached":
            node.set_status("CACHED", node.as_message if node.as_state in ("RAN", "CACHED") else "cached")
    return report


def node_outputs(tree, node_name: str) -> Optional[dict]:
    """The cached outputs of a node after a run (None when it has not run)."""
    return executor_for(tree).cached_outputs(node_name)
