# SPDX-License-Identifier: GPL-3.0-or-later
"""Latency of each metric depth backend at its real size, on a 1920x1080 photo.

The networks are built from the published architectures' configs with random weights (speed
does not depend on the weights, and nothing is downloaded), wrapped with
``anchorstage.depth.wrap_depth_network`` and run through the full ``estimate_depth`` path
(preprocessing, network, upsampling, confidence). Runs on the CPU and, when present, on CUDA
(fp16). Target: ≤ 2 s per 1080p photo on a GPU.

Usage::

    python benchmarks/bench_depth.py [--backends da2 zoedepth depth-pro] [--devices cpu cuda]
                                     [--repeats 2] [--no-flip] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from anchorstage import Camera, estimate_depth, look_at
from anchorstage.depth import wrap_depth_network


def depth_anything_v2_large(max_depth: int = 80):
    """Depth Anything V2 Metric Large (ViT-L/14 DINOv2 backbone, DPT head), as published on the hub."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
                            image_size=518, patch_size=14, layerscale_value=1.0, out_indices=[5, 12, 18, 24],
                            reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=backbone, depth_estimation_type="metric", max_depth=max_depth,
                              reassemble_hidden_size=1024, neck_hidden_sizes=[256, 512, 1024, 1024],
                              fusion_hidden_size=256, head_hidden_size=32, patch_size=14)
    return DepthAnythingForDepthEstimation(cfg)


def depth_pro():
    """Depth Pro (three ViT-L/16 DINOv2 encoders: patches, image, field of view), 1536x1536 input."""
    from transformers import DepthProConfig, DepthProForDepthEstimation

    vit_l = dict(model_type="dinov2", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096, image_size=384, patch_size=16, layerscale_value=1.0)
    cfg = DepthProConfig(use_fov_model=True, image_model_config=vit_l, patch_model_config=vit_l,
                         fov_model_config=vit_l)
    return DepthProForDepthEstimation(cfg)


def zoedepth_nk():
    """ZoeDepth NK (BEiT-L/16 384 backbone, NYU + KITTI metric-bin heads)."""
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation

    backbone = BeitConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                          image_size=384, patch_size=16, use_relative_position_bias=True,
                          out_indices=[6, 12, 18, 24], reshape_hidden_states=False)
    cfg = ZoeDepthConfig(backbone_config=backbone, neck_hidden_sizes=[256, 512, 1024, 1024],
                         num_patch_transformer_layers=4, patch_transformer_hidden_size=128,
                         patch_transformer_intermediate_size=1024, patch_transformer_num_attention_heads=4,
                         bin_configurations=[{"name": "nyu", "n_bins": 64, "min_depth": 1e-3, "max_depth": 10.0},
                                             {"name": "kitti", "n_bins": 64, "min_depth": 1e-3, "max_depth": 80.0}])
    return ZoeDepthForDepthEstimation(cfg)


BACKENDS = {"da2": depth_anything_v2_large, "zoedepth": zoedepth_nk, "depth-pro": depth_pro}
PREP = {"zoedepth": {"size": {"height": 384, "width": 512}, "ensure_multiple_of": 32, "keep_aspect_ratio": True,
                     "do_pad": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--no-flip", action="store_true", help="single pass (no mirrored batch)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    image = rng.random((args.height, args.width, 3), dtype=np.float32)
    camera = Camera(width=args.width, height=args.height, lens_mm=35.0, world_from_cam=look_at((0, 0, 0), (0, 1, 0)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    results = []
    for name in args.backends:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        net = BACKENDS[name]()
        n_params = sum(p.numel() for p in net.parameters())
        print(f"{name}: {n_params / 1e6:.0f} M parameters, built in {time.perf_counter() - t0:.1f} s")
        for device in args.devices:
            dm = wrap_depth_network(net, f"{name} (random weights)", device, PREP.get(name))
            times = []
            for i in range(args.repeats + 1):  # the first run warms up (allocations, cuDNN autotune)
                if dm.device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                est = estimate_depth(image, camera, model=dm, flip_consistency=not args.no_flip)
                if dm.device.type == "cuda":
                    torch.cuda.synchronize()
                if i > 0 or args.repeats == 0:
                    times.append(time.perf_counter() - t)
            size = next(n for n in est.notes if n.startswith("model input"))
            row = dict(backend=name, device=device, dtype=str(dm.dtype).replace("torch.", ""),
                       image=f"{args.width}x{args.height}", flip=not args.no_flip, params_m=round(n_params / 1e6),
                       seconds_median=round(float(np.median(times)), 3), seconds_min=round(min(times), 3),
                       note=size)
            results.append(row)
            print(f"  {device:5s} {row['dtype']:8s} {row['seconds_median']:8.3f} s median "
                  f"(min {row['seconds_min']:.3f} s, {len(times)} runs; {size})")
            net = dm.net.float().cpu()
            del dm
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
