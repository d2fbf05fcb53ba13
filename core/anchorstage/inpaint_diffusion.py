# SPDX-License-Identifier: GPL-3.0-or-later
"""Diffusion inpainting with geometric conditioning (diffusers), reusable beyond the witness refresh.

The plumbing every generative stage shares:

* :func:`load_pipeline`: a Stable Diffusion inpainting model plus one ControlNet per conditioning
  signal (a :class:`~diffusers.MultiControlNetModel` for several), each a hub id or a local folder,
  loaded through diffusers' own ``from_pretrained`` (fp16 on CUDA, float32 elsewhere) and kept for
  the next call. Nothing is downloaded unless the hub is reachable and allowed; missing weights
  raise :class:`~anchorstage.errors.MissingDependencyError` naming the id and how to get it.
* :func:`depth_control` / :func:`normal_control`: the conditioning images from metric depth and
  camera-frame normals (inverse depth, near bright; normals as the normal-map convention).
* :func:`latent_mask`: the mask dilated to whole cells of the latent grid (the VAE downsamples by
  ``vae_scale_factor``), with the locked pixels taken out again.
* :func:`inpaint`: one pipeline run with a progress report per denoising step, in sRGB at a
  processing size of whole latent-grid cells, returned in linear light at the frame's size.
* :func:`composite_generated`: the generated pixels inside the mask composited onto the original,
  locked pixels verified bit-exact (every diffusers inpaint pipeline passes the whole image through
  the VAE, so pixels outside the mask change: they are always taken from the original).

:func:`inpaint_warp` applies all of it to a refreshed witness (:mod:`anchorstage.witness`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .errors import InputError, MissingDependencyError
from .progress import ProgressFn, report

if TYPE_CHECKING:  # pragma: no cover
    from .scene import Scene
    from .witness import Fill, Warp

__all__ = ["DiffusionSettings", "DEFAULT_INPAINT_MODEL", "DEFAULT_DEPTH_CONTROLNET", "DEFAULT_NORMAL_CONTROLNET",
           "load_pipeline", "clear_pipelines", "depth_control", "normal_control", "normals_from_depth", "latent_mask",
           "inpaint", "composite_generated", "inpaint_warp"]

#: Stable Diffusion 1.5 inpainting (9-channel UNet).
DEFAULT_INPAINT_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
#: ControlNet 1.1 depth for SD 1.5.
DEFAULT_DEPTH_CONTROLNET = "lllyasviel/control_v11f1p_sd15_depth"
#: ControlNet 1.1 normal (NormalBAE) for SD 1.5.
DEFAULT_NORMAL_CONTROLNET = "lllyasviel/control_v11p_sd15_normalbae"

_PIPELINES: dict[tuple, Any] = {}


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
    negative_prompt: str = "blurry, distorted, text, watermark, people"
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

    def to_json_dict(self) -> dict[str, Any]:
        return {"model": self.model, "controlnets": list(self.controlnets), "prompt": self.prompt,
                "negative_prompt": self.negative_prompt, "steps": self.steps, "guidance_scale": self.guidance_scale,
                "controlnet_scale": list(self.controlnet_scale), "seed": self.seed, "max_side": self.max_side}


# ---------------------------------------------------------------------------------------------- loading
def _missing(what: str, ident: str, err: BaseException) -> MissingDependencyError:
    return MissingDependencyError(
        f"diffusion inpainting: cannot load the {what} {ident!r} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
        f"download it once with `huggingface-cli download {ident}` (or pass a local folder: --diffusion-model / "
        f"--controlnet-depth / --controlnet-normal), or use --inpaint classical, which needs no weights")


def load_pipeline(settings: DiffusionSettings, device: str = "auto") -> Any:
    """The ControlNet inpainting pipeline for ``settings`` on ``device`` (cached per model set).

    Raises:
        MissingDependencyError: diffusers / transformers missing, or weights not found (names the id).
    """
    import torch

    from .device import resolve_device

    dev = resolve_device(device)
    if settings.dtype == "auto":
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
    else:
        dtype = getattr(torch, settings.dtype)
    key = (settings.model, settings.controlnets, str(dev), str(dtype))
    if key in _PIPELINES:
        return _PIPELINES[key]
    try:
        from diffusers import ControlNetModel, StableDiffusionControlNetInpaintPipeline
        from diffusers.models import MultiControlNetModel
    except ImportError as e:
        raise MissingDependencyError(f"diffusion inpainting needs diffusers and transformers "
                                     f"(pip install 'anchorstage[ml]'): {e}") from None
    nets = []
    for ident in settings.controlnets:
        try:
            nets.append(ControlNetModel.from_pretrained(ident, dtype=dtype))
        except (OSError, ValueError, EnvironmentError) as e:
            raise _missing("ControlNet", ident, e) from None
    try:
        pipe = StableDiffusionControlNetInpaintPipeline.from_pretrained(
            settings.model, controlnet=MultiControlNetModel(nets), dtype=dtype, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
    except (OSError, ValueError, EnvironmentError) as e:
        raise _missing("inpainting model", settings.model, e) from None
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    _PIPELINES.clear()  # one model set at a time: they are large
    _PIPELINES[key] = pipe
    return pipe


def clear_pipelines() -> None:
    """Forget loaded pipelines (frees their memory)."""
    _PIPELINES.clear()


# ---------------------------------------------------------------------------------------------- conditioning
def normals_from_depth(depth_m: np.ndarray, camera: Any) -> np.ndarray:
    """[H, W, 3] float32 unit camera-frame normals (OpenCV) facing the camera, from planar depth.

    Central differences of the back-projected points (one-sided at the border and next to inf);
    (0, 0, -1) where the depth is not finite.
    """
    z = np.asarray(depth_m, np.float64)
    fin = np.isfinite(z)
    xs, ys = camera.pixel_rays()
    zz = np.where(fin, z, np.nan)
    p = np.stack([xs[None, :] * zz, ys[:, None] * zz, zz], -1)
    dx = np.gradient(p, axis=1)
    dy = np.gradient(p, axis=0)
    n = np.cross(dx, dy)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    flip = (n * p).sum(-1) > 0  # face the camera
    n[flip] *= -1
    bad = ~np.all(np.isfinite(n), axis=-1)
    n[bad] = (0.0, 0.0, -1.0)
    return n.astype(np.float32)


def depth_control(depth_m: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: inverse depth normalised to its 2nd-98th percentile (near bright,
    infinity black), as depth ControlNets are trained on."""
    z = np.asarray(depth_m, np.float32)
    inv = np.where(np.isfinite(z) & (z > 0), 1.0 / np.where(z > 0, z, 1.0), 0.0)
    fin = inv[inv > 0]
    if fin.size:
        lo, hi = np.percentile(fin, 2), np.percentile(fin, 98)
        inv = np.where(inv > 0, np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * 0.9 + 0.1, 0.0)
    return np.repeat(inv[..., None], 3, -1).astype(np.float32)


