# SPDX-License-Identifier: GPL-3.0-or-later
"""Metric depth through the real from_pretrained path, with tiny random models built from configs.

Each backend is saved with ``save_pretrained`` into a temporary folder (plus a small
``preprocessor_config.json`` so the network input stays tiny) and loaded back by
``estimate_depth(..., model=folder)``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import (BeitConfig, BertConfig, BertModel, DepthAnythingConfig, DepthAnythingForDepthEstimation,
                          DepthProConfig, DepthProForDepthEstimation, Dinov2Config, ZoeDepthConfig,
                          ZoeDepthForDepthEstimation)

from anchorstage import Camera, InputError, MissingDependencyError, estimate_depth, look_at
from anchorstage.depth import REFERENCE_FOCAL, _edge_confidence, load_depth_model

H, W = 72, 96


def _save(model, folder, prep=None):
    model.save_pretrained(folder)
    if prep is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(prep))
    return folder


def _constant_head(conv: torch.nn.Conv2d, bias: float) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(bias)


def tiny_depth_anything(max_depth=80, kind="metric"):
    torch.manual_seed(0)
    bb = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=56,
                      patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, depth_estimation_type=kind, max_depth=max_depth,
                              reassemble_hidden_size=32, neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16,
                              head_hidden_size=8)
    return DepthAnythingForDepthEstimation(cfg).eval()


def tiny_depth_pro():
    torch.manual_seed(0)
    vit = dict(model_type="dinov2", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
               image_size=64, patch_size=16)
    cfg = DepthProConfig(fusion_hidden_size=16, patch_size=64, intermediate_hook_ids=[1, 0],
                         intermediate_feature_dims=[16, 16], scaled_images_ratios=[0.5, 1],
                         scaled_images_overlap_ratios=[0.0, 0.25], scaled_images_feature_dims=[16, 16],
                         use_fov_model=True, image_model_config=vit, patch_model_config=vit, fov_model_config=vit)
    return DepthProForDepthEstimation(cfg).eval()


def tiny_zoedepth():
    torch.manual_seed(0)
    bb = BeitConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64,
                    patch_size=16, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
                    use_relative_position_bias=True)
    cfg = ZoeDepthConfig(backbone_config=bb, neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16,
                         bottleneck_features=16, bin_embedding_dim=16, num_relative_features=8,
                         num_attractors=[4, 4, 2, 1],
                         bin_configurations=[{"name": "kitti", "n_bins": 8, "min_depth": 0.001, "max_depth": 80.0}],
                         num_patch_transformer_layers=1, patch_transformer_hidden_size=16,
                         patch_transformer_intermediate_size=32, patch_transformer_num_attention_heads=2)
    return ZoeDepthForDepthEstimation(cfg).eval()


DA_PREP = {"size": {"height": 56, "width": 56}, "keep_aspect_ratio": True, "ensure_multiple_of": 14,
           "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
ZOE_PREP = {"size": {"height": 64, "width": 96}, "keep_aspect_ratio": True, "ensure_multiple_of": 32, "do_pad": True,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth_models")
    da = _save(tiny_depth_anything(), root / "da", DA_PREP)
    const = tiny_depth_anything()
    _constant_head(const.head.conv3, 0.0)  # sigmoid(0) * 80 = 40 m everywhere
    da_const = _save(const, root / "da_const", DA_PREP)
    sky = tiny_depth_anything()
    _constant_head(sky.head.conv3, 30.0)  # saturated at max_depth: all sky
    da_sky = _save(sky, root / "da_sky", DA_PREP)
    pro = tiny_depth_pro()
    _constant_head(pro.fov_model.head.layers[-1], -5.0)  # a nonsense field of view
    pro_folder = _save(pro, root / "pro")
    pro_const = tiny_depth_pro()
    _constant_head(pro_const.head.layers[-2], 0.25)  # canonical inverse depth 0.25 everywhere
    _constant_head(pro_const.fov_model.head.layers[-1], 60.0)  # a 60° horizontal field of view
    pro_const_folder = _save(pro_const, root / "pro_const")
    zoe = _save(tiny_zoedepth(), root / "zoe", ZOE_PREP)
    return dict(da=da, da_const=da_const, da_sky=da_sky, pro=pro_folder, pro_const=pro_const_folder, zoe=zoe)


def _image(h=H, w=W):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w, yy / h, 0.5 + 0.2 * np.sin(xx / 5.0)], axis=-1)
    return (img * 0.8 + 0.1 * rng.random((h, w, 3))).astype(np.float32)


def _camera(lens_mm=35.0, w=W, h=H):
    return Camera(width=w, height=h, lens_mm=lens_mm, sensor_width_mm=36.0,
                  world_from_cam=look_at((0, 0, 0), (0, 1, 0)))


def _check(est, h=H, w=W):
    assert est.depth_m.shape == (h, w) and est.depth_m.dtype == np.float32
    assert est.confidence.shape == (h, w) and est.confidence.dtype == np.float32
    assert np.all((est.confidence >= 0) & (est.confidence <= 1))
    assert not np.any(np.isnan(est.depth_m))
    finite = np.isfinite(est.depth_m)
    assert np.all(est.depth_m[finite] > 0)
    assert np.all(est.confidence[~finite] == 0)


@pytest.mark.parametrize("name", ["da", "pro", "zoe"])
def test_each_backend_runs_from_a_saved_folder(folders, name):
    progress = []
    est = estimate_depth(_image(), _camera(), model=str(folders[name]), device="cpu",
                         progress=lambda f, m: progress.append(f))
    _check(est)
    assert est.model == str(folders[name])
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    assert any("model input" in n for n in est.notes)


def test_depth_anything_focal_correction_rule(folders):
    # Constant 40 m output: the scale rule is visible exactly.
    plain = estimate_depth(_image(), None, model=str(folders["da_const"]), device="cpu")
    np.testing.assert_allclose(plain.depth_m, 40.0, rtol=1e-5)
    assert np.allclose(plain.confidence, 1.0, atol=1e-5)
    assert any("no camera" in n for n in plain.notes)
    for lens in (24.0, 85.0):
        est = estimate_depth(_image(), _camera(lens), model=str(folders["da_const"]), device="cpu")
        f_rel = _camera(lens).focal_px / min(W, H)
        np.testing.assert_allclose(est.depth_m, 40.0 * f_rel / REFERENCE_FOCAL["vkitti2"], rtol=1e-5)
        assert any("focal length" in n for n in est.notes)


def test_saturated_depth_is_sky(folders):
    est = estimate_depth(_image(), _camera(), model=str(folders["da_sky"]), device="cpu")
    assert np.all(np.isinf(est.depth_m)) and np.all(est.confidence == 0)
    assert any("sky" in n for n in est.notes)


def test_depth_pro_uses_focal_and_estimates_fov(folders):
    est = estimate_depth(_image(), _camera(50.0), model=str(folders["pro_const"]), device="cpu")
    f = _camera(50.0).focal_px
    np.testing.assert_allclose(est.depth_m, f / (W * 0.25), rtol=1e-4)  # depth = f / (W * canonical inverse)
    assert est.fov_x_deg == pytest.approx(60.0)
    # Without a camera the focal comes from the predicted field of view.
    est2 = estimate_depth(_image(), None, model=str(folders["pro_const"]), device="cpu")
    f_fov = 0.5 * W / math.tan(math.radians(est2.fov_x_deg) / 2)
    np.testing.assert_allclose(est2.depth_m, f_fov / (W * 0.25), rtol=1e-4)
    assert any("field-of-view" in n for n in est2.notes)


def test_implausible_fov_estimate_is_ignored_with_a_note(folders):
    est = estimate_depth(_image(), None, model=str(folders["pro"]), device="cpu")
    _check(est)
    assert est.fov_x_deg is None
    assert any("implausible" in n for n in est.notes) and any("mm-equivalent" in n for n in est.notes)


def test_loaded_image_and_large_photo_resize(folders):
    from anchorstage.image_io import LoadedImage

    img = LoadedImage(_image(300, 400), "photo.png")
    est = estimate_depth(img, _camera(w=400, h=300), model=str(folders["da"]), device="cpu")
    _check(est, 300, 400)
    assert any("photo 400x300" in n for n in est.notes)


def test_model_cache_reuses_the_loaded_network(folders):
    assert load_depth_model(str(folders["da"]), "cpu") is load_depth_model(str(folders["da"]), "cpu")


def test_agreement_confidence():
    from anchorstage.depth import _agreement_confidence

    d = torch.full((4, 4), 10.0)
    assert torch.allclose(_agreement_confidence(d, d), torch.ones(4, 4))
    assert float(_agreement_confidence(d, d * 1.2).max()) < 0.05  # 18 % apart: no confidence
    assert 0.5 < float(_agreement_confidence(d, d * 1.05).min()) < 0.9


def test_edge_confidence_is_low_at_discontinuities():
    d = torch.full((20, 20), 2.0)
    d[:, 10:] = 8.0
    c = _edge_confidence(d)
    assert float(c[:, 9:11].max()) < 0.05
    assert float(c[:, :7].min()) > 0.99 and float(c[:, 13:].min()) > 0.99


# ------------------------------------------------------------------------------------------ bad input
def test_wrong_architecture_folder(tmp_path):
    bert = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                vocab_size=50))
    folder = _save(bert, tmp_path / "bert")
    with pytest.raises(InputError, match=r"'bert' model .*not a metric depth model"):
        estimate_depth(_image(), model=str(folder), device="cpu")


def test_relative_depth_anything_is_refused(tmp_path):
    folder = _save(tiny_depth_anything(max_depth=1, kind="relative"), tmp_path / "rel")
    with pytest.raises(InputError, match="relative"):
        estimate_depth(_image(), model=str(folder), device="cpu")


def test_folder_problems(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        estimate_depth(_image(), model=str(tmp_path / "nope"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        estimate_depth(_image(), model=str(tmp_path / "empty"), device="cpu")
    cfg_only = tmp_path / "cfg_only"
    tiny_depth_anything().config.save_pretrained(cfg_only)
    with pytest.raises(InputError, match="weights"):
        estimate_depth(_image(), model=str(cfg_only), device="cpu")


def test_missing_hub_weights_offline_names_the_id_and_the_fix():
    model_id = "anchorstage-test/not-downloaded-depth"
    with pytest.raises(MissingDependencyError) as e:
        estimate_depth(_image(), model=model_id, device="cpu")
    msg = str(e.value)
    assert model_id in msg and f"huggingface-cli download {model_id}" in msg and "folder" in msg


def test_bad_images_and_cameras(folders):
    with pytest.raises(InputError, match="at least 64"):
        estimate_depth(_image(32, 48), model=str(folders["da"]), device="cpu")
    bad = _image()
    bad[3, 3, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        estimate_depth(bad, model=str(folders["da"]), device="cpu")
    with pytest.raises(InputError, match=r"\[H, W, 3\]"):
        estimate_depth(np.zeros((H, W), np.float32), model=str(folders["da"]), device="cpu")
    with pytest.raises(InputError, match="aspect"):
        estimate_depth(_image(), _camera(w=100, h=100), model=str(folders["da"]), device="cpu")


def test_prebuilt_network_and_single_pass(folders):
    from anchorstage.depth import wrap_depth_network

    net = tiny_depth_anything()
    _constant_head(net.head.conv3, 0.0)
    dm = wrap_depth_network(net, "tiny-da", "cpu", DA_PREP)
    est = estimate_depth(_image(), None, model=dm, flip_consistency=False)
    np.testing.assert_allclose(est.depth_m, 40.0, rtol=1e-5)
    assert est.model == "tiny-da"
    # A single pass is exactly the model's own (un-averaged) prediction.
    rnd = wrap_depth_network(tiny_depth_anything(), "rnd-da", "cpu", DA_PREP)
    one = estimate_depth(_image(), None, model=rnd, flip_consistency=False)
    assert np.all(np.isfinite(one.depth_m))
    with pytest.raises(InputError, match="relative"):
        wrap_depth_network(tiny_depth_anything(max_depth=1, kind="relative"), "rel", "cpu")


def test_hub_id_loads_from_the_local_cache_offline(folders, tmp_path, monkeypatch):
    # Lay the saved folder out as a Hugging Face cache snapshot: a hub id then loads offline,
    # including its preprocessor_config.json (the tiny 56-px input proves it was read).
    import shutil

    import huggingface_hub.constants as hf_constants

    repo = tmp_path / "hub" / "models--tiny-org--tiny-da"
    snap = repo / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    for f in folders["da"].iterdir():
        shutil.copy(f, snap / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    est = estimate_depth(_image(), _camera(), model="tiny-org/tiny-da", device="cpu")
    _check(est)
    assert est.model == "tiny-org/tiny-da"
    assert "model input 70x56 (photo 96x72)" in est.notes


def test_aliases_resolve_to_hub_ids():
    from anchorstage.depth import DEPTH_MODEL_ALIASES

    with pytest.raises(MissingDependencyError, match="Depth-Anything-V2-Metric-Indoor-Large-hf"):
        estimate_depth(_image(), model="da2-indoor", device="cpu")
    assert DEPTH_MODEL_ALIASES["depth-pro"] == "apple/DepthPro-hf"


@pytest.mark.parametrize("kind", ["depth_anything", "zoedepth"])
def test_preprocessing_matches_the_transformers_image_processors(kind):
    # Our torch preprocessing must feed real checkpoints what their own (PIL) processors would.
    from PIL import Image

    from anchorstage.depth import _preprocess, wrap_depth_network
    from anchorstage.image_io import srgb_to_linear

    yy, xx = np.mgrid[0:360, 0:640]
    srgb = (np.stack([xx / 640, yy / 360, 0.5 + 0.4 * np.sin(xx / 20)], -1) * 255).astype(np.uint8)
    if kind == "depth_anything":
        from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

        prep = {"size": {"height": 518, "width": 518}, "keep_aspect_ratio": True, "ensure_multiple_of": 14,
                "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
        ref = DPTImageProcessorPil(do_resize=True, do_normalize=True, **prep)
        net = tiny_depth_anything()
    else:
        from transformers.models.zoedepth.image_processing_pil_zoedepth import ZoeDepthImageProcessorPil

        prep = {"size": {"height": 384, "width": 512}, "keep_aspect_ratio": True, "ensure_multiple_of": 32,
                "do_pad": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
        ref = ZoeDepthImageProcessorPil(**prep)
        net = tiny_zoedepth()
    expected = ref(images=Image.fromarray(srgb), return_tensors="pt")["pixel_values"]
    batch, _, _, _ = _preprocess(srgb_to_linear(srgb / 255.0), wrap_depth_network(net, kind, "cpu", prep), False)
    assert batch.shape == expected.shape
    assert float((batch - expected).abs().mean()) < 0.005 and float((batch - expected).abs().max()) < 0.05
