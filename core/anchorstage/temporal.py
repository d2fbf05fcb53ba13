# SPDX-License-Identifier: GPL-3.0-or-later
"""Temporal smoothing of a frame sequence with AnimateDiff video-to-video (diffusers).

Frames rendered, refreshed or generated one at a time flicker: each frame's inpainting or
generation is its own sample. AnimateDiff's motion module attends across frames, so re-noising a
clip lightly (``strength`` ≈ 0.3) and denoising it as one video makes neighbouring frames agree.

The clip is processed in windows of ``window`` frames (the motion module's context; AnimateDiff
was trained on 16); consecutive windows share ``overlap`` frames, which are cross-faded linearly
from one window's result to the next, so there is no seam. :class:`TemporalSmoother` is fed one
frame at a time and hands frames back as soon as they are final: it never holds more than one
window, so clips of any length stream through it.

Models: an SD 1.5 text-to-image pipeline (hub id or folder) and an AnimateDiff ``MotionAdapter``,
each through diffusers' ``from_pretrained`` (flag > environment variable > default, as for the
other generative stages; see docs/video.md).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Optional

import numpy as np

from .errors import InputError, MissingDependencyError
from .progress import ProgressFn, report

__all__ = ["SmoothingSettings", "TemporalSmoother", "load_animatediff", "smooth_window", "DEFAULT_SMOOTHING_MODELS",
           "SMOOTHING_ENV"]

#: Default weights: the SD 1.5 base and the AnimateDiff v1.5-2 motion adapter (hub ids).
DEFAULT_SMOOTHING_MODELS = {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                            "motion_adapter": "guoyww/animatediff-motion-adapter-v1-5-2"}
#: Environment variables that set them when no explicit value is given.
SMOOTHING_ENV = {"model": "ANCHORSTAGE_ANIMATEDIFF_MODEL", "motion_adapter": "ANCHORSTAGE_MOTION_ADAPTER"}
_MAX_WINDOW = 32  # the motion module's positional table (max_seq_length) of the released adapters
_PIPELINES: dict[tuple, Any] = {}


@dataclass(frozen=True)
class SmoothingSettings:
    """AnimateDiff video-to-video settings.

    Attributes:
        model: SD 1.5 text-to-image pipeline, hub id or folder.
        motion_adapter: AnimateDiff MotionAdapter, hub id or folder.
        prompt, negative_prompt: text prompts.
        strength: (0, 1], how far each window is re-noised (low keeps the frames, high repaints them).
        steps: denoising steps (``strength`` of them run).
        guidance_scale: classifier-free guidance scale.
        window: frames denoised together, 2..32.
        overlap: frames shared by consecutive windows and cross-faded, 0..window-1.
        max_side: processing size, the long side in pixels.
        seed: random seed (each window's noise starts from it).
        dtype: ``"auto"`` (float16 on CUDA), ``"float16"`` or ``"float32"``.
    """

    model: str = DEFAULT_SMOOTHING_MODELS["model"]
    motion_adapter: str = DEFAULT_SMOOTHING_MODELS["motion_adapter"]
    prompt: str = ""
    negative_prompt: str = "blurry, distorted, flicker, text, watermark"
    strength: float = 0.3
    steps: int = 20
    guidance_scale: float = 6.0
    window: int = 16
    overlap: int = 4
    max_side: int = 512
    seed: int = 0
    dtype: str = "auto"

    def __post_init__(self) -> None:
        for name in ("model", "motion_adapter"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"smoothing: {name} must be a hub id or a folder (got {v!r})")
        s = self.strength
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 < s <= 1:
            raise InputError(f"smoothing: strength must be in (0, 1] (got {s!r})")
        for name, lo, hi in (("steps", 1, 1000), ("window", 2, _MAX_WINDOW), ("max_side", 16, 4096), ("seed", 0, 2**63 - 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InputError(f"smoothing: {name} must be an integer in [{lo}, {hi}] (got {v!r})")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < self.window:
            raise InputError(f"smoothing: overlap must be an integer in [0, window - 1 = {self.window - 1}] "
                             f"(got {self.overlap!r})")
        if int(self.steps * self.strength) < 1:  # the pipeline runs int(steps * strength) of the steps
            raise InputError(f"smoothing: {self.steps} steps at strength {self.strength:g} run no denoising step; "
                             f"raise steps or strength")
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or not 0 <= g <= 100:
            raise InputError(f"smoothing: guidance_scale must be in [0, 100] (got {g!r})")
        if self.dtype not in ("auto", "float16", "float32"):
            raise InputError(f"smoothing: dtype must be auto, float16 or float32 (got {self.dtype!r})")

    @classmethod
    def resolved(cls, *, model: Optional[str] = None, motion_adapter: Optional[str] = None, **kw: Any) -> "SmoothingSettings":
        """Settings whose models not given here come from :data:`SMOOTHING_ENV`, then the defaults."""
        pick = {k: v or os.environ.get(SMOOTHING_ENV[k], "").strip() or DEFAULT_SMOOTHING_MODELS[k]
                for k, v in (("model", model), ("motion_adapter", motion_adapter))}
        return cls(**pick, **kw)

    def to_json_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _errors_only() -> Iterator[None]:
    """diffusers' and transformers' warnings off: the VAE is cast between dtypes inside the pipeline and
    image processors fall back from torchvision on import; they warn although nothing is wrong and the
    user can do nothing about it (a command's output stays its one line)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = dlog.get_verbosity(), tlog.get_verbosity()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])


def load_animatediff(settings: SmoothingSettings, device: str = "auto") -> Any:
    """The AnimateDiff video-to-video pipeline (cached: one at a time).

    Raises:
        MissingDependencyError: diffusers missing, or weights not found (names the id and how to get it).
    """
    import torch

    from .device import resolve_device
    from .diffusion import _load, _quiet_loading

    dev = resolve_device(device)
    dtype = (torch.float16 if dev.type == "cuda" else torch.float32) if settings.dtype == "auto" \
        else getattr(torch, settings.dtype)
    key = (settings.model, settings.motion_adapter, str(dev), str(dtype))
    if key in _PIPELINES:
        return _PIPELINES[key]
    try:
        with _errors_only():
            from diffusers import AnimateDiffVideoToVideoPipeline, MotionAdapter
    except ImportError as e:
        raise MissingDependencyError(f"AnimateDiff smoothing needs diffusers and transformers "
                                     f"(pip install 'anchorstage[ml]'): {e}") from None
    _PIPELINES.clear()
    _quiet_loading()
    with _errors_only():
        adapter = _load(MotionAdapter.from_pretrained, settings.motion_adapter, "AnimateDiff motion adapter",
                        "--motion-adapter", dtype=dtype)
        pipe = _load(AnimateDiffVideoToVideoPipeline.from_pretrained, settings.model, "AnimateDiff base model",
                     "--smooth-model", motion_adapter=adapter, dtype=dtype)
        pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    _PIPELINES[key] = pipe
    return pipe


def smooth_window(pipe: Any, frames_linear: list[np.ndarray], settings: SmoothingSettings, *,
                  progress: Optional[ProgressFn] = None) -> list[np.ndarray]:
    """Denoise one window of frames together.

    Args:
        pipe: from :func:`load_animatediff`.
        frames_linear: [H, W, 3] float32 linear frames, all one size.
        settings: the smoothing settings.
        progress: called once per denoising step.

    Returns:
        The smoothed frames, [H, W, 3] float32 linear, at the input size.
    """
    import torch
    from PIL import Image

    from .diffusion import _resize, processing_size
    from .image_io import linear_to_srgb, srgb_to_linear

    h, w = frames_linear[0].shape[:2]
    vae_f = int(pipe.vae_scale_factor)
    cell = math.lcm(8, vae_f * 2 ** (len(pipe.unet.config.block_out_channels) - 1))
    pw, ph = processing_size(w, h, settings.max_side, cell)
    video = [Image.fromarray(np.round(linear_to_srgb(_resize(np.asarray(f, np.float32), (pw, ph))) * 255).astype(np.uint8))
             for f in frames_linear]

    def on_step(pipeline: Any, i: int, t: Any, kwargs: dict) -> dict:
        n = int(getattr(pipeline, "num_timesteps", 0) or settings.steps)
        report(progress, (i + 1) / n, f"AnimateDiff step {i + 1}/{n}")
        return kwargs

    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    with _errors_only():
        out = pipe(video=video, prompt=settings.prompt, negative_prompt=settings.negative_prompt or None, height=ph,
                   width=pw, num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                   strength=float(settings.strength), generator=gen, output_type="np", callback_on_step_end=on_step)
    frames = np.asarray(out.frames[0], dtype=np.float32)  # [F, ph, pw, 3] sRGB in [0, 1]
    return [_resize(srgb_to_linear(np.clip(f, 0.0, 1.0)), (w, h)) for f in frames]


class TemporalSmoother:
    """Smooth a stream of frames in overlapping windows (see the module docstring).

    Usage::

        smoother = TemporalSmoother(settings, device="cpu")
        for frame in frames:
            for done in smoother.push(frame):
                write(done)
        for done in smoother.flush():
            write(done)
    """

    def __init__(self, settings: SmoothingSettings, *, device: str = "auto", progress: Optional[ProgressFn] = None) -> None:
        if not isinstance(settings, SmoothingSettings):
            raise InputError(f"smoothing: settings must be SmoothingSettings (got {type(settings).__name__})")
        self.settings, self.device, self.progress = settings, device, progress
        self._inputs: list[np.ndarray] = []  # frames of the next window (the shared overlap first)
        self._held: list[np.ndarray] = []  # the previous window's results for the shared frames
        self.windows = 0

    def push(self, frame_linear: np.ndarray) -> list[np.ndarray]:
        """Add a frame ([H, W, 3] float32 linear); returns the frames that are final now (in order)."""
        self._inputs.append(np.asarray(frame_linear, np.float32))
        return self._run(final=False) if len(self._inputs) == self.settings.window else []

    def flush(self) -> list[np.ndarray]:
        """The remaining frames, at the end of the clip."""
        if len(self._inputs) > len(self._held):
            return self._run(final=True)
        out, self._held, self._inputs = self._held, [], []
        return out

    def _run(self, final: bool) -> list[np.ndarray]:
        pipe = load_animatediff(self.settings, self.device)
        report(self.progress, 0.0, f"AnimateDiff window {self.windows + 1}")
        out = smooth_window(pipe, self._inputs, self.settings, progress=self.progress)
        self.windows += 1
        n = len(self._held)
        for k in range(n):  # cross-fade from the previous window's result to this one's
            t = (k + 1) / (n + 1)
            out[k] = (1.0 - t) * self._held[k] + t * out[k]
        keep = 0 if final else self.settings.overlap
        ready = out[:len(out) - keep]
        self._held, self._inputs = out[len(out) - keep:], self._inputs[len(self._inputs) - keep:]
        return ready
