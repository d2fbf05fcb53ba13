# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage convert``: convert a splat file between formats (docs/formats.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from ..splatio import FORMATS

    p = sub.add_parser("convert", help="convert a splat file (.ply, .compressed.ply, .splat, .spz, SHARP .ply)",
                       description="Read a splat file in any supported format and write it in another. The output "
                                   "format follows OUT's extension (.ply, .compressed.ply, .splat, .spz) unless "
                                   "--format is given. Converting to the format a file came from keeps every "
                                   "stored value; lossy targets (.splat, .spz, compressed PLY) quantise. "
                                   "See docs/formats.md.")
    p.add_argument("input", metavar="IN", help="splat file to read")
    p.add_argument("output", metavar="OUT", help="splat file to write")
    p.add_argument("--format", choices=tuple(FORMATS), help="output format (default: from OUT's extension)")
    p.add_argument("--camera", metavar="CAMERA.json",
                   help="for --format sharp: the photo camera (Blender matrix_world); the splats are written in its "
                        "OpenCV frame. Without it a SHARP input keeps its own camera")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..errors import InputError, OutputError
    from ..splatio import read_splats, write_splats
    from ..splatio.sharp import placed

    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputError(f"{str(out)!r} exists; use --force to replace it")
    if Path(args.input).resolve() == out.resolve():
        raise InputError("IN and OUT are the same file")
    if args.camera and args.format != "sharp":
        raise InputError("--camera is only used with --format sharp")
    splats = read_splats(args.input)
    cam = None
    if args.camera:
        cam = load_camera_json(args.camera)
        splats = placed(splats, args.input)  # the camera JSON is in AnchorStage's (Blender's) world
    fmt = write_splats(out, splats, args.format, camera=cam)
    print(f"{out}: {len(splats):,} splats ({fmt}, SH degree {splats.sh_degree})")
    return 0
