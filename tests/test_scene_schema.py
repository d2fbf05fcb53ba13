# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene folders from outside: scene.json field by field, paths kept inside, splats_extra.npz and masks checked."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from anchorstage import InputError, load_scene, save_scene
from untrusted_support import H, W, tiny_scene


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_scene(tiny_scene(), tmp_path_factory.mktemp("scene") / "s")


@pytest.fixture
def folder(saved, tmp_path):
    import shutil

    out = tmp_path / "s"
    shutil.copytree(saved, out)
    return out


def _edit(folder, fn):
    doc = json.loads((folder / "scene.json").read_text())
    fn(doc)
    (folder / "scene.json").write_text(json.dumps(doc))


def test_tiny_scene_round_trips(folder):
    back = load_scene(folder)
    assert back.regions[0].mask.shape == (H, W) and back.regions[0].locked
    assert torch.equal(back.splats.region_ids[:8], torch.zeros(8, dtype=torch.int32))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(image=None), r"scene.json: image must be an object \(got null\)"),
    (lambda d: d.update(regions="x"), r"regions must be a list \(got 'x' \(a string\)\)"),
    (lambda d: d.update(metric_scale="1.0"), r"metric_scale must be a number \(got '1.0' \(a string\)\)"),
    (lambda d: d.update(metric_scale=True), "metric_scale must be a number"),
    (lambda d: d.update(metric_scale=0), "metric_scale must be > 0"),
    (lambda d: d.update(meta=[]), "meta must be an object"),
    (lambda d: d.update(format_version="1"), "no integer format_version|format_version must be an integer"),
    (lambda d: d.update(format_version=2), "newer AnchorStage"),
    (lambda d: d.update(format_version=0), "unknown scene format_version 0"),
    (lambda d: d.pop("camera"), "lacks 'camera'"),
    (lambda d: d["camera"].update(lens_mm="35"), "camera: lens_mm must be a number"),
    (lambda d: d["image"].update(width=W + 1), "image.width is 33 but the camera's is 32"),
    (lambda d: d["image"].update(file=7), "file must be a string"),
    (lambda d: d["depth"].update(channel=None), "channel must be a string"),
    (lambda d: d["splats"].update(count=-1), r"count must be in \[0"),
    (lambda d: d["regions"][0].update(index="0"), r"regions\[0\]: index must be an integer"),
    (lambda d: d["regions"][0].update(index=2**40), r"regions\[0\]: index must be in"),
    (lambda d: d["regions"][0].update(id="../x"), r"regions\[0\]: id '../x' has characters that are not allowed"),
    (lambda d: d["regions"][0].update(label="tree"), "label must be one of"),
    (lambda d: d["regions"][0].update(plane=[0, 0, "1", 0]), r"plane\[2\] must be a number"),
    (lambda d: d["regions"][0].update(plane=[0, 0, 0, 0]), "plane normal"),
    (lambda d: d["regions"][0].update(locked="false"), "locked must be true or false"),
    (lambda d: d["regions"][0].update(extra=1), "extra must be an object"),
    (lambda d: d["regions"][1].update(id="ground_001"), "id 'ground_001' appears twice"),
    (lambda d: d["regions"].append(5), r"regions\[2\] must be an object"),
])
def test_scene_json_fields_are_validated(folder, edit, message):
    _edit(folder, edit)
    with pytest.raises(InputError, match=message) as e:
        load_scene(folder)
    assert str(folder) in str(e.value)


@pytest.mark.parametrize("where, value", [
    ("mask", "../../../../etc/passwd"), ("mask", "/etc/passwd"), ("image", "../image.exr"),
    ("depth", "regions/../../x.exr"), ("splats", "/dev/zero"), ("extra", "..")])
