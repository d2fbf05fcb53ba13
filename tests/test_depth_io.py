# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth maps from .npy, .exr (single channel, Blender's Depth.Z) and 16-bit PNG; masking and resampling."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from anchorstage import InputError, load_depth
from gt_fixture import FIXTURE_DIR, load_view

H, W = 30, 40


def _depth():
    yy, xx = np.mgrid[0:H, 0:W]
    return (2.0 + 0.05 * xx + 0.01 * yy).astype(np.float32)


def _exr(path, channels, parts=None):
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if parts:
        OpenEXR.File([OpenEXR.Part(dict(header), {k: np.ascontiguousarray(v) for k, v in ch.items()}, name=n)
                      for n, ch in parts]).write(str(path))
    else:
        OpenEXR.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(path))


def test_npy_exact(tmp_path):
    d = _depth()
    np.save(tmp_path / "d.npy", d)
    got, notes = load_depth(tmp_path / "d.npy", expected_hw=(H, W))
    assert got.dtype == np.float32 and np.array_equal(got, d) and notes == []
    np.save(tmp_path / "d3.npy", d[None])  # [1, H, W] is accepted too
    assert np.array_equal(load_depth(tmp_path / "d3.npy")[0], d)


def test_fixture_depth_loads_with_sky_masked():
    got, notes = load_depth(FIXTURE_DIR / "v0_depth.npy")
    want = load_view("v0")["depth_m"]
    assert np.array_equal(got, want) and np.isinf(got).any()
    assert "masked as sky" in notes[0]


@pytest.mark.parametrize("layout", ["single", "Z", "blender", "Y", "R"])
def test_exr_channels(tmp_path, layout):
    d = _depth()
    path = tmp_path / "d.exr"
    if layout == "single":
        _exr(path, {"depth_whatever": d})
    elif layout == "blender":  # Blender's multilayer file: one part per pass
        rgb = np.zeros_like(d)
        _exr(path, None, parts=[("ViewLayer.Combined", {f"ViewLayer.Combined.{c}": rgb for c in "RGBA"}),
                                ("ViewLayer.Depth", {"ViewLayer.Depth.Z": np.where(d > 2.5, 1e10, d).astype(np.float32)})])
    else:
        _exr(path, {layout: d, "G": np.zeros_like(d), "B": np.zeros_like(d)} if layout == "R" else {layout: d, "A": d * 0})
    got, notes = load_depth(path)
    if layout == "blender":
        assert np.all(np.isinf(got[d > 2.5])) and np.array_equal(got[d <= 2.5], d[d <= 2.5])
    else:
        assert np.array_equal(got, d)


def test_exr_without_depth_channel(tmp_path):
    _exr(tmp_path / "c.exr", {"G": _depth(), "B": _depth()})
    with pytest.raises(InputError, match="no depth channel"):
        load_depth(tmp_path / "c.exr")


def test_png_millimetres(tmp_path):
    d = _depth()
    mm = np.round(d * 1000).astype(np.uint16)
    mm[0, 0] = 0  # no depth
    Image.fromarray(mm).save(tmp_path / "d.png")
    got, notes = load_depth(tmp_path / "d.png")
    assert np.isinf(got[0, 0])
    np.testing.assert_allclose(got[1:], mm[1:] / 1000.0, rtol=1e-6)
    Image.fromarray((d * 50).astype(np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(InputError, match="16-bit"):
        load_depth(tmp_path / "d8.png")


def test_invalid_values_become_inf(tmp_path):
    d = _depth()
    d[0, :5] = [np.nan, np.inf, -np.inf, 0.0, -3.0]
    d[1, 0] = 1e10  # Blender's background
    d[1, 1] = 1500.0  # beyond the default far limit
    d[1, 2] = 60.0
    np.save(tmp_path / "d.npy", d)
    got, notes = load_depth(tmp_path / "d.npy")
    assert np.all(np.isinf(got[0, :5])) and np.isinf(got[1, 0]) and np.isinf(got[1, 1]) and got[1, 2] == 60.0
    assert "7 pixels" in notes[0]
    got, _ = load_depth(tmp_path / "d.npy", far_limit_m=50.0)
    assert np.isinf(got[1, 2])


def test_resample_only_when_the_aspect_matches(tmp_path):
    d = _depth()
    np.save(tmp_path / "d.npy", d)
    got, notes = load_depth(tmp_path / "d.npy", expected_hw=(2 * H, 2 * W))
    assert got.shape == (2 * H, 2 * W) and "resampled from 40x30 to 80x60" in notes[0]
    assert np.array_equal(got[::2, ::2], d)  # nearest: no invented depths between edges
    assert set(np.unique(got)) <= set(np.unique(d))
    with pytest.raises(InputError, match="aspect ratios differ"):
        load_depth(tmp_path / "d.npy", expected_hw=(H, 2 * W))


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("folder", "is not a file"), ("txt", "unknown depth format"),
    ("all_nan", "no valid depth"), ("corrupt_npy", "cannot be read"), ("corrupt_exr", "cannot be read as EXR"),
    ("rgb_npy", "2-D"), ("strings", "numbers"),
])
def test_bad_depth_files(tmp_path, case, message):
    path = tmp_path / "d.npy"
    if case == "folder":
        path = tmp_path / "dir.npy"
        path.mkdir()
    elif case == "txt":
        path = tmp_path / "d.txt"
        path.write_text("1 2 3")
    elif case == "all_nan":
        np.save(path, np.full((H, W), np.nan, np.float32))
    elif case == "corrupt_npy":
        path.write_bytes(b"\x93NUMPY garbage")
    elif case == "corrupt_exr":
        path = tmp_path / "d.exr"
        path.write_bytes(b"not an exr")
    elif case == "rgb_npy":
        np.save(path, np.ones((H, W, 3), np.float32))
    elif case == "strings":
        np.save(path, np.array([["a", "b"]]))
    with pytest.raises(InputError, match=message):
        load_depth(path)
