# SPDX-License-Identifier: GPL-3.0-or-later
"""Diffusion inpainting of a refreshed witness's void, conditioned on the proxy's depth and normals.

:func:`inpaint_warp` applies the shared diffusers plumbing of :mod:`anchorstage.diffusion` (model
loading, memory savers, control images, latent-grid masks, the bit-exact composite; re-exported here
for existing callers) to a refreshed witness (:mod:`anchorstage.witness`). :class:`DiffusionSettings`
holds the refresh's models and sampling; :func:`load_pipeline` and :func:`inpaint` run them.
Generation (:mod:`anchorstage.generation`) uses the same plumbing with SDXL and IP-Adapter as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .diffusion import (DEFAULT_MODELS, DEFAULT_NEGATIVE_PROMPT, MemorySettings, ModelSet, clear_pipelines,
                        composite_generated, depth_control, inpaint_frame, latent_mask, model_set, normal_control,
                        normals_from_depth)
from .diffusion import load_pipeline as _load_pipeline
from .errors import InputError, MissingDependencyError
from .progress import ProgressFn

if TYPE_CHECKING:  # pragma: no cover
    from .scene import Scene
    from .witness import Fill, Warp

__all__ = ["DiffusionSettings", "DEFAULT_INPAINT_MODEL", "DEFAULT_DEPTH_CONTROLNET", "DEFAULT_NORMAL_CONTROLNET",
           "load_pipeline", "clear_pipelines", "depth_control", "normal_control", "normals_from_depth", "latent_mask",
           "inpaint", "composite_generated", "inpaint_warp"]

#: Stable Diffusion 1.5 inpainting (9-channel UNet).
DEFAULT_INPAINT_MODEL = DEFAULT_MODELS["sd15"]["model"]
#: ControlNet 1.1 depth for SD 1.5.
DEFAULT_DEPTH_CONTROLNET = DEFAULT_MODELS["sd15"]["controlnet_depth"]
#: ControlNet 1.1 normal (NormalBAE) for SD 1.5.
DEFAULT_NORMAL_CONTROLNET = DEFAULT_MODELS["sd15"]["controlnet_normal"]


@dataclass
class DiffusionSettings:
    """How to run the diffusion inpainting.

    Attributes:
        model: Stable Diffusion inpainting pipeline: hub id or local folder.
        controlnets: (depth ControlNet, normal ControlNet): hub ids or folders, in that order.
        prompt: text prompt (empty: the conditioning alone).
        negative_prompt: negative text prompt.
        steps: denoising steps.
        guidance_scale: classifier-free guidance scale.
        controlnet_scale: conditioning scale per ControlNet.
        seed: random seed (the same seed and inputs give the same result).
        max_side: processing size: the long side in pixels (rounded down to whole latent-grid cells).
        dtype: ``"auto"`` (float16 on CUDA, else float32), ``"float16"`` or ``"float32"``.
    """

    model: str = DEFAULT_INPAINT_MODEL
    controlnets: tuple[str, ...] = (DEFAULT_DEPTH_CONTROLNET, DEFAULT_NORMAL_CONTROLNET)
    prompt: str = ""
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    steps: int = 20
    guidance_scale: float = 5.0
    controlnet_scale: tuple[float, ...] = (1.0, 0.7)
    seed: int = 0
    max_side: int = 768
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise InputError(f"diffusion: model must be a hub id or a folder (got {self.model!r})")
        self.controlnets = tuple(self.controlnets)
        if len(self.controlnets) != 2 or not all(isinstance(c, str) and c for c in self.controlnets):
            raise InputError(f"diffusion: controlnets must be (depth, normal) hub ids or folders (got {self.controlnets!r})")
        self.controlnet_scale = tuple(float(s) for s in self.controlnet_scale)
        if len(self.controlnet_scale) != len(self.controlnets):
            raise InputError("diffusion: one controlnet_scale per ControlNet")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"diffusion: steps must be a positive integer (got {self.steps!r})")
        if isinstance(self.max_side, bool) or not isinstance(self.max_side, int) or self.max_side < 16:
            raise InputError(f"diffusion: max_side must be an integer of at least 16 pixels (got {self.max_side!r})")
        if self.dtype not in ("auto", "float16", "float32"):
            raise InputError(f"diffusion: dtype must be auto, float16 or float32 (got {self.dtype!r})")
        if not math.isfinite(float(self.guidance_scale)):
            raise InputError("diffusion: guidance_scale must be finite")

    @classmethod
    def resolved(cls, *, model: Optional[str] = None, controlnet_depth: Optional[str] = None,
                 controlnet_normal: Optional[str] = None, **kw: Any) -> "DiffusionSettings":
        """Settings whose models not given here come from the environment, then the defaults
        (:func:`anchorstage.diffusion.model_set`: the one place generation resolves them too). The
        family is always SD 1.5 (depth + normal ControlNets); ``$ANCHORSTAGE_DIFFUSION_FAMILY`` is generation's."""
        m = model_set("sd15", model=model, controlnet_depth=controlnet_depth, controlnet_normal=controlnet_normal,
                      ip_adapter="none")
        return cls(model=m.model, controlnets=(m.controlnet_depth, m.controlnet_normal), **kw)

    def to_json_dict(self) -> dict[str, Any]:
        return {"model": self.model, "controlnets": list(self.controlnets), "prompt": self.prompt,
                "negative_prompt": self.negative_prompt, "steps": self.steps, "guidance_scale": self.guidance_scale,
                "controlnet_scale": list(self.controlnet_scale), "seed": self.seed, "max_side": self.max_side}


