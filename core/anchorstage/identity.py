# SPDX-License-Identifier: GPL-3.0-or-later
"""Identity embeddings: CLIP image features through transformers, and their cosine similarity.

A product keeps its identity across angles when a rendered view's CLIP image embedding stays
close to the captured view's. :func:`load_identity` loads ``CLIPVisionModelWithProjection`` (or
the vision half of a full ``CLIPModel``) with ``from_pretrained`` from a hub id (from the local
cache only: nothing is downloaded) or a folder; when no weights are on the machine it answers
``(None, reason)`` so reports can say the column is unavailable and carry on.

Images are masked to the product on a neutral grey (the backdrop must not count), cropped to the
mask's bounding box, squared, and preprocessed by the checkpoint's own image processor when it
ships one (else CLIP's resize and normalisation at the model's ``image_size``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["DEFAULT_IDENTITY_MODEL", "IdentityEncoder", "load_identity", "cosine_similarity"]

#: The default CLIP checkpoint (override with ``--identity-model`` or ``ANCHORSTAGE_IDENTITY_MODEL``).
DEFAULT_IDENTITY_MODEL = "openai/clip-vit-base-patch32"
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_GREY = 0.5  # backdrop behind the masked product (display-referred)


@dataclass
class IdentityEncoder:
    """A loaded CLIP image encoder.

    Attributes:
        model_id: the id or folder it came from.
        model: a transformers CLIP vision model with a projection (``image_embeds``) or a ``CLIPModel``.
        processor: the checkpoint's image processor, or None (CLIP's own normalisation is used).
        image_size: the model's input side in pixels.
        device: the torch device.
    """

    model_id: str
    model: Any
    processor: Any
    image_size: int
    device: Any

    def _prepare(self, image_linear: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
        from .image_io import linear_to_srgb

        srgb = linear_to_srgb(np.asarray(image_linear, dtype=np.float32))
        if mask is not None and mask.any():
            m = mask.astype(bool)
            srgb = np.where(m[..., None], srgb, _GREY)
            rows, cols = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            side = max(r1 - r0, c1 - c0)
            canvas = np.full((side, side, 3), _GREY, np.float32)
            oy, ox = (side - (r1 - r0)) // 2, (side - (c1 - c0)) // 2
            canvas[oy:oy + r1 - r0, ox:ox + c1 - c0] = srgb[r0:r1, c0:c1]
            srgb = canvas
        return np.round(np.clip(srgb, 0, 1) * 255).astype(np.uint8)

    def embed(self, images_linear: Sequence[np.ndarray], masks: Optional[Sequence[Optional[np.ndarray]]] = None
              ) -> np.ndarray:
        """[B, D] float32 unit CLIP image embeddings.

        Args:
            images_linear: B images, [H, W, 3] float32 linear Rec.709 (any sizes).
            masks: B optional [H, W] bool product masks.
        """
        import torch
        from PIL import Image

        masks = list(masks) if masks is not None else [None] * len(images_linear)
        pics = [Image.fromarray(self._prepare(im, m)) for im, m in zip(images_linear, masks)]
        if self.processor is not None:
            pixels = self.processor(images=pics, return_tensors="pt")["pixel_values"]
        else:
            s = self.image_size
            arr = np.stack([np.asarray(p.resize((s, s), Image.BICUBIC), np.float32) / 255.0 for p in pics])
            arr = (arr - np.array(_CLIP_MEAN, np.float32)) / np.array(_CLIP_STD, np.float32)
            pixels = torch.from_numpy(arr).permute(0, 3, 1, 2)
        with torch.no_grad():
            pixels = pixels.to(self.device, dtype=next(self.model.parameters()).dtype)
            if hasattr(self.model, "get_image_features"):
                feats = self.model.get_image_features(pixel_values=pixels)
                feats = getattr(feats, "pooler_output", feats)
            else:
                feats = self.model(pixel_values=pixels).image_embeds
        feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy()


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings ([D] each)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def load_identity(model: Optional[str] = None, *, device: str = "auto") -> tuple[Optional[IdentityEncoder], str]:
    """Load a CLIP image encoder, or say why none is available.

    Args:
        model: hub id or folder (default ``ANCHORSTAGE_IDENTITY_MODEL``, else :data:`DEFAULT_IDENTITY_MODEL`).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        (encoder, "") or (None, the reason: transformers missing, weights not on this machine, not a CLIP model).
    """
    model_id = model or os.environ.get("ANCHORSTAGE_IDENTITY_MODEL") or DEFAULT_IDENTITY_MODEL
    try:
        from transformers import AutoConfig, CLIPModel, CLIPVisionModelWithProjection
    except ImportError:
        return None, "the 'transformers' package is not installed (pip install 'anchorstage[ml]')"
    from .device import resolve_device

    local = os.path.isdir(model_id)
    try:
        config = AutoConfig.from_pretrained(model_id, local_files_only=not local)
    except (OSError, ValueError) as e:
        return None, (f"CLIP model folder {model_id!r} cannot be read ({type(e).__name__})" if local else
                      f"CLIP model {model_id!r} is not on this machine (download it once with "
                      f"`huggingface-cli download {model_id}` or pass a local folder)")
    kind = getattr(config, "model_type", None)
    if kind not in ("clip", "clip_vision_model"):
        return None, f"{model_id!r} is a {kind!r} model, not CLIP"
    cls = CLIPModel if kind == "clip" else CLIPVisionModelWithProjection
    try:
        net = cls.from_pretrained(model_id, local_files_only=not local)
    except (OSError, ValueError) as e:
        return None, f"CLIP model {model_id!r}: weights cannot be loaded ({type(e).__name__})"
    processor = None
    try:
        from transformers import CLIPImageProcessor

        processor = CLIPImageProcessor.from_pretrained(model_id, local_files_only=not local)
    except (OSError, ValueError):
        processor = None  # no preprocessor_config.json: CLIP's standard preprocessing
    vision = getattr(config, "vision_config", config)
    dev = resolve_device(device)
    return IdentityEncoder(model_id, net.to(dev).eval(), processor, int(vision.image_size), dev), ""
