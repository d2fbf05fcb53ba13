# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark: a 1920x1080 photo + metric depth → Gaussian splats (``anchorstage.reconstruct``).

Input: the Cycles ground-truth stage rendered at 1920x1080 by scripts/cycles_stage.py (cached
under ``--cache``; rendered once, ~15 s), or ``--input DIR`` holding ``v0_rgb.exr``,
``v0_depth.npy`` and ``v0_camera.json``. Without ``bpy`` the bundled sample is upscaled.

Timings exclude interpreter start-up and file I/O: the inputs are in memory before the clock
starts, and the result (a Scene with splats) stays in memory. Each device gets one warm-up run,
then ``--repeat`` timed runs (median and best reported). Memory: the peak resident-set growth
during a run (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``), and on
CUDA ``torch.cuda.max_memory_allocated``. A reference "2M-element multiply" time is reported
so a loaded machine shows up in the figures.

The default row includes the colour fit (``fit_colors=True``); a second CPU row times the same
reconstruction without it, so the fit's own cost shows.

Targets (issues 3 and 11): ≤ 1.5 s with the colour fit on this 2-core CPU, ≤ 50 ms on an H100,
peak memory < 500 MB.

Usage::

    python benchmarks/bench_reconstruct.py [--repeat 5] [--json out/bench_reconstruct.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))

from anchorstage import reconstruct  # noqa: E402
from anchorstage.camera import load_camera_json  # noqa: E402
from anchorstage.image_io import load_image  # noqa: E402

W, H = 1920, 1080


def _read_exr_rgb(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = {n: np.array(c.pixels) for n, c in f.parts[0].channels.items()}
    return np.stack([ch[c] for c in "RGB"], -1).astype(np.float32)


def load_input(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, object, str]:
    """(image [H, W, 3] linear, depth [H, W] metres, camera, description)."""
    folder = args.input
    if folder is None:
        folder = args.cache / f"cycles_{W}x{H}"
        if not (folder / "v0_depth.npy").is_file():
            try:
                import bpy  # noqa: F401
            except ImportError:
                return _upscaled_sample()
            print(f"rendering the ground-truth stage at {W}x{H} with Cycles into {folder} ...", file=sys.stderr)
            subprocess.run([sys.executable, str(REPO / "scripts" / "cycles_stage.py"), "--out", str(folder),
                            "--width", str(W), "--height", str(H), "--views", "v0"], check=True,
                           stdout=subprocess.DEVNULL)
    rgb = _read_exr_rgb(folder / "v0_rgb.exr")
    depth = np.load(folder / "v0_depth.npy")
    cam = load_camera_json(folder / "v0_camera.json")
    return rgb, depth, cam, f"Cycles ground-truth stage {rgb.shape[1]}x{rgb.shape[0]} ({folder})"


def _upscaled_sample() -> tuple[np.ndarray, np.ndarray, object, str]:
    img = load_image(REPO / "sample" / "photo.png").rgb_linear
    depth = np.load(REPO / "sample" / "depth.npy")
    ys = (np.arange(H) * img.shape[0] // H)
    xs = (np.arange(W) * img.shape[1] // W)
    cam = load_camera_json(REPO / "sample" / "camera.json").with_resolution(W, H)
    return img[ys][:, xs], depth[ys][:, xs], cam, "bundled sample upscaled (nearest) to 1920x1080"


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _load_reference_ms() -> float:
    x = torch.rand(2_000_000)
    t = time.perf_counter()
    for _ in range(20):
        x * x
    return (time.perf_counter() - t) / 20 * 1000


def bench(device: str, rgb: np.ndarray, depth: np.ndarray, cam: object, repeat: int, fit: bool = True) -> dict:
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # Memory on the first run, before the allocator holds on to freed blocks; it doubles as the warm-up.
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    can_reset = _reset_peak()
    base = _rss_kb("VmRSS")
    scene = reconstruct(rgb, depth, cam, device=device, fit_colors=fit)
    sync()
    peak_mb = (_rss_kb("VmHWM") - base) / 1024 if can_reset else float("nan")
    walls, cpus, ratios = [], [], []
    for _ in range(repeat):
        del scene
        ref = _load_reference_ms() / 1000
        t0, c0 = time.perf_counter(), time.process_time()
        scene = reconstruct(rgb, depth, cam, device=device, fit_colors=fit)
        sync()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        ratios.append(walls[-1] / ((ref + _load_reference_ms() / 1000) / 2))
    row = {
        "device": (torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)")
                  + ("" if fit else ", no fit"),
        "color_fit": fit,
        "wall_s_median": statistics.median(walls), "wall_s_best": min(walls), "cpu_s_median": statistics.median(cpus),
        "peak_rss_growth_mb": peak_mb, "splats": len(scene.splats),
        # Wall time in units of a 2M-element multiply timed just before and after each run: a
        # load-independent measure of the work (quiet-machine estimate = this x a quiet multiply).
        "work_in_2M_multiplies_median": statistics.median(ratios),
        "splats_per_level": scene.meta["splats_per_level"], "second_layer_splats": scene.meta["second_layer_splats"],
        "runs": len(walls),
    }
    if cuda:
        row["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", type=Path, help="folder with v0_rgb.exr, v0_depth.npy, v0_camera.json")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anchorstage")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=REPO / "out" / "bench_reconstruct.json")
    ap.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, plus cuda when present)")
    args = ap.parse_args(argv)
    rgb, depth, cam, what = load_input(args)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    ref_before = _load_reference_ms()
    rows = [bench(d, rgb, depth, cam, args.repeat) for d in devices]
    if "cpu" in devices:
        rows.append(bench("cpu", rgb, depth, cam, args.repeat, fit=False))
    ref_after = _load_reference_ms()
    result = {
        "benchmark": "reconstruct 1920x1080 photo + depth -> splats", "input": what,
        "valid_pixels": int(np.isfinite(depth).sum()), "host": platform.node(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "load_reference_ms_2M_mul": [ref_before, ref_after],
        "targets": {"cpu_wall_s": 1.5, "h100_wall_s": 0.05, "peak_mb": 500}, "rows": rows,
    }
    print(f"input: {what}; machine load reference (2M-element multiply): {ref_before:.2f} / {ref_after:.2f} ms")
    print(f"{'device':<26} {'wall median':>12} {'wall best':>10} {'cpu time':>9} {'work':>7} {'peak MB':>8} {'splats':>9}")
    for r in rows:
        peak = r.get("cuda_peak_allocated_mb", r["peak_rss_growth_mb"])
        print(f"{r['device']:<26} {r['wall_s_median'] * 1000:>9.0f} ms {r['wall_s_best'] * 1000:>7.0f} ms "
              f"{r['cpu_s_median']:>7.2f} s {r['work_in_2M_multiplies_median']:>7.0f} {peak:>8.0f} {r['splats']:>9,}")
    print("work: wall time / time of one 2M-element float multiply on this machine at that moment")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
