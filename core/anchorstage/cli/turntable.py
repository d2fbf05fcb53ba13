# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage turntable``: render a stage from N angles about the product's centre, a compositing
package per angle (see docs/video.md)."""

from __future__ import annotations

import argparse

from ._common import add_backend_arg, add_device_arg, progress_enabled


def add_turntable_args(p: argparse.ArgumentParser) -> None:
    """The turntable's shape (shared with ``anchorstage video --path turntable``)."""
    g = p.add_argument_group("turntable (defaults: the scene camera's distance, height and direction)")
    g.add_argument("--radius-m", type=float, default=None, metavar="M", help="distance from the product's centre, metres")
    g.add_argument("--elevation-deg", type=float, default=None, metavar="DEG",
                   help="degrees above the centre's horizontal plane")
    g.add_argument("--centre", default=None, metavar="X,Y,Z",
                   help="world metres (default: the middle of the foreground splats)")
    g.add_argument("--start-deg", type=float, default=None, metavar="DEG", help="azimuth of the first view")
    g.add_argument("--sweep-deg", type=float, default=360.0, metavar="DEG", help="azimuth covered (default 360)")
    g.add_argument("--resolution", default=None, metavar="WxH", help="frame size in pixels (default: the scene camera's)")


def parse_resolution(text: str | None, flag: str = "--resolution") -> tuple[int, int] | None:
    from ..errors import InputError

    if text is None:
        return None
    w, _, h = text.lower().partition("x")
    if not (w.strip().isdigit() and h.strip().isdigit()) or int(w) <= 0 or int(h) <= 0:
        raise InputError(f"{flag} must look like 1920x1080, two positive integers (got {text!r})")
    return int(w), int(h)


def parse_centre(text: str | None) -> tuple[float, float, float] | None:
    import math

    from ..errors import InputError

    if text is None:
        return None
    try:
        xyz = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        xyz = ()
    if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
        raise InputError(f"--centre must be three finite numbers X,Y,Z in metres (got {text!r})")
    return xyz  # type: ignore[return-value]


def turntable_from_args(scene, views: int, args: argparse.Namespace):
    """The cameras of the turntable the flags describe, the centre they turn about ([3] metres) and
    whether it was given."""
    from ..stages import product_centre, turntable_cameras

    given = parse_centre(args.centre)
    centre = product_centre(scene) if given is None else given
    cams = turntable_cameras(scene, views, radius_m=args.radius_m, elevation_deg=args.elevation_deg, centre=centre,
                             start_deg=args.start_deg, sweep_deg=args.sweep_deg,
                             resolution=parse_resolution(args.resolution))
    return cams, centre, given is not None


def register(sub: argparse._SubParsersAction) -> None:
    from ..export import PRESETS
    from ..passes import PASSES

    p = sub.add_parser(
        "turntable", help="render a stage from N angles about the product's centre (a compositing package per angle)",
        description="Place N cameras on a circle about the vertical axis through the product's centre (radius in "
                    "metres, elevation in degrees), each looking at it, and render every pass per angle as "
                    "'anchorstage export' does (multilayer EXR, void map, region masks, proxy, metadata). Writes "
                    "cameras.json (for 'anchorstage video --path') and turntable.json into DIR. See docs/video.md.")
    p.add_argument("scene", metavar="SCENE_DIR", help="scene folder written by 'anchorstage reconstruct' (or fuse)")
    p.add_argument("--views", type=int, default=8, metavar="N", help="angles (default 8: 45° apart)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_turntable_args(p)
    p.add_argument("--preset", choices=PRESETS, default="blender", help="file layout for the target application")
    p.add_argument("--passes", default=",".join(PASSES), metavar="LIST", help="comma-separated passes (default: all)")
    add_backend_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..passes import check_passes
    from ..progress import cli_progress
    from ..scene import load_scene
    from ..stages import export_turntable

    if args.views < 1:
        raise InputError(f"--views must be a positive number of angles (got {args.views})")
    passes = check_passes(args.passes, "--passes")
    parse_centre(args.centre)
    parse_resolution(args.resolution)
    scene = load_scene(args.scene)
    cams, centre, given = turntable_from_args(scene, args.views, args)
    with cli_progress("turntable", enabled=progress_enabled()) as bar:
        record = export_turntable(scene, cams, args.out, centre=centre, centre_given=given, sweep_deg=args.sweep_deg,
                                  preset=args.preset, passes=passes, backend=args.backend, device=args.device,
                                  progress=bar)
    print(f"{args.out}: {len(cams)} angles about ({', '.join(f'{v:.3f}' for v in record['centre_m'])}) m, radius "
          f"{record['radius_m']:.3f} m, elevation {record['elevation_deg']:.1f}°; cameras.json for 'anchorstage video'")
    return 0
