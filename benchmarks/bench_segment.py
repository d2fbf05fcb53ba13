# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency of region segmentation (``segment_depth``) on a ray-cast analytic stage.

The stage (ground, facade, sphere, box, sky) is the one the tests use, rendered analytically
at each resolution; the figure is the median wall time of ``segment_depth``. Target: ≤ 1 s at
1920x1080 on the CPU.

Usage::

    python benchmarks/bench_segment.py [--sizes 1920x1080 3840x2160] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_segment import iou, synthetic_stage  # noqa: E402  (the analytic stage lives with the tests)

from anchorstage.segmentation import segment_depth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080", "3840x2160"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    for size in args.sizes:
        w, h = (int(v) for v in size.lower().split("x"))
        img, depth, idx, cam = synthetic_stage(w, h)
        noisy = (depth * (1 + 0.005 * np.random.default_rng(0).standard_normal(depth.shape))).astype(np.float32)
        for name, d in (("exact depth", depth), ("0.5% noise", noisy)):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                regions = segment_depth(img, d, cam)
                times.append(time.perf_counter() - t)
            ground = next(r for r in regions if r.label == "ground")
            facade = next(r for r in regions if r.label == "facade")
            n_facades = sum(r.label == "facade" for r in regions)
            print(f"{size:>10s} {name:12s} {np.median(times) * 1000:7.0f} ms median (min {min(times) * 1000:.0f} ms)"
                  f"  {len(regions)} regions ({n_facades} facade), IoU ground {iou(ground.mask, idx == 1):.3f}"
                  f" facade {iou(facade.mask, idx == 2):.3f}")


if __name__ == "__main__":
    main()