# ---------------------------------------------------------------------------------------------- loading
def _models(settings: DiffusionSettings) -> ModelSet:
    return model_set("sd15", model=settings.model, controlnet_depth=settings.controlnets[0],
                     controlnet_normal=settings.controlnets[1], ip_adapter="none")


def load_pipeline(settings: DiffusionSettings, device: str = "auto") -> Any:
    """The ControlNet inpainting pipeline for ``settings`` on ``device`` (cached per model set; see
    :func:`anchorstage.diffusion.load_pipeline`).

    Raises:
        MissingDependencyError: diffusers / transformers missing, or weights not found (names the id).
    """
    try:
        pipe, _ = _load_pipeline(_models(settings), device, MemorySettings(dtype=settings.dtype, attention_slicing="off",
                                                                          cpu_offload="none"))
    except MissingDependencyError as e:
        raise MissingDependencyError(f"diffusion inpainting: {e}; or use --inpaint classical, which needs no weights") from None
    return pipe


def inpaint(image_linear: np.ndarray, mask: np.ndarray, controls: Sequence[np.ndarray], settings: DiffusionSettings, *,
            locks: Optional[np.ndarray] = None, device: str = "auto", progress: Optional[ProgressFn] = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Run the ControlNet inpainting pipeline on a frame (:func:`anchorstage.diffusion.inpaint_frame`).

    Args:
        image_linear: [H, W, 3] float32 linear RGB (the pre-filled frame).
        mask: [H, W] bool pixels to regenerate.
        controls: one [H, W, 3] float32 image in [0, 1] per ControlNet of ``settings``.
        settings: models and sampling.
        locks: [H, W] bool pixels that must not be regenerated (taken out of the grown mask).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: called once per denoising step (``"diffusion step i/n"``).

    Returns:
        (generated [H, W, 3] float32 linear at the frame's size, the mask actually regenerated
        [H, W] bool: ``mask`` grown to the latent grid, locks removed).
    """
    if len(controls) != len(settings.controlnets):
        raise InputError(f"diffusion: {len(controls)} control images for {len(settings.controlnets)} ControlNets")
    pipe = load_pipeline(settings, device)
    return inpaint_frame(pipe, image_linear, mask, controls, prompt=settings.prompt,
                         negative_prompt=settings.negative_prompt, steps=settings.steps,
                         guidance_scale=settings.guidance_scale, controlnet_scale=settings.controlnet_scale,
                         seed=settings.seed, max_side=settings.max_side, locks=locks, progress=progress)


# ---------------------------------------------------------------------------------------------- refresh
def inpaint_warp(scene: "Scene", warp: "Warp", fill: "Fill", image: np.ndarray, locks: np.ndarray,
                 settings: DiffusionSettings, *, fill_depth_m: np.ndarray, device: str = "auto",
                 progress: Optional[ProgressFn] = None) -> tuple[np.ndarray, "Fill"]:
    """Diffusion inpainting of a refreshed witness's void, conditioned on the proxy's depth and normals.

    The classical fill (``image``) is the starting picture; the void (less the locks) grown to the
    latent grid is regenerated, conditioned on the metric depth of what each pixel shows (the fill's
    continued background in the void) and the normals of that depth; the result is composited back
    so only the grown mask changes and locked pixels stay bit-identical to the warp. ``fill_depth_m``
    is :func:`anchorstage.witness.fill_depth` of ``fill`` ([H, W] metres).

    Returns:
        (the refreshed witness [H, W, 3] float32 linear, the fill with the generated colours and
        ``written`` the pixels regenerated: the grown mask less the locks).
    """
    from dataclasses import replace as dc_replace

    if not fill.mask.any():
        return image, fill
    depth = np.where(fill.mask, fill_depth_m, warp.depth_m)
    controls = [depth_control(depth), normal_control(normals_from_depth(depth, warp.camera))]
    generated, grown = inpaint(image, fill.mask, controls, settings, locks=locks, device=device, progress=progress)
    out = composite_generated(image, generated, grown, locks)
    if not np.array_equal(out[locks], warp.color[locks]):
        raise RuntimeError("diffusion refresh changed a locked pixel (a bug)")
    notes = list(fill.notes) + [f"diffusion: {settings.model} + {', '.join(settings.controlnets)}, {settings.steps} steps, "
                                f"seed {settings.seed}"]
    return out, dc_replace(fill, color=np.where(grown[..., None], generated, fill.color), mask=fill.mask, method="diffusion",
                           notes=notes, written=grown)
