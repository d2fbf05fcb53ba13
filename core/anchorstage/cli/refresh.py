# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage refresh``: refresh the witness for a camera (or a sequence of cameras): warp, void map,
locks, inpainting, confidence (see docs/refresh.md)."""

from __future__ import annotations

import argparse
import sys

from ._common import add_backend_arg, add_device_arg, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    from ..inpaint_diffusion import DEFAULT_DEPTH_CONTROLNET, DEFAULT_INPAINT_MODEL, DEFAULT_NORMAL_CONTROLNET
    from ..witness import INPAINT_METHODS, REFRESH_FILES

    p = sub.add_parser(
        "refresh", help="refresh the witness for a moved camera: warp, void map, locks, inpainting, confidence",
        description="Warp the scene's photo (the witness) to CAMERA.json through the metric proxy, mark what it never "
                    "saw (void_map.png), keep locked regions bit-identical, fill the rest and rate the shot. Writes "
                    f"{', '.join(REFRESH_FILES)} into DIR (one subfolder per camera with --steps). See docs/refresh.md.")
    p.add_argument("scene", metavar="SCENE_DIR", help="scene folder written by 'anchorstage reconstruct'")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--camera", metavar="CAMERA.json", help="the target camera JSON")
    src.add_argument("--steps", nargs="+", metavar="CAM.json",
                     help="a sequence of cameras refreshed one after the other, each seeing the previous fills "
                          "(subfolders step_01, step_02, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--lock", action="append", default=[], metavar="REGION",
                   help="lock a region by id (facade_001) or label (ground); repeatable")
    p.add_argument("--inpaint", choices=INPAINT_METHODS, default="classical",
                   help="classical: background-side fill, no weights (default); diffusion: ControlNet inpainting")
    p.add_argument("--update-scene", action="store_true",
                   help="append the filled pixels as splats (and the locks) to SCENE_DIR, with a record of each step")
    p.add_argument("--feather", type=int, default=None, metavar="PX", help="seam feather width in pixels (default 1)")
    g = p.add_argument_group("diffusion (--inpaint diffusion)")
    g.add_argument("--diffusion-model", default=None, metavar="ID|DIR",
                   help=f"Stable Diffusion inpainting model (default $ANCHORSTAGE_DIFFUSION_MODEL, else {DEFAULT_INPAINT_MODEL})")
    g.add_argument("--controlnet-depth", default=None, metavar="ID|DIR",
                   help=f"depth ControlNet (default $ANCHORSTAGE_CONTROLNET_DEPTH, else {DEFAULT_DEPTH_CONTROLNET})")
    g.add_argument("--controlnet-normal", default=None, metavar="ID|DIR",
                   help=f"normal ControlNet (default $ANCHORSTAGE_CONTROLNET_NORMAL, else {DEFAULT_NORMAL_CONTROLNET})")
    g.add_argument("--prompt", default="", help="text prompt")
    g.add_argument("--diffusion-steps", type=int, default=20, metavar="N", help="denoising steps (default 20)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_backend_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..camera import load_camera_json
    from ..confidence import GREEN, YELLOW
    from ..errors import InputError
    from ..progress import cli_progress, scaled
    from ..scene import check_scene_target, load_scene, save_scene
    from ..stages import refresh
    from ..witness import save_refresh

    if args.feather is not None and args.feather < 0:
        raise InputError(f"--feather must be 0 or more pixels (got {args.feather})")
    cameras = [load_camera_json(c) for c in (args.steps or [args.camera])]
    settings = None
    if args.inpaint == "diffusion":
        from ..inpaint_diffusion import DiffusionSettings

        settings = DiffusionSettings.resolved(model=args.diffusion_model, controlnet_depth=args.controlnet_depth,
                                              controlnet_normal=args.controlnet_normal, prompt=args.prompt,
                                              steps=args.diffusion_steps, seed=args.seed)
    scene = load_scene(args.scene)
    if args.update_scene:
        check_scene_target(args.scene, force=True)
    out = Path(args.out)
    results = []
    with cli_progress("refresh", enabled=progress_enabled()) as bar:
        for k, cam in enumerate(cameras):
            step = scaled(bar, k / len(cameras), (k + 1) / len(cameras))
            # a sequence is incremental: each step sees the previous steps' fills
            res = refresh(scene, cam, locks=args.lock, inpaint=args.inpaint, diffusion=settings,
                          update_scene=args.update_scene or k < len(cameras) - 1, feather_px=args.feather,
                          backend=args.backend, device=args.device, progress=step)
            folder = out / f"step_{k + 1:02d}" if args.steps else out
            save_refresh(res, folder)
            results.append((folder, res))
            scene = res.scene
    if args.update_scene:
        save_scene(scene, args.scene, force=True)
    for folder, res in results:
        c = res.confidence
        print(f"{folder}: confidence {c.value:.3f} ({c.level}): void {c.void_coverage:.1%}, depth {c.depth_confidence:.2f}, "
              f"angle {c.angle_confidence:.2f} (mean {c.mean_angle_deg:.1f}°); {int(res.filled.sum())} px filled "
              f"({res.inpaint}), {int(res.locks.sum())} px locked" + (f", {res.added_splats} splats added" if res.added_splats else ""))
        if c.value < GREEN:
            print(f"anchorstage refresh: warning: {folder}: confidence {c.value:.2f} is below "
                  f"{'green' if c.value >= YELLOW else 'yellow'} ({GREEN if c.value >= YELLOW else YELLOW}): "
                  f"{'check the shot' if c.value >= YELLOW else 'the move reveals too much; refresh in smaller steps or regenerate'}",
                  file=sys.stderr)
    if args.update_scene:
        print(f"{args.scene}: {len(scene.splats)} splats after {len(results)} refresh step(s)")
    return 0
