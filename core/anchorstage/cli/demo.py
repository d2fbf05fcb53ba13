# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage demo``: the main job on the bundled sample, end to end (see :mod:`anchorstage.demo`)."""

from __future__ import annotations

import argparse

from ._common import add_backend_arg, add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled sample (reconstruct, camera move, EXRs, refresh, "
                                    "contact sheet)",
                       description="Reconstruct the sample photo with its metric depth, render a metric camera move "
                                   "(orbit, then dolly) to multilayer EXRs with void maps, region masks and metadata, "
                                   "refresh the witness for every camera (classical inpainting, no weights) and write "
                                   "contact_sheet.png (raw render, void, refreshed witness, confidence) and "
                                   "camera_move.mp4 (the refreshed move, H.264).")
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output folder (default out/demo)")
    p.add_argument("--sample", metavar="DIR", help="sample folder (photo, depth, camera JSON); default: the bundled one")
    p.add_argument("--frames", type=int, default=12, metavar="N", help="frames in the move (default 12: 6 orbit + 6 dolly)")
    p.add_argument("--orbit-deg", type=float, default=12.0, metavar="DEG", help="orbit sweep, degrees (default 12)")
    p.add_argument("--dolly-m", type=float, default=None, metavar="M",
                   help="dolly distance in metres (default: 25%% of the distance to the subject)")
    p.add_argument("--force", action="store_true", help="replace the scene and frames of an earlier demo in --out")
    add_backend_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..progress import cli_progress

    with cli_progress("demo", enabled=progress_enabled()) as bar:
        res = run_demo(args.out, sample=args.sample, frames=args.frames, orbit_deg=args.orbit_deg, dolly_m=args.dolly_m,
                       backend=args.backend, device=args.device, force=args.force, progress=bar)
    worst = min(res.refresh, key=lambda r: r["confidence"])
    print(f"{args.out}: {res.splat_count} splats; {len(res.frames)} frames (orbit {res.orbit_deg:g}°, dolly "
          f"{res.dolly_m:.2f} m) in {args.out}/frames; refreshed witnesses in {args.out}/refresh (lowest confidence "
          f"{worst['confidence']:.2f}, {worst['level']}, frame {worst['frame']}); contact sheet {res.contact_sheet}; "
          f"video {res.video}")
    return 0
