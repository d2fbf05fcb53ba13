# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness refresh benchmark: 1280x720 classical refresh from a ~1M-splat stage (target ≤ 0.5 s on
a 2-core CPU), the live confidence meter's update (target ≤ 50 ms), and the diffusion step time where
a GPU and the weights are present.

The stage is a reconstruction (one splat per pixel) of a 1334x750 photo of an analytic set (ground,
a facade, two boxes, sky above), refreshed from a camera trucked 0.3 m and orbited 6° about the set.
Each row is the median over ``--repeat`` refreshes after a warm-up (numba compilation, and the witness
mesh and its depth confidence, which are made once per stage and cached on the scene); the cold row is
the first refresh of a fresh scene object (mesh and depth confidence made again, kernels compiled).
The machine's load average is printed with the table.

    python benchmarks/bench_refresh.py [--splats 1000000] [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from _stage import analytic_photo
from anchorstage.regression import reconstruct
from anchorstage.segmentation import segment


def stage_scene(n: int, device: str = "cpu"):
    """A scene of about ``n`` splats: a photo of an analytic set with exact metric depth, one splat per pixel."""
    ref, _, _, _, depth, colors = analytic_photo(n, facade_top_m=4.0, noise=0.03)
    image = colors.reshape(depth.shape[0], depth.shape[1], 3).astype(np.float32)
    scene = reconstruct(image, depth, ref, max_splats=n, device=device)
    segment(scene)
    return scene


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=1_000_000)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)

    from anchorstage import witness as wit
    from anchorstage.confidence import from_warp
    from anchorstage.stages import refresh

    t0 = time.perf_counter()
    scene = stage_scene(args.splats)
    build_s = time.perf_counter() - t0
    cam = scene.camera.with_resolution(args.width, args.height).truck(0.3).orbit((0, 0, 1.2), 6.0, 0.0)
    refresh(scene, cam, device="cpu")  # warm-up: numba kernels compiled or loaded, witness mesh cached

    def timed(fn) -> tuple[list[float], object]:
        times, out = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return times, out

    stages: dict[str, list[float]] = {}
    full, result = timed(lambda: refresh(scene, cam, device="cpu"))
    stages["witness mesh warp + void + angles"], warp = timed(lambda: wit.warp_witness(scene, cam))
    lock = wit.lock_mask(warp, [])
    stages["classical fill"], fill = timed(lambda: wit.fill_classical(warp, lock))
    stages["composite + feather"], _ = timed(lambda: wit.composite_fill(warp, fill, lock))
    stages["confidence"], _ = timed(lambda: from_warp(warp))
    cold, _ = timed(lambda: refresh(replace(scene), cam, device="cpu"))
    mesh_s, mesh = timed(lambda: wit._witness_mesh(replace(scene)))
    conf_s, _ = timed(lambda: wit._witness_confidence(scene, replace(mesh, confidence=None)))
    from anchorstage.confidence import estimate, meter_proxy

    proxy_s, proxy = timed(lambda: meter_proxy(scene, device="cpu"))
    meter_s, quick = timed(lambda: estimate(proxy, cam))
    load = os.getloadavg()
    rows = [{"what": "classical refresh (warm)", "median_s": statistics.median(full), "best_s": min(full)},
            {"what": "classical refresh (cold witness mesh)", "median_s": statistics.median(cold), "best_s": min(cold)}]
    rows += [{"what": f"  {k}", "median_s": statistics.median(v), "best_s": min(v)} for k, v in stages.items()]
    rows += [{"what": f"  once per stage: {k}", "median_s": statistics.median(v), "best_s": min(v)}
             for k, v in (("witness mesh", mesh_s), ("witness depth confidence", conf_s))]
    rows += [{"what": "live meter update (160 px, target ≤ 0.05 s)", "median_s": statistics.median(meter_s),
              "best_s": min(meter_s)},
             {"what": "  once per stage: meter proxy (256 px witness)", "median_s": statistics.median(proxy_s),
              "best_s": min(proxy_s)}]

    diffusion = None
    if torch.cuda.is_available():
        diffusion = _diffusion_row(scene, cam)
    info = {"splats": len(scene.splats), "resolution": [args.width, args.height], "repeat": args.repeat,
            "target_s": 0.5, "void_coverage": result.confidence.void_coverage, "confidence": result.confidence.value,
            "meter_confidence": quick.value,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "load_average": list(load), "build_stage_s": build_s,
            "results": rows, "diffusion": diffusion}
    print(f"{len(scene.splats):,} splats, {args.width}x{args.height}, void {result.confidence.void_coverage:.1%}, "
          f"{torch.get_num_threads()} threads on {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f}")
    print(f"{'':<52} {'median s':>9} {'best s':>8}")
    for r in rows:
        print(f"{r['what']:<52} {r['median_s']:>9.3f} {r['best_s']:>8.3f}")
    print(f"targets: median ≤ 0.5 s for the warm classical refresh, ≤ 0.05 s per meter update; "
          f"confidence {result.confidence.value:.3f} (meter {quick.value:.3f})")
    if diffusion:
        print(f"diffusion: {diffusion}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


def _diffusion_row(scene, cam) -> dict:
    """Seconds per denoising step of the diffusion inpainting on CUDA (needs the default weights locally)."""
    from anchorstage.errors import MissingDependencyError
    from anchorstage.inpaint_diffusion import DiffusionSettings
    from anchorstage.stages import refresh

    steps: list[float] = []
    last = [time.perf_counter()]

    def progress(f: float, msg: str) -> None:
        if msg.startswith("diffusion step"):
            now = time.perf_counter()
            steps.append(now - last[0])
            last[0] = now

    try:
        t = time.perf_counter()
        refresh(scene, cam, inpaint="diffusion", diffusion=DiffusionSettings(steps=20), device="cuda", progress=progress)
        total = time.perf_counter() - t
    except MissingDependencyError as e:
        return {"skipped": str(e)}
    return {"gpu": torch.cuda.get_device_name(), "steps": len(steps), "total_s": total,
            "median_step_s": statistics.median(steps[1:]) if len(steps) > 1 else None}


if __name__ == "__main__":
    sys.exit(main())
