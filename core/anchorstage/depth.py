# SPDX-License-Identifier: GPL-3.0-or-later
"""Metric monocular depth behind one interface (Depth Anything V2 Metric, Depth Pro, ZoeDepth).

Models load through transformers' own ``from_pretrained`` from a hub id or a local folder;
the architecture is read from the folder's ``config.json``. Nothing is downloaded at import,
and a model that is not on this machine raises :class:`MissingDependencyError` naming the id
and how to fetch it. Preprocessing is done here with torch (the models' image processors need
torchvision, which is not installed everywhere); it follows each model's
``preprocessor_config.json`` when present and the published defaults otherwise.

Focal-length correction (see docs/depth_estimation.md): a monocular model infers metric depth
from apparent size, so it implicitly assumes the focal length of its training data. If the
model assumes a focal ``f_ref`` (pixels, relative to the image's shorter side, because every
preprocessor here scales the shorter side to a fixed size) and the photo really has ``f``,
an object it places at depth ``Z`` really lies at ``Z * f / f_ref``. Depth Pro takes the focal
length as an input (``depth = f_px / (W * canonical_inverse_depth)``), so it needs no correction;
without a camera it uses its own field-of-view estimate.

Confidence per pixel is the product of two terms, each in [0, 1]:
    * edge: ``1 / (1 + (|grad log depth| / 0.05)^2)`` at the model's resolution, eroded by one
      pixel, so depth discontinuities (where "flying" splats appear) get low confidence;
    * agreement: the photo and its mirror image are run as one batch and
      ``exp(-(|d1 - d2| / mean(d1, d2) / 0.1)^2)`` measures how much the model disagrees with itself.
Pixels with invalid or saturated depth (sky) get ``inf`` depth and confidence 0.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .camera import Camera
from .device import resolve_device
from .errors import InputError, MissingDependencyError
from .image_io import LoadedImage, linear_to_srgb
from .progress import ProgressFn, report
from .safe_json import load_json

__all__ = [
    "DepthEstimate",
    "estimate_depth",
    "load_depth_model",
    "DepthModel",
    "wrap_depth_network",
    "DEFAULT_DEPTH_MODEL",
    "DEPTH_MODEL_ALIASES",
    "REFERENCE_FOCAL",
    "MIN_IMAGE_SIDE",
]

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf"

#: Short names accepted wherever a model id is (``--depth-model da2-indoor``).
DEPTH_MODEL_ALIASES = {
    "da2-outdoor": DEFAULT_DEPTH_MODEL,
    "da2-indoor": "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf",
    "depth-pro": "apple/DepthPro-hf",
    "zoedepth": "Intel/zoedepth-nyu-kitti",
}

#: Focal length each model family implicitly assumes, as focal_px / min(H, W) of its training
#: images (see the module docstring): Virtual KITTI 2 (725 px over 375 px), Hypersim (60° over
#: 1024x768: 886.8 px over 768 px), NYU v2 (518.9 px over 480 px), KITTI (721.5 px over 352 px).
REFERENCE_FOCAL = {"vkitti2": 725.0 / 375.0, "hypersim": 886.81 / 768.0, "nyu": 518.86 / 480.0, "kitti": 721.54 / 352.0}

#: Smallest image side depth estimation accepts (pixels).
MIN_IMAGE_SIDE = 64

# Depth beyond this fraction of a bounded model's range is saturated (sky): reported as inf.
_SATURATION = 0.97
# Depth Pro has no upper bound; beyond this distance a pixel is treated as sky (metres).
_DEPTH_PRO_FAR_M = 500.0
_EDGE_TAU = 0.05
_AGREE_TAU = 0.1
_SUPPORTED = ("depth_anything", "depth_pro", "zoedepth")
# Seconds the hub connection probe waits before calling the network unreachable.
_PROBE_TIMEOUT_S = 3.0
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class DepthEstimate:
    """Result of :func:`estimate_depth`.

    Attributes:
        depth_m: [H, W] float32 planar depth (z along the view axis), metres; ``inf`` where
            invalid or sky.
        confidence: [H, W] float32 in [0, 1]; 0 where depth is ``inf``.
        fov_x_deg: horizontal field of view estimated by the model (Depth Pro), degrees, or None.
        model: the model id or folder that produced it.
        notes: human-readable notes (resizing, focal correction, saturation, ...).
    """

    depth_m: np.ndarray
    confidence: np.ndarray
    fov_x_deg: Optional[float]
    model: str
    notes: list[str] = field(default_factory=list)


@dataclass
class DepthModel:
    """A loaded depth network and how to feed it.

    Attributes:
        model_id: hub id or folder it came from.
        kind: ``"depth_anything"``, ``"depth_pro"`` or ``"zoedepth"``.
        net: the transformers model (eval mode, on ``device`` in ``dtype``).
        device: torch device.
        dtype: float16 on CUDA, float32 on CPU.
        prep: preprocessing settings (height, width, keep, multiple, mean, std, mode, pad[, antialias]).
        max_depth_m: upper end of the model's range in metres (None: unbounded).
        reference_focal: assumed focal_px / min(H, W) of the training data, or None (no correction).
        variant: human-readable training domain (e.g. "outdoor (Virtual KITTI 2)").
    """

    model_id: str
    kind: str
    net: Any
    device: torch.device
    dtype: torch.dtype
    prep: dict[str, Any]
    max_depth_m: Optional[float]
    reference_focal: Optional[float]
    variant: str


# ---------------------------------------------------------------------------------------------- loading
def _resolve_id(model: str) -> tuple[str, Optional[Path]]:
    """(id to pass to from_pretrained, local folder or None)."""
    if not isinstance(model, (str, Path)) or not str(model).strip():
        raise InputError(f"depth model must be a hub id or a folder path (got {model!r})")
    name = DEPTH_MODEL_ALIASES.get(str(model), str(model))
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise InputError(f"depth model {name!r} is a file; pass the model folder (with config.json) or a hub id")
        if not (p / "config.json").is_file():
            raise InputError(f"depth model folder {name!r} has no config.json; it is not a transformers model folder")
        return str(p), p
    looks_like_path = name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") != 1
    if looks_like_path:
        raise InputError(f"depth model folder {name!r} does not exist (and it is not a hub id like 'org/name')")
    return name, None


def _fetch_hint(model_id: str) -> str:
    return (f"fetch it once with `huggingface-cli download {model_id}` (or `hf download {model_id}`) where there is "
            f"network, or download the folder elsewhere and pass its path (--depth-model /path/to/folder; "
            f"Python: estimate_depth(..., model='/path/to/folder'))")


def _read_preprocessor(model_id: str, local: Optional[Path]) -> dict[str, Any]:
    """The model's preprocessor_config.json as a dict ({} when absent); never touches the network."""
    path: Optional[str] = None
    if local is not None:
        cand = local / "preprocessor_config.json"
        path = str(cand) if cand.is_file() else None
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "preprocessor_config.json")
        path = found if isinstance(found, str) else None
    if path is None:
        return {}
    data = load_json(path, f"depth model {model_id!r} preprocessor_config.json")
    if not isinstance(data, dict):
        raise InputError(f"depth model {model_id!r}: preprocessor_config.json must hold a JSON object")
    return data


