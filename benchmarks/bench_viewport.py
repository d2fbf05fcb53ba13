# SPDX-License-Identifier: GPL-3.0-or-later
"""Viewport benchmark: the add-on's GPU splat drawer, drawn offscreen in Blender (the ``bpy`` module).

For each splat count (default 100k, 1M, 4M; the reconstruction-like stage of ``bench_render.py``,
seen from the same moved camera at 1920x1080) it measures, on whatever GPU Blender draws with here
(the table names it; Mesa llvmpipe is a software renderer on the CPU):

* **upload**: reading the splat object's mesh, laying the splats out and creating the textures
  (once per change of the splats);
* **CPU sort** (the background thread's work, timed alone: median of 3) and **GPU sort** (the
  bitonic compute sort, timed to completion);
* **draw**: one viewport frame without a re-sort, accumulation + finish, timed to completion
  (a one-pixel read-back waits for the GPU), median of ``--frames``;
* **CPU/redraw**: the calling thread's time for that frame before the GPU finishes (what the UI
  thread spends per redraw when the view does not need a re-sort); **add-on ms** is that less the
  time inside the draw and clear calls, which a software renderer spends rasterising before they
  return (on a hardware GPU they only queue work and the two columns agree).

    python benchmarks/bench_viewport.py [--sizes 100000,1000000,4000000] [--frames 5] [--json out.json]

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

import numpy as np  # noqa: E402


def init_gpu() -> None:
    """Blender's ``gpu`` module draws under ``bpy`` after one render: a tiny Workbench one."""
    import bpy

    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 8
    cam = bpy.data.objects.new("Bench GPU Init", bpy.data.cameras.new("Bench GPU Init"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.ops.render.render()


class _Timed:
    """Wraps a GPU object and adds the time spent in some of its methods to ``spent[0]``: on a
    software renderer those calls rasterise before they return, so the add-on's own CPU work per
    redraw is the frame's CPU time less theirs."""

    def __init__(self, obj, methods, spent):
        self._obj, self._methods, self._spent = obj, methods, spent

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if name not in self._methods:
            return attr

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return attr(*a, **k)
            finally:
                self._spent[0] += time.perf_counter() - t
        return timed


def _sync(fb) -> None:
    fb.read_color(0, 0, 1, 1, 4, 0, "FLOAT")  # waits for the GPU to finish what came before


def bench_size(n: int, width: int, height: int, frames: int, gpu_sort: bool) -> dict:
    import bpy
    import gpu

    from bench_render import stage_splats
    from blender_addon import boundary, splat_object, viewport

    sp, ref = stage_splats(n)
    cam = ref.with_resolution(width, height).truck(0.3).orbit((0, 0, 1.2), 6.0, 3.0)
    obj = splat_object.update_splat_object(sp, name=f"Bench {n}", scene=bpy.context.scene)
    items = viewport.draw_items_from_objects([obj])
    view, window = boundary.view_matrices_from_camera(cam)
    off = gpu.types.GPUOffScreen(width, height, format="RGBA16F")
    d = viewport.SplatDrawer()
    row = {"splats": len(sp)}
    with off.bind():
        fb = gpu.state.active_framebuffer_get()
        t0 = time.perf_counter()
        d._set(items[0])
        _sync(fb)
        row["upload_s"] = time.perf_counter() - t0

        def frame(sort: str) -> tuple[float, float]:
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            t = time.perf_counter()
            d.draw(items, view, window, width, height, view_key="bench", display=True, depth_test=True, sort=sort)
            cpu = time.perf_counter() - t
            _sync(fb)
            return time.perf_counter() - t, cpu

        frame("CPU")  # starts the CPU sort
        d.wait_for_sorts(timeout=600.0)
        # The sort alone, on this thread with nothing else running (the background sort of the first
        # frame competes with that frame's drawing on a software renderer).
        from anchorstage.splat_sort import sort_for_view

        s = next(iter(d.sets.values()))
        cam_from_object = boundary.cam_from_view_matrix(view) @ items[0].matrix
        row["cpu_sort_ms"] = statistics.median(sort_for_view(s.means, cam_from_object).seconds
                                               for _ in range(3)) * 1e3
        totals, cpus, own = [], [], []
        spent = [0.0]
        for name in list(d._batches):
            d._batches[name] = _Timed(d._batches[name], {"draw", "draw_instanced"}, spent)
        for key, tgt in list(d.targets.items()):
            d.targets[key] = (_Timed(tgt[0], {"clear"}, spent), *tgt[1:])
        for _ in range(frames):
            spent[0] = 0.0
            total, cpu = frame("CPU")
            assert not d.stats.sorting, "the view did not move: no re-sort expected"
            totals.append(total)
            cpus.append(cpu)
            own.append(cpu - spent[0])
        row["draw_ms"] = statistics.median(totals) * 1e3
        row["draw_best_ms"] = min(totals) * 1e3
        row["fps"] = 1e3 / row["draw_ms"]
        row["cpu_per_redraw_ms"] = statistics.median(cpus) * 1e3
        row["addon_cpu_per_redraw_ms"] = statistics.median(own) * 1e3
        row["frames"] = frames
        if gpu_sort:
            from anchorstage.splat_sort import ViewPose

            vo = next(iter(d.orders.values()))
            _sync(fb)
            t = time.perf_counter()
            ok = d._gpu_sort(vo, s, cam_from_object, ViewPose.from_cam_from_object(cam_from_object))
            _sync(fb)
            row["gpu_sort_ms"] = (time.perf_counter() - t) * 1e3 if ok else None
        else:
            row["gpu_sort_ms"] = None
        rgba = np.array(fb.read_color(0, 0, width, height, 4, 0, "FLOAT").to_list(), np.float32).reshape(-1, 4)
        row["coverage"] = float((rgba[:, 3] > 0.5).mean())
    d.close()
    bpy.data.objects.remove(obj)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000,4000000", help="splat counts, comma-separated")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--gpu-sort", choices=("auto", "always", "never"), default="auto",
                    help="time the GPU compute sort (auto: on a hardware GPU, and up to 1M splats on a software one)")
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)
    from anchorstage.splat_sort import back_to_front

    back_to_front(np.zeros(4, np.float32))  # compile or load the sort kernel before timing it
    try:
        sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        ap.error(f"--sizes must be comma-separated counts (got {args.sizes!r})")

    import bpy  # noqa: F401 - loads Blender (and its ``gpu`` module)

    init_gpu()
    import gpu

    device = {"vendor": gpu.platform.vendor_get(), "renderer": gpu.platform.renderer_get(),
              "version": gpu.platform.version_get(), "backend": gpu.platform.backend_type_get(),
              "type": gpu.platform.device_type_get()}
    software = device["type"] == "SOFTWARE"
    rows = []
    for n in sizes:
        timed_gpu_sort = args.gpu_sort == "always" or (args.gpu_sort == "auto" and (not software or n <= 1_100_000))
        rows.append(bench_size(n, args.width, args.height, args.frames, timed_gpu_sort))
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    info = {"resolution": [args.width, args.height], "device": device, "blender": bpy.app.version_string,
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "load_1min": load,
            "results": rows}
    print(f"GPU: {device['renderer']} ({device['backend']}, {device['type']}); Blender {bpy.app.version_string}; "
          f"{args.width}x{args.height}; load {load}")
    print(f"{'splats':>9} {'upload s':>9} {'CPU sort ms':>12} {'GPU sort ms':>12} {'draw ms':>9} {'fps':>7} "
          f"{'CPU/redraw ms':>14} {'add-on ms':>10} {'covered':>8}")
    for r in rows:
        gs = f"{r['gpu_sort_ms']:.1f}" if r["gpu_sort_ms"] is not None else "-"
        print(f"{r['splats']:>9,} {r['upload_s']:>9.2f} {r['cpu_sort_ms']:>12.1f} {gs:>12} {r['draw_ms']:>9.1f} "
              f"{r['fps']:>7.2f} {r['cpu_per_redraw_ms']:>14.2f} {r['addon_cpu_per_redraw_ms']:>10.2f} "
              f"{r['coverage']:>8.1%}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
