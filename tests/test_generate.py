# SPDX-License-Identifier: GPL-3.0-or-later
"""Generation end to end on the CPU with tiny random components (UNet, ControlNets, VAE, CLIP text and
vision, tokenizer built offline) saved and loaded through diffusers' ``from_pretrained``: SD 1.5 and
SDXL ControlNet inpainting, IP-Adapter, locked pixels and everything outside the mask bit-identical,
progress per step, cancel, memory switches, model resolution (flags > environment > defaults)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import anchorstage as a
from anchorstage import diffusion as dif
from anchorstage.generation import GenerationSettings
from gt_fixture import load_view

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_diffusion import tiny_controlnet_inpaint, tiny_ip_adapter, tiny_sdxl_controlnet_inpaint

    root = tmp_path_factory.mktemp("tiny_gen")
    sd = tiny_controlnet_inpaint(root / "sd15")
    xl = tiny_sdxl_controlnet_inpaint(root / "sdxl")
    return {"sd15": sd, "sdxl": xl, "ip": tiny_ip_adapter(root / "ip", sd["model"])}


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


@functools.lru_cache(maxsize=None)
def _cond(seed: int = 3):
    res = a.refresh(_stage(), load_view("orbit")["camera"], locks=["facade_001"], device="cpu")
    return a.condition(res, _stage(), prompt="a brick wall", seed=seed)


def _models(tiny, family="sd15", ip=False, **kw):
    t = tiny[family]
    args = dict(model=t["model"], controlnet_depth=t["controlnets"][0], controlnet_normal=t["controlnets"][1])
    if ip:
        args.update(ip_adapter=tiny["ip"]["ip_adapter"], ip_adapter_weight=tiny["ip"]["ip_adapter_weight"])
    return dif.model_set(None, **{**args, **kw})


def _settings(tiny, family="sd15", ip=False, **kw):
    return GenerationSettings(models=_models(tiny, family, ip), steps=2, max_side=48, **kw)


def _check_promise(gen, cond):
    assert np.array_equal(gen.image[cond.locked], cond.image[cond.locked])
    assert np.array_equal(gen.image[~gen.generated], cond.image[~gen.generated])
    assert not (gen.generated & cond.locked).any()
    assert np.all(gen.generated[cond.mask & ~cond.locked])
    assert not np.allclose(gen.image[gen.generated], cond.image[gen.generated])


def test_cli_generates_end_to_end_on_the_cpu(tmp_path, tiny, capsys):
    from anchorstage.camera import save_camera_json
    from anchorstage.cli import main

    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    save_camera_json(tmp_path / "orbit.json", load_view("orbit")["camera"])
    t = tiny["sd15"]
    code = main(["generate", str(scene_dir), "--camera", str(tmp_path / "orbit.json"), "--out", str(tmp_path / "out"),
                 "--lock", "facade_001", "--prompt", "a brick wall", "--seed", "5", "--model", t["model"],
                 "--controlnet-depth", t["controlnets"][0], "--controlnet-normal", t["controlnets"][1],
                 "--ip-adapter", tiny["ip"]["ip_adapter"], "--ip-adapter-weight", tiny["ip"]["ip_adapter_weight"],
                 "--steps", "2", "--max-side", "48", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "locked px" in out.out and "bit-exact" in out.out
    cond = a.load_conditioning(tmp_path / "out" / "conditioning")
    assert cond.locked.any() and cond.mask.any() and cond.seed == 5 and cond.reference is not None
    exr = a.read_exr(tmp_path / "out" / "generated.exr")
    gen_mask = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "out" / "generated_mask.png")) > 127
    img = exr["color"]
    assert img.dtype == np.float32 and img.shape == cond.image.shape
    # locked pixels bit-identical, pixels outside the mask unchanged, the void generated
    assert np.array_equal(img[cond.locked], cond.image[cond.locked])
    assert np.array_equal(img[~gen_mask], cond.image[~gen_mask])
    assert np.all(gen_mask[cond.mask]) and not (gen_mask & cond.locked).any()
    assert exr["meta"]["generation"]["settings"]["models"]["ip_adapter"] == tiny["ip"]["ip_adapter"]
    # the same again from the saved conditioning folder gives the same pixels
    code = main(["generate", "--conditioning", str(tmp_path / "out" / "conditioning"), "--out", str(tmp_path / "again"),
                 "--model", t["model"], "--controlnet-depth", t["controlnets"][0], "--controlnet-normal",
                 t["controlnets"][1], "--ip-adapter", tiny["ip"]["ip_adapter"], "--ip-adapter-weight",
                 tiny["ip"]["ip_adapter_weight"], "--steps", "2", "--max-side", "48", "--device", "cpu"])
    assert code == 0
    assert np.array_equal(a.read_exr(tmp_path / "again" / "generated.exr")["color"], img)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_both_families_keep_their_promise(tiny, family):
    cond = _cond()
    messages = []
    gen = a.generate(cond, _settings(tiny, family), device="cpu", progress=lambda f, m: messages.append((f, m)))
    _check_promise(gen, cond)
    assert gen.settings.models.family == family
    steps = [m for _, m in messages if m.startswith("diffusion step")]
    assert steps == ["diffusion step 1/2", "diffusion step 2/2"] and gen.steps_run == 2 and gen.step_s > 0
    fr = [f for f, _ in messages]
    assert fr == sorted(fr) and fr[-1] == 1.0
    again = a.generate(cond, _settings(tiny, family), device="cpu")
    assert np.array_equal(again.image, gen.image)  # repeatable for a seed
    other = a.generate(_cond(seed=4), _settings(tiny, family), device="cpu")
    assert not np.array_equal(other.image[gen.generated], gen.image[gen.generated])


def test_ip_adapter_takes_the_reference(tiny):
    from dataclasses import replace

    cond = _cond()
    with_ip = a.generate(cond, _settings(tiny, ip=True), device="cpu")
    _check_promise(with_ip, cond)
    plain = a.generate(cond, _settings(tiny), device="cpu")
    assert not np.array_equal(with_ip.image, plain.image)
    # another reference photo changes the generated pixels (and only those)
    flipped = a.generate(replace(cond, reference=cond.reference[::-1].copy()), _settings(tiny, ip=True), device="cpu")
    assert not np.array_equal(flipped.image[with_ip.generated], with_ip.image[with_ip.generated])
    assert np.array_equal(flipped.image[~with_ip.generated], with_ip.image[~with_ip.generated])
    # attention slicing would replace the adapter's attention processors: it stays off, with a note
    sliced = a.generate(cond, _settings(tiny, ip=True, memory=dif.MemorySettings(attention_slicing="on")), device="cpu")
    assert any("attention slicing left off" in n for n in sliced.notes)
    assert np.array_equal(sliced.image, with_ip.image)


def test_attention_slicing_on_the_cpu_gives_the_same_frame(tiny):
    cond = _cond()
    plain = a.generate(cond, _settings(tiny), device="cpu")
    sliced = a.generate(cond, _settings(tiny, memory=dif.MemorySettings(attention_slicing="on")), device="cpu")
    assert np.allclose(sliced.image, plain.image, atol=1e-4)
    import torch

    slicing, offload, notes = dif._memory_plan(_models(tiny), torch.device("cpu"),
                                              dif.MemorySettings(cpu_offload="model"), torch.float32)
    assert (slicing, offload) == (False, "none") and "needs CUDA: ignored" in notes[0]


def test_cancel_stops_between_steps(tiny):
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 1  # let the first step run

    with pytest.raises(a.Cancelled, match="after step 1/2"):
        a.generate(_cond(), _settings(tiny), device="cpu", cancel=cancel)


def test_more_steps_than_the_scheduler_spaces_is_a_clear_error(tiny):
    """The tiny models' DDIM schedule starts at timestep 1 (as SD 1.5's does): at 1000 steps its last
    timestep would be 1000, past the model's 1000; refused before any step, with the most it takes."""
    messages = []
    settings = GenerationSettings(models=_models(tiny), steps=1000, max_side=48)
    with pytest.raises(a.InputError, match="takes at most 999 steps"):
        a.generate(_cond(), settings, device="cpu", progress=lambda f, m: messages.append(m))
    assert not [m for m in messages if m.startswith("diffusion step")]


