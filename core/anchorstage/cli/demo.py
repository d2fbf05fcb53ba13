# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage demo``: the main job on the bundled sample, end to end.

Reconstruct the sample photo with its metric depth, segment it into regions, render a metric
camera move (an orbit about the subject, then a dolly towards it) to multilayer EXRs with
void maps, region masks and metadata, and write ``contact_sheet.png``: one row per frame,
columns beauty / depth / normal / confidence / region.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from ._common import add_device_arg, progress_enabled

#: Where the sample lives: beside the package when installed with its data, else the checkout.
_SAMPLE_CANDIDATES = (
    Path(__file__).resolve().parents[1] / "data" / "sample",
    Path(__file__).resolve().parents[3] / "sample",
)
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".heic")
_DEPTH_EXT = (".npy", ".exr", ".png")
COLUMNS = ("beauty", "depth", "normal", "confidence", "region")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on the bundled sample (reconstruct, camera move, EXRs, contact sheet)",
                       description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output folder (default out/demo)")
    p.add_argument("--sample", metavar="DIR", help="sample folder (photo, depth, camera JSON); default: the bundled one")
    p.add_argument("--frames", type=int, default=12, metavar="N", help="frames in the move (default 12: 6 orbit + 6 dolly)")
    p.add_argument("--orbit-deg", type=float, default=12.0, metavar="DEG", help="orbit sweep, degrees (default 12)")
    p.add_argument("--dolly-m", type=float, default=None, metavar="M",
                   help="dolly distance in metres (default: 25%% of the distance to the subject)")
    p.add_argument("--backend", choices=("auto", "torch", "gsplat"), default="auto")
    add_device_arg(p)
    p.set_defaults(func=run)


def find_sample(explicit: Optional[str] = None) -> dict[str, Path]:
    """The sample's photo, depth and camera files.

    Raises:
        InputError: no sample folder, or one without the three files.
    """
    from ..errors import InputError

    env = os.environ.get("ANCHORSTAGE_SAMPLE")
    dirs = [Path(explicit)] if explicit else ([Path(env)] if env else list(_SAMPLE_CANDIDATES))
    for d in dirs:
        if not d.is_dir():
            continue
        files = sorted(p for p in d.iterdir() if p.is_file())
        depth = [p for p in files if "depth" in p.stem.lower() and p.suffix.lower() in _DEPTH_EXT]
        image = [p for p in files if "depth" not in p.stem.lower() and p.suffix.lower() in _IMAGE_EXT]
        camera = [p for p in files if p.suffix.lower() == ".json" and "camera" in p.stem.lower()] or \
                 [p for p in files if p.suffix.lower() == ".json"]
        if depth and image and camera:
            return {"image": image[0], "depth": depth[0], "camera": camera[0], "dir": d}
        raise InputError(f"sample folder {str(d)!r} must hold a photo, a *depth* map (.npy/.exr/.png) and a camera "
                         f"JSON (found {', '.join(p.name for p in files) or 'nothing'})")
    raise InputError("the bundled sample was not found (looked in " + ", ".join(str(d) for d in dirs) +
                     "); run from a checkout of the repository, or pass --sample DIR / set ANCHORSTAGE_SAMPLE")


