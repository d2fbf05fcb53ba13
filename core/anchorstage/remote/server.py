# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage serve``: the remote worker on the RunPod SDK's own local API server, with a guard.

The RunPod SDK serves a handler locally with ``--rp_serve_api``: its FastAPI app
(``runpod.serverless.modules.rp_fastapi.WorkerAPI``) offers ``/run``, ``/runsync`` and
``/status/{id}``, started with uvicorn. :func:`serve` starts that same app with an ASGI guard in
front (:class:`Guard`) that

* refuses to listen on anything but the loopback interface without an API key, and then wants the
  key in every request (``Authorization: Bearer KEY``, as RunPod's endpoints do);
* refuses bodies over the ``request_bytes`` limit (413) and malformed requests (400, one line naming
  what is wrong) before the handler sees them, and keeps serving;
* makes ``/status/{id}`` answer at once, as a RunPod endpoint does: the SDK's local server runs a job
  inside the first ``/status`` call (and would run it again on a second one); the guard starts the
  job when ``/run`` accepts it (through the SDK's own ``/status`` route), answers ``IN_QUEUE`` /
  ``IN_PROGRESS`` with ``{"progress", "message"}`` while it runs, and keeps the finished answer for
  later polls (:data:`KEEP_S` seconds, the last :data:`KEEP_N` jobs);
* adds ``/cancel/{id}`` and ``/health`` as RunPod's endpoints have them.

Deployed on RunPod the SDK's worker loop serves the handler instead (``python -m anchorstage.remote``
or ``anchorstage serve --runpod``: ``runpod.serverless.start``); RunPod's gateway holds the API key
and the status queue there.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import re
import time
from typing import Any, Awaitable, Callable, Optional

from ..errors import InputError, MissingDependencyError

__all__ = ["Guard", "serve", "start_runpod", "check_bind", "LOOPBACK", "KEEP_S", "KEEP_N", "API_KEY_ENV"]

#: Host names that mean the loopback interface.
LOOPBACK = ("127.0.0.1", "::1", "localhost")
#: Seconds a finished job's answer is kept for ``/status`` polls.
KEEP_S = 600.0
#: Finished answers kept at most (they can be large).
KEEP_N = 8
#: The environment variable holding the API key.
API_KEY_ENV = "ANCHORSTAGE_WORKER_API_KEY"
_MIN_KEY_CHARS = 16
_DRAIN_MAX = 1 << 30  # an oversized body is read and dropped up to this many bytes before the 413
_STATUS = re.compile(r"^/status/([A-Za-z0-9_.:-]{1,128})$")
_CANCEL = re.compile(r"^/cancel/([A-Za-z0-9_.:-]{1,128})$")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def check_bind(host: str, api_key: Optional[str]) -> None:
    """Refuse a non-loopback host without an API key (and keys too short to mean anything).

    Raises:
        InputError: the refusal, naming the host and what to do.
    """
    if not isinstance(host, str) or not host.strip():
        raise InputError("serve: --host must be a host name or address")
    if api_key is not None and len(api_key) < _MIN_KEY_CHARS:
        raise InputError(f"serve: the API key must be at least {_MIN_KEY_CHARS} characters")
    loop = host in LOOPBACK
    if not loop:
        try:
            loop = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = False
    if not loop and not api_key:
        raise InputError(f"serve: refusing to listen on {host!r} (reachable from other machines) without an API key; "
                         f"set --api-key or ${API_KEY_ENV}, or listen on 127.0.0.1")


class _Job:
    def __init__(self, task: "asyncio.Task[Any]") -> None:
        self.task = task
        self.status = 0
        self.body = b""
        self.finished: Optional[float] = None


class Guard:
    """ASGI middleware in front of the RunPod SDK's FastAPI app (see the module docstring).

    Args:
        app: the SDK's app (``WorkerAPI(config).rp_app``).
        api_key: the key every request must carry (None: no key; loopback only).
        max_bytes: the largest request body in bytes (default: the ``request_bytes`` limit).
    """

    def __init__(self, app: Any, api_key: Optional[str] = None, max_bytes: Optional[int] = None) -> None:
        from ..limits import limit

        self.app = app
        self.api_key = api_key or None
        self.max_bytes = int(max_bytes) if max_bytes else limit("request_bytes")
        self.jobs: dict[str, _Job] = {}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    async def _reply(send: Send, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode("utf-8")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: Scope) -> bool:
        if self.api_key is None:
            return True
        given = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1").strip()
        if given.lower().startswith("bearer "):
            given = given[7:].strip()
        return hmac.compare_digest(given.encode("utf-8"), self.api_key.encode("utf-8"))

    async def _body(self, scope: Scope, receive: Receive) -> Optional[bytes]:
        """The request body, or None when it is over ``max_bytes`` (checked before and while reading)."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                break
            chunk = msg.get("body", b"")
            total += len(chunk)
            too_big = too_big or total > self.max_bytes
            if too_big:
                chunks.clear()  # read on and drop: a client still sending gets the 413, not a broken pipe
                if total > _DRAIN_MAX:
                    break
            else:
                chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        return None if too_big else b"".join(chunks)

    @staticmethod
    def _replay(body: bytes) -> Receive:
        sent = [False]

        async def receive() -> dict[str, Any]:
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)  # no disconnect while the inner app works
            return {"type": "http.disconnect"}

        return receive

    async def _inner(self, scope: Scope, body: bytes, method: str, path: str) -> tuple[int, bytes]:
        """Call the SDK's app with ``method path`` and ``body``; its (status, body)."""
        inner_scope = dict(scope, method=method, path=path, raw_path=path.encode(), query_string=b"",
                           headers=[(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())])
        status, parts = [500], []

        async def capture(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
            elif msg["type"] == "http.response.body":
                parts.append(msg.get("body", b""))

        await self.app(inner_scope, self._replay(body), capture)
        return status[0], b"".join(parts)

    def _tidy(self) -> None:
        now = time.time()
        done = sorted((j.finished, k) for k, j in self.jobs.items() if j.finished is not None)
        for finished, k in done:
            if now - finished > KEEP_S:
                self.jobs.pop(k, None)
        for _, k in done[: max(0, len(done) - KEEP_N)]:
            self.jobs.pop(k, None)

    def _check_request(self, body: bytes) -> Optional[str]:
        """Why a /run or /runsync body is malformed (None when it is fine)."""
        from ..errors import AnchorStageError
        from ..safe_json import parse_json
        from .handler import check_input

        try:
            doc = parse_json(body, "request body")
            if not isinstance(doc, dict) or not isinstance(doc.get("input"), dict):
                raise InputError('request body must be a JSON object {"input": {"task": ..., ...}}')
            unknown = sorted(set(doc) - {"input", "webhook"})
            if unknown:
                raise InputError(f"request body: unknown key(s) {', '.join(map(repr, unknown))}")
            if doc.get("webhook") is not None:
                raise InputError("request body: webhooks are not sent by this worker (poll /status)")
            check_input(doc["input"])
        except AnchorStageError as e:
            return str(e)
        return None

    # ------------------------------------------------------------------ routes
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if not self._authorized(scope):
            await self._reply(send, 401, {"error": "missing or wrong API key (send 'Authorization: Bearer KEY')"})
            return
        self._tidy()
        body = b""
        if method in ("POST", "PUT", "PATCH"):
            got = await self._body(scope, receive)
            if got is None:
                await self._reply(send, 413, {"error": f"request body is larger than this worker accepts ({self.max_bytes:,} "
                                                       "bytes; the worker's ANCHORSTAGE_MAX_REQUEST_BYTES or --max-request-mb)"})
                return
            body = got
        if path in ("/run", "/runsync"):
            if method != "POST":
                await self._reply(send, 405, {"error": f"{path} takes POST"})
                return
            problem = self._check_request(body)
            if problem:
                await self._reply(send, 400, {"error": problem})
                return
            status, answer = await self._inner(scope, body, "POST", path)
            if path == "/run" and status == 200:
                job_id = json.loads(answer).get("id")
                if isinstance(job_id, str):
                    # start now, through the SDK's own /status route (it runs the handler)
                    self.jobs[job_id] = _Job(asyncio.ensure_future(self._drive(scope, job_id)))
                    answer = json.dumps({"id": job_id, "status": "IN_QUEUE"}).encode()
            await self._send_raw(send, status, answer)
            return
        m = _STATUS.match(path)
        if m and method in ("GET", "POST"):
            await self._status(send, m.group(1))
            return
        m = _CANCEL.match(path)
        if m and method == "POST":
            await self._cancel(send, m.group(1))
            return
        if path == "/health" and method == "GET":
            await self._health(send)
            return
        await self.app(scope, self._replay(body), send)

    async def _send_raw(self, send: Send, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _drive(self, scope: Scope, job_id: str) -> None:
        job = self.jobs.get(job_id)
        try:
            status, body = await self._inner(scope, b"", "POST", f"/status/{job_id}")
        except Exception as e:  # noqa: BLE001 - reported to the client as the job's failure
            status, body = 200, json.dumps({"id": job_id, "status": "FAILED", "error": f"worker error: {e}"}).encode()
        job = self.jobs.get(job_id, job)
        if job is not None:
            from .handler import job_state

            state = job_state(job_id)
            if state is not None and state["status"] == "CANCELLED":
                doc = json.loads(body)
                body = json.dumps({"id": job_id, "status": "CANCELLED", "error": doc.get("error", "cancelled")}).encode()
            job.status, job.body, job.finished = status, body, time.time()

    async def _status(self, send: Send, job_id: str) -> None:
        from .handler import job_state

        job = self.jobs.get(job_id)
        if job is None:
            await self._reply(send, 404, {"id": job_id, "status": "FAILED", "error": f"no job {job_id!r} on this worker "
                                                                                  "(unknown, or its result expired)"})
            return
        if job.finished is not None:
            await self._send_raw(send, job.status, job.body)
            return
        state = job_state(job_id) or {"status": "IN_QUEUE", "progress": 0.0, "message": "waiting for the worker"}
        status = state["status"] if state["status"] in ("IN_QUEUE", "IN_PROGRESS") else "IN_PROGRESS"
        await self._reply(send, 200, {"id": job_id, "status": status,
                                      "output": {"progress": state["progress"], "message": state["message"]}})

    async def _cancel(self, send: Send, job_id: str) -> None:
        from .handler import cancel_job

        job = self.jobs.get(job_id)
        if job is None:
            await self._reply(send, 404, {"id": job_id, "error": f"no job {job_id!r} on this worker"})
            return
        if job.finished is None and cancel_job(job_id):
            await self._reply(send, 200, {"id": job_id, "status": "CANCELLED"})
        else:
            await self._send_raw(send, job.status, job.body) if job.finished else \
                await self._reply(send, 200, {"id": job_id, "status": "IN_QUEUE"})

    async def _health(self, send: Send) -> None:
        from .handler import jobs_summary

        counts = jobs_summary()
        running = counts.get("IN_PROGRESS", 0)
        await self._reply(send, 200, {"jobs": {"inQueue": counts.get("IN_QUEUE", 0), "inProgress": running,
                                               "completed": counts.get("COMPLETED", 0), "failed": counts.get("FAILED", 0),
                                               "cancelled": counts.get("CANCELLED", 0)},
                                      "workers": {"running": min(1, running), "idle": 1 - min(1, running)}})


def _quiet_sdk() -> None:
    """The SDK logs every handler output at its default DEBUG level: megabytes of base64 per job."""
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")


def _runpod_app() -> Any:
    _quiet_sdk()
    try:
        from runpod.serverless.modules.rp_fastapi import WorkerAPI
    except ImportError as e:
        raise MissingDependencyError(f"the remote worker needs the RunPod SDK: pip install 'anchorstage[worker]' ({e})") from None
    from .handler import handler

    return WorkerAPI({"handler": handler, "rp_args": {}})


def serve(host: str = "127.0.0.1", port: int = 8000, *, api_key: Optional[str] = None,
          max_bytes: Optional[int] = None) -> None:
    """Serve the handler on the RunPod SDK's local API server behind :class:`Guard` (blocks).

    Args:
        host: the interface to listen on (loopback unless an API key is given).
        port: the TCP port.
        api_key: the key requests must carry (default ``$ANCHORSTAGE_WORKER_API_KEY``).
        max_bytes: the largest request body (default: the ``request_bytes`` limit).

    Raises:
        InputError: a non-loopback host without an API key, a bad port.
        MissingDependencyError: the RunPod SDK is not installed.
    """
    api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
    check_bind(host, api_key)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InputError(f"serve: --port must be in 1..65535 (got {port!r})")
    api = _runpod_app()
    app = api.rp_app
    app.add_middleware(Guard, api_key=api_key, max_bytes=max_bytes)
    print(f"AnchorStage worker on http://{host}:{port} (RunPod serverless contract: /run, /runsync, /status/ID, "
          f"/cancel/ID, /health){'; API key required' if api_key else ''}", flush=True)
    api.start_uvicorn(api_host=host, api_port=port, api_concurrency=1)


def start_runpod() -> None:
    """Run as a RunPod serverless worker: ``runpod.serverless.start({"handler": handler})`` (blocks; the SDK
    reads its own ``--rp_*`` / ``--test_input`` arguments from ``sys.argv``)."""
    _quiet_sdk()
    try:
        import runpod
    except ImportError as e:
        raise MissingDependencyError(f"the remote worker needs the RunPod SDK: pip install 'anchorstage[worker]' ({e})") from None
    from .handler import handler

    runpod.serverless.start({"handler": handler})
