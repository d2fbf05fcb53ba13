# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import sys

from ..camera import Camera, load_camera_json
from ..errors import InputError

__all__ = ["add_camera_args", "camera_from_args", "add_device_arg", "progress_enabled"]


def add_camera_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("camera")
    g.add_argument("--camera", metavar="CAMERA.json", help="camera JSON (Blender matrix_world, lens, sensor, resolution)")
    g.add_argument("--lens-mm", type=float, metavar="F", help="focal length in mm (when no --camera)")
    g.add_argument("--sensor-mm", type=float, metavar="S", help="sensor width in mm (when no --camera; default 36)")
    p.set_defaults(_camera_required=required)


def camera_from_args(args: argparse.Namespace, resolution: tuple[int, int] | None = None) -> Camera | None:
    """The camera named by --camera, or one built from --lens-mm/--sensor-mm at ``resolution``."""
    if args.camera:
        if args.lens_mm is not None or args.sensor_mm is not None:
            raise InputError("give either --camera or --lens-mm/--sensor-mm, not both")
        return load_camera_json(args.camera)
    if args.lens_mm is None and args.sensor_mm is None:
        if getattr(args, "_camera_required", False):
            raise InputError("a camera is required: pass --camera CAMERA.json")
        return None
    if resolution is None:
        raise InputError("--lens-mm needs an image to take the resolution from")
    if args.lens_mm is None:
        raise InputError("--sensor-mm needs --lens-mm as well")
    from ..camera import look_at

    return Camera(width=resolution[0], height=resolution[1], lens_mm=args.lens_mm,
                  sensor_width_mm=36.0 if args.sensor_mm is None else args.sensor_mm,
                  world_from_cam=look_at((0, 0, 0), (0, 1, 0)))


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to compute (auto: CUDA when available)")


def progress_enabled() -> bool:
    return sys.stderr.isatty()
