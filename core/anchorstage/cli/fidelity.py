# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage fidelity``: per-angle PSNR / SSIM / LPIPS / CLIP identity report (table, JSON, contact sheet, plot)."""

from __future__ import annotations

import argparse

from ._common import add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fidelity", help="per-angle fidelity report: generated vs reference frames, or leave-one-out of a capture",
        description="Compare GENERATED_DIR with REFERENCE_DIR (frames paired by name), or --leave-one-out CAPTURE_DIR "
                    "(each view held out, the rest fused and rendered at its camera, beside the frontal single-image "
                    "baseline). Masked PSNR, SSIM, LPIPS (when its backbone weights are on this machine) and CLIP "
                    "identity similarity; writes fidelity.md, fidelity.json, contact_sheet.png and per_angle.png. "
                    "See docs/fidelity.md.")
    p.add_argument("generated", nargs="?", metavar="GENERATED_DIR", help="generated frames")
    p.add_argument("reference", nargs="?", metavar="REFERENCE_DIR", help="reference frames of the same names")
    p.add_argument("--leave-one-out", metavar="CAPTURE_DIR", help="capture folder to evaluate by leave-one-out")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder to write")
    p.add_argument("--masks", metavar="DIR", help="masks NAME.png or NAME_mask.png (default: the reference's alpha)")
    p.add_argument("--identity-model", metavar="ID_OR_PATH",
                   help="CLIP model id or folder (default: $ANCHORSTAGE_IDENTITY_MODEL or openai/clip-vit-base-patch32, "
                        "local cache only; without weights the column says it is unavailable)")
    p.add_argument("--depth-model", metavar="ID_OR_PATH", help="depth model for capture views without a depth file")
    add_device_arg(p)
    p.add_argument("--force", action="store_true", help="replace REPORT_DIR if it is not empty")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_new_dir
    from ..errors import InputError
    from ..fidelity import write_report
    from ..progress import cli_progress
    from ..stages import measure_fidelity

    if args.leave_one_out is None and (args.generated is None or args.reference is None):
        raise InputError("give GENERATED_DIR and REFERENCE_DIR, or --leave-one-out CAPTURE_DIR")
    if args.leave_one_out is not None and args.generated is not None:
        raise InputError("give GENERATED_DIR and REFERENCE_DIR, or --leave-one-out CAPTURE_DIR, not both")
    out = check_new_dir(args.out, args.force, "report folder")
    with cli_progress("fidelity", enabled=progress_enabled()) as bar:
        rep = measure_fidelity(args.generated, args.reference, leave_one_out=args.leave_one_out, masks=args.masks,
                       identity_model=args.identity_model, depth_model=args.depth_model, device=args.device,
                       progress=bar)
    write_report(rep, out, force=args.force)
    s = rep.to_json_dict()
    line = f"{out}: {len(rep.angles)} angles, PSNR min {s['summary']['min_psnr_db']} dB, mean {s['summary']['mean_psnr_db']} dB"
    if rep.mode == "leave-one-out":
        line += (f"; target {s['psnr_target_db']:g} dB everywhere: {'yes' if s['summary']['reaches_target_everywhere'] else 'no'}"
                 f"; beats the single-image baseline off the frontal view: "
                 f"{'yes' if s['summary']['beats_baseline_off_frontal'] else 'no'}")
    print(line)
    for col, note in (("LPIPS", rep.lpips_note), ("identity", rep.identity_note)):
        if note:
            print(f"  {col} column {note}")
    return 0
