# SPDX-License-Identifier: GPL-3.0-or-later
"""Product package: one product photo → foreground mask, metric depth, identity embedding, camera.

The foreground comes through one interface, :func:`foreground_mask`, in this order:

1. the photo's own alpha (an RGBA PNG cut out by the photographer or a renderer), used as is;
2. a transformers segmentation model (``--mask-model``: any ``AutoModelForSemanticSegmentation``
   checkpoint, hub id or folder); foreground = every pixel whose class is not the model's
   background class (``background`` in its labels, else class 0);
3. without either, the depth fallback, which needs no weights: the product is what stands in front
   of its backdrop, so pixels nearer than the Otsu threshold of the depth histogram (in inverse
   depth) form the foreground, of which the largest connected piece is kept.

:func:`package` writes a folder::

    manifest.json     what the package holds, the camera, the mask and depth sources, the embedding model
    image.png         the photo (8-bit sRGB RGBA, alpha = the mask)
    mask.png          8-bit mask (255 = product)
    depth.npy         [H, W] float32 metres (inf = background or unknown)
    camera.json       the camera JSON
    embedding.npy     [D] float32 unit CLIP image embedding (only when a CLIP model is available)
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from .stages import Photo

__all__ = ["ForegroundMask", "read_alpha", "foreground_mask", "depth_foreground", "segment_foreground", "package",
           "PACKAGE_FILES"]

PACKAGE_FILES = ("manifest.json", "image.png", "mask.png", "depth.npy", "camera.json")


@dataclass
class ForegroundMask:
    """A product's pixels.

    Attributes:
        mask: [H, W] bool, True on the product.
        source: ``"alpha"``, ``"model <id>"`` or ``"depth fallback"``.
    """

    mask: np.ndarray
    source: str


def read_alpha(path: Union[str, os.PathLike], *, luminance: bool = False) -> np.ndarray:
    """[H, W] float32 in [0, 1]: a PNG's alpha (or, with ``luminance``, a grey mask's value when it has no alpha).

    Raises:
        InputError: unreadable file; no alpha (without ``luminance``).
    """
    from .image_io import open_pillow_image
    from .input_files import check_input_file, open_input

    p = check_input_file(path, "mask")
    f, _ = open_input(p, "mask")
    with f, open_pillow_image(f, f"mask {str(p)!r}") as im:
        im.load()
        if "A" in im.getbands():
            return np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        if im.mode == "P" and "transparency" in im.info:
            return np.asarray(im.convert("RGBA").getchannel("A"), dtype=np.float32) / 255.0
        if not luminance:
            raise InputError(f"image {str(p)!r} has no alpha channel")
        a = np.asarray(im.convert("I;16") if im.mode.startswith("I") else im.convert("L"), dtype=np.float32)
        return a / (65535.0 if im.mode.startswith("I") else 255.0)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """The threshold that best splits ``values`` into two classes (Otsu's between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
    m1 = ((hist * centres).sum() - np.cumsum(hist * centres)) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:][int(np.argmax(between))])


def depth_foreground(depth_m: np.ndarray) -> np.ndarray:
    """[H, W] bool the product by depth alone (no weights): nearer than the Otsu split of inverse
    depth, largest connected piece. Background (inf) depth is never foreground.

    Args:
        depth_m: [H, W] float32 planar z in metres, inf where unknown.
    """
    from scipy.ndimage import label

    finite = np.isfinite(depth_m) & (depth_m > 0)
    if not finite.any():
        return finite
    inv = np.where(finite, 1.0 / np.where(finite, depth_m, 1.0), 0.0)
    vals = inv[finite]
    # All of one depth (a product on a transparent film): everything with depth is the product.
    fg = finite if np.ptp(vals) < 1e-6 * max(float(vals.max()), 1e-12) else finite & (inv > _otsu(vals))
    lab, n = label(fg)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        fg = lab == int(np.argmax(sizes))
    return fg


@functools.lru_cache(maxsize=2)
def _load_segmenter(model: str, device: str) -> tuple[Any, Any]:
    """(image processor, model on ``device`` in eval mode), kept for the next view (a capture asks once per view)."""
    try:
        from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
    except ImportError:
        raise MissingDependencyError("a segmentation model needs the optional 'transformers' package "
                                     "(pip install 'anchorstage[ml]')") from None
    local = os.path.isdir(model)
    try:
        proc = AutoImageProcessor.from_pretrained(model, local_files_only=not local)
        net = AutoModelForSemanticSegmentation.from_pretrained(model, local_files_only=not local)
    except (OSError, ValueError) as e:
        if local:
            raise InputError(f"segmentation model folder {model!r} cannot be loaded: {e}") from None
        raise MissingDependencyError(f"segmentation model {model!r} is not on this machine; download it once with "
                                     f"`huggingface-cli download {model}` or pass a local folder") from None
    return proc, net.to(device).eval()