def _prep_settings(kind: str, config: Any, raw: dict[str, Any]) -> dict[str, Any]:
    size = raw.get("size") if isinstance(raw.get("size"), dict) else {}
    if kind == "depth_anything":
        d = dict(height=518, width=518, keep=True, multiple=14, mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
                 mode="bicubic", pad=False)
    elif kind == "zoedepth":
        d = dict(height=384, width=512, keep=True, multiple=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                 mode="bilinear", pad=True)
    else:
        # Depth Pro's input size is fixed by its patch layout: patch_size / smallest pyramid ratio.
        side = int(round(config.patch_size / min(config.scaled_images_ratios)))
        return dict(height=side, width=side, keep=False, multiple=1, mean=tuple(raw.get("image_mean", (0.5,) * 3)),
                    std=tuple(raw.get("image_std", (0.5,) * 3)), mode="bilinear", pad=False,
                    antialias=False)  # as Depth Pro's own processor
    d["height"] = int(size.get("height", d["height"]))
    d["width"] = int(size.get("width", d["width"]))
    d["keep"] = bool(raw.get("keep_aspect_ratio", d["keep"]))
    mult = raw.get("ensure_multiple_of", d["multiple"])
    d["multiple"] = max(1, int(mult)) if isinstance(mult, (int, float)) and mult >= 1 else d["multiple"]
    d["mean"] = tuple(raw.get("image_mean", d["mean"]))
    d["std"] = tuple(raw.get("image_std", d["std"]))
    d["mode"] = {2: "bilinear", 3: "bicubic"}.get(raw.get("resample"), d["mode"])
    d["pad"] = bool(raw.get("do_pad", d["pad"]))
    return d


