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

from anchorstage import Camera, look_at
from anchorstage.regression import reconstruct
from anchorstage.segmentation import segment


def stage_scene(n: int, device: str = "cpu"):
    """A scene of about ``n`` splats: a photo of an analytic set with exact metric depth, one splat per pixel."""
    aspect = 16 / 9
    h = int(round(math.sqrt(n / aspect)))
    w = int(round(n / h))
    ref = Camera(width=w, height=h, lens_mm=30.0, world_from_cam=look_at((0, -6, 1.6), (0, 0, 1.2)))
    uv = ref.pixel_centers().reshape(-1, 2)
    d = ref.unproject(uv, np.ones(len(uv))) - ref.position
    o = ref.position
    t = np.full(len(uv), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = -o[2] / d[:, 2]
        tf = (4.0 - o[1]) / d[:, 1]
    pf = o + tf[:, None] * d
    for tt, ok in ((tg, np.ones(len(uv), bool)), (tf, pf[:, 2] < 4.0)):
        hit = ok & (tt > 0) & (tt < t)
        t[hit] = tt[hit]
    for cx, cy, size in ((-1.0, 0.5, 0.8), (1.2, -0.5, 0.6)):  # front faces of two boxes
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = (cy - size - o[1]) / d[:, 1]
        p = o + tb[:, None] * d
        hit = (tb > 0) & (tb < t) & (np.abs(p[:, 0] - cx) < size) & (p[:, 2] > 0) & (p[:, 2] < 2 * size)
        t[hit] = tb[hit]
    pts = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
    depth = np.where(np.isfinite(t), (pts - o) @ ref.forward, np.inf).reshape(h, w).astype(np.float32)
    rng = np.random.default_rng(0)
    tex = 0.5 + 0.4 * np.sin(pts[:, :1] * 7.0 + np.array([0.0, 1.0, 2.0])) * np.cos(pts[:, 2:3] * 5.0)
    tex = np.where(np.isfinite(t)[:, None], tex, [0.35, 0.55, 0.9])
    image = np.clip(tex + 0.03 * rng.standard_normal(tex.shape), 0, 1).reshape(h, w, 3).astype(np.float32)
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
             for k, v in (("witness mesh", mesh_s), ("witness depth confidence (render)", conf_s))]
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
