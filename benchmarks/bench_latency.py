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

Every figure comes as wall seconds and as CPU seconds (user + system, all threads: from the child's
resource usage and ``time.process_time``). On a machine shared with other jobs the wall time stretches
with the load; the CPU time much less, so compare CPU times across runs made under different loads.

    python benchmarks/bench_latency.py [--repeat 5] [--scene DIR] [--json out.json]

Prints a table and writes JSON (per-phase medians and every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("startup", "imports", "scene_load", "kernel_load", "render", "write", "exit")

# The child: the CLI render path step by step, with the process settings of the program entry
# (anchorstage.cli.entry); prints the clock after each step as one JSON line.
_CHILD = r"""
import json, os, sys, time
t, cpu = {"startup": time.time()}, {"startup": time.process_time()}
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as anchorstage.cli.entry does before any torch import
import anchorstage.cli, anchorstage.cli.render
anchorstage.cli.build_parser()
from anchorstage.camera import load_camera_json
from anchorstage.exr import write_exr
from anchorstage.passes import PASSES
from anchorstage.stages import open_source, render_frame
import anchorstage.scene, anchorstage.renderer, anchorstage.raster_cpu, anchorstage.witness
t["imports"], cpu["imports"] = time.time(), time.process_time()
scene_dir, camera_json, out = sys.argv[1:4]
camera = load_camera_json(camera_json)
source = open_source(scene_dir, numpy=True)  # as anchorstage render opens it
t["scene_load"], cpu["scene_load"] = time.time(), time.process_time()
render_frame(source, camera.with_resolution(16, 9), PASSES)
t["kernel_load"], cpu["kernel_load"] = time.time(), time.process_time()
frame = render_frame(source, camera, PASSES)
t["render"], cpu["render"] = time.time(), time.process_time()
write_exr(out, frame.passes, camera=camera)
t["write"], cpu["write"] = time.time(), time.process_time()
print(json.dumps({"wall": t, "cpu": cpu, "torch_loaded": "torch" in sys.modules}), flush=True)
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


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cli_run(scene: Path, cam: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``anchorstage render`` process, start to exit."""
    c0, t0 = _children_cpu_s(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "anchorstage", "render", str(scene), "--camera", str(cam), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu_s() - c0


def phase_run(scene: Path, cam: Path, out: Path) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds per phase of one child process walking the render path."""
    c0, t0 = _children_cpu_s(), time.time()
    res = subprocess.run([sys.executable, "-c", _CHILD, str(scene), str(cam), str(out)], check=True,
                         capture_output=True, text=True)
    t_exit, c_exit = time.time(), _children_cpu_s() - c0
    stamps = json.loads(res.stdout.strip().splitlines()[-1])
    wall = [t0] + [stamps["wall"][p] for p in PHASES[:-1]] + [t_exit]
    cpu = [0.0] + [stamps["cpu"][p] for p in PHASES[:-1]] + [c_exit]
    return {"wall": {p: wall[i + 1] - wall[i] for i, p in enumerate(PHASES)},
            "cpu": {p: cpu[i + 1] - cpu[i] for i, p in enumerate(PHASES)}, "torch_loaded": stamps["torch_loaded"]}


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

    med = {k: {p: statistics.median(r[k][p] for r in runs) for p in PHASES} for k in ("wall", "cpu")}
    best = {k: {p: min(r[k][p] for r in runs) for p in PHASES} for k in ("wall", "cpu")}
    total = {k: [sum(r[k].values()) for r in runs] for k in ("wall", "cpu")}
    info = {
        "benchmark": "latency", "scene": str(args.scene or "sample/ (reconstructed)"), "repeat": args.repeat,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "cli_median_s": statistics.median(w for w, _ in cli), "cli_best_s": min(w for w, _ in cli),
        "cli_cpu_median_s": statistics.median(c for _, c in cli), "cli_runs_s": cli,
        "phases_median_s": med, "phases_best_s": best,
        "phases_total_median_s": {k: statistics.median(v) for k, v in total.items()}, "phase_runs_s": runs,
        "torch_loaded": any(r["torch_loaded"] for r in runs),
    }
    print(f"anchorstage render, one frame from a cold process ({args.repeat} runs, load average "
          f"{info['load_avg'][0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'phase':<12} {'wall med s':>11} {'wall best s':>12} {'CPU med s':>10}")
    for p in PHASES:
        print(f"{p:<12} {med['wall'][p]:>11.3f} {best['wall'][p]:>12.3f} {med['cpu'][p]:>10.3f}")
    print(f"{'(sum)':<12} {info['phases_total_median_s']['wall']:>11.3f} {min(total['wall']):>12.3f} "
          f"{info['phases_total_median_s']['cpu']:>10.3f}")
    print(f"{'cli':<12} {info['cli_median_s']:>11.3f} {info['cli_best_s']:>12.3f} {info['cli_cpu_median_s']:>10.3f}")
    print(f"torch loaded by the frame: {'yes' if info['torch_loaded'] else 'no'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