def test_a_composite_that_would_change_a_locked_pixel_fails_loudly(tiny, monkeypatch):
    import anchorstage.diffusion as d

    monkeypatch.setattr(d, "composite_generated", lambda base, generated, mask, locks=None: generated)
    with pytest.raises(RuntimeError, match="locked or unmasked pixel"):
        a.generate(_cond(), _settings(tiny), device="cpu")


def test_nothing_to_generate_loads_nothing(tiny):
    from dataclasses import replace

    cond = replace(_cond(), mask=np.zeros_like(_cond().mask))
    settings = GenerationSettings(models=dif.model_set("sd15", model="nowhere/unused"), steps=2)
    gen = a.generate(cond, settings, device="cpu")
    assert np.array_equal(gen.image, cond.image) and not gen.generated.any() and "nothing to generate" in gen.notes[0]


def test_missing_weights_name_the_model(tmp_path, tiny, capsys):
    with pytest.raises(a.MissingDependencyError, match="nowhere/inpaint-model.*huggingface-cli download"):
        a.generate(_cond(), GenerationSettings(models=_models(tiny, model="nowhere/inpaint-model"), steps=1), device="cpu")
    missing = tmp_path / "no-adapter"
    with pytest.raises(a.MissingDependencyError, match="no-adapter"):
        a.generate(_cond(), GenerationSettings(models=_models(tiny, ip_adapter=str(missing)), steps=1), device="cpu")
    from anchorstage.cli import main

    code = main(["generate", "--conditioning", str(a.save_conditioning(_cond(), tmp_path / "c")), "--out",
                 str(tmp_path / "o"), "--controlnet-depth", "nobody/depth-net", "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nobody/depth-net" in err[0] and err[0].startswith("anchorstage generate: error:")


def test_models_come_from_flags_then_environment_then_defaults(tmp_path, tiny):
    env = {"ANCHORSTAGE_DIFFUSION_MODEL": "org/env-model", "ANCHORSTAGE_CONTROLNET_NORMAL": "none"}
    m = dif.model_set(None, env=env)
    assert (m.family, m.model, m.controlnet_normal) == ("sd15", "org/env-model", "")
    assert m.controlnet_depth == dif.DEFAULT_MODELS["sd15"]["controlnet_depth"]
    assert dif.model_set(None, model="org/flag-model", env=env).model == "org/flag-model"
    assert dif.model_set("sdxl", env={}).controlnets == (("depth", "diffusers/controlnet-depth-sdxl-1.0"),)
    assert dif.model_set(None, model=tiny["sdxl"]["model"], env={}).family == "sdxl"  # from model_index.json
    assert dif.model_set(None, model=tiny["sd15"]["model"], env={}).family == "sd15"
    assert dif.model_set(None, ip_adapter="default", env={}).ip_adapter == "h94/IP-Adapter"
    with pytest.raises(a.InputError, match="needs a depth or a normal ControlNet"):
        dif.model_set("sd15", controlnet_depth="none", controlnet_normal="none", env={})
    with pytest.raises(a.InputError, match="family must be"):
        dif.model_set("sd3", env={})
    with pytest.raises(a.InputError, match="controlnet_scale"):
        GenerationSettings(models=dif.model_set("sdxl", env={}), controlnet_scale=(1.0, 0.5))
    with pytest.raises(a.InputError, match="unknown setting"):
        GenerationSettings(models=dif.model_set("sd15", env={})).with_request({"model": "evil/model"})


@pytest.mark.cuda
def test_cuda_fp16_with_memory_savers_matches_the_cpu(tiny):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cond = _cond()
    cpu = a.generate(cond, _settings(tiny), device="cpu")
    for memory in (dif.MemorySettings(), dif.MemorySettings(attention_slicing="on", cpu_offload="model"),
                   dif.MemorySettings(cpu_offload="sequential")):
        gpu = a.generate(cond, _settings(tiny, memory=memory), device="cuda")
        assert any("float16 on cuda" in n for n in gpu.notes)
        _check_promise(gpu, cond)
        assert np.abs(gpu.image - cpu.image).mean() < 0.05
