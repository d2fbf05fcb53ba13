# SPDX-License-Identifier: GPL-3.0-or-later
"""Client of the remote GPU worker (the RunPod serverless contract), standard library only (``urllib``).

It talks to ``anchorstage serve`` on another computer or to a RunPod serverless endpoint
(``https://api.runpod.ai/v2/ENDPOINT_ID``): ``POST /run`` submits a job, ``GET /status/{id}`` is polled
for its progress (``{"progress", "message"}`` while it runs) and its output, ``POST /cancel/{id}``
stops it. Every failure becomes one :class:`WorkerError` line that says what happened and what to
check: the worker cannot be reached, refused the API key, found the request too large or malformed,
failed the job, or did not finish in time.

No ``bpy`` here: the add-on runs it on a background thread, and tests import it as a plain module.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional

__all__ = ["WorkerError", "WorkerClient", "FINAL_STATES"]

FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
_MAX_MISSES = 3  # consecutive status polls lost to the network before a job is given up


class WorkerError(Exception):
    """A remote job could not be run (one line for the user)."""


class WorkerClient:
    """A remote worker at ``url``.

    Args:
        url: ``http(s)://host:port`` of ``anchorstage serve``, or a RunPod endpoint's base URL.
        api_key: sent as ``Authorization: Bearer KEY`` (empty: none).
        request_timeout_s: seconds one HTTP request may take (connect and answer).
        poll_s: seconds between two ``/status`` polls.
    """

    def __init__(self, url: str, api_key: str = "", request_timeout_s: float = 30.0, poll_s: float = 0.5) -> None:
        parsed = urllib.parse.urlparse(str(url).strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise WorkerError(f"worker URL {url!r} must look like http://HOST:PORT (or a RunPod endpoint's https URL)")
        self.url = str(url).strip().rstrip("/")
        self.api_key = api_key or ""
        self.request_timeout_s = float(request_timeout_s)
        self.poll_s = float(poll_s)

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        where = f"remote worker {self.url}"
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            detail = _error_text(e.read())
            if e.code in (401, 403):
                raise WorkerError(f"{where} refused the API key ({e.code}): check the worker's key in the "
                                  "preferences") from None
            if e.code == 413:
                raise WorkerError(f"{where}: the request is too large ({detail or 'payload too large'}); lower the "
                                  "resolution or raise the worker's limit") from None
            if e.code == 404 and path.startswith("/status/"):
                raise WorkerError(f"{where} no longer knows the job ({detail or 'not found'})") from None
            raise WorkerError(f"{where} answered {e.code}: {detail or e.reason}") from None
        except urllib.error.URLError as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise WorkerError(f"{where} did not answer within {self.request_timeout_s:g} s") from None
            if data is not None and isinstance(reason, (BrokenPipeError, ConnectionResetError)):
                raise WorkerError(f"{where} closed the connection while the request ({len(data):,} bytes) was sent: "
                                  "it may be larger than the worker accepts") from None
            raise WorkerError(f"cannot reach the {where} ({reason}); is `anchorstage serve` running there, and is "
                              "the URL right?") from None
        except (socket.timeout, TimeoutError):
            raise WorkerError(f"{where} did not answer within {self.request_timeout_s:g} s") from None
        except OSError as e:
            raise WorkerError(f"cannot reach the {where} ({e})") from None
        try:
            return json.loads(body)
        except ValueError:
            raise WorkerError(f"{where} answered something that is not JSON ({body[:80]!r})") from None

    # ------------------------------------------------------------------ the contract
    def health(self) -> dict:
        """``GET /health``: job and worker counts."""
        return self._request("GET", "/health")

    def submit(self, job_input: dict) -> str:
        """``POST /run``; returns the job id."""
        answer = self._request("POST", "/run", {"input": job_input})
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise WorkerError(f"remote worker {self.url} did not return a job id ({str(answer)[:120]})")
        return job_id

    def status(self, job_id: str) -> dict:
        """``GET /status/{id}`` (``POST`` for servers that only take that, like the SDK's bare local server)."""
        path = f"/status/{urllib.parse.quote(job_id, safe='')}"
        try:
            answer = self._request("GET", path)
        except WorkerError as e:
            if "answered 405" not in str(e):
                raise
            answer = self._request("POST", path, {})
        if not isinstance(answer, dict) or "status" not in answer:
            raise WorkerError(f"remote worker {self.url}: malformed status answer ({str(answer)[:120]})")
        return answer

    def cancel(self, job_id: str) -> None:
        """``POST /cancel/{id}`` (best effort: a failure to cancel is not an error)."""
        try:
            self._request("POST", f"/cancel/{urllib.parse.quote(job_id, safe='')}", {})
        except WorkerError:
            pass

    def run(self, job_input: dict, *, progress: Optional[Callable[[float, str], None]] = None,
            cancelled: Optional[Callable[[], bool]] = None, timeout_s: float = 3600.0) -> dict:
        """Submit a job and poll ``/status`` until it ends.

        Args:
            job_input: the job's ``input``.
            progress: called with (fraction, message) from the worker's progress reports.
            cancelled: polled between status requests; True cancels the job on the worker.
            timeout_s: give up (and cancel the job) after this many seconds.

        Returns:
            The job's ``output``.

        Raises:
            WorkerError: unreachable worker, refused key, bad request, failed, cancelled or timed-out job.
        """
        job_id = self.submit(job_input)
        start = time.monotonic()
        misses = 0
        while True:
            if cancelled is not None and cancelled():
                self.cancel(job_id)
                raise WorkerError("cancelled")
            if time.monotonic() - start > timeout_s:
                self.cancel(job_id)
                raise WorkerError(f"remote worker {self.url}: the job did not finish within {timeout_s:g} s "
                                  "(cancelled; raise the timeout in the preferences for long jobs)")
            try:
                answer = self.status(job_id)
                misses = 0
            except WorkerError as e:
                # a poll lost on a flaky network is retried a few times; the job keeps running meanwhile
                transient = str(e).startswith("cannot reach") or "did not answer" in str(e)
                misses = misses + 1 if transient else _MAX_MISSES
                if misses >= _MAX_MISSES:
                    raise
                time.sleep(self.poll_s * 2 ** misses)
                continue
            state = answer.get("status")
            if state == "COMPLETED":
                output = answer.get("output")
                if not isinstance(output, dict):
                    raise WorkerError(f"remote worker {self.url}: the job returned no output")
                return output
            if state in FINAL_STATES:
                raise WorkerError(f"remote worker {self.url}: job {state.lower().replace('_', ' ')}: "
                                  f"{_error_text(answer.get('error')) or 'no reason given'}")
            out = answer.get("output")
            if progress is not None and isinstance(out, dict) and isinstance(out.get("progress"), (int, float)):
                progress(float(out["progress"]), str(out.get("message", "")))
            elif progress is not None:
                progress(0.0, f"{str(state).lower().replace('_', ' ')} on the worker "
                              f"({time.monotonic() - start:.0f} s)")
            time.sleep(self.poll_s)


def _error_text(raw: Any) -> str:
    """One line from an error body or field (JSON ``{"error": ...}`` / ``{"detail": ...}`` or text)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = raw.decode("utf-8", "replace")
    if isinstance(raw, dict):
        raw = raw.get("error") or raw.get("detail") or raw
    if isinstance(raw, str):
        try:  # RunPod's SDK wraps a handler exception as JSON text with error_message
            inner = json.loads(raw)
            if isinstance(inner, dict) and inner.get("error_message"):
                raw = f"{inner.get('error_type', 'error')}: {inner['error_message']}"
        except ValueError:
            pass
    return " ".join(str(raw).split())[:500]
