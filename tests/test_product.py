# SPDX-License-Identifier: GPL-3.0-or-later
"""Product package: an RGBA photo's alpha used as the mask, the depth fallback, a tiny transformers
segmenter and a tiny CLIP identity encoder loaded through from_pretrained, ``anchorstage package`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anchorstage.cli import main
from anchorstage.identity import cosine_similarity, load_identity
from anchorstage.product import depth_foreground, foreground_mask
from anchorstage.stages import load_photo
from tiny_clip import tiny_clip, tiny_full_clip, tiny_segformer

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "product"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_rgba_alpha_is_the_mask():
    photo = load_photo(SAMPLE / "az000.png", camera=SAMPLE / "az000_camera.json")
    fg = foreground_mask(photo)
    alpha = np.asarray(Image.open(SAMPLE / "az000.png").getchannel("A"))
    assert fg.source == "alpha"
    np.testing.assert_array_equal(fg.mask, alpha >= 128)
    assert 0.2 < fg.mask.mean() < 0.5


def test_depth_fallback_finds_the_product_in_front_of_its_backdrop():
    depth = np.full((60, 80), 3.0, np.float32)  # a backdrop 3 m away
    depth[:, :5] = np.inf  # unknown depth is never the product
    depth[20:45, 30:50] = 1.0 + np.linspace(0, 0.1, 20)[None]  # the product, ~1 m away
    depth[2:4, 70:72] = 0.9  # a speck nearer still: not the largest piece
    fg = depth_foreground(depth)
    truth = np.zeros_like(fg)
    truth[20:45, 30:50] = True
    np.testing.assert_array_equal(fg, truth)


def test_segmentation_model_behind_the_same_interface(tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import SegformerForSemanticSegmentation

    from anchorstage.errors import InputError

    photo = load_photo(SAMPLE / "az000.png", camera=SAMPLE / "az000_camera.json")
    photo.image.notes.clear()  # as if it had no alpha
    for favoured, name in ((1, "product"), (0, "background")):
        folder = tiny_segformer(tmp_path / name)
        net = SegformerForSemanticSegmentation.from_pretrained(folder)
        with torch.no_grad():  # one class wins everywhere: the labels decide what is foreground
            net.decode_head.classifier.weight.zero_()
            net.decode_head.classifier.bias.copy_(torch.tensor([0.0, 0.0]).index_fill_(0, torch.tensor(favoured), 5.0))
        net.save_pretrained(folder)
        if name == "product":
            fg = foreground_mask(photo, model=str(folder), device="cpu")
            assert fg.source == f"model {folder}" and fg.mask.shape == (photo.height, photo.width) and fg.mask.all()
        else:
            with pytest.raises(InputError, match="foreground mask .* is empty"):
                foreground_mask(photo, model=str(folder), device="cpu")
    with pytest.raises(InputError, match="cannot be loaded"):
        foreground_mask(photo, model=str(tmp_path), device="cpu")


def test_tiny_clip_embeddings_are_unit_vectors_and_see_the_product(clip_dir):
    enc, why = load_identity(str(clip_dir), device="cpu")
    assert enc is not None, why
    photo = load_photo(SAMPLE / "az000.png", camera=SAMPLE / "az000_camera.json")
    other = load_photo(SAMPLE / "az090.png", camera=SAMPLE / "az090_camera.json")
    m0, m1 = foreground_mask(photo).mask, foreground_mask(other).mask
    e = enc.embed([photo.image.rgb_linear, photo.image.rgb_linear, other.image.rgb_linear], [m0, m0, m1])
    assert e.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert cosine_similarity(e[0], e[1]) == pytest.approx(1.0, abs=1e-6)
    assert cosine_similarity(e[0], e[2]) < 1.0 - 1e-6
    # without a preprocessor_config.json, CLIP's own preprocessing is used
    bare = tiny_clip(clip_dir.parent / "bare", with_processor=False)
    enc2, _ = load_identity(str(bare), device="cpu")
    assert enc2.processor is None and enc2.embed([photo.image.rgb_linear], [m0]).shape == (1, 16)
    # a full CLIPModel: its image features (projected) are the embedding
    enc3, why = load_identity(str(tiny_full_clip(clip_dir.parent / "full")), device="cpu")
    assert enc3 is not None, why
    e3 = enc3.embed([photo.image.rgb_linear], [m0])
    assert e3.shape == (1, 16) and abs(np.linalg.norm(e3) - 1) < 1e-5


def test_identity_unavailable_says_why(tmp_path):
    enc, why = load_identity("nobody/no-such-clip", device="cpu")
    assert enc is None and "not on this machine" in why
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    enc, why = load_identity(str(tmp_path), device="cpu")
    assert enc is None


def test_package_cli_writes_the_folder(clip_dir, tmp_path, capsys):
    out = tmp_path / "pkg"
    assert main(["package", str(SAMPLE / "az045.png"), "--depth", str(SAMPLE / "az045_depth.npy"),
                 "--camera", str(SAMPLE / "az045_camera.json"), "--identity-model", str(clip_dir),
                 "--device", "cpu", "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(m["files"])
    assert m["mask_source"] == "alpha" and m["identity"]["dim"] == 16
    emb = np.load(out / "embedding.npy")
    assert emb.shape == (16,) and abs(np.linalg.norm(emb) - 1) < 1e-5
    depth, mask = np.load(out / "depth.npy"), np.asarray(Image.open(out / "mask.png")) > 0
    # Cycles took the depth of one sample: a few edge pixels in the alpha have none
    assert np.isfinite(depth[mask]).mean() > 0.99 and not np.isfinite(depth[~mask]).any()
    assert "mask from alpha" in capsys.readouterr().out
    # no CLIP weights: still packaged, the manifest says why the embedding is missing
    out2 = tmp_path / "pkg2"
    assert main(["package", str(SAMPLE / "az045.png"), "--depth", str(SAMPLE / "az045_depth.npy"),
                 "--camera", str(SAMPLE / "az045_camera.json"), "--identity-model", "nobody/no-such-clip",
                 "--device", "cpu", "--out", str(out2)]) == 0
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert m2["identity"]["model"] is None and "not on this machine" in m2["identity"]["unavailable"]
    assert not (out2 / "embedding.npy").exists()
    # an existing package is not overwritten without --force
    assert main(["package", str(SAMPLE / "az045.png"), "--depth", str(SAMPLE / "az045_depth.npy"),
                 "--out", str(out2)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_package_depth_fallback_for_a_photo_without_alpha(tmp_path, capsys):
    rgb = Image.open(SAMPLE / "az000.png").convert("RGB")
    rgb.save(tmp_path / "photo.jpg")
    depth = np.load(SAMPLE / "az000_depth.npy")
    np.save(tmp_path / "depth.npy", np.where(np.isfinite(depth), depth, 2.5).astype(np.float32))  # a backdrop
    out = tmp_path / "pkg"
    assert main(["package", str(tmp_path / "photo.jpg"), "--depth", str(tmp_path / "depth.npy"),
                 "--camera", str(SAMPLE / "az000_camera.json"), "--identity-model", "nobody/no-such-clip",
                 "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["mask_source"] == "depth fallback"
    mask = np.asarray(Image.open(out / "mask.png")) > 0
    np.testing.assert_array_equal(mask, np.isfinite(depth))


def test_package_bad_inputs_give_one_line_errors(tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.ones((50, 100), np.float32))
    cases = [
        (["package", str(tmp_path / "missing.png"), "--out", str(tmp_path / "p1")], "missing.png"),
        (["package", str(SAMPLE / "az000.png"), "--depth", str(tmp_path / "wide.npy"), "--out", str(tmp_path / "p2")],
         "is 100x50 but the image is 192x192"),
        (["package", str(SAMPLE / "az000.png"), "--depth", str(tmp_path / "wide.npy"), "--depth-model", "x",
          "--out", str(tmp_path / "p3")], "either --depth or --depth-model"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not any((tmp_path / p).exists() for p in ("p1", "p2", "p3"))
