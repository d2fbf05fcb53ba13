# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage bench``: run the benchmark scripts of a source checkout (tables + JSON)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ..errors import InputError

NAMES = ("reconstruct", "render", "depth", "segment", "fidelity", "refresh", "viewport", "generate", "multiview",
         "video", "latency", "engine", "scale")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run speed/memory benchmarks (prints tables, writes JSON)",
                       description="Runs benchmarks/bench_<NAME>.py from the AnchorStage source checkout, each in its "
                                   "own process so start-up and imports are not counted, and writes <NAME>.json.")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"which benchmarks ({', '.join(NAMES)}); default: all")
    p.add_argument("--json-dir", default="bench_results", metavar="DIR", help="where to write the JSON files")
    p.add_argument("--benchmarks", metavar="DIR", help="benchmark folder (default: the checkout's benchmarks/)")
    p.set_defaults(func=run)


def _benchmarks_dir(explicit: str | None) -> Path:
    if explicit:
        d = Path(explicit)
    else:
        # core/anchorstage/cli/bench.py -> checkout root
        d = Path(__file__).resolve().parents[3] / "benchmarks"
    if not (d / "bench_render.py").is_file():
        raise InputError(f"benchmark scripts not found in {str(d)!r}; they ship with the source checkout "
                         "(pass --benchmarks DIR)")
    return d


def run(args: argparse.Namespace) -> int:
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        raise InputError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    bench_dir = _benchmarks_dir(args.benchmarks)
    out = Path(args.json_dir)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.names or NAMES:
        script = bench_dir / f"bench_{name}.py"
        print(f"== {name}", flush=True)
        code = subprocess.call([sys.executable, str(script), "--json", str(out / f"{name}.json")], env=os.environ.copy())
        if code != 0:
            failed.append(name)
    if failed:
        raise InputError(f"benchmark(s) failed: {', '.join(failed)}")
    return 0
