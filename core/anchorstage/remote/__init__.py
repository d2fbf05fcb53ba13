# SPDX-License-Identifier: GPL-3.0-or-later
"""The remote GPU worker (RunPod serverless contract) and what travels to it.

* :mod:`.payload`: files in requests and answers (base64 in JSON, safe names, size limits; standard
  library only, shared with the Blender add-on's client).
* :mod:`.handler`: ``handler(job)`` for the stages that want a GPU (generate, refresh, depth,
  reconstruct, render), one job at a time, with progress and cancel.
* :mod:`.server`: ``anchorstage serve``: the RunPod SDK's local API server behind a guard (API key,
  size limits, RunPod-like ``/status``), or the SDK's serverless worker loop on RunPod.

``python -m anchorstage.remote`` is the file a RunPod endpoint runs (see docs/remote_worker.md).
Nothing here is imported by ``import anchorstage``.
"""

__all__ = ["payload", "handler", "server"]
