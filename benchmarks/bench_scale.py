# SPDX-License-Identifier: GPL-3.0-or-later
"""Scaling benchmark: render time and peak memory against splat count and resolution, LOD on and off;
reconstruct time against photo size.

Scenes (built once into ``--cache`` as scene folders, the way users keep them):

* ``stage``: the benchmarks' analytic stage (``bench_render.stage_splats``: one splat per pixel of
  a reference photo of ~N pixels: ground, facade, two boxes);
* ``trained``: the same splats as a trained capture carries them: degree-3 SH coefficients and
  varied opacities, written as a standard 3DGS PLY (``ply_read_s``: decoding that PLY) and then
  imported into a scene folder.

Scenes of 1M splats and more are saved with their memory-mapped arrays and LOD hierarchy
(docs/scale.md), so ``open_s`` is what ``load_scene`` costs. Every configuration (scene, resolution,
LOD on/off) runs in its own process: ``peak_rss_mb`` is that process's peak resident memory
(``ru_maxrss``; the interpreter, torch and numba included, ~0.3 GB). Frames are
``stages.render_frame`` with every pass, the CPU compiled compositor, from the bench_render view
(trucked and orbited off the photo's viewpoint); ``psnr_db`` compares each LOD frame's colour and
alpha with the exact (LOD off) frame of the same configuration. gsplat rows run only where CUDA is
present. Reconstruct rows time ``anchorstage.reconstruct`` on the analytic photo at 720p, 1080p and 4K.

    python benchmarks/bench_scale.py [--quick] [--json out.json] [--plot out.png] [--cache DIR]

The 10M-splat rows need ~4 GB while their scenes are built (once) and run one process at a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
COUNTS = (100_000, 1_000_000, 4_000_000, 10_000_000)
QUICK_COUNTS = (100_000, 1_000_000)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ------------------------------------------------------------------------------------ scenes
def build_scene(kind: str, n: int, folder: Path) -> dict:
    """Write the ``kind`` scene of ~n splats to ``folder`` (in this process); returns facts about it."""
    import torch

    from anchorstage.scene import Scene, save_scene
    from anchorstage.splatio.ply import read_ply, write_ply
    from bench_render import stage_splats, with_sh

    sp, ref = stage_splats(n)
    facts: dict = {}
    if kind == "trained":
        g = torch.Generator().manual_seed(1)
        sp = with_sh(sp)
        sp.opacities = (0.3 + 0.69 * torch.rand(len(sp), generator=g))
        ply = folder.with_suffix(".ply")
        write_ply(ply, sp)
        del sp
        t0 = time.perf_counter()
        sp = read_ply(ply)
        facts["ply_read_s"] = time.perf_counter() - t0
        facts["ply_mb"] = ply.stat().st_size / 2**20
    small = ref.with_resolution(64, 36)
    scene = Scene(camera=small, splats=sp, image_linear=np.zeros((36, 64, 3), np.float32),
                  depth_m=np.full((36, 64), 5.0, np.float32), meta={"bench_reference": ref.to_json_dict()})
    t0 = time.perf_counter()
    save_scene(scene, folder, force=True)
    facts["save_s"] = time.perf_counter() - t0
    facts["splats"] = len(sp)
    return facts


def view(scene, width: int, height: int):
    """The bench_render view of a scene's reference camera at ``width`` x ``height``."""
    from anchorstage import Camera

    ref = Camera.from_json_dict(scene.meta["bench_reference"])
    return ref.with_resolution(width, height).truck(0.3).orbit((0, 0, 1.2), 6.0, 3.0)


