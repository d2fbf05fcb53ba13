# SPDX-License-Identifier: GPL-3.0-or-later
"""CLI latency benchmark: one frame from a cold process (start-up + scene load + kernel load + render + write).

Two measurements, each over ``--repeat`` fresh processes (medians; the machine may be shared):

* ``cli``: the wall time of ``anchorstage render SCENE --camera CAM.json --out x.exr`` exactly as
  a user runs it (all passes, the sample stage reconstructed from ``sample/``, 640x360);
* phases: a child process that walks the same path step by step and stamps the clock between
  them: ``startup`` (interpreter up), ``imports`` (the CLI and the modules a frame uses),
  ``scene_load`` (``open_source``), ``kernel_load`` (the first use of the compiled kernels: a
  16x9 render of every pass, which imports numba and reads its cache), ``render``
  (``render_frame`` at full size), ``write`` (``write_exr``) and ``exit`` (interpreter shut-down).

A first, unmeasured CLI run fills numba's on-disk cache, so every measured process is a warm-cache,
cold-process start: what a farm task or a script calling the CLI per frame pays.

    python benchmarks/bench_latency.py [--repeat 5] [--scene DIR] [--json out.json]

Prints a table and writes JSON (per-phase medians and every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("startup", "imports", "scene_load", "kernel_load", "render", "write", "exit")

# The child: the CLI render path step by step; prints the clock after each step as one JSON line.
_CHILD = r"""
import json, sys, time
t = {"startup": time.time()}
import anchorstage.cli, anchorstage.cli.render
anchorstage.cli.build_parser()
from anchorstage.camera import load_camera_json
from anchorstage.exr import write_exr
from anchorstage.passes import PASSES
from anchorstage.stages import open_source, render_frame
import anchorstage.scene, anchorstage.renderer, anchorstage.raster_cpu, anchorstage.witness
t["imports"] = time.time()
scene_dir, camera_json, out = sys.argv[1:4]
camera = load_camera_json(camera_json)
source = open_source(scene_dir)
t["scene_load"] = time.time()
render_frame(source, camera.with_resolution(16, 9), PASSES)
t["kernel_load"] = time.time()
frame = render_frame(source, camera, PASSES)
t["render"] = time.time()
write_exr(out, frame.passes, camera=camera)
t["write"] = time.time()
print(json.dumps(t), flush=True)
import gc
gc.freeze()  # as anchorstage.cli.entry does before the interpreter shuts down
"""


def sample_scene(folder: Path) -> tuple[Path, Path]:
    """The sample stage (``sample/``) reconstructed into ``folder``; returns (scene dir, camera JSON)."""
    cam = ROOT / "sample" / "camera.json"
    scene = folder / "sample_stage"
    subprocess.run([sys.executable, "-m", "anchorstage", "reconstruct", str(ROOT / "sample" / "photo.png"),
                    "--depth", str(ROOT / "sample" / "depth.npy"), "--camera", str(cam), "--out", str(scene),
                    "--force"], check=True, stdout=subprocess.DEVNULL)
    return scene, cam


def cli_run(scene: Path, cam: Path, out: Path) -> float:
    """Seconds for one ``anchorstage render`` process, start to exit."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "anchorstage", "render", str(scene), "--camera", str(cam), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def phase_run(scene: Path, cam: Path, out: Path) -> dict[str, float]:
    """Seconds per phase for one child process walking the render path."""
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", _CHILD, str(scene), str(cam), str(out)], check=True,
                         capture_output=True, text=True)
    t_exit = time.time()
    stamps = json.loads(res.stdout.strip().splitlines()[-1])
    marks = [t0] + [stamps[p] for p in PHASES[:-1]] + [t_exit]
    return {p: marks[i + 1] - marks[i] for i, p in enumerate(PHASES)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="cold processes per measurement (medians reported)")
    ap.add_argument("--scene", metavar="DIR", help="scene folder (default: the sample stage, reconstructed first)")
    ap.add_argument("--camera", metavar="CAMERA.json", help="camera (default: sample/camera.json)")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="anchorstage_latency_") as tmp:
        tmp = Path(tmp)
        if args.scene:
            scene, cam = Path(args.scene), Path(args.camera or ROOT / "sample" / "camera.json")
        else:
            scene, cam = sample_scene(tmp)
        out = tmp / "frame.exr"
        cli_run(scene, cam, out)  # fills the compiled-kernel cache; not measured
        cli = [cli_run(scene, cam, out) for _ in range(args.repeat)]
        runs = [phase_run(scene, cam, out) for _ in range(args.repeat)]

    med = {p: statistics.median(r[p] for r in runs) for p in PHASES}
    total = [sum(r.values()) for r in runs]
    info = {
        "benchmark": "latency", "scene": str(args.scene or "sample/ (reconstructed)"), "repeat": args.repeat,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "cli_median_s": statistics.median(cli), "cli_best_s": min(cli), "cli_runs_s": cli,
        "phases_median_s": med, "phases_total_median_s": statistics.median(total), "phase_runs_s": runs,
    }
    print(f"anchorstage render, one frame from a cold process ({args.repeat} runs, load average "
          f"{info['load_avg'][0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'phase':<12} {'median s':>9} {'best s':>8}")
    for p in PHASES:
        print(f"{p:<12} {med[p]:>9.3f} {min(r[p] for r in runs):>8.3f}")
    print(f"{'(sum)':<12} {info['phases_total_median_s']:>9.3f} {min(total):>8.3f}")
    print(f"{'cli wall':<12} {info['cli_median_s']:>9.3f} {info['cli_best_s']:>8.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
