# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage video``: a camera path of a stage as an H.264 MP4 (and a GIF): rendered, refreshed or
generated frames, optionally smoothed with AnimateDiff (see docs/video.md)."""

from __future__ import annotations

import argparse

from ._common import add_backend_arg, add_device_arg, progress_enabled


def _colour(text: str) -> tuple[float, float, float]:
    try:
        rgb = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        rgb = ()
    if len(rgb) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B (got {text!r})")
    return rgb  # type: ignore[return-value]


def register(sub: argparse._SubParsersAction) -> None:
    from ..temporal import DEFAULT_SMOOTHING_MODELS, SMOOTHING_ENV
    from ..video import DEFAULT_CRF, GIF_MAX_SIDE
    from .generate import add_model_args
    from .turntable import add_turntable_args

    p = sub.add_parser(
        "video", help="render a camera path (a turntable or a camera list) to an H.264 MP4 and a GIF",
        description="Render SCENE_DIR along a turntable about the product's centre or a camera list, frame by frame "
                    "(the raw render, the refreshed witness with --refresh, or a generated frame with --generate), "
                    "optionally smoothed over time with AnimateDiff (--smooth), and encode an H.264 yuv420p MP4 "
                    "that browsers play (and a GIF). Frames are encoded as they are made. See docs/video.md.")
    p.add_argument("scene", metavar="SCENE_DIR", help="scene folder written by 'anchorstage reconstruct' (or fuse)")
    p.add_argument("--path", default="turntable", metavar="turntable|CAMERAS.json",
                   help="'turntable' (default) or a camera list JSON (as 'anchorstage export --cameras' reads)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames (default 24 for a turntable; every camera of a list, or its first N)")
    p.add_argument("--fps", type=float, default=24.0, help="frames per second (default 24)")
    p.add_argument("--out", required=True, metavar="CLIP.mp4", help="the MP4 to write")
    p.add_argument("--gif", default=None, metavar="CLIP.gif", help="also write a looping GIF")
    p.add_argument("--gif-max-side", type=int, default=GIF_MAX_SIDE, metavar="PX",
                   help=f"longest GIF side, pixels (default {GIF_MAX_SIDE}; 0: full size)")
    p.add_argument("--crf", type=int, default=DEFAULT_CRF, metavar="Q",
                   help=f"H.264 quality, 0 lossless .. 51 (default {DEFAULT_CRF})")
    p.add_argument("--background", type=_colour, default=(0.0, 0.0, 0.0), metavar="R,G,B",
                   help="linear colour behind the splats for rendered frames (default black)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--refresh", action="store_true", help="frames are the refreshed witness (classical fill)")
    mode.add_argument("--generate", action="store_true",
                      help="frames are generated: refresh, conditioning stack, ControlNet inpainting (diffusers)")
    p.add_argument("--lock", action="append", default=[], metavar="REGION",
                   help="lock a region by id or label in refresh and generation; repeatable")
    p.add_argument("--prompt", default="", help="style prompt (generation and smoothing)")
    p.add_argument("--seed", type=int, default=0, help="random seed, one for every frame (default 0)")
    p.add_argument("--steps", type=int, default=30, metavar="N", help="generation denoising steps (default 30)")
    p.add_argument("--max-side", type=int, default=0, metavar="PX",
                   help="generation processing size, long side (default: the family's)")
    add_turntable_args(p)
    add_model_args(p)
    s = p.add_argument_group("temporal smoothing (AnimateDiff video-to-video)")
    s.add_argument("--smooth", action="store_true", help="smooth the frames over time with AnimateDiff")
    s.add_argument("--smooth-model", default=None, metavar="ID|DIR",
                   help=f"SD 1.5 base (${SMOOTHING_ENV['model']}, else {DEFAULT_SMOOTHING_MODELS['model']})")
    s.add_argument("--motion-adapter", default=None, metavar="ID|DIR",
                   help=f"motion adapter (${SMOOTHING_ENV['motion_adapter']}, else "
                        f"{DEFAULT_SMOOTHING_MODELS['motion_adapter']})")
    s.add_argument("--smooth-strength", type=float, default=0.3, metavar="S", help="(0, 1] re-noising (default 0.3)")
    s.add_argument("--smooth-steps", type=int, default=20, metavar="N", help="denoising steps (default 20)")
    s.add_argument("--smooth-window", type=int, default=16, metavar="N", help="frames denoised together (default 16)")
    s.add_argument("--smooth-overlap", type=int, default=4, metavar="N", help="frames shared by windows (default 4)")
    s.add_argument("--smooth-max-side", type=int, default=512, metavar="PX", help="processing size (default 512)")
    add_backend_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..export import load_camera_list
    from ..progress import cli_progress
    from ..scene import load_scene
    from ..stages import render_video
    from .turntable import parse_centre, parse_resolution, turntable_from_args

    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames must be a positive number of frames (got {args.frames})")
    parse_centre(args.centre)
    resolution = parse_resolution(args.resolution)
    generation = smoothing = None
    if args.generate:
        from ..generation import GenerationSettings
        from .generate import models_from_args

        models, memory = models_from_args(args)
        generation = GenerationSettings(models=models, steps=args.steps, max_side=args.max_side, memory=memory)
    if args.smooth:
        from ..temporal import SmoothingSettings

        smoothing = SmoothingSettings.resolved(model=args.smooth_model, motion_adapter=args.motion_adapter,
                                               strength=args.smooth_strength, steps=args.smooth_steps,
                                               window=args.smooth_window, overlap=args.smooth_overlap,
                                               max_side=args.smooth_max_side, seed=args.seed)
    if args.path != "turntable":
        cams = [c for _, c in load_camera_list(args.path)]
        if args.frames is not None:
            if args.frames > len(cams):
                raise InputError(f"--frames {args.frames}: the camera list {args.path!r} has only {len(cams)} cameras")
            cams = cams[:args.frames]
        if resolution is not None:
            cams = [c.with_resolution(*resolution) for c in cams]
        scene = load_scene(args.scene)
    else:
        scene = load_scene(args.scene)
        cams, _, _ = turntable_from_args(scene, 24 if args.frames is None else args.frames, args)
    frames_from = "generate" if args.generate else "refresh" if args.refresh else "render"
    with cli_progress("video", enabled=progress_enabled()) as bar:
        res = render_video(scene, cams, args.out, fps=args.fps, gif=args.gif, frames_from=frames_from,
                           background=args.background, locks=args.lock, prompt=args.prompt, seed=args.seed,
                           generation=generation, smoothing=smoothing, crf=args.crf, gif_max_side=args.gif_max_side,
                           backend=args.backend, device=args.device, progress=bar)
    extra = f", {res.smoothing_windows} AnimateDiff window(s)" if smoothing else ""
    gif = f"; GIF {res.gif}" if res.gif else ""
    print(f"{res.path}: {res.frames} frames {res.width}x{res.height} at {res.fps:g} fps, H.264 yuv420p, {frames_from} "
          f"frames{extra}, {res.seconds:.1f} s{gif}")
    return 0