def load_depth_model(model: str = DEFAULT_DEPTH_MODEL, device: str | torch.device = "auto") -> DepthModel:
    """Load a metric depth model (cached: repeated calls with the same id and device are free).

    Args:
        model: hub id (e.g. ``DEFAULT_DEPTH_MODEL``), an alias from ``DEPTH_MODEL_ALIASES`` or a local folder.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        InputError: the folder is missing, is not a transformers folder, or holds another architecture.
        MissingDependencyError: the hub id is not available on this machine (offline, not downloaded).
    """
    model_id, local = _resolve_id(model)
    dev = resolve_device(device)
    return _load_cached(model_id, str(local) if local else None, str(dev))


class _HubUnreachable(OSError):
    """The model is not cached and the hub cannot be asked (offline mode, or no network)."""


def _require_transformers() -> None:
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise MissingDependencyError("depth estimation needs the optional 'transformers' package: "
                                     "pip install 'anchorstage[ml]' (or give a depth map: --depth / load_depth)") from None


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE as huggingface_hub reads them (at import) or as set now."""
    truthy = ("1", "on", "yes", "true")
    if any(os.environ.get(k, "").strip().lower() in truthy for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_unreachable(timeout_s: float = _PROBE_TIMEOUT_S) -> Optional[str]:
    """Why the hub cannot be asked within ``timeout_s``, or None when it answers.

    One HTTP ``HEAD`` of the hub endpoint (``HF_ENDPOINT``; proxies from the environment honoured),
    name lookup included, in a daemon thread: a dead network costs seconds, not the HTTP client's
    retry schedule. Any HTTP answer, even an error status, counts as reachable.
    """
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen

    from huggingface_hub import constants

    endpoint = str(getattr(constants, "ENDPOINT", "https://huggingface.co"))
    result: list[Optional[str]] = []

    def probe() -> None:
        try:
            urlopen(Request(endpoint, method="HEAD"), timeout=timeout_s).close()
            result.append(None)
        except HTTPError:
            result.append(None)  # the server answered
        except (URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            result.append(f"{endpoint} cannot be reached ({getattr(reason, 'strerror', None) or reason})")

    t = threading.Thread(target=probe, daemon=True, name="anchorstage-hub-probe")
    t.start()
    t.join(timeout_s + 0.5)
    return result[0] if result else f"{endpoint} did not answer within {timeout_s:g} s"


def _from_cache_first(loader: Any, model_id: str, local: Optional[Path], **kwargs: Any) -> Any:
    """``loader(model_id)`` from the local cache, going to the hub only when it is not cached.

    A cached model then loads with no network round trip (and no retries on a flaky network).
    When it is not cached, ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) and a short connection
    probe decide first whether asking the hub can work at all.

    Raises:
        _HubUnreachable: not cached, and offline mode is on or the hub cannot be reached.
    """
    if local is not None:
        return loader(model_id, **kwargs)
    try:
        return loader(model_id, local_files_only=True, **kwargs)
    except OSError:
        if _hub_offline():
            raise _HubUnreachable("offline mode is on (HF_HUB_OFFLINE)") from None
        reason = _hub_unreachable()
        if reason:
            raise _HubUnreachable(f"the model hub cannot be reached: {reason}") from None
        return loader(model_id, **kwargs)


def _check_kind(config: Any, where: str) -> str:
    """The config's model_type when it is a supported metric depth architecture, else InputError."""
    kind = getattr(config, "model_type", None)
    if kind not in _SUPPORTED:
        archs = ", ".join(getattr(config, "architectures", None) or []) or "unknown"
        raise InputError(f"{where} holds a {kind!r} model ({archs}), not a metric depth model; expected Depth Anything "
                         f"V2 Metric, Depth Pro or ZoeDepth (model_type one of {', '.join(_SUPPORTED)})")
    if kind == "depth_anything" and getattr(config, "depth_estimation_type", "relative") != "metric":
        raise InputError(f"{where} is a relative (not metric) Depth Anything model; use a Metric checkpoint such as "
                         f"{DEFAULT_DEPTH_MODEL!r}")
    return kind


