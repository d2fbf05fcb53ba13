# SPDX-License-Identifier: GPL-3.0-or-later
"""Generation: a finished frame from a conditioning stack, locked pixels kept bit-exact.

:func:`generate` runs a Stable Diffusion 1.5 or SDXL ControlNet inpainting pipeline (diffusers) on a
:class:`~anchorstage.conditioning.Conditioning`: the refreshed witness is the starting picture, the
depth and normal ControlNets (together, a ``MultiControlNetModel``) follow the proxy's metric depth
and normals, an optional IP-Adapter takes appearance from the reference photo. Only the mask (the
void, grown to whole latent-grid cells, locks taken out) is generated; everything else, and every
locked pixel, is composited back from the refreshed witness and verified bit-exact (a run that
would change one raises: it is a bug, never silently accepted).

The shared plumbing (model sets from flags / preferences / environment, loading through
``from_pretrained``, fp16 and memory savers on CUDA, control images, the composite) is in
:mod:`anchorstage.diffusion`; the stage function is :func:`anchorstage.stages.generate`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .conditioning import Conditioning
from .diffusion import MemorySettings, ModelSet, model_set
from .errors import InputError
from .progress import ProgressFn, report

__all__ = ["GenerationSettings", "Generation", "generate", "save_generation", "GENERATION_FILES",
           "DEFAULT_CONTROLNET_SCALE", "DEFAULT_MAX_SIDE", "REQUEST_KNOBS"]

#: Conditioning scale of the depth and of the normal ControlNet.
DEFAULT_CONTROLNET_SCALE = {"depth": 1.0, "normal": 0.7}
#: Processing size (long side, pixels) each family was trained at.
DEFAULT_MAX_SIDE = {"sd15": 768, "sdxl": 1024}
#: The files :func:`save_generation` writes.
GENERATION_FILES = ("generated.exr", "generated.png", "generated_mask.png", "generation.json")
#: The settings a request may change (a remote worker's models are its own; see docs/remote_worker.md).
REQUEST_KNOBS = ("steps", "guidance_scale", "controlnet_scale", "ip_adapter_scale", "max_side")


@dataclass
class GenerationSettings:
    """Models and sampling of a generation (the prompts, seed and strength are the conditioning's).

    Attributes:
        models: which weights (:func:`anchorstage.diffusion.model_set`: flags, environment, defaults).
        steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        controlnet_scale: conditioning scale per ControlNet in use, depth first (default
            :data:`DEFAULT_CONTROLNET_SCALE`).
        ip_adapter_scale: weight of the IP-Adapter (when the models have one).
        max_side: processing size, the long side in pixels (0: the family's, :data:`DEFAULT_MAX_SIDE`).
        memory: precision and memory savers (fp16, attention slicing, CPU offload).
    """

    models: ModelSet = field(default_factory=model_set)
    steps: int = 30
    guidance_scale: float = 6.0
    controlnet_scale: tuple[float, ...] = ()
    ip_adapter_scale: float = 0.6
    max_side: int = 0
    memory: MemorySettings = field(default_factory=MemorySettings)

    def __post_init__(self) -> None:
        if not isinstance(self.models, ModelSet):
            raise InputError(f"generation: models must be a ModelSet (got {type(self.models).__name__})")
        if not isinstance(self.memory, MemorySettings):
            raise InputError(f"generation: memory must be MemorySettings (got {type(self.memory).__name__})")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise InputError(f"generation: steps must be an integer in [1, 1000] (got {self.steps!r})")
        if isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or not (self.max_side == 0 or
                                                                                         16 <= self.max_side <= 8192):
            raise InputError(f"generation: max_side must be 0 (the family's) or 16..8192 pixels (got {self.max_side!r})")
        for name in ("guidance_scale", "ip_adapter_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 100:
                raise InputError(f"generation: {name} must be a number in [0, 100] (got {v!r})")
        scales = tuple(self.controlnet_scale) if isinstance(self.controlnet_scale, (list, tuple)) else None
        if scales is None or not all(not isinstance(s, bool) and isinstance(s, (int, float)) and math.isfinite(s)
                                     and 0 <= s <= 10 for s in scales):
            raise InputError(f"generation: controlnet_scale must be numbers in [0, 10] (got {self.controlnet_scale!r})")
        if scales and len(scales) != len(self.models.controlnets):
            raise InputError(f"generation: {len(scales)} controlnet_scale value(s) for {len(self.models.controlnets)} "
                             f"ControlNet(s) ({', '.join(s for s, _ in self.models.controlnets)})")
        self.controlnet_scale = tuple(float(s) for s in scales) or tuple(
            DEFAULT_CONTROLNET_SCALE[s] for s, _ in self.models.controlnets)

    @property
    def processing_side(self) -> int:
        return self.max_side or DEFAULT_MAX_SIDE[self.models.family]

    def with_request(self, knobs: dict[str, Any], where: str = "request") -> "GenerationSettings":
        """A copy with the :data:`REQUEST_KNOBS` of ``knobs`` (validated; anything else is refused)."""
        unknown = sorted(set(knobs) - set(REQUEST_KNOBS))
        if unknown:
            raise InputError(f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(REQUEST_KNOBS)}")
        changes = dict(knobs)
        if "controlnet_scale" in changes and isinstance(changes["controlnet_scale"], list):
            changes["controlnet_scale"] = tuple(changes["controlnet_scale"])
        try:
            return replace(self, **changes)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None

    def to_json_dict(self) -> dict[str, Any]:
        return {"models": self.models.to_json_dict(), "steps": self.steps, "guidance_scale": self.guidance_scale,
                "controlnet_scale": list(self.controlnet_scale), "ip_adapter_scale": self.ip_adapter_scale,
                "max_side": self.processing_side, "memory": {"dtype": self.memory.dtype,
                                                             "attention_slicing": self.memory.attention_slicing,
                                                             "cpu_offload": self.memory.cpu_offload}}


@dataclass
class Generation:
    """A generated frame (the result of :func:`anchorstage.generate`).

    Attributes:
        image: [H, W, 3] float32 linear Rec.709: generated inside ``generated``, the conditioning's
            image (the refreshed witness) bit for bit everywhere else.
        generated: [H, W] bool: the pixels generated (the mask grown to whole latent-grid cells, less
            the locks).
        conditioning: what it was conditioned on.
        settings: models and sampling.
        notes: what happened (models, precision, memory savers, steps).
        step_s: median seconds per denoising step (0 when nothing was generated).
        steps_run: denoising steps run (``steps`` times the strength, rounded by the scheduler).
    """

    image: np.ndarray
    generated: np.ndarray
    conditioning: Conditioning
    settings: GenerationSettings
    notes: list[str] = field(default_factory=list)
    step_s: float = 0.0
    steps_run: int = 0

    @property
    def camera(self):
        return self.conditioning.camera

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts of the run."""
        c = self.conditioning
        return {"camera": c.camera.to_json_dict(), "conditioning": {k: v for k, v in c.header().items()
                                                                     if k not in ("format", "format_version")},
                "settings": self.settings.to_json_dict(), "generated_px": int(self.generated.sum()),
                "locked_px": int(c.locked.sum()), "steps_run": self.steps_run, "step_s": round(self.step_s, 6),
                "notes": self.notes}


def _controls(cond: Conditioning, models: ModelSet) -> list[np.ndarray]:
    from .diffusion import depth_control, normal_control

    return [depth_control(cond.depth_m) if signal == "depth" else normal_control(cond.normal_cam)
            for signal, _ in models.controlnets]


def generate(conditioning: Conditioning, settings: Optional[GenerationSettings] = None, *, device: str = "auto",
             progress: Optional[ProgressFn] = None, cancel: Optional[Callable[[], bool]] = None) -> Generation:
    """Generate a frame from a conditioning stack (see the module docstring).

    Args:
        conditioning: the :class:`~anchorstage.conditioning.Conditioning` (image, depth, normals, mask,
            locks, camera, prompts, seed, strength, reference).
        settings: models and sampling (default: :class:`GenerationSettings` from the environment).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: called once per denoising step (``"diffusion step i/n"``).
        cancel: checked between steps; when it returns True the run stops with
            :class:`~anchorstage.errors.Cancelled`.

    Returns:
        The :class:`Generation`.

    Raises:
        InputError: a bad conditioning or settings. MissingDependencyError: diffusers or weights
        missing (names the id). Cancelled: cancelled.
    """
    from .diffusion import composite_generated, inpaint_frame, load_pipeline

    if not isinstance(conditioning, Conditioning):
        raise InputError(f"generate: conditioning must be an anchorstage Conditioning (got {type(conditioning).__name__})")
    settings = GenerationSettings() if settings is None else settings
    if not isinstance(settings, GenerationSettings):
        raise InputError(f"generate: settings must be GenerationSettings (got {type(settings).__name__})")
    cond = conditioning
    if not cond.mask.any() or (cond.mask & ~cond.locked).sum() == 0:
        report(progress, 1.0, "nothing to generate: the mask is empty")
        return Generation(image=cond.image.copy(), generated=np.zeros_like(cond.mask), conditioning=cond,
                          settings=settings, notes=["nothing to generate: the mask (the void less the locks) is empty"])
    report(progress, 0.0, "loading models")
    pipe, notes = load_pipeline(settings.models, device, settings.memory)
    notes = list(notes)
    ref = None
    if settings.models.ip_adapter:
        ref = cond.reference
        if ref is None:
            ref = cond.image
            notes.append("IP-Adapter: the conditioning has no reference photo; the refreshed witness is the reference")
    stamps: list[float] = []

    def on_progress(f: float, msg: str) -> None:
        if msg.startswith("diffusion step"):
            stamps.append(time.perf_counter())
        report(progress, 0.02 + 0.97 * f, msg)

    t0 = time.perf_counter()
    generated, grown = inpaint_frame(
        pipe, cond.image, cond.mask, _controls(cond, settings.models), prompt=cond.style_prompt,
        negative_prompt=cond.negative_prompt, steps=settings.steps, guidance_scale=settings.guidance_scale,
        controlnet_scale=settings.controlnet_scale, strength=cond.strength, seed=cond.seed,
        max_side=settings.processing_side, locks=cond.locked, ip_adapter_image=ref,
        ip_adapter_scale=settings.ip_adapter_scale, progress=on_progress, cancel=cancel)
    out = composite_generated(cond.image, generated, grown, cond.locked)
    # The promise of the stage, checked on the result itself: a violation is a bug and must not pass.
    keep = cond.locked | ~grown
    if not np.array_equal(out[keep], cond.image[keep]):
        raise RuntimeError(f"generation changed {int((out[keep] != cond.image[keep]).any(-1).sum())} locked or "
                           "unmasked pixel(s) (a bug)")
    gaps = np.diff([t0] + stamps)
    step_s = float(np.median(gaps)) if len(gaps) else 0.0
    notes.append(f"{len(stamps)} denoising steps, {step_s:.3g} s per step (median), seed {cond.seed}, "
                 f"strength {cond.strength:g}")
    report(progress, 1.0, f"generated {int(grown.sum()):,} px")
    return Generation(image=out, generated=grown, conditioning=cond, settings=settings, notes=notes, step_s=step_s,
                      steps_run=len(stamps))


def save_generation(gen: Generation, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a generation's files into ``out_dir`` (created), each atomically.

    ``generated.exr`` (Blender-named multilayer, float32: the frame as Combined RGBA, so it opens in
    Blender's compositor with one socket per pass), ``generated.png`` (8-bit sRGB),
    ``generated_mask.png`` (white = generated) and ``generation.json`` (settings, notes, timing).

    Returns:
        file name → path.

    Raises:
        OutputError: the folder cannot be written.
    """
    from .atomic import atomic_file, ensure_writable_dir
    from .exr import write_exr
    from .image_io import save_png

    if not isinstance(gen, Generation):
        raise InputError(f"save_generation needs a Generation (got {type(gen).__name__})")
    out = ensure_writable_dir(out_dir, "generation folder")
    paths = {name: out / name for name in GENERATION_FILES}
    h, w = gen.generated.shape
    write_exr(paths["generated.exr"], {"color": gen.image, "alpha": np.ones((h, w), np.float32)}, camera=gen.camera,
              half_for=(), meta={"generation": gen.summary()})
    save_png(paths["generated.png"], gen.image)
    save_png(paths["generated_mask.png"], gen.generated)
    with atomic_file(paths["generation.json"], "generation file") as tmp:
        tmp.write_text(json.dumps(gen.summary(), indent=2), encoding="utf-8")
    return paths
