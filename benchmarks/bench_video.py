# SPDX-License-Identifier: GPL-3.0-or-later
"""Video benchmark: a turntable clip of the analytic stage rendered and encoded (H.264 yuv420p) frame by
frame, split into rendering and encoding, and the memory a long clip needs (streaming: it must not grow
with the clip's length).

Rows: seconds per frame for the whole clip (``render_video``, rendered frames), for rendering alone
(``render_frame`` colour + alpha) and for encoding alone (``Mp4Writer`` on ready frames; with the GIF);
the peak resident memory added while encoding a clip ``--long`` times longer than the first (it should
stay flat). The machine's load average is printed with the table.

    python benchmarks/bench_video.py [--splats 300000] [--frames 24] [--width 1280 --height 720] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _stage import analytic_photo
from anchorstage.regression import reconstruct


def _rss_mb() -> float:
    """Peak resident memory of this process so far, MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--splats", type=int, default=300_000)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--long", type=int, default=10, help="the memory row's clip is this many times --frames")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)

    from anchorstage.stages import render_frame, render_video, turntable_cameras
    from anchorstage.video import GifWriter, Mp4Writer

    ref, _, _, _, depth, colors = analytic_photo(args.splats, facade_top_m=4.0, noise=0.03)
    scene = reconstruct(colors.reshape(*depth.shape, 3).astype(np.float32), depth, ref, max_splats=args.splats,
                        device="cpu")
    cams = turntable_cameras(scene, args.frames, centre=(0.0, 0.0, 1.0), sweep_deg=30.0, elevation_deg=10.0,
                             resolution=(args.width, args.height))
    render_frame(scene, cams[0], ["color", "alpha"], device="cpu")  # warm-up (kernels compiled or loaded)
    out = Path(tempfile.mkdtemp(prefix="bench_video_"))
    n = args.frames

    t = time.perf_counter()
    clip = render_video(scene, cams, out / "clip.mp4", fps=24, device="cpu")
    whole = (time.perf_counter() - t) / n

    render_s, frames = [], []
    for cam in cams:
        t = time.perf_counter()
        p = render_frame(scene, cam, ["color", "alpha"], device="cpu").passes
        render_s.append(time.perf_counter() - t)
        frames.append(p["color"])

    def encode(path: Path, count: int, gif: bool) -> float:
        t = time.perf_counter()
        gw = GifWriter(path.with_suffix(".gif")) if gif else contextlib.nullcontext()
        with Mp4Writer(path, args.width, args.height, fps=24) as mp4, gw as g:
            for k in range(count):
                mp4.write(frames[k % n])
                if g is not None:
                    g.write(frames[k % n])
        return (time.perf_counter() - t) / count

    encode_s = encode(out / "enc.mp4", n, False)
    encode_gif_s = encode(out / "enc_gif.mp4", n, True)
    before = _rss_mb()
    long_s = encode(out / "long.mp4", n * args.long, False)
    grown = _rss_mb() - before
    load = os.getloadavg()
    rows = [{"what": f"render_video, rendered frames ({n} frames)", "s_per_frame": whole},
            {"what": "  render colour + alpha", "s_per_frame": statistics.median(render_s)},
            {"what": "  encode H.264 yuv420p (crf 18)", "s_per_frame": encode_s},
            {"what": "  encode H.264 + GIF", "s_per_frame": encode_gif_s},
            {"what": f"encode a {n * args.long}-frame clip", "s_per_frame": long_s}]
    info = {"splats": len(scene.splats), "resolution": [args.width, args.height], "frames": n,
            "mp4_bytes": clip.path.stat().st_size, "long_clip_peak_rss_growth_mb": grown,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "load_average": list(load), "results": rows}
    print(f"{len(scene.splats):,} splats, {args.width}x{args.height}, {torch.get_num_threads()} threads on "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f}")
    print(f"{'':<48} {'s/frame':>9} {'fps':>7}")
    for r in rows:
        print(f"{r['what']:<48} {r['s_per_frame']:>9.3f} {1 / r['s_per_frame']:>7.1f}")
    print(f"streaming: peak memory grew {grown:.0f} MB while encoding {n * args.long} frames "
          f"({args.width * args.height * 3 * n * args.long / 2**20:.0f} MB of 8-bit frames); "
          f"{info['mp4_bytes'] / 1024:.0f} KiB for the {n}-frame clip")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    for p in out.iterdir():
        p.unlink()
    out.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