@lru_cache(maxsize=2)
def _load_cached(model_id: str, local_str: Optional[str], device_str: str) -> DepthModel:
    _require_transformers()
    from transformers import AutoConfig

    local = Path(local_str) if local_str else None
    where = f"depth model folder {model_id!r}" if local else f"depth model {model_id!r}"
    try:
        config = _from_cache_first(AutoConfig.from_pretrained, model_id, local)
    except _HubUnreachable as e:
        raise MissingDependencyError(f"{where} is not in the local cache and {e}; {_fetch_hint(model_id)}") from None
    except OSError as e:
        if local is not None:
            raise InputError(f"{where}: config.json cannot be read: {e}") from None
        raise MissingDependencyError(f"{where} is not available on this machine ({type(e).__name__}); "
                                     f"{_fetch_hint(model_id)}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{where}: config.json is not a known transformers architecture ({e}); expected one of "
                         f"{', '.join(_SUPPORTED)}") from None
    kind = _check_kind(config, where)
    if kind == "depth_anything":
        from transformers import DepthAnythingForDepthEstimation as cls
    elif kind == "depth_pro":
        from transformers import DepthProForDepthEstimation as cls
    else:
        from transformers import ZoeDepthForDepthEstimation as cls
    try:
        net = _from_cache_first(cls.from_pretrained, model_id, local, config=config)
    except _HubUnreachable as e:
        raise MissingDependencyError(f"{where}: weights are not in the local cache and {e}; "
                                     f"{_fetch_hint(model_id)}") from None
    except OSError as e:
        if local is not None:
            raise InputError(f"{where} has a config.json but its weights cannot be loaded ({e}); expected "
                             f"model.safetensors or pytorch_model.bin") from None
        raise MissingDependencyError(f"{where}: weights are not available on this machine; {_fetch_hint(model_id)}") from None
    return wrap_depth_network(net, model_id, device_str, _read_preprocessor(model_id, local))


def wrap_depth_network(net: Any, model_id: str, device: str | torch.device = "auto",
                       preprocessor: Optional[dict[str, Any]] = None) -> DepthModel:
    """Wrap an already-built transformers depth network (e.g. random weights for a benchmark).

    Args:
        net: a ``DepthAnythingForDepthEstimation`` (metric), ``DepthProForDepthEstimation`` or
            ``ZoeDepthForDepthEstimation``.
        model_id: a name for notes and ``DepthEstimate.model``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (fp16 on CUDA).
        preprocessor: the model's ``preprocessor_config.json`` contents, if any.
    """
    config = net.config
    kind = _check_kind(config, f"depth network {model_id!r}")
    max_depth, ref, variant = _range_and_reference(kind, config)
    dev = resolve_device(device)
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    net = net.to(device=dev, dtype=dtype).eval()
    try:
        prep = _prep_settings(kind, config, preprocessor or {})
    except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError) as e:
        raise InputError(f"depth model {model_id!r}: preprocessor_config.json has a malformed field ({e})") from None
    return DepthModel(model_id=model_id, kind=kind, net=net, device=dev, dtype=dtype, prep=prep,
                      max_depth_m=max_depth, reference_focal=ref, variant=variant)


