# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage generate``: a finished frame from a stage and a camera (refresh, conditioning stack,
diffusers ControlNet inpainting), locked pixels kept bit-exact (see docs/generation.md)."""

from __future__ import annotations

import argparse

from ._common import add_backend_arg, add_device_arg, progress_enabled


def _scales(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas (got {text!r})") from None


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model flags (shared with ``anchorstage serve``); each overrides its environment variable."""
    from ..diffusion import FAMILIES, MODEL_ENV

    g = p.add_argument_group("models (hub ids or local folders; default: environment, then the family's defaults)")
    g.add_argument("--family", choices=("auto", *FAMILIES), default=None,
                   help=f"pipeline family (default ${MODEL_ENV['family']}, else auto: from the model)")
    g.add_argument("--model", metavar="ID|DIR", default=None,
                   help=f"inpainting pipeline (${MODEL_ENV['model']}; sd15: stable-diffusion-v1-5/stable-diffusion-"
                        "inpainting, sdxl: diffusers/stable-diffusion-xl-1.0-inpainting-0.1)")
    g.add_argument("--controlnet-depth", metavar="ID|DIR", default=None,
                   help=f"depth ControlNet, 'none' for none (${MODEL_ENV['controlnet_depth']})")
    g.add_argument("--controlnet-normal", metavar="ID|DIR", default=None,
                   help=f"normal ControlNet, 'none' for none (${MODEL_ENV['controlnet_normal']}; SDXL has no default)")
    g.add_argument("--ip-adapter", metavar="ID|DIR", default=None,
                   help=f"IP-Adapter for appearance from the reference photo; 'default' for h94/IP-Adapter "
                        f"(${MODEL_ENV['ip_adapter']}; default: none)")
    g.add_argument("--ip-adapter-weight", metavar="SUB/FILE", default=None,
                   help=f"the adapter's weight file (${MODEL_ENV['ip_adapter_weight']}; "
                        "sd15: models/ip-adapter_sd15.safetensors)")
    g.add_argument("--image-encoder", metavar="DIR", default=None,
                   help=f"the adapter's CLIP image encoder folder (${MODEL_ENV['image_encoder']}; default image_encoder)")
    m = p.add_argument_group("memory")
    m.add_argument("--dtype", choices=("auto", "float16", "float32"), default="auto",
                   help="auto: float16 on CUDA, float32 elsewhere")
    m.add_argument("--attention-slicing", choices=("auto", "on", "off"), default="auto",
                   help="auto: on with less than 10 GB of GPU memory")
    m.add_argument("--cpu-offload", choices=("auto", "none", "model", "sequential"), default="auto",
                   help="CUDA only; auto: when the models would not fit the GPU")


def models_from_args(args: argparse.Namespace):
    from ..diffusion import MemorySettings, model_set

    models = model_set(args.family, model=args.model, controlnet_depth=args.controlnet_depth,
                       controlnet_normal=args.controlnet_normal, ip_adapter=args.ip_adapter,
                       ip_adapter_weight=args.ip_adapter_weight, image_encoder=args.image_encoder)
    return models, MemorySettings(dtype=args.dtype, attention_slicing=args.attention_slicing, cpu_offload=args.cpu_offload)