def segment_foreground(image_linear: np.ndarray, model: str, *, device: str = "auto") -> np.ndarray:
    """[H, W] bool the foreground by a transformers semantic-segmentation model (hub id or folder).

    Args:
        image_linear: [H, W, 3] float32 linear Rec.709.
        model: the checkpoint (loaded with ``from_pretrained``; a hub id only from the local cache).

    Raises:
        MissingDependencyError: transformers missing, or the weights are not on this machine.
        InputError: the folder holds no segmentation model.
    """
    import torch
    from PIL import Image

    from .device import resolve_device
    from .image_io import to_uint8_srgb

    dev = resolve_device(device)
    proc, net = _load_segmenter(model, str(dev))
    h, w = image_linear.shape[:2]
    inputs = proc(images=Image.fromarray(to_uint8_srgb(image_linear)), return_tensors="pt").to(dev)
    with torch.no_grad():
        logits = net(**inputs).logits
    logits = torch.nn.functional.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    labels = {int(k): str(v).lower() for k, v in (getattr(net.config, "id2label", None) or {}).items()}
    background = next((k for k, v in labels.items() if v in ("background", "bg")), 0)
    return (logits[0].argmax(0) != background).cpu().numpy()


def foreground_mask(photo: "Photo", depth_m: Optional[np.ndarray] = None, *, model: Optional[str] = None,
                    device: str = "auto") -> ForegroundMask:
    """The product's pixels: the photo's alpha, else a segmentation model, else the depth fallback.

    Args:
        photo: from :func:`anchorstage.stages.load_photo`.
        depth_m: [H, W] float32 metres (for the fallback).
        model: a transformers segmentation model id or folder (only when the photo has no alpha).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Raises:
        InputError: no alpha, no model and no depth; an alpha or a result with no product pixel.
    """
    path = Path(photo.image.path)
    if path.suffix.lower() == ".png" and any("alpha channel dropped" in n for n in photo.image.notes):
        fg, source = read_alpha(path) >= 0.5, "alpha"
    elif model is not None:
        fg, source = segment_foreground(photo.image.rgb_linear, model, device=device), f"model {model}"
    elif depth_m is not None:
        fg, source = depth_foreground(np.asarray(depth_m, dtype=np.float32)), "depth fallback"
    else:
        raise InputError(f"photo {path.name!r} has no alpha; give a segmentation model or a depth map for its mask")
    if not fg.any():
        raise InputError(f"photo {path.name!r}: its foreground mask ({source}) is empty")
    return ForegroundMask(fg, source)


def package(photo: "Photo", depth: Any, out_dir: Union[str, os.PathLike], *, mask_model: Optional[str] = None,
            identity_model: Optional[str] = None, device: str = "auto", force: bool = False) -> dict[str, Any]:
    """Write a product package folder (layout in the module docstring), atomically.

    Args:
        photo: from :func:`anchorstage.stages.load_photo`.
        depth: a :class:`~anchorstage.depth.DepthEstimate` from :func:`anchorstage.stages.metric_depth`.
        out_dir: the folder to write (must not exist unless ``force``).
        mask_model: segmentation model for a photo without alpha (default: the depth fallback).
        identity_model: CLIP model id or folder for the embedding (default
            :data:`anchorstage.identity.DEFAULT_IDENTITY_MODEL`); unavailable weights leave it out, noted.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        force: replace an existing folder.

    Returns:
        The manifest (JSON-ready).
    """
    from .atomic import atomic_dir, check_new_dir
    from .camera import save_camera_json
    from .identity import load_identity
    from .image_io import save_png, to_uint8_srgb

    out = check_new_dir(out_dir, force, "package folder")
    fg = foreground_mask(photo, depth.depth_m, model=mask_model, device=device)
    depth_m = np.where(fg.mask, depth.depth_m, np.inf).astype(np.float32)
    encoder, why = load_identity(identity_model, device=device)
    embedding = encoder.embed([photo.image.rgb_linear], [fg.mask])[0] if encoder is not None else None
    manifest: dict[str, Any] = {
        "kind": "anchorstage product package", "source_image": Path(photo.image.path).name,
        "size": [photo.width, photo.height], "camera_source": photo.camera_source,
        "mask_source": fg.source, "mask_coverage": round(float(fg.mask.mean()), 6), "depth_source": depth.model,
        "files": list(PACKAGE_FILES) + (["embedding.npy"] if embedding is not None else []),
        "identity": ({"model": encoder.model_id, "dim": int(embedding.shape[0])} if embedding is not None
                     else {"model": None, "unavailable": why}),
        "notes": list(photo.notes) + list(depth.notes),
    }
    with atomic_dir(out, replace=force, what="package folder") as tmp:
        tmp = Path(tmp)
        rgba = np.dstack([to_uint8_srgb(photo.image.rgb_linear), fg.mask.astype(np.uint8) * 255])
        save_png(tmp / "image.png", rgba)
        save_png(tmp / "mask.png", fg.mask)
        np.save(tmp / "depth.npy", depth_m)
        save_camera_json(tmp / "camera.json", photo.camera)
        if embedding is not None:
            np.save(tmp / "embedding.npy", embedding.astype(np.float32))
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