def _range_and_reference(kind: str, config: Any) -> tuple[Optional[float], Optional[float], str]:
    """(max depth m, reference focal, variant) for a model config."""
    if kind == "depth_anything":
        max_depth = float(config.max_depth)
        # The published checkpoints differ only in max_depth: 20 m indoor (Hypersim), 80 m outdoor (VKITTI2).
        if max_depth <= 40.0:
            return max_depth, REFERENCE_FOCAL["hypersim"], "indoor (Hypersim)"
        return max_depth, REFERENCE_FOCAL["vkitti2"], "outdoor (Virtual KITTI 2)"
    if kind == "zoedepth":
        bins = config.bin_configurations or []
        names = {str(b.get("name", "")).lower() for b in bins}
        max_depth = max(float(b.get("max_depth", 10.0)) for b in bins) if bins else 10.0
        if names == {"nyu"}:
            return max_depth, REFERENCE_FOCAL["nyu"], "indoor (NYU v2)"
        if names == {"kitti"}:
            return max_depth, REFERENCE_FOCAL["kitti"], "outdoor (KITTI)"
        # Multi-domain heads pick their domain per image and do not report which: no single reference focal.
        return max_depth, None, f"multi-domain ({', '.join(sorted(n for n in names if n)) or 'unnamed'})"
    return None, None, "Depth Pro (focal-length conditioned)"


# ---------------------------------------------------------------------------------------------- inference
def _fit_size(h: int, w: int, prep: dict[str, Any]) -> tuple[int, int]:
    """Network input size, as transformers' DPT/Zoe resize: scale as little as possible, keep aspect."""
    th, tw, mult = prep["height"], prep["width"], prep["multiple"]
    sh, sw = th / h, tw / w
    if prep["keep"]:
        if abs(1 - sw) < abs(1 - sh):
            sh = sw
        else:
            sw = sh

    def snap(v: float) -> int:
        return max(mult, int(round(v / mult)) * mult)

    return snap(sh * h), snap(sw * w)


def _as_linear_rgb(image: Union[LoadedImage, np.ndarray]) -> np.ndarray:
    arr = image.rgb_linear if isinstance(image, LoadedImage) else image
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    try:
        arr = np.asarray(arr)
    except (TypeError, ValueError):  # ragged nested lists
        raise InputError(f"depth estimation image must be an [H, W, 3] array (got {type(arr).__name__})") from None
    if arr.dtype.kind not in "fiu":
        raise InputError(f"depth estimation image must hold numbers (got dtype {arr.dtype})")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"depth estimation image must be [H, W, 3] linear RGB (got shape {list(arr.shape)})")
    h, w = arr.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(f"image is {w}x{h} pixels; depth estimation needs at least {MIN_IMAGE_SIDE} px on each side")
    rgb = arr[..., :3].astype(np.float32)
    if not np.all(np.isfinite(rgb)):
        raise InputError("depth estimation image has non-finite pixels (NaN or inf)")
    return rgb


def _focal_px(camera: Optional[Camera], w: int, h: int) -> Optional[float]:
    if camera is None:
        return None
    if not isinstance(camera, Camera):
        raise InputError(f"camera must be an anchorstage.Camera or None (got {type(camera).__name__})")
    return camera.fitted_to(w, h)[0].focal_px