# ------------------------------------------------------------------------------------ workers
def worker_render(args: argparse.Namespace) -> dict:
    """One configuration in this process: open the scene, render ``repeat`` frames, report."""
    import torch

    from anchorstage.scene import load_scene
    from anchorstage.stages import render_frame

    t0 = time.perf_counter()
    scene = load_scene(args.scene)
    open_s = time.perf_counter() - t0
    rss_open = _peak_rss_mb()
    w, h = RESOLUTIONS[args.res]
    cam = view(scene, w, h)
    lod = args.lod == "on"
    device = "cuda" if args.backend == "gsplat" else "cpu"
    times = []
    frame = None
    for i in range(args.repeat + 1):  # the first frame builds what a scene lacks and warms the kernels
        t0 = time.perf_counter()
        frame = render_frame(scene, cam, backend=args.backend, device=device, lod=lod, lod_threshold_px=args.lod_threshold)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
        else:
            first = time.perf_counter() - t0
    peak = _peak_rss_mb()  # the frames' peak, before the count below copies a cut of its own
    drawn = None
    if lod and scene.lod is not None:
        from anchorstage.lod import cut

        from anchorstage.lod import DEFAULT_THRESHOLD_PX

        drawn = len(cut(scene.lod, scene.splats, cam, DEFAULT_THRESHOLD_PX if args.lod_threshold is None
                        else args.lod_threshold).splats)
    if args.save_frame:
        np.save(args.save_frame, np.concatenate([frame.passes["color"], frame.passes["alpha"][..., None]], -1))
    return {"open_s": open_s, "rss_after_open_mb": rss_open, "first_frame_s": first,
            "median_s": statistics.median(times), "best_s": min(times), "drawn": drawn,
            "peak_rss_mb": peak, "lod_levels": None if scene.lod is None else len(scene.lod.levels)}


def worker_reconstruct(args: argparse.Namespace) -> dict:
    from _stage import analytic_photo
    from anchorstage import reconstruct

    w, h = RESOLUTIONS[args.res]
    ref, ok, _, _, depth, colors = analytic_photo(w * h)
    image = colors.reshape(ref.height, ref.width, 3).astype(np.float32)
    reconstruct(image, depth, ref, device="cpu")  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        scene = reconstruct(image, depth, ref, device="cpu")
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "best_s": min(times), "splats": len(scene.splats),
            "peak_rss_mb": _peak_rss_mb(), "photo": [ref.width, ref.height]}


def _run_worker(extra: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ plot
def plot(rows: list[dict], recon: list[dict], path: Path) -> None:
    """Two log-log panels (time vs splats at 720p; time vs pixels per splat count), with matplotlib
    when installed, else drawn with Pillow."""
    series_a, series_b = {}, {}
    for r in rows:
        if "median_s" not in r:
            continue
        lab = f"{r['kind']} LOD {r['lod']}" + (" gsplat" if r["backend"] == "gsplat" else "")
        if r["res"] == "720p":
            series_a.setdefault(lab, []).append((r["splats"], r["median_s"]))
        if r["lod"] == "on":
            w, h = RESOLUTIONS[r["res"]]
            series_b.setdefault(f"{r['kind']} {r['splats'] / 1e6:.1f}M splats", []).append((w * h, r["median_s"]))
    if recon:
        series_b["reconstruct"] = [(r["photo"][0] * r["photo"][1], r["median_s"]) for r in recon if "median_s" in r]
    panels = [("render time vs splats (1280x720, all passes)", "splats", series_a),
              ("time vs pixels", "pixels", series_b)]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, (title, xl, ser) in zip(axes, panels):
            for lab, pts in ser.items():
                pts = sorted(pts)
                ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=lab)
            ax.set_title(title), ax.set_xlabel(xl), ax.set_ylabel("seconds"), ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return
    except ImportError:
        pass
    _plot_pillow(panels, path)


