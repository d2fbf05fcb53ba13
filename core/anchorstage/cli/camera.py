# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage camera``: inspect a camera JSON and apply metric moves to it."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..camera import FOCAL_PRESETS_MM, load_camera_json, save_camera_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("camera", help="inspect a camera JSON or move it in metres/degrees",
                       description="Print a camera's intrinsics and field of view, or apply moves and write a new camera JSON. "
                                   "Moves apply in the order given on the command line.")
    p.add_argument("camera_json", metavar="CAMERA.json")
    p.add_argument("--out", metavar="OUT.json", help="write the moved camera here")
    moves = p.add_argument_group("moves (metres, degrees; repeatable, applied in order)")
    for name, helptext in (("dolly", "forward along the view axis"), ("truck", "right"), ("pedestal", "up"),
                           ("pan", "degrees about world +Z (positive: left)"), ("tilt", "degrees (positive: up)"),
                           ("roll", "degrees (positive: counter-clockwise from behind)"), ("zoom", "focal-length factor")):
        moves.add_argument(f"--{name}", type=float, action=_Move, dest="moves", metavar="X", help=helptext)
    moves.add_argument("--orbit", type=float, nargs=5, action=_Move, dest="moves", metavar=("PX", "PY", "PZ", "YAW", "PITCH"),
                       help="orbit about pivot (metres) by yaw and pitch (degrees)")
    moves.add_argument("--lens", type=float, choices=FOCAL_PRESETS_MM, action=_Move, dest="moves",
                       help="focal-length preset in mm")
    p.set_defaults(func=run, moves=[])


class _Move(argparse.Action):
    """Collect moves as (name, value) in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.moves = [*namespace.moves, (option_string.lstrip("-"), values)]


def run(args: argparse.Namespace) -> int:
    cam = load_camera_json(args.camera_json)
    for name, value in args.moves:
        if name == "orbit":
            cam = cam.orbit(value[:3], value[3], value[4])
        elif name == "lens":
            cam = cam.with_lens(value)
        else:
            cam = getattr(cam, name)(value)
    fx, fy = cam.fov_deg
    K = cam.K
    info = {
        "resolution": list(cam.resolution), "lens_mm": cam.lens_mm, "sensor_width_mm": cam.sensor_width_mm,
        "sensor_fit": cam.sensor_fit, "effective_fit": cam.effective_fit, "focal_px": cam.focal_px,
        "principal_point_px": list(cam.principal_point_px), "fov_deg": [fx, fy],
        "focal_35mm_equiv": cam.focal_35mm_equiv, "position_m": cam.position.tolist(),
        "forward": np.round(cam.forward, 9).tolist(), "K": K.tolist(),
    }
    print(json.dumps(info, indent=2))
    if args.out:
        save_camera_json(args.out, cam)
    return 0

