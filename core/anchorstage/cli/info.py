# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage info``: what a splat file holds (count, SH degree, bounds, colour space, camera)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="summarise a splat file: count, SH degree, bounds, colour space, camera",
                       description="Read a splat file (.ply, .compressed.ply, .splat, .spz) and print its format, "
                                   "splat count, SH degree, bounds (metres, the file's frame), colour encoding, extra "
                                   "properties and elements, and the photo camera of SHARP files.")
    p.add_argument("file", metavar="FILE", help="splat file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..splatio import FORMATS, splat_file_info

    info = splat_file_info(args.file)
    cam = info.camera
    doc = {
        "file": info.path, "format": info.format, "splats": info.count, "sh_degree": info.sh_degree,
        "color_space": info.sh_encoding, "bounds_min_m": info.bounds_min, "bounds_max_m": info.bounds_max,
        "extra_properties": info.extra_properties, "extra_elements": info.extra_elements, "comments": info.comments,
        "camera": None if cam is None else {"resolution": list(cam.resolution), "K": cam.K.tolist(),
                                            "lens_mm": cam.lens_mm, "sensor_width_mm": cam.sensor_width_mm,
                                            "matrix_world": cam.matrix_world.tolist()},
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    lo, hi = info.bounds_min, info.bounds_max
    lines = [
        f"{info.path}: {FORMATS[info.format][0]}",
        f"  splats       {info.count:,}",
        f"  SH degree    {info.sh_degree}",
        f"  colour space {info.sh_encoding}",
        "  bounds (m)   " + "  ".join(f"{a}: {lo[i]:.4g} .. {hi[i]:.4g}" for i, a in enumerate("xyz")),
    ]
    if info.extra_properties:
        lines.append(f"  properties   {', '.join(info.extra_properties)}")
    if info.extra_elements:
        lines.append(f"  elements     {', '.join(info.extra_elements)}")
    if cam is not None:
        lines.append(f"  camera       {cam.width}x{cam.height}, focal {cam.focal_px:.2f} px, principal point "
                     f"({cam.principal_point_px[0]:.1f}, {cam.principal_point_px[1]:.1f}) px, "
                     f"{cam.lens_mm:.2f} mm on a {cam.sensor_width_mm:g} mm sensor")
    print("\n".join(lines))
    return 0