def _preprocess(rgb_linear: np.ndarray, dm: DepthModel, flip: bool) -> tuple[torch.Tensor, tuple[int, int], int, int]:
    """[B, 3, h, w] network batch (the photo, and its mirror when ``flip``), the input size, and the pad (rows, cols)."""
    x = torch.from_numpy(linear_to_srgb(rgb_linear)).permute(2, 0, 1)[None]  # models are trained on sRGB
    p = dm.prep
    pad_h = pad_w = 0
    if p["pad"]:
        # ZoeDepth's reflect padding against border artefacts (size rule from its image processor).
        h, w = x.shape[-2:]
        pad_h, pad_w = int(math.sqrt(h / 2) * 3), int(math.sqrt(w / 2) * 3)
        x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    size = _fit_size(x.shape[-2], x.shape[-1], p)
    x = F.interpolate(x, size=size, mode=p["mode"], align_corners=False, antialias=p.get("antialias", True))
    mean = torch.tensor(p["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(p["std"], dtype=torch.float32).view(1, 3, 1, 1)
    x = (x - mean) / std
    batch = torch.cat([x, torch.flip(x, dims=[-1])], dim=0) if flip else x
    return batch, size, pad_h, pad_w


def _edge_confidence(depth: torch.Tensor) -> torch.Tensor:
    """[h, w] in [0, 1] from the log-depth gradient of an [h, w] positive depth map."""
    ld = torch.log(depth.clamp_min(1e-3))
    gy = torch.zeros_like(ld)
    gx = torch.zeros_like(ld)
    gy[1:-1] = 0.5 * (ld[2:] - ld[:-2])
    gx[:, 1:-1] = 0.5 * (ld[:, 2:] - ld[:, :-2])
    g = torch.sqrt(gx * gx + gy * gy)
    conf = 1.0 / (1.0 + (g / _EDGE_TAU) ** 2)
    # Erode by one pixel: the pixels either side of a discontinuity are both unreliable.
    return -F.max_pool2d(-conf[None, None], 3, stride=1, padding=1)[0, 0]


def _agreement_confidence(d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """[H, W] in [0, 1]: how well two [H, W] depth predictions of the same pixels agree (relative)."""
    rel = (d1 - d2).abs() / (0.5 * (d1 + d2)).clamp_min(1e-6)
    return torch.exp(-((rel / _AGREE_TAU) ** 2))


def estimate_depth(
    image: Union[LoadedImage, np.ndarray],
    camera: Optional[Camera] = None,
    *,
    model: Union[str, DepthModel] = DEFAULT_DEPTH_MODEL,
    device: str | torch.device = "auto",
    progress: Optional[ProgressFn] = None,
    flip_consistency: bool = True,
) -> DepthEstimate:
    """Metric depth and per-pixel confidence for one photo.

    Args:
        image: a :class:`LoadedImage` or an [H, W, 3] float32 linear Rec.709 array.
        camera: the photo's camera (its focal length drives the metric scale; its resolution must
            have the image's aspect). None when the focal length is unknown: Depth Anything and
            ZoeDepth then keep the model's own scale, Depth Pro uses its field-of-view estimate.
        model: hub id, alias (``DEPTH_MODEL_ALIASES``), local folder, or a loaded :class:`DepthModel`.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (fp16 on CUDA); ignored for a loaded DepthModel.
        progress: optional progress callback.
        flip_consistency: also run the mirrored photo (same batch) and average; its disagreement
            feeds the confidence. False halves the compute and keeps only the edge term.

    Returns:
        DepthEstimate with depth_m [H, W] float32 metres (inf = sky/invalid) and confidence [H, W].

    Raises:
        InputError: bad image/camera/model folder. MissingDependencyError: weights not on this machine.
    """
    rgb = _as_linear_rgb(image)
    h, w = rgb.shape[:2]
    focal = _focal_px(camera, w, h)
    report(progress, 0.0, "loading depth model")
    dm = model if isinstance(model, DepthModel) else load_depth_model(model, device)
    notes: list[str] = [f"depth model {dm.model_id} ({dm.variant}) on {dm.device.type}"]
    report(progress, 0.2, "preparing image")
    batch, size, pad_h, pad_w = _preprocess(rgb, dm, flip_consistency)
    notes.append(f"model input {size[1]}x{size[0]} (photo {w}x{h})")
    report(progress, 0.3, "running depth model")
    with torch.inference_mode():
        out = dm.net(pixel_values=batch.to(device=dm.device, dtype=dm.dtype))
    pred = out.predicted_depth.float()
    if pred.ndim == 4:
        pred = pred[:, 0]
    pred = pred.cpu()
    if flip_consistency:
        pred = torch.stack([pred[0], torch.flip(pred[1], dims=[-1])])  # un-mirror the second pass
    else:
        pred = pred[:1].expand(2, -1, -1)  # the same map twice: perfect agreement, edge term only
    report(progress, 0.8, "post-processing depth")

    fov_x: Optional[float] = None
    if dm.kind == "depth_pro":
        fov = getattr(out, "field_of_view", None)
        if fov is not None:
            fov_x = float(fov.float().mean().cpu())
            if not (math.isfinite(fov_x) and 1.0 < fov_x < 179.0):
                notes.append(f"Depth Pro field-of-view estimate {fov_x:.3g}° is implausible; ignored")
                fov_x = None
        if focal is None:
            if fov_x is not None:
                focal = 0.5 * w / math.tan(math.radians(fov_x) / 2)
                notes.append(f"focal length from Depth Pro's field-of-view estimate ({fov_x:.1f}° horizontal)")
            else:
                from .exif import DEFAULT_FOCAL_35MM, FULL_FRAME_DIAGONAL_MM

                focal = DEFAULT_FOCAL_35MM / FULL_FRAME_DIAGONAL_MM * math.hypot(w, h)
                notes.append(f"no camera and no usable field-of-view estimate: assuming a {DEFAULT_FOCAL_35MM:g} mm-equivalent lens")
        # Canonical inverse depth → metric inverse depth at the photo's width, interpolated as inverse depth.
        inv = pred * (w / focal)
        inv = F.interpolate(inv[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        both = 1.0 / inv.clamp(min=1e-4)
        both[~torch.isfinite(inv) | (inv <= 0)] = float("inf")
        far = _DEPTH_PRO_FAR_M
    else:
        if pad_h or pad_w:
            ph, pw = pred.shape[-2:]
            # Padding was added before resizing: crop it in the model's output grid.
            ch = int(round(pad_h * ph / (h + 2 * pad_h)))
            cw = int(round(pad_w * pw / (w + 2 * pad_w)))
            pred = pred[:, ch:ph - ch, cw:pw - cw]
        both = F.interpolate(pred[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
        far = _SATURATION * dm.max_depth_m if dm.max_depth_m else float("inf")
        if focal is not None and dm.reference_focal is not None:
            scale = (focal / min(w, h)) / dm.reference_focal
            both = both * scale
            far = far * scale
            notes.append(f"metric scale corrected for the photo's focal length: x{scale:.3f} "
                         f"(photo f = {focal / min(w, h):.3f} x short side, model assumes {dm.reference_focal:.3f})")
        elif focal is None:
            notes.append("no camera given: depth keeps the model's own focal-length assumption")
        else:
            notes.append(f"{dm.variant} model has no single reference focal length: no focal correction")

    d1, d2 = both[0], both[1]
    depth = 0.5 * (d1 + d2)
    invalid = ~torch.isfinite(depth) | (depth <= 0) | (depth >= far)
    agree = _agreement_confidence(d1, d2)
    edge_small = _edge_confidence(torch.nan_to_num(pred.mean(0), nan=1.0, posinf=1e4).abs() + 1e-6)
    edge = F.interpolate(edge_small[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    conf = (edge * agree).clamp(0.0, 1.0)
    conf[invalid] = 0.0
    depth = depth.clone()
    depth[invalid] = float("inf")
    n_inv = int(invalid.sum())
    if n_inv:
        notes.append(f"{100.0 * n_inv / (h * w):.1f}% of pixels invalid or beyond the model's range (sky): depth inf")
    report(progress, 1.0, "depth done")
    return DepthEstimate(depth_m=np.ascontiguousarray(depth.numpy(), dtype=np.float32),
                         confidence=np.ascontiguousarray(conf.numpy(), dtype=np.float32),
                         fov_x_deg=fov_x, model=dm.model_id, notes=notes)
