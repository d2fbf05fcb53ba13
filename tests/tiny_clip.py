# SPDX-License-Identifier: GPL-3.0-or-later
"""A tiny random CLIP image encoder (and a tiny Segformer segmenter) saved to a folder, for tests that load
them back through ``from_pretrained`` offline."""

from __future__ import annotations

from pathlib import Path


def tiny_clip(folder: Path, seed: int = 0, with_processor: bool = True) -> Path:
    """A ``CLIPVisionModelWithProjection`` (32 px input, 16-d embedding) saved in ``folder``."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                           image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(cfg).eval().save_pretrained(folder)
    if with_processor:
        CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)


def tiny_segformer(folder: Path, seed: int = 0) -> Path:
    """A 2-class (background, product) ``SegformerForSemanticSegmentation`` saved in ``folder``."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(seed)
    cfg = SegformerConfig(num_channels=3, num_encoder_blocks=1, depths=[1], sr_ratios=[1], hidden_sizes=[8],
                          patch_sizes=[3], strides=[2], num_attention_heads=[1], mlp_ratios=[2],
                          decoder_hidden_size=8, num_labels=2, id2label={0: "background", 1: "product"},
                          label2id={"background": 0, "product": 1})
    SegformerForSemanticSegmentation(cfg).eval().save_pretrained(folder)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return Path(folder)


def tiny_full_clip(folder: Path, seed: int = 0) -> Path:
    """A full ``CLIPModel`` (text and vision towers; 16-d projection) saved in ``folder``, no preprocessor."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(text_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                                  "num_hidden_layers": 2, "vocab_size": 100, "eos_token_id": 2},
                     vision_config={"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4,
                                    "num_hidden_layers": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=16)
    CLIPModel(cfg).eval().save_pretrained(folder)
    return Path(folder)
