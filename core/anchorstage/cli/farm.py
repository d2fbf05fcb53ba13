# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage farm``: render-farm jobs (Open Job Description bundles), see docs/farm.md."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("farm", help="write render-farm jobs (Open Job Description bundles for openjd / Deadline Cloud)",
                       description="Render-farm jobs. See docs/farm.md.")
    farm_sub = p.add_subparsers(dest="farm_command", metavar="KIND", required=True)
    o = farm_sub.add_parser(
        "openjd", help="write an Open Job Description job bundle (openjd run, deadline bundle submit)",
        description="Write a job bundle (template.json, parameter_values.json, asset_references.json) that renders "
                    "FRAMES of a scene folder (engine cli: anchorstage export) or of a .blend (engine blender: "
                    "Blender in background with the ANCHORSTAGE engine), in contiguous chunks of --chunk frames, one "
                    "task each. Re-running the job renders only frames that are not complete. Run it locally with "
                    "'openjd run JOB_DIR/template.json --step Export|Render -p file://JOB_DIR/openjd_parameters.json', or submit it with "
                    "'deadline bundle submit JOB_DIR'.")
    o.add_argument("source", metavar="SCENE_OR_BLEND", help="scene folder (anchorstage reconstruct) or .blend file")
    o.add_argument("--frames", required=True, metavar="A-B", help="inclusive frame range, e.g. 1-240")
    o.add_argument("--chunk", type=int, default=10, metavar="N", help="frames per task (default 10)")
    o.add_argument("--out", required=True, metavar="JOB_DIR", help="job bundle folder to write")
    o.add_argument("--engine", choices=("cli", "blender"), default=None,
                   help="cli: anchorstage export of a scene folder; blender: render a .blend (default: from the source)")
    o.add_argument("--cameras", metavar="CAMERAS.json", help="camera list with a camera per frame (engine cli)")
    o.add_argument("--output", metavar="DIR", help="folder the frames go to (default JOB_DIR/output)")
    o.add_argument("--preset", default="blender", help="export preset (engine cli): blender, nuke or after-effects")
    o.add_argument("--passes", metavar="LIST", help="comma-separated passes (engine cli; default all)")
    o.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the workers compute")
    o.add_argument("--command", dest="worker_command", metavar="EXE", help="the anchorstage (cli) or blender (blender) executable on the "
                                                    "workers (default: anchorstage / blender on their PATH)")
    o.add_argument("--name", help="job name")
    o.add_argument("--force", action="store_true", help="replace the bundle files of an existing job in JOB_DIR")
    o.set_defaults(func=run_openjd)


def run_openjd(args: argparse.Namespace) -> int:
    from ..export import parse_frame_range
    from ..farm import write_openjd_bundle

    res = write_openjd_bundle(args.source, args.out, frames=parse_frame_range(args.frames), chunk=args.chunk,
                              engine=args.engine, cameras=args.cameras, output=args.output, preset=args.preset,
                              passes=args.passes.split(",") if args.passes else None, device=args.device,
                              command=args.worker_command, name=args.name, force=args.force)
    checked = (f"checked with openjd-model {res['checked_with']}" if res["checked_with"]
               else "not checked: install anchorstage[farm] for openjd-model")
    print(f"{res['bundle']}: OpenJD job bundle, step {res['step']}, frames {res['values']['Frames']} in {res['tasks']} "
          f"task(s) of up to {res['values']['ChunkSize']}, output {res['values']['OutputDir']} ({checked})")
    print(f"  run locally:  openjd run {res['bundle'] / 'template.json'} --step {res['step']} "
          f"-p file://{res['bundle'] / 'openjd_parameters.json'}")
    print(f"  submit:       deadline bundle submit {res['bundle']}")
    return 0