def _plot_pillow(panels, path: Path) -> None:
    from PIL import Image, ImageDraw

    pw, ph, m = 600, 440, 60
    img = Image.new("RGB", (pw * len(panels), ph), "white")
    d = ImageDraw.Draw(img)
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    for k, (title, xl, ser) in enumerate(panels):
        ox = k * pw
        pts = [p for s in ser.values() for p in s if p[0] > 0 and p[1] > 0]
        d.text((ox + m, 10), title, fill="black")
        if not pts:
            continue
        lx = [math.log10(p[0]) for p in pts]
        ly = [math.log10(p[1]) for p in pts]
        x0, x1 = math.floor(min(lx)), math.ceil(max(lx)) + (min(lx) == max(lx))
        y0, y1 = math.floor(min(ly)), math.ceil(max(ly)) + (min(ly) == max(ly))

        def xy(px, py):
            return (ox + m + (math.log10(px) - x0) / (x1 - x0) * (pw - 2 * m),
                    ph - m - (math.log10(py) - y0) / (y1 - y0) * (ph - 2 * m))

        d.rectangle([ox + m, m, ox + pw - m, ph - m], outline="black")
        for e in range(x0, x1 + 1):
            x = xy(10**e, 10**y0)[0]
            d.line([x, ph - m, x, m], fill=(220, 220, 220))
            d.text((x - 10, ph - m + 5), f"1e{e}", fill="black")
        for e in range(y0, y1 + 1):
            y = xy(10**x0, 10**e)[1]
            d.line([ox + m, y, ox + pw - m, y], fill=(220, 220, 220))
            d.text((ox + 5, y - 5), f"1e{e}s", fill="black")
        d.text((ox + pw // 2 - 20, ph - 25), xl, fill="black")
        for i, (lab, s) in enumerate(ser.items()):
            c = colors[i % len(colors)]
            q = [xy(*p) for p in sorted(s) if p[0] > 0 and p[1] > 0]
            if len(q) > 1:
                d.line(q, fill=c, width=2)
            for x, y in q:
                d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=c)
            d.text((ox + m + 8, m + 6 + 12 * i), lab, fill=c)
    img.save(path)


# ------------------------------------------------------------------------------------ main
def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100k and 1M splats, 720p and 1080p, one frame each")
    ap.add_argument("--counts", help="comma-separated splat counts (default 100k,1M,4M,10M)")
    ap.add_argument("--resolutions", help=f"comma-separated, from {', '.join(RESOLUTIONS)}")
    ap.add_argument("--kinds", default="stage,trained", help="scenes: stage, trained")
    ap.add_argument("--lod-modes", default="on,off", help="LOD settings to run: on, off or both")
    ap.add_argument("--sweep-counts", default="1000000,10000000",
                    help="splat counts whose scenes are also rendered at every resolution (LOD on)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "anchorstage_bench_scale")
    ap.add_argument("--json", metavar="OUT.json")
    ap.add_argument("--plot", metavar="OUT.png", help="plot file (default: beside --json)")
    ap.add_argument("--no-reconstruct", action="store_true")
    ap.add_argument("--lod-threshold", type=float, metavar="PX",
                    help="LOD cut threshold in pixels (default: anchorstage.lod.DEFAULT_THRESHOLD_PX)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per configuration")
    # worker mode (one configuration per process)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--task", default="render", help=argparse.SUPPRESS)
    ap.add_argument("--scene", help=argparse.SUPPRESS)
    ap.add_argument("--res", default="720p", help=argparse.SUPPRESS)
    ap.add_argument("--lod", default="on", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    ap.add_argument("--save-frame", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.build:
            kind, n = args.build.split(":")
            out = build_scene(kind, int(n), Path(args.scene))
        else:
            out = worker_reconstruct(args) if args.task == "reconstruct" else worker_render(args)
        out.setdefault("peak_rss_mb", _peak_rss_mb())
        print(json.dumps(out))
        return 0

    counts = [int(float(c)) for c in args.counts.split(",")] if args.counts else list(QUICK_COUNTS if args.quick else COUNTS)
    resolutions = args.resolutions.split(",") if args.resolutions else (["720p", "1080p"] if args.quick else list(RESOLUTIONS))
    kinds = [k for k in args.kinds.split(",") if k]
    sweep = {int(float(c)) for c in args.sweep_counts.split(",") if c}
    repeat = 1 if args.quick else args.repeat
    import torch

    cuda = torch.cuda.is_available()
    args.cache.mkdir(parents=True, exist_ok=True)
    scenes: dict = {}
    for kind in kinds:
        for n in counts:
            folder = args.cache / f"{kind}_{n}"
            facts_file = folder.with_suffix(".json")
            if not (folder / "scene.json").is_file() or not facts_file.is_file():
                print(f"building the {kind} scene of {n:,} splats in {folder} ...", file=sys.stderr, flush=True)
                facts = _run_worker(["--scene", str(folder), "--build", f"{kind}:{n}"], args.timeout)
                if "error" in facts:
                    print(f"  failed: {facts['error']}", file=sys.stderr)
                    continue
                facts_file.write_text(json.dumps(facts))
            scenes[(kind, n)] = (folder, json.loads(facts_file.read_text()))

    rows = []
    frames = Path(tempfile.mkdtemp(prefix="bench_scale_frames_"))
    for (kind, n), (folder, facts) in scenes.items():
        for res in resolutions:
            if res != "720p" and n not in sweep and not args.quick:
                continue
            modes = [m for m in args.lod_modes.split(",") if m in ("on", "off")]
            configs = [(b, m) for b in (("torch", "gsplat") if cuda else ("torch",)) for m in modes]
            if res != "720p" and not args.quick:
                configs = [c for c in configs if c[1] == "on"]
            saved = {}
            for backend, lod in configs:
                fpath = frames / f"{kind}_{n}_{res}_{backend}_{lod}.npy"
                thr = [] if args.lod_threshold is None else ["--lod-threshold", str(args.lod_threshold)]
                r = _run_worker(["--scene", str(folder), "--res", res, "--lod", lod, "--backend", backend,
                                 "--repeat", str(repeat), "--save-frame", str(fpath), *thr], args.timeout)
                r.update(kind=kind, splats=facts["splats"], res=res, lod=lod, backend=backend,
                         ply_read_s=facts.get("ply_read_s"), lod_threshold_px=args.lod_threshold)
                if "error" not in r:
                    saved[(backend, lod)] = fpath
                rows.append(r)
                print(_row_line(r), flush=True)
            for backend in ("torch", "gsplat"):
                if (backend, "on") in saved and (backend, "off") in saved:
                    a, b = np.load(saved[(backend, "on")]), np.load(saved[(backend, "off")])
                    for r in rows:
                        if (r["kind"], r["splats"], r["res"], r["backend"], r["lod"]) == (kind, facts["splats"], res, backend, "on"):
                            r["psnr_color_db"], r["psnr_alpha_db"] = _psnr(a[..., :3], b[..., :3]), _psnr(a[..., 3], b[..., 3])
                            print(f"    LOD vs exact: colour {r['psnr_color_db']:.1f} dB, alpha {r['psnr_alpha_db']:.1f} dB",
                                  flush=True)
            for f in saved.values():
                f.unlink(missing_ok=True)
    if not cuda:
        print("gsplat rows skipped: no CUDA device here", flush=True)

    recon = []
    if not args.no_reconstruct:
        for res in resolutions:
            r = _run_worker(["--task", "reconstruct", "--res", res, "--repeat", str(repeat)], args.timeout)
            r["res"] = res
            recon.append(r)
            print(f"reconstruct {res:>6}: " + (r["error"] if "error" in r else
                  f"{r['median_s']:.2f} s median, {r['splats']:,} splats, peak {r['peak_rss_mb']:.0f} MB"), flush=True)

    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "load_average": os.getloadavg(), "gpu": torch.cuda.get_device_name() if cuda else None,
            "gsplat": "run" if cuda else "skipped: no CUDA device", "repeat": repeat, "render": rows, "reconstruct": recon,
            "scenes": {f"{k}_{n}": facts for (k, n), (_, facts) in scenes.items()}}
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2), encoding="utf-8")
    plot_path = Path(args.plot) if args.plot else (Path(args.json).with_suffix(".png") if args.json else None)
    if plot_path is not None:
        plot(rows, recon, plot_path)
        print(f"plot: {plot_path}")
    return 0


def _row_line(r: dict) -> str:
    head = f"{r['kind']:<8} {r['splats']:>11,} {r['res']:>6} {r['backend']:<7} LOD {r['lod']:<3}"
    if "error" in r:
        return f"{head} FAILED: {r['error']}"
    drawn = f"{r['drawn']:>10,}" if r.get("drawn") else f"{'-':>10}"
    return (f"{head} open {r['open_s']:6.2f} s  first {r['first_frame_s']:6.2f} s  median {r['median_s']:6.2f} s  "
            f"drawn {drawn}  peak {r['peak_rss_mb']:6.0f} MB ({r['peak_rss_mb'] / (r['splats'] / 1e6):.0f} MB/M splats)")


if __name__ == "__main__":
    sys.exit(main())