def test_paths_outside_the_folder_are_refused(folder, where, value):
    def edit(d):
        if where == "mask":
            d["regions"][0]["mask"] = value
        elif where == "extra":
            d["splats"]["extra"] = value
        else:
            d[where]["file"] = value
    _edit(folder, edit)
    with pytest.raises(InputError, match="leads outside the folder|is absolute"):
        load_scene(folder)


def test_symlinks_out_of_the_folder_are_refused(folder, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("L", (W, H), 255).save(secret)
    (folder / "regions" / "ground_001.png").unlink()
    os.symlink(secret, folder / "regions" / "ground_001.png")
    with pytest.raises(InputError, match="leads outside the folder"):
        load_scene(folder)
    # A symlink that stays inside the folder is fine.
    (folder / "regions" / "ground_001.png").unlink()
    Image.new("L", (W, H), 255).save(folder / "mask_copy.png")
    os.symlink(folder / "mask_copy.png", folder / "regions" / "ground_001.png")
    assert load_scene(folder).regions[0].mask.all()


def test_region_mask_of_the_wrong_size(folder):
    Image.new("L", (10, 10), 255).save(folder / "regions" / "ground_001.png")
    with pytest.raises(InputError, match="region 'ground_001' mask is 10x10 but the scene is 32x24"):
        load_scene(folder)
    (folder / "regions" / "ground_001.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="ground_001"):
        load_scene(folder)


def _rewrite_extra(folder, **changes):
    with np.load(folder / "splats_extra.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(folder / "splats_extra.npz", **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"confidence": None}, r"lacks the array\(s\) 'confidence'"),
    ({"region_ids": None}, r"lacks the array\(s\) 'region_ids'"),
    ({"confidence": np.array(["a"] * 64)}, "must hold floating-point"),
    ({"region_ids": np.zeros(64, np.float32)}, "must hold signed integer or unsigned integer"),
    ({"scales": np.zeros((64, 2), np.float32)}, r"'scales' must have shape \[\*, 3\]"),
    ({"confidence": np.array([{"pickle": 1}] * 64, dtype=object)}, "Python objects"),
    ({"region_ids": np.full(64, -5, np.int32)}, "region_ids must be -1"),
    ({"region_splats_0": np.array([0, 10**6])}, r"region_splats_0 holds splat indices outside \[0, 64\)"),
    ({"confidence": np.full(64, np.nan, np.float32)}, "non-finite parameters .* in confidence"),
])
def test_splats_extra_is_validated(folder, changes, message):
    _rewrite_extra(folder, **changes)
    with pytest.raises(InputError, match=message):
        load_scene(folder)


def test_corrupt_or_mismatched_splats_extra(folder):
    _rewrite_extra(folder, confidence=np.ones(10, np.float32))
    back = load_scene(folder)  # another count than the PLY (the PLY was edited elsewhere): ignored, with a note
    assert any("another splat count" in n for n in back.meta["load_notes"])
    _rewrite_extra(folder, confidence=np.ones(64, np.float32), future_sh=np.zeros((64, 45), np.float32))
    back = load_scene(folder)
    assert any("future_sh" in n for n in back.meta["load_notes"])
    data = (folder / "splats_extra.npz").read_bytes()
    (folder / "splats_extra.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="splats_extra.npz is not a readable .npz archive"):
        load_scene(folder)
    (folder / "splats_extra.npz").write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(InputError, match="splats_extra.npz"):
        load_scene(folder)
    with zipfile.ZipFile(folder / "splats_extra.npz", "w") as zf:
        zf.writestr("confidence.npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}\n")
    with pytest.raises(InputError, match="splats_extra.npz"):
        load_scene(folder)


def test_special_files_in_a_scene_are_refused(folder):
    (folder / "depth.exr").unlink()
    os.mkfifo(folder / "depth.exr")
    with pytest.raises(InputError, match="FIFO"):
        load_scene(folder)
    (folder / "scene.json").unlink()
    os.mkfifo(folder / "scene.json")
    with pytest.raises(InputError, match="not an AnchorStage scene|FIFO"):
        load_scene(folder)
