# SPDX-License-Identifier: GPL-3.0-or-later
"""Render benchmark: 1280x720, ~1M splats, all passes; torch CPU and (when present) gsplat CUDA.

The CPU rows are the torch backend with its compiled compositor (numba, the default when numba
is installed) and with the pure-torch one (``ANCHORSTAGE_NUMBA=0``); the ``numba+sh3`` row is the
compiled compositor on the same splats carrying degree-3 spherical harmonics (45 coefficients
each), so every splat's colour is evaluated for the view (target: within 25 % of the row without).

The scene is what a reconstruction produces: one splat per pixel of a 1334x750 photo of a
stage (ground, a facade, two boxes in front), sized to tile the surface without holes,
seen from a camera trucked and orbited away from the photo's viewpoint.

    python benchmarks/bench_render.py [--splats 1000000] [--repeat 5] [--json out.json]

Prints a table and writes JSON (median / best seconds and frames per second per backend).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

from _stage import analytic_photo
from anchorstage import Camera, Splats, render
from anchorstage.renderer import PASSES
from anchorstage.rotation import quat_from_axes


def stage_splats(n: int, seed: int = 0) -> tuple[Splats, Camera]:
    """~n splats, one per pixel of a reference photo of a stage, and the reference camera."""
    ref, ok, pts, nrm, _, colors = analytic_photo(n, seed=seed)
    pts, nrm, colors = pts[ok], nrm[ok], colors[ok]
    z = (pts - ref.position) @ ref.forward
    # Disc splats in the surface plane, ~0.7 pixel footprint at the reference view.
    footprint = 0.7 * z / ref.focal_px
    a1 = np.cross(nrm, [0.3, 0.2, 0.9]); a1 /= np.linalg.norm(a1, axis=1, keepdims=True)
    a2 = np.cross(nrm, a1)
    rot = np.stack([a1, a2, nrm], axis=2)  # columns = local axes
    cols = [tuple(torch.from_numpy(np.ascontiguousarray(rot[:, i, k])) for i in range(3)) for k in range(3)]
    quats = torch.stack(quat_from_axes(*cols), dim=1).numpy()
    scales = np.stack([footprint, footprint, footprint * 0.05], axis=1)
    m = len(pts)
    sp = Splats(
        means=torch.tensor(pts, dtype=torch.float32), quats=torch.tensor(quats, dtype=torch.float32),
        scales=torch.tensor(scales, dtype=torch.float32), opacities=torch.full((m,), 0.95),
        colors=torch.tensor(colors, dtype=torch.float32), confidence=torch.rand(m, generator=torch.Generator().manual_seed(seed)),
        region_ids=torch.tensor(np.where(nrm[:, 2] > 0.5, 0, np.where(pts[:, 1] > 3.99, 1, 2)), dtype=torch.int32),
    )
    return sp, ref


def with_sh(sp: Splats, degree: int = 3, seed: int = 0) -> Splats:
    """The splats with random SH coefficients of ``degree`` (what a trained 3DGS file carries)."""
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return Splats(means=sp.means, quats=sp.quats, scales=sp.scales, opacities=sp.opacities, colors=sp.colors,
                  confidence=sp.confidence, region_ids=sp.region_ids,
                  sh_rest=torch.randn(len(sp), k, 3, generator=g) * 0.1 / (1 + torch.arange(k)[None, :, None]) ** 0.5)


def bench(sp: Splats, cam: Camera, backend: str, device: str, repeat: int, compositor: str = "") -> dict:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if compositor:
        os.environ["ANCHORSTAGE_NUMBA"] = "1" if compositor.startswith("numba") else "0"
    render(sp, cam, PASSES, backend=backend, device=device)  # warm-up (gsplat JIT, allocator)
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        out = render(sp, cam, PASSES, backend=backend, device=device)
        sync()
        times.append(time.perf_counter() - t0)
    cover = float((out["alpha"] > 0.5).float().mean())
    med = statistics.median(times)
    return {"backend": backend, "device": device, "compositor": compositor or backend, "median_s": med, "best_s": min(times), "fps": 1.0 / med,
            "coverage": cover, "repeat": repeat}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=1_000_000)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    sp, ref = stage_splats(args.splats)
    cam = ref.with_resolution(args.width, args.height).truck(0.3).orbit((0, 0, 1.2), 6.0, 3.0)
    rows = [bench(sp, cam, "torch", "cpu", args.repeat, c)
            for c in (("numba", "torch") if importlib.util.find_spec("numba") else ("torch",))]
    rows.append(bench(with_sh(sp), cam, "torch", "cpu", args.repeat,
                      "numba+sh3" if importlib.util.find_spec("numba") else "torch+sh3"))
    rows[-1]["vs_no_sh"] = rows[-1]["median_s"] / rows[0]["median_s"]
    if torch.cuda.is_available():
        try:
            rows.append(bench(sp.to("cuda"), cam, "gsplat", "cuda", max(args.repeat, 20)))
        except ImportError as e:
            print(f"gsplat row skipped: {e}", file=sys.stderr)
    info = {"splats": len(sp), "resolution": [args.width, args.height], "passes": list(PASSES),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "results": rows}
    print(f"{len(sp):,} splats, {args.width}x{args.height}, passes: {', '.join(PASSES)}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"{'backend':<8} {'device':<6} {'compositor':<10} {'median s':>9} {'best s':>8} {'fps':>8} {'covered':>8}")
    for r in rows:
        print(f"{r['backend']:<8} {r['device']:<6} {r['compositor']:<10} {r['median_s']:>9.3f} {r['best_s']:>8.3f} {r['fps']:>8.1f} {r['coverage']:>8.1%}"
              + (f"   {r['vs_no_sh']:.2f}x the time without SH" if "vs_no_sh" in r else ""))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