def normal_control(normals_cam: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: camera-frame normals as a normal map (x right, y up, z towards the
    viewer mapped from [-1, 1] to [0, 1])."""
    n = np.asarray(normals_cam, np.float32)
    gl = np.stack([n[..., 0], -n[..., 1], -n[..., 2]], -1)  # OpenCV (y down, z forward) -> y up, z to viewer
    return np.clip(gl * 0.5 + 0.5, 0.0, 1.0).astype(np.float32)


def latent_mask(mask: np.ndarray, grid: int, locks: Optional[np.ndarray] = None) -> np.ndarray:
    """[H, W] bool: ``mask`` grown to whole ``grid`` x ``grid`` cells (any masked pixel masks its cell),
    then ``locks`` taken out."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    hc, wc = -(-h // grid), -(-w // grid)
    padded = np.zeros((hc * grid, wc * grid), bool)
    padded[:h, :w] = m
    cells = padded.reshape(hc, grid, wc, grid).any(axis=(1, 3))
    out = np.repeat(np.repeat(cells, grid, 0), grid, 1)[:h, :w]
    return out & ~np.asarray(locks, bool) if locks is not None else out


def _processing_size(width: int, height: int, max_side: int, cell: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(cell, int(width * scale) // cell * cell), max(cell, int(height * scale) // cell * cell)


def _resize(a: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    from PIL import Image

    if a.dtype == bool:
        im = Image.fromarray(a.astype(np.uint8) * 255)
        return np.asarray(im.resize(size, Image.NEAREST)) > 127
    chans = [Image.fromarray(np.ascontiguousarray(a[..., c], dtype=np.float32), mode="F") for c in range(a.shape[2])]
    method = Image.NEAREST if nearest else Image.BILINEAR
    return np.stack([np.asarray(c.resize(size, method)) for c in chans], -1).astype(np.float32)


def inpaint(image_linear: np.ndarray, mask: np.ndarray, controls: Sequence[np.ndarray], settings: DiffusionSettings, *,
            locks: Optional[np.ndarray] = None, device: str = "auto", progress: Optional[ProgressFn] = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """Run the ControlNet inpainting pipeline on a frame.

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
    import torch
    from PIL import Image

    from .image_io import linear_to_srgb, srgb_to_linear

    h, w = mask.shape
    if len(controls) != len(settings.controlnets):
        raise InputError(f"diffusion: {len(controls)} control images for {len(settings.controlnets)} ControlNets")
    pipe = load_pipeline(settings, device)
    vae_f = int(pipe.vae_scale_factor)
    cell = math.lcm(8, vae_f * 2 ** (len(pipe.unet.config.block_out_channels) - 1))  # the pipeline wants multiples of 8
    pw, ph = _processing_size(w, h, settings.max_side, cell)
    # The mask grown to latent cells (at the frame's size, cells of the same extent), and on the
    # latent grid of the processing size; the composite uses the first less the locks.
    grown = latent_mask(mask, max(1, round(vae_f * w / pw)))
    small_mask = latent_mask(_resize(grown, (pw, ph)), vae_f)
    full_mask = grown & ~np.asarray(locks, bool) if locks is not None else grown
    srgb = linear_to_srgb(_resize(np.asarray(image_linear, np.float32), (pw, ph)))
    to_pil = lambda a: Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8))  # noqa: E731
    ctrl = [to_pil(_resize(c, (pw, ph))) for c in controls]
    n = settings.steps

    def on_step(pipeline: Any, i: int, t: Any, kwargs: dict) -> dict:
        report(progress, (i + 1) / n, f"diffusion step {i + 1}/{n}")
        return kwargs

    gen = torch.Generator(device="cpu").manual_seed(int(settings.seed))
    report(progress, 0.0, f"diffusion: {n} steps at {pw}x{ph}")
    out = pipe(prompt=settings.prompt, negative_prompt=settings.negative_prompt or None, image=to_pil(srgb),
               mask_image=to_pil(small_mask.astype(np.float32)), control_image=ctrl, height=ph, width=pw,
               num_inference_steps=n, guidance_scale=float(settings.guidance_scale),
               controlnet_conditioning_scale=list(settings.controlnet_scale), generator=gen, output_type="np",
               callback_on_step_end=on_step).images[0]
    generated = srgb_to_linear(_resize(np.asarray(out, np.float32), (w, h)))
    return generated, full_mask


def composite_generated(base: np.ndarray, generated: np.ndarray, mask: np.ndarray,
                        locks: Optional[np.ndarray] = None) -> np.ndarray:
    """``generated`` inside ``mask`` (never on ``locks``), ``base`` everywhere else.

    Returns:
        [H, W, 3] float32.

    Raises:
        RuntimeError: a locked pixel differs from ``base`` (a bug, never a user error).
    """
    m = np.asarray(mask, bool)
    if locks is not None:
        m = m & ~np.asarray(locks, bool)
    out = np.where(m[..., None], np.asarray(generated, np.float32), np.asarray(base, np.float32))
    if locks is not None and not np.array_equal(out[locks], np.asarray(base, np.float32)[locks]):
        raise RuntimeError("diffusion composite changed a locked pixel (a bug)")
    return out


# ---------------------------------------------------------------------------------------------- refresh
def inpaint_warp(scene: "Scene", warp: "Warp", fill: "Fill", image: np.ndarray, locks: np.ndarray,
                 settings: DiffusionSettings, *, device: str = "auto",
                 progress: Optional[ProgressFn] = None) -> tuple[np.ndarray, "Fill"]:
    """Diffusion inpainting of a refreshed witness's void, conditioned on the proxy's depth and normals.

    The classical fill (``image``) is the starting picture; the void (less the locks) grown to the
    latent grid is regenerated, conditioned on the metric depth of what each pixel shows (the fill's
    continued background in the void) and the normals of that depth; the result is composited back
    so only the grown mask changes and locked pixels stay bit-identical to the warp.

    Returns:
        (the refreshed witness [H, W, 3] float32 linear, the fill with the generated colours and
        ``written`` the pixels regenerated: the grown mask less the locks).
    """
    from dataclasses import replace as dc_replace

    from .witness import fill_depth

    if not fill.mask.any():
        return image, fill
    depth = np.where(fill.mask, fill_depth(warp, fill, scene.regions), warp.depth_m)
    controls = [depth_control(depth), normal_control(normals_from_depth(depth, warp.camera))]
    generated, grown = inpaint(image, fill.mask, controls, settings, locks=locks, device=device, progress=progress)
    out = composite_generated(image, generated, grown, locks)
    if not np.array_equal(out[locks], warp.color[locks]):
        raise RuntimeError("diffusion refresh changed a locked pixel (a bug)")
    notes = list(fill.notes) + [f"diffusion: {settings.model} + {', '.join(settings.controlnets)}, {settings.steps} steps, "
                                f"seed {settings.seed}"]
    return out, dc_replace(fill, color=np.where(grown[..., None], generated, fill.color), mask=fill.mask, method="diffusion",
                           notes=notes, written=grown)
