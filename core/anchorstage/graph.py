# SPDX-License-Identifier: GPL-3.0-or-later
"""The node-graph executor (no ``bpy``): runs a graph of stage jobs with caching.

Blender never runs Python nodes by itself, so the add-on turns its node tree into a list
of :class:`Job` objects (one per node) and hands them to :class:`Executor`, which

* sorts them topologically (a cycle is reported, not followed),
* gives each job an *input hash*: a SHA-256 over the job's kind, its parameters and the
  input hashes of the jobs feeding it (a Merkle chain, so no tensor is ever hashed),
* reuses the cached outputs of a job whose input hash has not changed (moving the render
  camera changes only the render job's hash; reconstruction is not redone),
* runs the rest in order, reporting overall progress as ``progress(fraction, message)``,
* catches a failing job's exception, records its message against that job and skips the
  jobs downstream of it (they are reported as blocked), so nothing raises into Blender.

A job's ``run`` is called as ``run(params, inputs, ctx)`` where ``inputs`` maps input socket
names to upstream output values (core types: ``Photo``, ``Camera``, ``DepthEstimate``, ``Scene``,
``Frame``) and ``ctx`` is a :class:`RunContext` (progress, input hash, notes, and the caller's
``services``: what the host application offers a job, e.g. the add-on's Blender-side services).
It returns a dict of output socket name to value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from .errors import error_message
from .progress import ProgressFn

__all__ = ["Job", "Link", "RunContext", "RunReport", "Executor", "GraphError", "fingerprint", "topological_order"]


class GraphError(Exception):
    """The graph itself is malformed (a cycle, a link to an unknown job)."""


@dataclass(frozen=True)
class Link:
    """An input socket fed by ``source``'s output socket ``socket``."""

    source: str
    socket: str


@dataclass
class Job:
    """One node to run.

    Attributes:
        key: unique name (the node's name).
        kind: what it does (the node's ``bl_idname``); part of the input hash.
        run: ``run(params, inputs, ctx) -> dict`` of outputs.
        params: JSON-serialisable parameters (part of the input hash).
        inputs: input socket name → :class:`Link`. Unlinked optional inputs are simply absent.
        required: input socket names that must be linked.
        volatile: run every time, even when the input hash is unchanged (outputs into Blender data
            that the user may have deleted); ``ctx.input_hash`` still lets ``run`` skip cheap no-ops.
        label: human-readable name for messages.
    """

    key: str
    kind: str
    run: Callable[[Mapping[str, Any], Mapping[str, Any], "RunContext"], Mapping[str, Any]]
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Link] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    volatile: bool = False
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.key


@dataclass
class RunContext:
    """What a job's ``run`` receives besides its parameters and inputs.

    ``cancel`` is set when the job runs off the host's main thread (a Blender background job): the
    job checks it between steps and writes no host data (the caller applies its outputs on the
    main thread).
    """

    key: str
    input_hash: str
    progress: ProgressFn
    notes: list[str] = field(default_factory=list)
    services: Any = None
    cancel: Optional[Callable[[], bool]] = None

    def note(self, message: str) -> None:
        """A human-readable note to show on the node (what was assumed, resampled, skipped)."""
        self.notes.append(str(message))

    def report(self, fraction: float, message: str = "") -> None:
        self.progress(min(1.0, max(0.0, float(fraction))), message)


@dataclass
class RunReport:
    """The outcome of :meth:`Executor.run`.

    Attributes:
        order: job keys in the order they were considered.
        ran: keys whose ``run`` was called and succeeded.
        cached: keys whose outputs came from the cache.
        errors: key → message of the jobs that failed.
        blocked: key → message of the jobs skipped because an input failed or is missing.
        outputs: key → outputs (for ran and cached jobs).
        hashes: key → input hash.
        notes: key → notes the job's ``run`` left with ``ctx.note`` (for jobs that ran).
    """

    order: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.blocked

    def status(self, key: str) -> str:
        """``"ran"``, ``"cached"``, ``"error"``, ``"blocked"`` or ``"skipped"``."""
        if key in self.errors:
            return "error"
        if key in self.blocked:
            return "blocked"
        if key in self.ran:
            return "ran"
        if key in self.cached:
            return "cached"
        return "skipped"

    def summary(self) -> str:
        parts = [f"{len(self.ran)} ran", f"{len(self.cached)} cached"]
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        if self.blocked:
            parts.append(f"{len(self.blocked)} blocked")
        return ", ".join(parts)


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return "nan"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    # numpy scalars / arrays, paths: fall back to their list or string form.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _canonical(tolist())
    return str(value)


