# SPDX-License-Identifier: GPL-3.0-or-later
"""Generation benchmark: seconds per denoising step of the ControlNet inpainting pipelines, and the size of
a remote ``generate`` request.

* Tiny random SD 1.5 and SDXL pipelines (the test components of ``tests/tiny_diffusion.py``: UNet,
  depth + normal ControlNets, VAE, CLIP, loaded through ``from_pretrained``) on the CPU at 64 and 128 px:
  these time the plumbing (control images, two ControlNets, guidance, the composite), not a real model.
  Their VAE downsamples by 2, not 8, so their latent grid at a given size is 16 times a real model's:
  larger sizes say nothing about real models and take minutes on a CPU.
* Real-size SD 1.5 at 512x512 and SDXL at 1024x1024 on CUDA, where a GPU and the default weights (or
  ``$ANCHORSTAGE_DIFFUSION_MODEL`` & co.) are present; skipped otherwise, with the reason.
* The encoded ``generate`` request (conditioning folder, base64) for 1024x576 and 1920x1080 frames,
  against RunPod's hosted payload caps (10 MB for /run, 20 MB for /runsync).

Each timing row is the median step over ``--repeat`` runs (the first step of each run is left out:
it carries the scheduler's and the text encoders' start-up). The machine's load average is printed.

    python benchmarks/bench_generate.py [--steps 3] [--repeat 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny test components


def conditioning(width: int, height: int, seed: int = 0):
    """A conditioning of a textured ground plane and wall, the middle third masked, the bottom fifth locked."""
    from anchorstage import Camera, look_at
    from anchorstage.conditioning import Conditioning
    from anchorstage.diffusion import normals_from_depth

    cam = Camera(width=width, height=height, lens_mm=30.0, world_from_cam=look_at((0, -6, 1.6), (0, 0, 1.2)))
    rng = np.random.default_rng(seed)
    yy = np.linspace(0, 1, height)[:, None]
    depth = np.broadcast_to(np.where(yy < 0.55, 6.0, 6.0 / np.maximum(yy - 0.45, 0.05) * 0.1 + 2.0),
                            (height, width)).astype(np.float32)
    image = np.clip(0.4 + 0.2 * np.sin(np.arange(width)[None, :, None] / 7.0 + np.arange(3))
                    + 0.05 * rng.standard_normal((height, width, 3)), 0, 1).astype(np.float32)
    mask = np.zeros((height, width), bool)
    mask[height // 4: 3 * height // 4, width // 3: 2 * width // 3] = True
    locked = np.zeros_like(mask)
    locked[4 * height // 5:] = True
    return Conditioning(image=image, depth_m=depth, normal_cam=normals_from_depth(depth, cam), mask=mask & ~locked,
                        locked=locked, camera=cam, style_prompt="weathered brick wall", seed=seed,
                        reference=image[::4, ::4].copy())


def step_times(cond, settings, device: str, repeat: int) -> dict:
    from anchorstage.stages import generate

    per_run: list[float] = []
    for r in range(repeat):
        stamps: list[float] = []
        t0 = time.perf_counter()
        generate(cond, settings, device=device,
                 progress=lambda f, m: stamps.append(time.perf_counter()) if m.startswith("diffusion step") else None)
        gaps = np.diff([t0] + stamps)
        per_run += list(gaps[1:]) if len(gaps) > 1 else list(gaps)
    return {"median_step_s": statistics.median(per_run), "best_step_s": min(per_run), "steps_timed": len(per_run)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", metavar="OUT.json")
    args = ap.parse_args(argv)

    from anchorstage.diffusion import model_set
    from anchorstage.errors import MissingDependencyError
    from anchorstage.generation import GenerationSettings
    from anchorstage.remote.jobs import generate_job
    from tiny_diffusion import tiny_controlnet_inpaint, tiny_sdxl_controlnet_inpaint

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        tiny = {"sd15": tiny_controlnet_inpaint(Path(tmp) / "sd15"), "sdxl": tiny_sdxl_controlnet_inpaint(Path(tmp) / "sdxl")}
        for family, side in (("sd15", 64), ("sd15", 128), ("sdxl", 64), ("sdxl", 128)):
            t = tiny[family]
            models = model_set(family, model=t["model"], controlnet_depth=t["controlnets"][0],
                               controlnet_normal=t["controlnets"][1])
            cond = conditioning(side, side)
            r = step_times(cond, GenerationSettings(models=models, steps=args.steps, max_side=side), "cpu", args.repeat)
            rows.append({"what": f"tiny {family}, {side}x{side}, CPU", **r})
    real = []
    if torch.cuda.is_available():
        for family, side in (("sd15", 512), ("sdxl", 1024)):
            try:
                r = step_times(conditioning(side, side), GenerationSettings(models=model_set(family), steps=20,
                                                                            max_side=side), "cuda", 1)
                real.append({"what": f"{family}, {side}x{side}, {torch.cuda.get_device_name()}", **r})
            except MissingDependencyError as e:
                real.append({"what": f"{family}, {side}x{side}, CUDA", "skipped": str(e)})
    else:
        real.append({"what": "real-size SD 1.5 512x512 / SDXL 1024x1024", "skipped": "no CUDA device"})
    payload = []
    for w, h in ((1024, 576), (1920, 1080)):
        t = time.perf_counter()
        job = generate_job(conditioning(w, h))
        enc_s = time.perf_counter() - t
        size = len(json.dumps({"input": job}))
        payload.append({"what": f"generate request, {w}x{h} conditioning", "bytes": size, "encode_s": enc_s})

    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads on {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), load average {load[0]:.1f} / {load[1]:.1f}; "
          f"{args.steps} steps x {args.repeat} runs")
    print(f"{'':<44} {'median s/step':>14} {'best s/step':>12}")
    for r in rows + real:
        if "skipped" in r:
            print(f"{r['what']:<44} skipped: {r['skipped'][:100]}")
        else:
            print(f"{r['what']:<44} {r['median_step_s']:>14.3f} {r['best_step_s']:>12.3f}")
    for p in payload:
        print(f"{p['what']:<44} {p['bytes'] / 1e6:>11.1f} MB  (encoded in {p['encode_s']:.2f} s; RunPod caps /run at "
              "10 MB, /runsync at 20 MB)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                       "load_average": list(load), "steps": args.steps, "repeat": args.repeat, "tiny_cpu": rows,
                       "real_size": real, "payload": payload}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
