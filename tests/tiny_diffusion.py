# SPDX-License-Identifier: GPL-3.0-or-later
"""Tiny randomly initialised diffusion components saved to disk, for tests that load them through the
real ``from_pretrained`` path with nothing on the network (the sizes of diffusers' own fast tests).

Usage::

    from tiny_diffusion import tiny_controlnet_inpaint, tiny_ip_adapter, tiny_sdxl_controlnet_inpaint
    paths = tiny_controlnet_inpaint(tmp_path)   # {"model": folder, "controlnets": (depth, normal)}
    xl = tiny_sdxl_controlnet_inpaint(tmp_path / "xl")
    ip = tiny_ip_adapter(tmp_path / "ip", paths["model"])   # {"ip_adapter": folder, "ip_adapter_weight": name}

The IP-Adapter is a state dict built for the UNet's cross-attention layers (diffusers' key layout:
``image_proj.*`` for the image projection, ``ip_adapter.<k>.to_k_ip/to_v_ip`` per cross-attention
processor) saved as safetensors beside a tiny CLIP image encoder, and loaded through the pipeline's
own ``load_ip_adapter``.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["tiny_tokenizer", "tiny_controlnet_inpaint", "tiny_sdxl_controlnet_inpaint", "tiny_ip_adapter",
           "tiny_animatediff"]


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


def _xl_blocks() -> dict:
    """The block layout shared by the tiny SDXL UNet and ControlNets (diffusers' SDXL fast tests' sizes):
    two text encoders of width 32 give cross-attention 64; time ids 6 x 8 + pooled 32 = 80."""
    return dict(block_out_channels=(32, 64), layers_per_block=2, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=8, transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=80,
                cross_attention_dim=64, norm_num_groups=16)


def tiny_sdxl_controlnet_inpaint(root: Path, seed: int = 0) -> dict:
    """Save a tiny SDXL inpainting pipeline (9-channel UNet, two text encoders) and two tiny SDXL
    ControlNets under ``root``.

    Returns:
        ``{"model": folder, "controlnets": (depth folder, normal folder)}``.
    """
    import torch
    from diffusers import (AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    root = Path(root)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=32, in_channels=9, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_xl_blocks())
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=16,
                        sample_size=128)
    tokenizer = tiny_tokenizer(root / "tokenizer_src")
    cfg = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
               num_attention_heads=4, num_hidden_layers=5, vocab_size=len(tokenizer), hidden_act="gelu",
               projection_dim=32)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    pipe = StableDiffusionXLInpaintPipeline(vae=vae, text_encoder=CLIPTextModel(CLIPTextConfig(**cfg)),
                                            text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**cfg)),
                                            tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
                                            requires_aesthetics_score=False, add_watermarker=False)
    pipe.save_pretrained(root / "inpaint")
    nets = []
    for name in ("depth", "normal"):
        net = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(16, 32), **_xl_blocks())
        net.save_pretrained(root / f"controlnet_{name}")
        nets.append(str(root / f"controlnet_{name}"))
    return {"model": str(root / "inpaint"), "controlnets": tuple(nets)}


def tiny_ip_adapter(root: Path, pipeline_folder: str, seed: int = 0, clip_dim: int = 16) -> dict:
    """Save an IP-Adapter for the UNet of ``pipeline_folder`` (see the module docstring) and a tiny
    CLIP image encoder (``image_encoder/``) under ``root``.

    Returns:
        ``{"ip_adapter": folder, "ip_adapter_weight": "ip-adapter.safetensors"}`` (no subfolder).
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    unet = UNet2DConditionModel.from_pretrained(pipeline_folder, subfolder="unet")
    cfg = unet.config
    torch.manual_seed(seed)
    cross = cfg.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(cross * 4, clip_dim) * 0.2,
             "image_proj.proj.bias": torch.zeros(cross * 4),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1  # diffusers numbers the cross-attention processors 1, 3, 5, ... in attn_processors order
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = cfg.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(cfg.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = cfg.block_out_channels[int(name[len("down_blocks.")])]
        state[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.2
        state[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.2
        key += 2
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "ip-adapter.safetensors"))
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=clip_dim, num_hidden_layers=2,
                                                             num_attention_heads=4, image_size=32, intermediate_size=37,
                                                             patch_size=4))
    encoder.save_pretrained(root / "image_encoder")
    return {"ip_adapter": str(root), "ip_adapter_weight": "ip-adapter.safetensors"}


def tiny_animatediff(root: Path, seed: int = 0) -> dict:
    """Save a tiny SD 1.5 text-to-image pipeline (4-channel UNet) and a tiny AnimateDiff MotionAdapter
    under ``root`` (the sizes of diffusers' AnimateDiff fast tests: blocks (8, 8), norm groups 2).

    Returns:
        ``{"model": folder, "motion_adapter": folder}``.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    root = Path(root)
    torch.manual_seed(seed)
    blocks = (8, 8)
    unet = UNet2DConditionModel(block_out_channels=blocks, layers_per_block=2, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=8,
                                norm_num_groups=2)
    vae = AutoencoderKL(block_out_channels=blocks, in_channels=3, out_channels=3,
                        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2)
    tokenizer = tiny_tokenizer(root / "tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, hidden_size=8, intermediate_size=37,
                                                layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5,
                                                vocab_size=len(tokenizer)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "sd15")
    adapter = MotionAdapter(block_out_channels=blocks, motion_layers_per_block=2, motion_norm_num_groups=2,
                            motion_num_attention_heads=4)
    adapter.save_pretrained(root / "motion_adapter")
    return {"model": str(root / "sd15"), "motion_adapter": str(root / "motion_adapter")}