def register(sub: argparse._SubParsersAction) -> None:
    from ..generation import GENERATION_FILES

    p = sub.add_parser(
        "generate", help="generate a finished frame: refresh, conditioning stack, ControlNet inpainting (diffusers)",
        description="Refresh the stage's photo for CAMERA.json, build the conditioning stack (refreshed witness, metric "
                    "depth, normals, void mask, locks, prompt, seed) and generate the void with a Stable Diffusion 1.5 or "
                    "SDXL ControlNet inpainting pipeline (depth + normal ControlNets, optional IP-Adapter). Pixels "
                    "outside the mask and every locked pixel stay bit-identical to the refreshed witness. Writes "
                    f"DIR/conditioning/ and {', '.join(GENERATION_FILES)}. See docs/generation.md.")
    p.add_argument("scene", metavar="SCENE_DIR", nargs="?", help="scene folder written by 'anchorstage reconstruct'")
    p.add_argument("--camera", metavar="CAMERA.json", help="the target camera JSON (with SCENE_DIR)")
    p.add_argument("--conditioning", metavar="COND_DIR",
                   help="generate from a saved conditioning folder instead of SCENE_DIR + --camera")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--lock", action="append", default=[], metavar="REGION",
                   help="lock a region by id (facade_001) or label (ground); repeatable")
    p.add_argument("--prompt", default=None, help="style prompt")
    p.add_argument("--negative-prompt", default=None, help="negative prompt (default: blurry, distorted, text, ...)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--strength", type=float, default=None, help="(0, 1]: how far the void is re-noised (default 1)")
    p.add_argument("--no-reference", action="store_true", help="leave the reference photo out of the conditioning")
    add_model_args(p)
    s = p.add_argument_group("sampling")
    s.add_argument("--steps", type=int, default=30, metavar="N", help="denoising steps (default 30)")
    s.add_argument("--guidance", type=float, default=6.0, help="classifier-free guidance scale (default 6)")
    s.add_argument("--controlnet-scale", type=_scales, default=None, metavar="D,N",
                   help="conditioning scale per ControlNet, depth first (default 1.0,0.7)")
    s.add_argument("--ip-adapter-scale", type=float, default=0.6, help="IP-Adapter weight (default 0.6)")
    s.add_argument("--max-side", type=int, default=0, metavar="PX",
                   help="processing size, long side (default: 768 for sd15, 1024 for sdxl)")
    add_backend_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from ..camera import load_camera_json
    from ..conditioning import load_conditioning, save_conditioning
    from ..errors import InputError
    from ..generation import GenerationSettings, save_generation
    from ..progress import cli_progress, scaled
    from ..scene import load_scene
    from ..stages import condition, generate, refresh

    if args.conditioning and (args.scene or args.camera or args.lock):
        raise InputError("give either --conditioning COND_DIR or SCENE_DIR --camera CAMERA.json (with --lock), not both")
    if not args.conditioning and not (args.scene and args.camera):
        raise InputError("give SCENE_DIR and --camera CAMERA.json (or --conditioning COND_DIR)")
    models, memory = models_from_args(args)
    settings = GenerationSettings(models=models, steps=args.steps, guidance_scale=args.guidance,
                                  controlnet_scale=tuple(args.controlnet_scale or ()),
                                  ip_adapter_scale=args.ip_adapter_scale, max_side=args.max_side, memory=memory)
    out = Path(args.out)
    with cli_progress("generate", enabled=progress_enabled()) as bar:
        if args.conditioning:
            cond = load_conditioning(args.conditioning)
            changes = {k: v for k, v in (("style_prompt", args.prompt), ("negative_prompt", args.negative_prompt),
                                         ("seed", args.seed), ("strength", args.strength)) if v is not None}
            if args.no_reference:
                changes["reference"] = None
            cond = replace(cond, **changes) if changes else cond
        else:
            camera = load_camera_json(args.camera)
            scene = load_scene(args.scene)
            res = refresh(scene, camera, locks=args.lock, backend=args.backend, device=args.device,
                          progress=scaled(bar, 0.0, 0.1))
            cond = condition(res, scene, prompt=args.prompt or "", negative_prompt=args.negative_prompt,
                             seed=0 if args.seed is None else args.seed,
                             strength=1.0 if args.strength is None else args.strength, reference=not args.no_reference)
        save_conditioning(cond, out / "conditioning")
        gen = generate(cond, settings, device=args.device, progress=scaled(bar, 0.1, 1.0))
        save_generation(gen, out)
    print(f"{out}: generated {int(gen.generated.sum()):,} px ({gen.steps_run} steps, {gen.step_s:.3g} s/step); "
          f"{int(cond.locked.sum()):,} locked px and {int((~gen.generated).sum()):,} px outside the mask kept "
          f"bit-exact; {models.family} {models.model}")
    return 0
