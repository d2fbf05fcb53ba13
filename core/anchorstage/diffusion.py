# SPDX-License-Identifier: GPL-3.0-or-later
"""Diffusers plumbing shared by every generative stage (witness refresh, generation).

* **Models in one place** (:class:`ModelSet`, :func:`model_set`): the Stable Diffusion 1.5 or SDXL
  inpainting pipeline, a depth and a normal ControlNet, an optional IP-Adapter; each a hub id or a
  local folder. An explicit value (CLI flag, add-on preference, Python argument) wins over the
  environment (:data:`MODEL_ENV`), which wins over the family's defaults (:data:`DEFAULT_MODELS`).
* **Loading** (:func:`load_pipeline`): diffusers' own ``from_pretrained`` for the pipeline, one
  ``ControlNetModel`` per conditioning signal in a :class:`~diffusers.MultiControlNetModel`, and
  ``load_ip_adapter`` for the adapter and its CLIP image encoder; cached per model set, device and
  memory settings. A hub id loads from the local cache first; when it is not cached and the hub
  cannot be asked (``HF_HUB_OFFLINE``, no network) the load fails within seconds with a
  :class:`~anchorstage.errors.MissingDependencyError` naming the id and how to fetch it.
* **Memory** (:class:`MemorySettings`): float16 on CUDA (float32 elsewhere), attention slicing,
  model or sequential CPU offload; ``auto`` picks them from the GPU's memory.
* **Conditioning images** (:func:`depth_control`, :func:`normal_control`, :func:`normals_from_depth`).
* **Masks and the composite** (:func:`latent_mask`, :func:`composite_generated`): the mask grown to
  whole cells of the latent grid with the locks taken out again; the generated pixels composited
  onto the original only there, locked pixels verified bit-exact (every diffusers inpaint pipeline
  passes the whole image through the VAE, so everything outside the mask must come from the
  original).
* **One run** (:func:`inpaint_frame`): the pipeline on a frame at a processing size of whole
  latent-grid cells, in sRGB, with a progress report per denoising step and a cancel check between
  steps; the result in linear light at the frame's size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .errors import Cancelled, InputError, MissingDependencyError
from .progress import ProgressFn, report

__all__ = ["FAMILIES", "DEFAULT_MODELS", "MODEL_ENV", "ModelSet", "model_set", "detect_family", "MemorySettings",
           "load_pipeline", "clear_pipelines", "depth_control", "normal_control", "normals_from_depth", "latent_mask",
           "composite_generated", "inpaint_frame", "processing_size", "DEFAULT_NEGATIVE_PROMPT"]

#: Pipeline families: Stable Diffusion 1.5 and SDXL (ControlNet inpainting pipelines of both).
FAMILIES = ("sd15", "sdxl")

#: The default models of each family (hub ids). SDXL has no official normal ControlNet: it runs with
#: the depth ControlNet alone unless one is given.
DEFAULT_MODELS: dict[str, dict[str, str]] = {
    "sd15": {"model": "stable-diffusion-v1-5/stable-diffusion-inpainting",
             "controlnet_depth": "lllyasviel/control_v11f1p_sd15_depth",
             "controlnet_normal": "lllyasviel/control_v11p_sd15_normalbae",
             "ip_adapter": "h94/IP-Adapter", "ip_adapter_weight": "models/ip-adapter_sd15.safetensors",
             "image_encoder": "image_encoder"},
    "sdxl": {"model": "diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
             "controlnet_depth": "diffusers/controlnet-depth-sdxl-1.0",
             "controlnet_normal": "",
             "ip_adapter": "h94/IP-Adapter", "ip_adapter_weight": "sdxl_models/ip-adapter_sdxl_vit-h.safetensors",
             "image_encoder": "models/image_encoder"},  # the ViT-H encoder the vit-h adapter was trained with
}

#: Environment variables that set a model when no explicit value is given (the add-on's
#: preferences and the CLI flags are explicit values). ``none`` switches a ControlNet off.
MODEL_ENV = {
    "family": "ANCHORSTAGE_DIFFUSION_FAMILY",
    "model": "ANCHORSTAGE_DIFFUSION_MODEL",
    "controlnet_depth": "ANCHORSTAGE_CONTROLNET_DEPTH",
    "controlnet_normal": "ANCHORSTAGE_CONTROLNET_NORMAL",
    "ip_adapter": "ANCHORSTAGE_IP_ADAPTER",
    "ip_adapter_weight": "ANCHORSTAGE_IP_ADAPTER_WEIGHT",
    "image_encoder": "ANCHORSTAGE_IP_ADAPTER_IMAGE_ENCODER",
}

DEFAULT_NEGATIVE_PROMPT = "blurry, distorted, text, watermark, people"

_PIPELINES: dict[tuple, tuple[Any, list[str]]] = {}
_OFF = ("none", "off")


# ---------------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelSet:
    """Which weights a generative run uses (hub ids or local folders).

    Attributes:
        family: ``"sd15"`` or ``"sdxl"``.
        model: the inpainting pipeline (a 9-channel inpainting UNet).
        controlnet_depth: the depth ControlNet ("" for none).
        controlnet_normal: the normal ControlNet ("" for none); at least one ControlNet is needed.
        ip_adapter: the IP-Adapter repository or folder ("" for none).
        ip_adapter_weight: the adapter's weight file inside it, ``subfolder/file.safetensors``.
        image_encoder: the CLIP image encoder's folder, relative to the weight's subfolder (a name)
            or to the adapter's root (a path with ``/``), as diffusers' ``image_encoder_folder``.
    """

    family: str = "sd15"
    model: str = DEFAULT_MODELS["sd15"]["model"]
    controlnet_depth: str = DEFAULT_MODELS["sd15"]["controlnet_depth"]
    controlnet_normal: str = DEFAULT_MODELS["sd15"]["controlnet_normal"]
    ip_adapter: str = ""
    ip_adapter_weight: str = DEFAULT_MODELS["sd15"]["ip_adapter_weight"]
    image_encoder: str = "image_encoder"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InputError(f"diffusion family must be one of {', '.join(FAMILIES)} (got {self.family!r})")
        for name in ("model", "controlnet_depth", "controlnet_normal", "ip_adapter", "ip_adapter_weight", "image_encoder"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"diffusion {name} must be a string (got {getattr(self, name)!r})")
        if not self.model.strip():
            raise InputError("diffusion model must be a hub id or a folder (got an empty string)")
        if not self.controlnets:
            raise InputError("generation needs a depth or a normal ControlNet (both are switched off)")
        if self.ip_adapter and not self.ip_adapter_weight.endswith((".safetensors", ".bin")):
            raise InputError(f"IP-Adapter weight {self.ip_adapter_weight!r} must name a .safetensors or .bin file "
                             "(subfolder/file)")

    @property
    def controlnets(self) -> tuple[tuple[str, str], ...]:
        """((signal, id), ...) of the ControlNets in use, depth first."""
        return tuple((s, i) for s, i in (("depth", self.controlnet_depth), ("normal", self.controlnet_normal)) if i)

    def to_json_dict(self) -> dict[str, str]:
        return {"family": self.family, "model": self.model, "controlnet_depth": self.controlnet_depth,
                "controlnet_normal": self.controlnet_normal, "ip_adapter": self.ip_adapter,
                "ip_adapter_weight": self.ip_adapter_weight if self.ip_adapter else "",
                "image_encoder": self.image_encoder if self.ip_adapter else ""}


def detect_family(model: str) -> str:
    """``"sdxl"`` or ``"sd15"`` for a pipeline id or folder, without touching the network: a folder's
    ``model_index.json`` names its pipeline class; a hub id with ``xl`` in its name is taken as SDXL."""
    p = Path(model).expanduser()
    index = p / "model_index.json"
    if index.is_file():
        from .safe_json import load_json

        data = load_json(index, f"diffusion model {model!r} model_index.json")
        name = str(data.get("_class_name", "")) if isinstance(data, dict) else ""
        return "sdxl" if "XL" in name else "sd15"
    return "sdxl" if "xl" in Path(model).name.lower() else "sd15"


def model_set(family: Optional[str] = None, *, model: Optional[str] = None, controlnet_depth: Optional[str] = None,
              controlnet_normal: Optional[str] = None, ip_adapter: Optional[str] = None,
              ip_adapter_weight: Optional[str] = None, image_encoder: Optional[str] = None,
              env: Optional[dict[str, str]] = None) -> ModelSet:
    """The models to use: explicit values, else :data:`MODEL_ENV`, else the family's defaults.

    Args:
        family: ``"sd15"``, ``"sdxl"`` or ``None``/``"auto"`` (from the model: :func:`detect_family`).
        model, controlnet_depth, controlnet_normal, ip_adapter, ip_adapter_weight, image_encoder: hub
            ids or folders; ``None`` or ``""`` means "not given"; ``"none"`` switches a ControlNet or the
            IP-Adapter off. ``ip_adapter="default"`` takes the family's default adapter.
        env: the environment to read (default ``os.environ``).

    Raises:
        InputError: an unknown family, no ControlNet left, a malformed weight name.
    """
    env = os.environ if env is None else env

    def pick(name: str, given: Optional[str]) -> Optional[str]:
        if given is not None and str(given).strip():
            return str(given).strip()
        v = env.get(MODEL_ENV[name], "").strip()
        return v or None

    fam = pick("family", family)
    mdl = pick("model", model)
    if fam in (None, "auto"):
        fam = detect_family(mdl) if mdl else "sd15"
    if fam not in FAMILIES:
        raise InputError(f"diffusion family must be auto, {' or '.join(FAMILIES)} (got {fam!r})")
    d = DEFAULT_MODELS[fam]

    def net(name: str, given: Optional[str]) -> str:
        v = pick(name, given)
        return "" if v is not None and v.lower() in _OFF else (v or d[name])

    ip = pick("ip_adapter", ip_adapter)
    ip = "" if ip is None or ip.lower() in _OFF else (d["ip_adapter"] if ip.lower() == "default" else ip)
    return ModelSet(family=fam, model=mdl or d["model"], controlnet_depth=net("controlnet_depth", controlnet_depth),
                    controlnet_normal=net("controlnet_normal", controlnet_normal), ip_adapter=ip,
                    ip_adapter_weight=pick("ip_adapter_weight", ip_adapter_weight) or d["ip_adapter_weight"],
                    image_encoder=pick("image_encoder", image_encoder) or d["image_encoder"])


# ---------------------------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemorySettings:
    """Precision and memory savers.

    Attributes:
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float16"`` or ``"float32"``.
        attention_slicing: ``"auto"`` (on CUDA with less than 10 GB of GPU memory), ``"on"`` or ``"off"``;
            it also works on the CPU. Never combined with an IP-Adapter (slicing replaces the
            adapter's attention processors).
        cpu_offload: ``"auto"`` (model offload when the models would not fit the GPU's memory with room
            to spare, sequential offload when not even a third fits), ``"none"``, ``"model"`` or
            ``"sequential"``; CUDA only (ignored with a note on the CPU).
    """

    dtype: str = "auto"
    attention_slicing: str = "auto"
    cpu_offload: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("dtype", ("auto", "float16", "float32")), ("attention_slicing", ("auto", "on", "off")),
                              ("cpu_offload", ("auto", "none", "model", "sequential"))):
            if getattr(self, name) not in allowed:
                raise InputError(f"diffusion {name.replace('_', ' ')} must be one of {', '.join(allowed)} "
                                 f"(got {getattr(self, name)!r})")


#: Rough float16 weights of a model set in GB (UNet + text encoders + VAE; one ControlNet), for ``auto``.
_WEIGHTS_GB = {"sd15": (2.6, 0.7), "sdxl": (6.9, 2.5)}


def _memory_plan(models: ModelSet, dev: Any, mem: MemorySettings, dtype: Any) -> tuple[bool, str, list[str]]:
    """(attention slicing, offload mode, notes) for ``dev``."""
    import torch

    notes: list[str] = []
    slicing, offload = mem.attention_slicing == "on", mem.cpu_offload if mem.cpu_offload != "auto" else "none"
    if dev.type != "cuda":
        if mem.cpu_offload in ("model", "sequential"):
            notes.append(f"CPU offload ({mem.cpu_offload}) needs CUDA: ignored on {dev.type}")
        return slicing, "none", notes
    total_gb = torch.cuda.get_device_properties(dev).total_memory / 1e9
    base, per_net = _WEIGHTS_GB[models.family]
    need = (base + per_net * len(models.controlnets)) * (2.0 if dtype == torch.float32 else 1.0)
    if mem.attention_slicing == "auto":
        slicing = total_gb < 10.0
    if mem.cpu_offload == "auto":
        offload = "sequential" if total_gb < need / 3 else "model" if total_gb < need * 1.5 else "none"
    notes.append(f"{total_gb:.0f} GB GPU: attention slicing {'on' if slicing else 'off'}, CPU offload {offload}")
    return slicing, offload, notes


# ---------------------------------------------------------------------------------------------- loading
def _fetch_hint(ident: str, flag: str) -> str:
    from .temporal import SMOOTHING_ENV

    env = {"--motion-adapter": SMOOTHING_ENV["motion_adapter"], "--smooth-model": SMOOTHING_ENV["model"]}.get(flag) or \
        MODEL_ENV.get(flag.lstrip('-').replace('-', '_'), 'ANCHORSTAGE_DIFFUSION_MODEL')
    return (f"download it once with `huggingface-cli download {ident}` where there is network (or pass a local "
            f"folder: {flag}, the add-on's preferences or ${env})")


def _missing(what: str, ident: str, err: BaseException, flag: str) -> MissingDependencyError:
    first = str(err).splitlines()[0] if str(err) else ""
    return MissingDependencyError(f"cannot load the {what} {ident!r} ({type(err).__name__}: {first}); "
                                  f"{_fetch_hint(ident, flag)}")


_FLAGS = {"depth ControlNet": "--controlnet-depth", "normal ControlNet": "--controlnet-normal",
          "IP-Adapter": "--ip-adapter", "AnimateDiff motion adapter": "--motion-adapter",
          "AnimateDiff base model": "--smooth-model"}


def _local_or_id(ident: str, what: str) -> tuple[str, bool]:
    """(what to pass to from_pretrained, is a local folder)."""
    p = Path(ident).expanduser()
    if p.exists():
        if not p.is_dir():
            raise InputError(f"{what} {ident!r} is a file; pass the model folder or a hub id")
        return str(p), True
    if ident.startswith(("/", ".", "~")) or "\\" in ident or ident.count("/") != 1:
        # weights that are not where they were said to be: missing, like an uncached hub id
        raise MissingDependencyError(f"the {what} folder {ident!r} does not exist (and it is not a hub id like "
                                     f"'org/name'); {_fetch_hint(ident, _FLAGS.get(what, '--model'))}")
    return ident, False


def _load(loader: Callable[..., Any], ident: str, what: str, flag: str, **kw: Any) -> Any:
    """``loader(ident, **kw)`` from a folder, or from the hub cache first (fast failure offline)."""
    from .depth import _from_cache_first, _HubUnreachable  # the hub rules of the depth models, shared

    src, local = _local_or_id(ident, what)
    try:
        return _from_cache_first(loader, src, Path(src) if local else None, **kw)
    except _HubUnreachable as e:
        raise MissingDependencyError(f"the {what} {ident!r} is not on this machine and {e}; "
                                     f"{_fetch_hint(ident, flag)}") from None
    except (OSError, ValueError, EnvironmentError) as e:
        raise _missing(what, ident, e, flag) from None


def load_pipeline(models: ModelSet, device: str = "auto", memory: MemorySettings = MemorySettings()) -> tuple[Any, list[str]]:
    """The ControlNet inpainting pipeline for ``models`` (cached: one model set at a time, they are large).

    Args:
        models: which weights.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        memory: precision and memory savers.

    Returns:
        (the diffusers pipeline, notes on precision and memory savers).

    Raises:
        MissingDependencyError: diffusers / transformers missing, or weights not found (names the id).
        InputError: a folder that does not exist, a bad device.
    """
    import torch

    from .device import resolve_device

    dev = resolve_device(device)
    dtype = (torch.float16 if dev.type == "cuda" else torch.float32) if memory.dtype == "auto" else getattr(torch, memory.dtype)
    key = (models, str(dev), str(dtype), memory)
    if key in _PIPELINES:
        return _PIPELINES[key]
    try:
        from diffusers import (ControlNetModel, StableDiffusionControlNetInpaintPipeline,
                               StableDiffusionXLControlNetInpaintPipeline)
        from diffusers.models import MultiControlNetModel
    except ImportError as e:
        raise MissingDependencyError(f"generation and diffusion inpainting need diffusers and transformers "
                                     f"(pip install 'anchorstage[ml]'): {e}") from None
    _PIPELINES.clear()  # free the previous set before loading the next
    _quiet_loading()
    flags = {"depth": "--controlnet-depth", "normal": "--controlnet-normal"}
    nets = [_load(ControlNetModel.from_pretrained, ident, f"{signal} ControlNet", flags[signal], dtype=dtype)
            for signal, ident in models.controlnets]
    extra: dict[str, Any] = {"controlnet": MultiControlNetModel(nets), "dtype": dtype}
    if models.family == "sdxl":
        cls = StableDiffusionXLControlNetInpaintPipeline
        extra["add_watermarker"] = False  # an invisible watermark would change the generated pixels
    else:
        cls = StableDiffusionControlNetInpaintPipeline
        extra.update(safety_checker=None, requires_safety_checker=False)
    pipe = _load(cls.from_pretrained, models.model, f"{models.family.upper()} inpainting model", "--model", **extra)
    notes = [f"{models.family}: {models.model} + " + ", ".join(f"{s} {i}" for s, i in models.controlnets)
             + f" ({str(dtype).replace('torch.', '')} on {dev.type})"]
    if models.ip_adapter:
        sub, _, weight = models.ip_adapter_weight.rpartition("/")
        src, _ = _local_or_id(models.ip_adapter, "IP-Adapter")
        try:
            pipe.load_ip_adapter(src, subfolder=sub, weight_name=weight, image_encoder_folder=models.image_encoder,
                                 local_files_only=_offline_or_local(src))
        except (OSError, ValueError, EnvironmentError, KeyError) as e:
            raise _missing("IP-Adapter", f"{models.ip_adapter} ({models.ip_adapter_weight})", e, "--ip-adapter") from None
        notes.append(f"IP-Adapter {models.ip_adapter} ({models.ip_adapter_weight})")
    slicing, offload, mem_notes = _memory_plan(models, dev, memory, dtype)
    notes += mem_notes
    if slicing and models.ip_adapter:
        slicing = False
        notes.append("attention slicing left off: it would replace the IP-Adapter's attention processors")
    if offload == "model":
        pipe.enable_model_cpu_offload(device=dev)
    elif offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=dev)
    else:
        pipe = pipe.to(dev)
    if slicing:
        pipe.enable_attention_slicing()
    pipe.set_progress_bar_config(disable=True)
    _PIPELINES[key] = (pipe, notes)
    return pipe, notes


def _quiet_loading() -> None:
    """No loading bars from diffusers / transformers: our own progress reports speak for the run."""
    from diffusers.utils import logging as dlog

    dlog.disable_progress_bar()
    try:
        from transformers.utils import logging as tlog

        tlog.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers comes with diffusers' pipelines
        pass


def _offline_or_local(src: str) -> bool:
    """Load an IP-Adapter from the cache only when it is a folder or the hub is off."""
    from .depth import _hub_offline

    return Path(src).is_dir() or _hub_offline()


def clear_pipelines() -> None:
    """Forget loaded pipelines (frees their memory)."""
    _PIPELINES.clear()


# ---------------------------------------------------------------------------------------------- conditioning
def normals_from_depth(depth_m: np.ndarray, camera: Any) -> np.ndarray:
    """[H, W, 3] float32 unit camera-frame normals (OpenCV: x right, y down, z forward) facing the
    camera, from planar depth in metres.

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
    with np.errstate(invalid="ignore", divide="ignore"):
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
    flip = (n * p).sum(-1) > 0  # face the camera
    n[flip] *= -1
    bad = ~np.all(np.isfinite(n), axis=-1)
    n[bad] = (0.0, 0.0, -1.0)
    return n.astype(np.float32)


def depth_control(depth_m: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: inverse depth normalised to its 2nd-98th percentile (near bright,
    infinity black), as depth ControlNets are trained on. ``depth_m``: [H, W] planar metres."""
    z = np.asarray(depth_m, np.float32)
    inv = np.where(np.isfinite(z) & (z > 0), 1.0 / np.where(z > 0, z, 1.0), 0.0)
    fin = inv[inv > 0]
    if fin.size:
        lo, hi = np.percentile(fin, 2), np.percentile(fin, 98)
        inv = np.where(inv > 0, np.clip((inv - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * 0.9 + 0.1, 0.0)
    return np.repeat(inv[..., None], 3, -1).astype(np.float32)


def normal_control(normals_cam: np.ndarray) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]: [H, W, 3] camera-frame normals (OpenCV) as a normal map (x right,
    y up, z towards the viewer mapped from [-1, 1] to [0, 1])."""
    n = np.asarray(normals_cam, np.float32)
    gl = np.stack([n[..., 0], -n[..., 1], -n[..., 2]], -1)  # OpenCV (y down, z forward) -> y up, z to viewer
    return np.clip(gl * 0.5 + 0.5, 0.0, 1.0).astype(np.float32)


def latent_mask(mask: np.ndarray, grid: int, locks: Optional[np.ndarray] = None) -> np.ndarray:
    """[H, W] bool: ``mask`` ([H, W] bool) grown to whole ``grid`` x ``grid`` cells (any masked pixel
    masks its cell), then ``locks`` ([H, W] bool) taken out."""
    m = np.asarray(mask, bool)
    h, w = m.shape
    hc, wc = -(-h // grid), -(-w // grid)
    padded = np.zeros((hc * grid, wc * grid), bool)
    padded[:h, :w] = m
    cells = padded.reshape(hc, grid, wc, grid).any(axis=(1, 3))
    out = np.repeat(np.repeat(cells, grid, 0), grid, 1)[:h, :w]
    return out & ~np.asarray(locks, bool) if locks is not None else out


def processing_size(width: int, height: int, max_side: int, cell: int) -> tuple[int, int]:
    """(width, height) in pixels: the frame scaled to at most ``max_side``, rounded down to ``cell``."""
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


def composite_generated(base: np.ndarray, generated: np.ndarray, mask: np.ndarray,
                        locks: Optional[np.ndarray] = None) -> np.ndarray:
    """``generated`` inside ``mask`` (never on ``locks``), ``base`` everywhere else.

    Args:
        base, generated: [H, W, 3] float32 linear.
        mask, locks: [H, W] bool.

    Returns:
        [H, W, 3] float32.

    Raises:
        RuntimeError: a locked pixel differs from ``base`` (a bug, never a user error).
    """
    m = np.asarray(mask, bool)
    if locks is not None:
        m = m & ~np.asarray(locks, bool)
    b = np.asarray(base, np.float32)
    out = np.where(m[..., None], np.asarray(generated, np.float32), b)
    if locks is not None and not np.array_equal(out[locks], b[locks]):
        raise RuntimeError("diffusion composite changed a locked pixel (a bug)")
    if not np.array_equal(out[~m], b[~m]):
        raise RuntimeError("diffusion composite changed a pixel outside the mask (a bug)")
    return out


# ---------------------------------------------------------------------------------------------- one run
def _check_steps(scheduler: Any, steps: int) -> None:
    """Refuse a step count the model's scheduler cannot space (an offset schedule at its full length
    asks for a timestep past its last: diffusers then fails deep in the first step).

    Raises:
        InputError: too many steps for this scheduler (the message gives the most it takes).
    """
    scheduler.set_timesteps(steps)  # the pipeline sets them again itself
    n_train = int(scheduler.config.get("num_train_timesteps", 1000))
    if int(scheduler.timesteps.max()) >= n_train:
        most = n_train - int(scheduler.config.get("steps_offset", 0) or 0)
        raise InputError(f"diffusion: this model's scheduler ({type(scheduler).__name__}) takes at most {most} steps "
                         f"(got {steps})")


def inpaint_frame(pipe: Any, image_linear: np.ndarray, mask: np.ndarray, controls: Sequence[np.ndarray], *,
                  prompt: str = "", negative_prompt: str = "", steps: int = 20, guidance_scale: float = 5.0,
                  controlnet_scale: Sequence[float] = (1.0,), strength: float = 1.0, seed: int = 0,
                  max_side: int = 768, locks: Optional[np.ndarray] = None,
                  ip_adapter_image: Optional[np.ndarray] = None, ip_adapter_scale: float = 0.6,
                  progress: Optional[ProgressFn] = None,
                  cancel: Optional[Callable[[], bool]] = None) -> tuple[np.ndarray, np.ndarray]:
    """Run a ControlNet inpainting pipeline (SD 1.5 or SDXL) on a frame.

    Args:
        pipe: from :func:`load_pipeline`.
        image_linear: [H, W, 3] float32 linear RGB (the starting picture).
        mask: [H, W] bool pixels to regenerate.
        controls: one [H, W, 3] float32 image in [0, 1] per ControlNet of ``pipe``.
        prompt, negative_prompt: text prompts.
        steps: denoising steps (with ``strength`` < 1 only that share of them runs).
        guidance_scale: classifier-free guidance scale.
        controlnet_scale: conditioning scale per ControlNet.
        strength: how far the masked area is noised, (0, 1]; 1 ignores what is there.
        seed: random seed (the same seed, inputs and machine give the same pixels).
        max_side: processing size: the long side in pixels (rounded down to whole latent-grid cells).
        locks: [H, W] bool pixels that must not be regenerated (taken out of the grown mask).
        ip_adapter_image: [h, w, 3] float32 linear reference image for a loaded IP-Adapter.
        ip_adapter_scale: the IP-Adapter's weight.
        progress: called once per denoising step (``"diffusion step i/n"``).
        cancel: checked after every step; when it returns True the run stops with :class:`Cancelled`.

    Returns:
        (generated [H, W, 3] float32 linear at the frame's size, the mask actually regenerated
        [H, W] bool: ``mask`` grown to the latent grid, locks removed).

    Raises:
        Cancelled: ``cancel()`` returned True.
    """
    import torch
    from PIL import Image

    from .image_io import linear_to_srgb, srgb_to_linear

    h, w = mask.shape
    n_nets = len(getattr(pipe.controlnet, "nets", [pipe.controlnet]))
    if len(controls) != n_nets or len(controlnet_scale) != n_nets:
        raise InputError(f"diffusion: {len(controls)} control images and {len(controlnet_scale)} scales for "
                         f"{n_nets} ControlNets")
    has_ip = getattr(pipe.unet, "encoder_hid_proj", None) is not None
    if (ip_adapter_image is not None) != has_ip:
        raise InputError("diffusion: an IP-Adapter reference image needs a loaded IP-Adapter and vice versa")
    vae_f = int(pipe.vae_scale_factor)
    cell = math.lcm(8, vae_f * 2 ** (len(pipe.unet.config.block_out_channels) - 1))  # the pipeline wants multiples of 8
    pw, ph = processing_size(w, h, max_side, cell)
    # The mask grown to latent cells (at the frame's size, cells of the same extent), and on the
    # latent grid of the processing size; the composite uses the first less the locks.
    grown = latent_mask(mask, max(1, round(vae_f * w / pw)))
    small_mask = latent_mask(_resize(grown, (pw, ph)), vae_f)
    full_mask = grown & ~np.asarray(locks, bool) if locks is not None else grown
    srgb = linear_to_srgb(_resize(np.asarray(image_linear, np.float32), (pw, ph)))
    to_pil = lambda a: Image.fromarray(np.round(np.clip(a, 0, 1) * 255).astype(np.uint8))  # noqa: E731
    ctrl = [to_pil(_resize(c, (pw, ph))) for c in controls]

    def on_step(pipeline: Any, i: int, t: Any, kwargs: dict) -> dict:
        n = int(getattr(pipeline, "num_timesteps", 0) or steps)
        report(progress, (i + 1) / n, f"diffusion step {i + 1}/{n}")
        if cancel is not None and cancel():
            raise Cancelled(f"generation cancelled after step {i + 1}/{n}")
        return kwargs

    kw: dict[str, Any] = {}
    if ip_adapter_image is not None:
        pipe.set_ip_adapter_scale(float(ip_adapter_scale))
        kw["ip_adapter_image"] = to_pil(linear_to_srgb(np.asarray(ip_adapter_image, np.float32)))
    _check_steps(pipe.scheduler, int(steps))
    if cancel is not None and cancel():
        raise Cancelled("generation cancelled before it started")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    report(progress, 0.0, f"diffusion: {steps} steps at {pw}x{ph}")
    out = pipe(prompt=prompt, negative_prompt=negative_prompt or None, image=to_pil(srgb),
               mask_image=to_pil(small_mask.astype(np.float32)), control_image=ctrl, height=ph, width=pw,
               strength=float(strength), num_inference_steps=int(steps), guidance_scale=float(guidance_scale),
               controlnet_conditioning_scale=[float(s) for s in controlnet_scale], generator=gen, output_type="np",
               callback_on_step_end=on_step, **kw).images[0]
    generated = srgb_to_linear(_resize(np.asarray(out, np.float32), (w, h)))
    return generated, full_mask