def fingerprint(*parts: Any) -> str:
    """SHA-256 hex digest of JSON-canonicalised ``parts``."""
    blob = json.dumps(_canonical(list(parts)), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def topological_order(jobs: Mapping[str, Job]) -> list[str]:
    """Job keys with every job after the jobs feeding it (stable: ties keep insertion order).

    Raises:
        GraphError: a link names an unknown job, or the links form a cycle.
    """
    deps: dict[str, set[str]] = {}
    for key, job in jobs.items():
        d = set()
        for sock, link in job.inputs.items():
            if link.source not in jobs:
                raise GraphError(f"{job.name}: input {sock!r} is linked to unknown node {link.source!r}")
            d.add(link.source)
        deps[key] = d
    order: list[str] = []
    done: set[str] = set()
    pending = list(jobs)
    while pending:
        progressed = False
        rest = []
        for key in pending:
            if deps[key] <= done:
                order.append(key)
                done.add(key)
                progressed = True
            else:
                rest.append(key)
        if not progressed:
            names = ", ".join(jobs[k].name for k in rest)
            raise GraphError(f"the node links form a cycle through: {names}")
        pending = rest
    return order


class Executor:
    """Runs job graphs, caching each job's outputs by its input hash.

    One executor per node tree: its cache survives between runs. ``max_entries`` bounds the
    cache (least recently used entries are dropped); only the latest result per job key is kept.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self._cache: dict[str, tuple[str, dict[str, Any]]] = {}
        self.max_entries = max_entries

    # -------------------------------------------------------------------------------- cache
    def clear(self, key: Optional[str] = None) -> None:
        """Forget everything, or one job's cached outputs."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def cached_outputs(self, key: str) -> Optional[dict[str, Any]]:
        entry = self._cache.get(key)
        return None if entry is None else entry[1]

    def cached_hash(self, key: str) -> Optional[str]:
        entry = self._cache.get(key)
        return None if entry is None else entry[0]

    def remember(self, key: str, input_hash: str, outputs: dict[str, Any]) -> None:
        """Cache the outputs of a job that ran outside :meth:`run` (a background job) under its input hash."""
        self._store(key, input_hash, dict(outputs))

    def _store(self, key: str, h: str, outputs: dict[str, Any]) -> None:
        self._cache.pop(key, None)
        self._cache[key] = (h, outputs)
        while len(self._cache) > self.max_entries:
            self._cache.pop(next(iter(self._cache)))

    # -------------------------------------------------------------------------------- run
    def plan(self, jobs: Mapping[str, Job], targets: Optional[list[str]] = None) -> list[str]:
        """The topological order restricted to ``targets`` and everything upstream of them."""
        order = topological_order(jobs)
        if targets is None:
            return order
        unknown = [t for t in targets if t not in jobs]
        if unknown:
            raise GraphError(f"unknown node(s): {', '.join(unknown)}")
        need: set[str] = set()
        stack = list(targets)
        while stack:
            k = stack.pop()
            if k in need:
                continue
            need.add(k)
            stack.extend(link.source for link in jobs[k].inputs.values())
        return [k for k in order if k in need]

    def input_hashes(self, jobs: Mapping[str, Job], order: list[str]) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for key in order:
            job = jobs[key]
            upstream = {sock: [hashes.get(link.source, "?"), link.socket] for sock, link in job.inputs.items()}
            hashes[key] = fingerprint(job.kind, job.params, upstream)
        return hashes

    def run(self, jobs: Mapping[str, Job], targets: Optional[list[str]] = None,
            progress: Optional[ProgressFn] = None, force: bool = False, services: Any = None) -> RunReport:
        """Run ``jobs`` (or only what ``targets`` need).

        Args:
            jobs: key → Job.
            targets: job keys to bring up to date (default: all).
            progress: ``progress(fraction, message)`` over the whole run.
            force: ignore the cache (re-run everything planned).
            services: handed to every job as ``ctx.services``.

        Returns:
            RunReport. Never raises for a failing job; raises :class:`GraphError` only for a
            malformed graph (cycle, unknown link), before anything runs.
        """
        report = RunReport()
        order = self.plan(jobs, targets)
        hashes = self.input_hashes(jobs, order)
        report.order, report.hashes = order, hashes
        prog = progress or (lambda f, m="": None)

        to_run = [k for k in order if force or jobs[k].volatile or self.cached_hash(k) != hashes[k]]
        n = max(1, len(to_run))
        done = 0
        failed: set[str] = set()
        prog(0.0, "starting")
        for key in order:
            job = jobs[key]
            bad_inputs = [s for s, link in job.inputs.items() if link.source in failed]
            if bad_inputs:
                report.blocked[key] = f"not run: input {', '.join(repr(s) for s in bad_inputs)} failed upstream"
                failed.add(key)
                continue
            missing = [s for s in job.required if s not in job.inputs]
            if missing:
                report.blocked[key] = f"input {', '.join(repr(s) for s in missing)} is not connected"
                failed.add(key)
                continue
            if key not in to_run:
                report.cached.append(key)
                report.outputs[key] = self._cache[key][1]
                continue
            inputs: dict[str, Any] = {}
            for sock, link in job.inputs.items():
                up = report.outputs.get(link.source, {})
                if link.socket not in up:
                    report.blocked[key] = f"input {sock!r}: {jobs[link.source].name} gave no {link.socket!r} output"
                    failed.add(key)
                    break
                inputs[sock] = up[link.socket]
            else:
                base = done / n

                def sub(f: float, m: str = "", _base=base, _name=job.name) -> None:
                    prog(_base + min(1.0, max(0.0, f)) / n, f"{_name}: {m}" if m else _name)

                ctx = RunContext(key=key, input_hash=hashes[key], progress=sub, services=services)
                sub(0.0, "")
                try:
                    try:
                        outputs = job.run(job.params, inputs, ctx)
                    finally:
                        report.notes[key] = list(ctx.notes)
                    if outputs is None:
                        outputs = {}
                    if not isinstance(outputs, Mapping):
                        raise TypeError(f"{job.name} returned {type(outputs).__name__}, not a dict of outputs")
                    outputs = dict(outputs)
                except Exception as exc:  # noqa: BLE001 - every failure is reported on its node
                    msg = error_message(exc, f"node {job.name!r}")
                    report.errors[key] = msg
                    failed.add(key)
                    self._cache.pop(key, None)
                else:
                    report.ran.append(key)
                    report.outputs[key] = outputs
                    self._store(key, hashes[key], outputs)
                done += 1
                prog(done / n, f"{job.name}: done")
        prog(1.0, report.summary())
        return report
