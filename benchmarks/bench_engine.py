# SPDX-License-Identifier: GPL-3.0-or-later
"""Render engine benchmark: what an F12 / ``-a`` frame of the ANCHORSTAGE engine costs in Blender
(the ``bpy`` module) when the splats did not change, against a frame that has to read them.

For each splat count (default 1M: the reconstruction-like stage of ``bench_render.py`` as a splat
object, the stage's own camera at 1280x720, all passes) it times, median of ``--frames``:

* **read**: gathering the splats after they changed (the mesh read: every point attribute copied
  out and checked), what every frame paid before the engine kept them (:mod:`blender_addon.splat_cache`);
* **warm**: gathering them when nothing changed (the cache's check);
* **moved**: the object moved, its mesh not (the cached splats moved to world space again);
* **frame**: a whole ``bpy.ops.render.render()`` with unchanged splats, and the same frame with the
  read added back (**frame before**: what it cost when every frame read the mesh).

Blender's own work after a change (the view layer update, the display modifier) is not timed.

    python benchmarks/bench_engine.py [--sizes 1000000] [--frames 3] [--json out.json]

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core"))
sys.path.insert(0, str(ROOT))           # the add-on's modules as the ``blender_addon`` package
sys.path.insert(0, str(ROOT / "benchmarks"))


def _median_s(fn, frames: int, setup=None) -> float:
    """Median seconds of ``fn()`` over ``frames`` runs, each after an untimed ``setup()``."""
    times = []
    for _ in range(frames):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_size(n: int, width: int, height: int, frames: int) -> dict:
    import bpy

    from bench_render import stage_splats
    from blender_addon import boundary, render_engine, splat_cache, splat_object

    sp, ref = stage_splats(n)
    scene = bpy.context.scene
    obj = splat_object.update_splat_object(sp, name=f"Bench {n}", scene=scene)
    cam = bpy.data.objects.new("Bench Cam", bpy.data.cameras.new("Bench Cam"))
    scene.collection.objects.link(cam)
    boundary.apply_camera_to_blender(ref.with_resolution(width, height), cam, scene, set_resolution=True)
    scene.camera = cam
    scene.render.engine = render_engine.ENGINE_ID
    mesh = obj.data

    def touch():  # a change of the splats, as an edit makes it (one opacity written through RNA)
        a = mesh.attributes["opacity"].data[0]
        a.value = a.value
        bpy.context.view_layer.update()

    def move():
        obj.location.x += 1e-3
        bpy.context.view_layer.update()

    def gather():
        return render_engine.gather_splats(bpy.context.evaluated_depsgraph_get())

    reads0 = splat_cache.STATS["mesh_reads"]
    row = {"splats": len(sp), "read_s": _median_s(gather, frames, touch)}
    row["warm_s"] = _median_s(gather, frames)
    row["moved_s"] = _median_s(gather, frames, move)
    obj.location = (0.0, 0.0, 0.0)
    bpy.ops.render.render()
    row["frame_s"] = _median_s(bpy.ops.render.render, frames)
    row["saving_per_frame_s"] = row["read_s"] - row["warm_s"]
    row["frame_before_s"] = row["frame_s"] + row["saving_per_frame_s"]
    row["mesh_reads"] = splat_cache.STATS["mesh_reads"] - reads0
    bpy.data.objects.remove(obj)
    bpy.data.objects.remove(cam)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000", help="splat counts, comma-separated")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)
    try:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be comma-separated counts (got {args.sizes!r})")

    import bpy

    from blender_addon import render_engine, splat_cache

    bpy.ops.wm.read_factory_settings(use_empty=True)
    splat_cache.register()
    render_engine.register()
    try:
        rows = [bench_size(n, args.width, args.height, args.frames) for n in sizes]
    finally:
        render_engine.unregister()
        splat_cache.unregister()
    info = {"resolution": [args.width, args.height], "blender": bpy.app.version_string,
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "load_1min": os.getloadavg()[0], "frames": args.frames, "results": rows}
    print(f"ANCHORSTAGE engine, {args.width}x{args.height}, all passes; Blender {bpy.app.version_string}; "
          f"load {info['load_1min']:.1f} on {os.cpu_count()} CPUs")
    print(f"{'splats':>9} {'read s':>8} {'warm s':>8} {'moved s':>8} {'frame s':>8} {'frame before s':>15} {'saved s':>8}")
    for r in rows:
        print(f"{r['splats']:>9,} {r['read_s']:>8.3f} {r['warm_s']:>8.4f} {r['moved_s']:>8.3f} {r['frame_s']:>8.3f} "
              f"{r['frame_before_s']:>15.3f} {r['saving_per_frame_s']:>8.3f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