def camera_move(reference, pivot_distance_m: float, frames: int, orbit_deg: float, dolly_m: float):
    """Orbit about a pivot on the view axis, then dolly towards it (metres, degrees).

    Returns:
        [frames] cameras: the first half orbits from -orbit/2 to +orbit/2 about the pivot
        ``pivot_distance_m`` ahead of the reference; the second half dollies forward from
        the reference pose by up to ``dolly_m``.
    """
    pivot = reference.position + pivot_distance_m * reference.forward
    n_orbit = max(1, frames // 2)
    n_dolly = frames - n_orbit
    cams = [reference.orbit(pivot, float(y), 0.0) for y in np.linspace(-orbit_deg / 2, orbit_deg / 2, n_orbit)]
    cams += [reference.dolly(float(d)) for d in np.linspace(dolly_m / max(n_dolly, 1), dolly_m, n_dolly)]
    return cams


def _colorize_depth(depth: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Log-depth heat map (near = bright yellow, far = dark purple; background black), sRGB floats."""
    valid = depth < 1e9
    t = np.zeros_like(depth)
    span = max(np.log(hi) - np.log(lo), 1e-9)
    t[valid] = np.clip((np.log(hi) - np.log(np.maximum(depth[valid], 1e-6))) / span, 0, 1)
    # A compact magma-like ramp.
    stops = np.array([[0.0, 0.0, 0.02], [0.3, 0.06, 0.45], [0.75, 0.2, 0.45], [0.99, 0.55, 0.25], [0.99, 0.98, 0.6]])
    x = t * (len(stops) - 1)
    i = np.clip(x.astype(int), 0, len(stops) - 2)
    f = (x - i)[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    rgb[~valid] = 0.0
    return rgb


def _region_colors(region: np.ndarray) -> np.ndarray:
    """Distinct colour per region id (golden-ratio hues); -1 black."""
    import colorsys

    ids = np.unique(region)
    lut = {int(i): colorsys.hsv_to_rgb((0.61803 * (i + 1)) % 1.0, 0.65, 0.95) for i in ids if i >= 0}
    out = np.zeros(region.shape + (3,))
    for i, c in lut.items():
        out[region == i] = c
    return out


def contact_sheet(rows: list[tuple[str, dict]], path: Path, tile_width: int = 320) -> Path:
    """Write a labelled grid PNG: one row per frame, columns beauty/depth/normal/confidence/region.

    Args:
        rows: (label, passes) per frame; passes as numpy arrays from :func:`anchorstage.render`.
        path: output PNG.
        tile_width: width of each tile in pixels.
    """
    from PIL import Image, ImageDraw

    from ..atomic import atomic_file
    from ..image_io import linear_to_srgb

    depths = np.concatenate([p["depth"][p["depth"] < 1e9].ravel() for _, p in rows] or [np.ones(1)])
    lo, hi = (np.percentile(depths, 1), np.percentile(depths, 99)) if depths.size else (1.0, 10.0)
    h0, w0 = rows[0][1]["depth"].shape
    th = int(round(tile_width * h0 / w0))
    label_h, pad = 18, 4
    sheet = Image.new("RGB", (len(COLUMNS) * (tile_width + pad) + pad + 60, len(rows) * (th + pad) + pad + label_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((60 + pad + c * (tile_width + pad) + 4, 3), name, fill=(230, 230, 230))
    for r, (label, p) in enumerate(rows):
        tiles = [
            linear_to_srgb(p["color"]),
            _colorize_depth(p["depth"], lo, hi),
            np.where(p["alpha"][..., None] > 1e-3, p["normal"] * 0.5 + 0.5, 0.0),
            np.repeat(np.clip(p["confidence"], 0, 1)[..., None], 3, axis=-1),
            _region_colors(p["region"]),
        ]
        y = label_h + pad + r * (th + pad)
        draw.text((4, y + th // 2 - 6), label, fill=(230, 230, 230))
        for c, t in enumerate(tiles):
            im = Image.fromarray(np.round(np.clip(t, 0, 1) * 255).astype(np.uint8))
            sheet.paste(im.resize((tile_width, th), Image.NEAREST if c == 4 else Image.BILINEAR), (60 + pad + c * (tile_width + pad), y))
    with atomic_file(path, "contact sheet") as tmp:
        sheet.save(tmp, format="PNG")
    return path


def run(args: argparse.Namespace) -> int:
    from ..camera import load_camera_json
    from ..depth_io import load_depth
    from ..errors import InputError
    from ..export import export_frames
    from ..image_io import load_image
    from ..progress import cli_progress, scaled
    from ..regression import reconstruct
    from ..scene import save_scene
    from ..segmentation import segment

    if args.frames < 2:
        raise InputError(f"--frames must be at least 2 (got {args.frames})")
    sample = find_sample(args.sample)
    out = Path(args.out)
    with cli_progress("demo", enabled=progress_enabled()) as bar:
        bar(0.0, "load sample")
        image = load_image(sample["image"])
        camera = load_camera_json(sample["camera"])
        depth, notes = load_depth(sample["depth"], expected_hw=(image.height, image.width))
        scene = reconstruct(image, depth, camera, device=args.device, progress=scaled(bar, 0.02, 0.25),
                            meta={"source_image": sample["image"].name, "depth_source": f"file {sample['depth'].name}",
                                  "intrinsics_source": "camera file", "notes": list(image.notes) + list(notes)})
        segment(scene, progress=scaled(bar, 0.25, 0.35))
        save_scene(scene, out / "scene", force=True)
        finite = depth[np.isfinite(depth)]
        subject = float(np.median(finite)) if finite.size else 5.0
        dolly = 0.25 * subject if args.dolly_m is None else args.dolly_m
        cams = camera_move(scene.camera, subject, args.frames, args.orbit_deg, dolly)
        frames = export_frames(scene, cams, out / "frames", preset="blender", backend=args.backend, device=args.device,
                               generation={"move": f"orbit {args.orbit_deg:g} deg about {subject:.2f} m, dolly {dolly:.2f} m"},
                               progress=scaled(bar, 0.35, 0.9))
        bar(0.9, "contact sheet")
        from ..exr import read_exr

        picks = sorted({0, len(frames) // 2 - 1, len(frames) // 2, len(frames) - 1})
        rows = []
        for i in picks:
            md = frames[i]
            p = read_exr(out / "frames" / md["files"]["exr"])
            rows.append((f"#{md['frame']}", p))
        sheet = contact_sheet(rows, out / "contact_sheet.png")
        bar(1.0, "done")
    print(f"{out}: {len(scene.splats)} splats; {len(frames)} frames (orbit {args.orbit_deg:g}°, dolly {dolly:.2f} m) "
          f"in {out / 'frames'}; contact sheet {sheet}", file=sys.stdout)
    return 0
