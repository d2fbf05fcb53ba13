# SPDX-License-Identifier: GPL-3.0-or-later
"""The conditioning stack: built from a refresh, saved as a folder and read back bit for bit through the
validated readers; malformed folders and values are refused with messages naming the input."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

import anchorstage as a
from anchorstage.conditioning import Conditioning, load_conditioning, save_conditioning
from gt_fixture import load_view


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


@functools.lru_cache(maxsize=None)
def _refresh():
    return a.refresh(_stage(), load_view("orbit")["camera"], locks=["facade_001"], device="cpu")


def _cond(**changes) -> Conditioning:
    rng = np.random.default_rng(0)
    cam = load_view("v0")["camera"].with_resolution(24, 16)
    depth = rng.uniform(1, 20, (16, 24)).astype(np.float32)
    depth[0, :5] = np.inf
    mask = np.zeros((16, 24), bool)
    mask[4:9, 6:14] = True
    locked = np.zeros_like(mask)
    locked[10:, :] = True
    n = rng.normal(size=(16, 24, 3)).astype(np.float32)
    kw = dict(image=rng.random((16, 24, 3), dtype=np.float32), depth_m=depth,
              normal_cam=n / np.linalg.norm(n, axis=-1, keepdims=True), mask=mask, locked=locked, camera=cam,
              style_prompt="weathered brick, überall", seed=12345678901, strength=0.85,
              reference=rng.random((10, 12, 3), dtype=np.float32), meta={"locked_regions": ["facade_001"]})
    kw.update(changes)
    return Conditioning(**kw)


def test_folder_round_trip_is_bit_exact(tmp_path):
    cond = _cond()
    folder = save_conditioning(cond, tmp_path / "cond")
    assert sorted(p.name for p in folder.iterdir()) == sorted(a.conditioning.CONDITIONING_FILES)
    back = load_conditioning(folder)
    for name in ("image", "depth_m", "normal_cam", "mask", "locked", "reference"):
        assert np.array_equal(getattr(back, name), getattr(cond, name)), name
        assert getattr(back, name).dtype == getattr(cond, name).dtype
    assert np.isinf(back.depth_m[0, 0])
    assert (back.style_prompt, back.negative_prompt, back.seed, back.strength, back.meta) == \
           (cond.style_prompt, cond.negative_prompt, cond.seed, cond.strength, cond.meta)
    assert np.allclose(back.camera.world_from_cam, cond.camera.world_from_cam) and back.camera.resolution == (24, 16)
    # saving again replaces the folder; without a reference there is no reference.exr
    save_conditioning(_cond(reference=None), folder)
    assert not (folder / "reference.exr").exists() and load_conditioning(folder).reference is None


def test_from_a_refresh():
    res = _refresh()
    cond = a.condition(res, _stage(), prompt="a brick wall", seed=7)
    assert np.array_equal(cond.image, res.witness)
    assert np.array_equal(cond.mask, res.void & ~res.locks) and cond.mask.any()
    assert np.array_equal(cond.locked, res.locks) and cond.locked.any()
    # the void's depth is the background the fill continued (the warp knows none there; sky stays inf)
    assert not np.isfinite(res.warp.depth_m[cond.mask]).any()
    assert np.isfinite(cond.depth_m[cond.mask]).mean() > 0.5
    filled = np.isfinite(res.fill_depth_m)
    assert np.array_equal(cond.depth_m[filled], res.fill_depth_m[filled])
    assert np.allclose(np.linalg.norm(cond.normal_cam, axis=-1), 1.0, atol=1e-4)
    assert cond.reference is not None and cond.reference.shape == (180, 320, 3)
    assert cond.meta["locked_regions"] == ["facade_001"] and cond.seed == 7
    assert a.condition(res).reference is None


@pytest.mark.parametrize("change, match", [
    ({"image": np.zeros((16, 24, 3), np.float64) + np.nan}, "image has non-finite"),
    ({"depth_m": np.zeros((16, 24), np.float32)}, "depth_m must be > 0"),
    ({"mask": np.zeros((16, 24), np.uint8)}, "mask must be a bool array"),
    ({"locked": np.zeros((15, 24), bool)}, r"locked is \[15, 24\], expected \[16, 24\]"),
    ({"seed": -1}, "seed must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"strength": 0.0}, r"strength must be a number in \(0, 1\]"),
    ({"style_prompt": "x" * 5000}, "style_prompt is 5,000 characters"),
    ({"meta": {"x": object()}}, "meta must be JSON-serialisable"),
    ({"camera": "cam.json"}, "camera must be an anchorstage.Camera"),
])
def test_bad_values_are_refused(change, match):
    with pytest.raises(a.InputError, match=match):
        _cond(**change)


def _rewrite_json(folder, **changes):
    doc = json.loads((folder / "conditioning.json").read_text())
    doc.update(changes)
    (folder / "conditioning.json").write_text(json.dumps(doc))


def test_bad_folders_are_refused(tmp_path):
    import OpenEXR

    good = save_conditioning(_cond(), tmp_path / "good")

    def broken(name, fn):
        import shutil

        folder = tmp_path / name
        shutil.copytree(good, folder)
        fn(folder)
        return folder

    cases = [
        (broken("no_json", lambda f: (f / "conditioning.json").unlink()), "holds no conditioning.json"),
        (broken("newer", lambda f: _rewrite_json(f, format_version=99)), "newer than this AnchorStage reads"),
        (broken("format", lambda f: _rewrite_json(f, format="something")), "format must be"),
        (broken("size", lambda f: _rewrite_json(f, size=[24, 17])), "camera.json is 24x16, the conditioning is 24x17"),
        (broken("strength", lambda f: _rewrite_json(f, strength=2)), "strength must be ≤ 1"),
        (broken("seed", lambda f: _rewrite_json(f, seed="7")), "seed must be an integer"),
        (broken("no_depth", lambda f: (f / "depth.exr").unlink()), "depth.exr is missing"),
        (broken("mask_size", lambda f: __import__("PIL.Image").Image.new("L", (5, 5)).save(f / "mask.png")),
         "mask.png is 5x5"),
        (broken("half", lambda f: OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                                               {"Z": np.ones((16, 24), np.float16)}).write(str(f / "depth.exr"))),
         "32-bit float"),
        (broken("channels", lambda f: OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                                                   {"Y": np.ones((16, 24), np.float32)}).write(str(f / "normal.exr"))),
         "normal.exr lacks channel"),
        (broken("garbage", lambda f: (f / "image.exr").write_bytes(b"not an exr")), "image.exr"),
    ]
    for folder, match in cases:
        with pytest.raises(a.InputError, match=match):
            load_conditioning(folder)
    with pytest.raises(a.InputError, match="is not a folder"):
        load_conditioning(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(a.OutputError, match="holds no conditioning"):
        save_conditioning(_cond(), other)
    assert (other / "notes.txt").read_text() == "mine"
