# SPDX-License-Identifier: GPL-3.0-or-later
"""Fidelity benchmark: how faithfully a reconstructed stage reproduces its photo and moved views.

Input: the Cycles ground-truth stage of scripts/cycles_stage.py (exact depth, view-independent
colours) rendered at each ``--size`` from the reference camera ``v0`` and three moved cameras:
``fit_dolly`` (1 m forward), ``fit_orbit`` (8° about a point between the sphere and the box) and
``fit_truck_zoom`` (0.4 m to the side, 35 → 45 mm lens). Renders are cached under ``--cache``
(about 4 s at 320x180 and 15 s at 960x540 with bpy; without bpy the cache must already hold them).

For every size, budget (the default, and one splat per pixel) and colour fit (off, on), ``v0`` is
reconstructed with its exact depth and the stage is rendered back:

* witness: the render at ``v0`` against the input photo, over the pixels with depth (not sky);
* moved: the render at each moved camera against Cycles' render there, over the covisible
  pixels (surface points ``v0`` sees too, planar depth within 1 %); holes count as errors;
* coverage: the share of covisible pixels the render covers (alpha >= 0.5);
* depth AbsRel: mean |depth - true| / true over the covered covisible pixels.

PSNR and SSIM are reported on 8-bit sRGB (as images are usually scored) and on linear values
(peak 1). SSIM is scikit-image's (Gaussian window, sigma 1.5), averaged over the same pixels.
A reference row per size scores a plain nearest-pixel forward warp of the photo (z-buffered) on
the covisible pixels it lands on (PSNR only, with the share it covers): a sharp but hole-ridden
baseline.

Targets (issue 11): witness >= 40 dB; moved >= 31 dB with coverage >= 0.98 and AbsRel <= 0.5 %
(8-bit sRGB PSNR, default settings).

Usage::

    python benchmarks/bench_fidelity.py [--size 960x540 ...] [--json out/bench_fidelity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "core"))
sys.path.insert(0, str(REPO / "tests"))

from anchorstage import reconstruct, render  # noqa: E402
from anchorstage.image_io import to_uint8_srgb  # noqa: E402
from gt_fixture import covisible, load_view  # noqa: E402

MOVES = ("fit_dolly", "fit_orbit", "fit_truck_zoom")
TARGETS = {"witness_psnr_srgb8_db": 40.0, "moved_psnr_srgb8_db": 31.0, "moved_coverage": 0.98, "depth_absrel": 0.005}


def ensure_renders(cache: Path, width: int, height: int) -> Path:
    """The folder holding ``v0`` and the moved views at this size (rendered with Cycles when missing)."""
    folder = cache / f"cycles_fidelity_{width}x{height}"
    if all((folder / f"{v}_camera.json").is_file() for v in ("v0", *MOVES)):
        return folder
    try:
        import bpy  # noqa: F401
    except ImportError:
        raise SystemExit(f"no cached renders in {folder} and bpy is not installed to make them "
                         "(pip install bpy==5.0.1, or pass --cache to a folder that has them)") from None
    print(f"rendering the ground-truth stage at {width}x{height} with Cycles into {folder} ...", file=sys.stderr)
    subprocess.run([sys.executable, str(REPO / "scripts" / "cycles_stage.py"), "--out", str(folder), "--width",
                    str(width), "--height", str(height), "--views", "v0", *MOVES], check=True, stdout=subprocess.DEVNULL)
    return folder


def _ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM over ``mask`` of two [H, W, 3] images in [0, 1]-ish ranges (data range 1)."""
    from skimage.metrics import structural_similarity

    _, smap = structural_similarity(a.astype(np.float64), b.astype(np.float64), channel_axis=-1, data_range=1.0,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    return float(smap[mask].mean())


def image_scores(ours_linear: np.ndarray, truth_linear: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """PSNR / SSIM on 8-bit sRGB and on linear values over ``mask``.

    Args:
        ours_linear: [H, W, 3] float32 render, linear.
        truth_linear: [H, W, 3] float32 reference, linear.
        mask: [H, W] bool pixels to score.
    """
    a8 = to_uint8_srgb(ours_linear).astype(np.float64) / 255.0
    b8 = to_uint8_srgb(truth_linear).astype(np.float64) / 255.0
    mse8 = float(((a8 - b8)[mask] ** 2).mean())
    mse = float(((ours_linear.astype(np.float64) - truth_linear)[mask] ** 2).mean())
    return {
        "psnr_srgb8_db": 10.0 * np.log10(1.0 / max(mse8, 1e-20)),
        "ssim_srgb8": _ssim(a8, b8, mask),
        "psnr_linear_db": 10.0 * np.log10(1.0 / max(mse, 1e-20)),
        "ssim_linear": _ssim(ours_linear, truth_linear, mask),
    }


def forward_warp(ref: dict, view: dict) -> tuple[np.ndarray, np.ndarray]:
    """The photo warped to ``view`` pixel by pixel (nearest pixel, nearest surface wins).

    Returns:
        [H, W, 3] float32 linear image and [H, W] bool pixels something landed on.
    """
    cam0, cam = ref["camera"], view["camera"]
    d0 = ref["depth_m"]
    fin = np.isfinite(d0).reshape(-1)
    pw = cam0.unproject(cam0.pixel_centers().reshape(-1, 2)[fin], d0.reshape(-1)[fin])
    col = ref["image_linear"].reshape(-1, 3)[fin]
    uv, z = cam.project(pw)
    h, w = view["depth_m"].shape
    ix, iy = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    ok = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h) & (z > 0)
    far_first = np.argsort(-z[ok])
    ix, iy, col = ix[ok][far_first], iy[ok][far_first], col[ok][far_first]
    img = np.zeros((h, w, 3), np.float32)
    hit = np.zeros((h, w), bool)
    img[iy, ix] = col
    hit[iy, ix] = True
    return img, hit


def score_scene(scene, ref: dict, views: dict) -> dict:
    """Witness and moved-camera scores of a reconstructed scene (see the module docstring)."""
    out = {}
    w = render(scene.splats, ref["camera"], ["color"], device="cpu")
    valid = np.isfinite(ref["depth_m"])
    out["witness"] = image_scores(w["color"].numpy(), ref["image_linear"], valid)
    for name, view in views.items():
        r = render(scene.splats, view["camera"], ["color", "alpha", "depth"], device="cpu")
        cov = covisible(view, ref)
        hit = cov & (r["alpha"].numpy() >= 0.5)
        rel = np.abs(r["depth"].numpy()[hit] - view["depth_m"][hit]) / view["depth_m"][hit]
        out[name] = {**image_scores(r["color"].numpy(), view["image_linear"], cov),
                     "coverage": float(hit.sum() / max(cov.sum(), 1)), "depth_absrel": float(rel.mean()),
                     "covisible_share": float(cov.mean())}
    return out


def bench_size(cache: Path, width: int, height: int) -> list[dict]:
    folder = ensure_renders(cache, width, height)
    ref = load_view("v0", folder)
    views = {m: load_view(m, folder) for m in MOVES}
    rows = []
    for budget_name, budget in (("default", None), ("1 splat/px", width * height)):
        for fit in (False, True):
            reconstruct(ref["image_linear"], ref["depth_m"], ref["camera"], max_splats=budget, fit_colors=fit,
                        device="cpu")  # warm-up (numba kernels, allocator)
            t0 = time.perf_counter()
            scene = reconstruct(ref["image_linear"], ref["depth_m"], ref["camera"], max_splats=budget,
                                fit_colors=fit, device="cpu")
            seconds = time.perf_counter() - t0
            colors = scene.splats.colors
            rows.append({"size": f"{width}x{height}", "budget": budget_name, "color_fit": fit,
                         "splats": len(scene.splats), "reconstruct_s": seconds,
                         "color_range": [float(colors.min()), float(colors.max())],
                         **score_scene(scene, ref, views)})
    warp = {}
    for name, view in views.items():
        img, hit = forward_warp(ref, view)
        cov = covisible(view, ref)
        landed = cov & hit
        a8 = to_uint8_srgb(img).astype(np.float64) / 255.0
        b8 = to_uint8_srgb(view["image_linear"]).astype(np.float64) / 255.0
        mse8 = float(((a8 - b8)[landed] ** 2).mean())
        warp[name] = {"psnr_srgb8_db": 10.0 * np.log10(1.0 / max(mse8, 1e-20)),
                      "coverage": float(landed.sum() / max(cov.sum(), 1))}
    rows.append({"size": f"{width}x{height}", "budget": "photo forward warp (reference)", "color_fit": None,
                 **warp})
    return rows


def _print(rows: list[dict]) -> None:
    head = f"{'size':<9} {'budget':<11} {'fit':<4} {'splats':>8} {'time':>6} | {'witness dB / SSIM':>17} |"
    head += "".join(f" {m + ' dB/SSIM/cov/AbsRel':>29} |" for m in MOVES)
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["color_fit"] is None:
            line = f"{r['size']:<9} {'photo forward warp: covered pixels only':<54} |"
            line += "".join(f" {r[m]['psnr_srgb8_db']:6.2f} {'':>5} {r[m]['coverage']:6.4f} {'':>7} |" for m in MOVES)
            print(line)
            continue
        w = r["witness"]
        line = (f"{r['size']:<9} {r['budget']:<11} {'on' if r['color_fit'] else 'off':<4} {r['splats']:>8} "
                f"{r['reconstruct_s']:5.2f}s | {w['psnr_srgb8_db']:6.2f} / {w['ssim_srgb8']:6.4f}  |")
        line += "".join(f" {r[m]['psnr_srgb8_db']:6.2f} {r[m]['ssim_srgb8']:5.3f} {r[m]['coverage']:6.4f} "
                        f"{r[m]['depth_absrel'] * 100:6.3f}% |" for m in MOVES)
        print(line)
    print("PSNR / SSIM on 8-bit sRGB; linear figures in the JSON. Moved views: covisible pixels; cov = coverage.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", action="append", metavar="WxH",
                    help="render size (repeatable; default 320x180, the committed fixture's size, and 960x540)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "anchorstage")
    ap.add_argument("--json", type=Path, default=REPO / "out" / "bench_fidelity.json")
    args = ap.parse_args(argv)
    sizes = []
    for s in args.size or ["320x180", "960x540"]:
        try:
            w, h = (int(v) for v in s.lower().split("x"))
        except ValueError:
            ap.error(f"--size must look like 960x540 (got {s!r})")
        sizes.append((w, h))
    rows = [r for w, h in sizes for r in bench_size(args.cache, w, h)]
    _print(rows)
    result = {"benchmark": "witness re-render and moved-camera fidelity on the Cycles ground-truth stage",
              "host": platform.node(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
              "targets": TARGETS, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
