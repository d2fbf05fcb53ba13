# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m anchorstage.remote``: the worker as a RunPod serverless endpoint runs it.

Without arguments it is ``runpod.serverless.start({"handler": handler})``: on RunPod the SDK takes
jobs from the endpoint's queue; locally ``--test_input '{"input": {...}}'`` runs one job. With
``--rp_serve_api`` (and the SDK's ``--rp_api_host`` / ``--rp_api_port``) it serves the SDK's local API
through ``anchorstage serve``'s guard (loopback only without ``$ANCHORSTAGE_WORKER_API_KEY``).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ..errors import AnchorStageError
    from .server import serve, start_runpod

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--rp_serve_api", action="store_true")
    p.add_argument("--rp_api_host", default="127.0.0.1")
    p.add_argument("--rp_api_port", type=int, default=8000)
    args, _ = p.parse_known_args(argv)
    try:
        if args.rp_serve_api:
            serve(args.rp_api_host, args.rp_api_port)
        else:
            start_runpod()
    except AnchorStageError as e:
        print(f"anchorstage worker: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
