# SPDX-License-Identifier: GPL-3.0-or-later
"""Argument helpers shared by subcommands (cheap to import: no torch)."""

from __future__ import annotations

import argparse
import sys

from ..device import BACKENDS, DEVICES

__all__ = ["add_camera_args", "add_device_arg", "add_backend_arg", "progress_enabled"]


def add_camera_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("camera")
    g.add_argument("--camera", metavar="CAMERA.json", help="camera JSON (Blender matrix_world, lens, sensor, resolution)")
    g.add_argument("--lens-mm", type=float, metavar="F", help="focal length in mm (when no --camera)")
    g.add_argument("--sensor-mm", type=float, metavar="S", help="sensor width in mm (when no --camera; default 36)")


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="where to compute (auto: CUDA when available)")


def add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="auto: gsplat on CUDA when installed, else torch")


def progress_enabled() -> bool:
    return sys.stderr.isatty()
