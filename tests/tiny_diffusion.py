# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny randomly initialised diffusion components saved to disk, for tests that load them through the
real ``from_pretrained`` path with nothing on the network (the sizes of diffusers' own fast tests).

Usage::

    from tiny_diffusion import tiny_controlnet_inpaint
    paths = tiny_controlnet_inpaint(tmp_path)   # {"model": folder, "controlnets": (depth, normal)}
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["tiny_tokenizer", "tiny_controlnet_inpaint"]


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (printable bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    extra = [b for b in range(256) if b not in keep]
    return [chr(b) for b in keep] + [chr(256 + i) for i in range(len(extra))]


def tiny_tokenizer(folder: Path):
    """A CLIPTokenizer built offline from a tiny byte-level vocabulary (every byte symbol, alone and
    word-final) and a few merges, written to ``folder`` and read back."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {tok: i for i, tok in enumerate(symbols + [c + "</w>" for c in symbols])}
    merges = ["t h", "th e</w>", "a n", "an d</w>"]
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [tuple(ln.split()) for ln in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:] if ln]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def tiny_controlnet_inpaint(root: Path, seed: int = 0) -> dict:
    """Save a tiny SD inpainting pipeline (9-channel UNet) and two tiny ControlNets under ``root``.

    Returns:
        ``{"model": folder, "controlnets": (depth folder, normal folder), "vocab": vocab size}``.
    """
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionInpaintPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(root)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=9,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=16)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=16)
    tokenizer = tiny_tokenizer(root / "tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37,
                                                layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
                                                vocab_size=len(tokenizer)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(root / "inpaint")
    nets = []
    for name in ("depth", "normal"):
        net = ControlNetModel(block_out_channels=(32, 64), layers_per_block=2, in_channels=4,
                              down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), cross_attention_dim=32,
                              conditioning_embedding_out_channels=(16, 32), norm_num_groups=16)
        net.save_pretrained(root / f"controlnet_{name}")
        nets.append(str(root / f"controlnet_{name}"))
    return {"model": str(root / "inpaint"), "controlnets": tuple(nets), "vocab": len(tokenizer)}
