# SPDX-License-Identifier: GPL-3.0-or-later
"""Multi-view fusion: leave-one-out fidelity per angle and the time it takes, on a product capture.

Default capture: the bundled Cycles turntable (sample/product: 8 views 45° apart, 192x192, exact
depth, transparent background). For every view: fuse the other seven, render the held-out camera,
masked PSNR / SSIM against the held-out photo, beside the single-image baseline (the frontal view
alone). Also times one full fusion of every view. Target: ≥ 28 dB at every held-out angle and above
the baseline at every angle but the frontal one.

Usage::

    python benchmarks/bench_multiview.py [--capture sample/product] [--json out/bench_multiview.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))

from anchorstage.fidelity import PSNR_TARGET_DB, leave_one_out  # noqa: E402
from anchorstage.fusion import fuse, load_capture  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=REPO / "sample" / "product")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=REPO / "out" / "bench_multiview.json")
    args = ap.parse_args()
    views = load_capture(args.capture, device=args.device)
    t = time.perf_counter()
    scene, rep = fuse(views, device=args.device)
    fuse_s = time.perf_counter() - t
    t = time.perf_counter()
    loo = leave_one_out(views, identity_model=None, device=args.device)
    loo_s = time.perf_counter() - t
    w, h = views[0].camera.width, views[0].camera.height
    print(f"capture {args.capture} ({len(views)} views, {w}x{h}): fuse {fuse_s:.1f} s -> {len(scene.splats)} splats; "
          f"leave-one-out {loo_s:.1f} s")
    print(f"{'view':>8s} {'azimuth':>8s} {'PSNR dB':>8s} {'SSIM':>7s} {'base dB':>8s} {'base SSIM':>9s}")
    for a in loo.angles:
        b = a.baseline
        print(f"{a.name:>8s} {a.azimuth_deg:8.0f} {a.psnr_db:8.2f} {a.ssim:7.4f} {b['psnr_db']:8.2f} {b['ssim']:9.4f}")
    summary = loo.to_json_dict()["summary"]
    print(f"target {PSNR_TARGET_DB:g} dB at every angle: {summary['reaches_target_everywhere']}; "
          f"beats the baseline off the frontal view: {summary['beats_baseline_off_frontal']}")
    result = {"capture": str(args.capture), "views": len(views), "size": [w, h], "fuse_s": round(fuse_s, 3),
              "fused_splats": len(scene.splats), "leave_one_out_s": round(loo_s, 3),
              "angles": [a.row() for a in loo.angles], "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
