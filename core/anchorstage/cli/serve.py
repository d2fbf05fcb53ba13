# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage serve``: the remote GPU worker (RunPod serverless contract) on this machine
(see docs/remote_worker.md)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from .generate import add_model_args

    p = sub.add_parser(
        "serve", help="run the remote GPU worker (RunPod serverless contract: /run, /runsync, /status/ID)",
        description="Serve generate, refresh, depth, reconstruct and render jobs over HTTP on the RunPod SDK's local "
                    "API server (the RunPod serverless contract), so Blender on another computer can send them here. "
                    "Listens on 127.0.0.1 unless --host says otherwise, which needs an API key "
                    "($ANCHORSTAGE_WORKER_API_KEY or --api-key). With --runpod it runs as a RunPod serverless worker "
                    "instead. The models are this worker's (flags or environment), never a request's. "
                    "See docs/remote_worker.md.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="key every request must carry as 'Authorization: Bearer KEY' (prefer $ANCHORSTAGE_WORKER_API_KEY: "
                        "a flag shows in the process list); required for a --host other than loopback")
    p.add_argument("--max-request-mb", type=float, default=None, metavar="MB",
                   help="largest request body (default $ANCHORSTAGE_MAX_REQUEST_BYTES, else 128 MiB)")
    p.add_argument("--runpod", action="store_true",
                   help="run as a RunPod serverless worker (runpod.serverless.start): on a RunPod endpoint")
    p.add_argument("--depth-model", default=None, metavar="ID|DIR", help="depth model for depth / reconstruct jobs")
    add_model_args(p)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                   help="where jobs compute (default $ANCHORSTAGE_WORKER_DEVICE, else auto)")
    p.add_argument("--backend", choices=("auto", "torch", "gsplat"), default="auto", help="render backend")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from ..errors import InputError
    from ..remote import handler as h
    from ..remote.server import check_bind, serve, start_runpod
    from .generate import models_from_args

    api_key = args.api_key if args.api_key is not None else (os.environ.get("ANCHORSTAGE_WORKER_API_KEY") or None)
    if not args.runpod:
        check_bind(args.host, api_key)  # before loading anything
    if args.max_request_mb is not None and not 0 < args.max_request_mb <= 1 << 20:
        raise InputError(f"--max-request-mb must be > 0 (got {args.max_request_mb:g})")
    models, memory = models_from_args(args)
    h.configure(h.WorkerConfig(models=models, memory=memory,
                               device=args.device or os.environ.get("ANCHORSTAGE_WORKER_DEVICE", "auto"),
                               backend=args.backend,
                               depth_model=args.depth_model or os.environ.get("ANCHORSTAGE_DEPTH_MODEL") or None))
    if args.runpod:
        start_runpod()
        return 0
    max_bytes = int(args.max_request_mb * (1 << 20)) if args.max_request_mb else None
    serve(args.host, args.port, api_key=api_key, max_bytes=max_bytes)
    return 0
