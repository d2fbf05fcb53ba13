# SPDX-License-Identifier: GPL-3.0-or-later
"""Photos, depth maps and EXRs from outside: sizes checked from the header before anything is allocated."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PIL import Image

from anchorstage import InputError, load_depth, load_image, read_exr
from anchorstage.npy_io import ArraySpec, read_npz
from untrusted_support import finishes_within, npy_bytes, patch_exr_data_window, png_bytes, write_exr


def test_decompression_bomb_png_is_an_input_error(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_bytes(100_000, 100_000, bit_depth=1))  # 10^10 pixels declared in a ~70-byte file
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="bomb.png"):
        load_image(p)
    assert time.perf_counter() - t0 < 1.0


def test_pixel_limit_is_checked_from_the_header_and_can_be_raised(tmp_path, monkeypatch):
    p = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(p)
    monkeypatch.setenv("ANCHORSTAGE_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(InputError, match=r"\(40x30\): 1,200 pixels exceeds the limit of 1,000 \(set ANCHORSTAGE_MAX_IMAGE_PIXELS"):
        load_image(p)
    monkeypatch.setenv("ANCHORSTAGE_MAX_IMAGE_PIXELS", "1200")
    img = load_image(p)
    assert img.rgb_linear.shape == (30, 40, 3) and img.rgb_linear.dtype == np.float32


def test_eight_bit_decoding_is_unchanged_by_the_lookup_table(tmp_path):
    from anchorstage.image_io import srgb_to_linear

    p = tmp_path / "ramp.png"
    ramp = np.tile(np.arange(256, dtype=np.uint8), (3, 1))
    Image.fromarray(np.stack([ramp] * 3, axis=-1)).save(p)
    got = load_image(p).rgb_linear
    assert np.array_equal(got, srgb_to_linear(np.stack([ramp] * 3, axis=-1).astype(np.float32) / 255.0))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "fifo", "dev_zero", "folder"])
def test_broken_and_special_photos(tmp_path, kind):
    p = tmp_path / "photo.png"
    if kind == "truncated":
        Image.new("RGB", (64, 64), (1, 2, 3)).save(p)
        p.write_bytes(p.read_bytes()[:60])
    elif kind == "garbage":
        p.write_bytes(os.urandom(300))
    elif kind == "fifo":
        os.mkfifo(p)
    elif kind == "dev_zero":
        p = "/dev/zero"
    elif kind == "folder":
        p = tmp_path
    done, result = finishes_within(5.0, lambda: load_image(p))
    assert done and isinstance(result, InputError), result


def test_npz_saved_under_an_npy_name(tmp_path):
    p = tmp_path / "depth.npy"
    with open(p, "wb") as f:
        np.savez(f, depth=np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match=r"is an \.npz \(zip\) archive, not a single \.npy array"):
        load_depth(p)


@pytest.mark.parametrize("header, data, message", [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", b"\0" * 64,
     r"declares shape \[1000000, 1000000\] of float32 \(4,000,000,000,000 bytes\) but the file holds 64 bytes"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", b"\0" * 10, "truncated or corrupt"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8, "Python objects"),
    ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 4, "must hold"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }", b"", "invalid shape"),
    ("{'descr': '<f4', 'fortran_order': False}", b"", "malformed"),
    ("__import__('os').system('true')", b"", "malformed"),
])
def test_npy_headers_are_checked_before_allocating(tmp_path, header, data, message):
    p = tmp_path / "depth.npy"
    p.write_bytes(npy_bytes(header, data))
    with pytest.raises(InputError, match=message):
        load_depth(p)


def test_npy_pixel_limit(tmp_path, monkeypatch):
    np.save(tmp_path / "d.npy", np.ones((30, 40), np.float32))
    monkeypatch.setenv("ANCHORSTAGE_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(InputError, match="ANCHORSTAGE_MAX_IMAGE_PIXELS"):
        load_depth(tmp_path / "d.npy")


def test_sixteen_bit_png_depth_limits(tmp_path, monkeypatch):
    p = tmp_path / "d.png"
    Image.fromarray(np.full((30, 40), 2500, np.uint16)).save(p)
    depth, _ = load_depth(p)
    assert depth.shape == (30, 40) and np.allclose(depth, 2.5)
    monkeypatch.setenv("ANCHORSTAGE_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(InputError, match="ANCHORSTAGE_MAX_IMAGE_PIXELS"):
        load_depth(p)
    monkeypatch.delenv("ANCHORSTAGE_MAX_IMAGE_PIXELS")
    p.write_bytes(png_bytes(200_000, 200_000, bit_depth=16))
    with pytest.raises(InputError):
        load_depth(p)


def test_exr_data_window_is_checked_before_pixels(tmp_path):
    p = write_exr(tmp_path / "d.exr", {"Z": np.ones((3, 5), np.float32)})
    patch_exr_data_window(p, 0, 0, 999_999, 999_999)
    for reader in (load_depth, load_image, read_exr):
        with pytest.raises(InputError, match=r"part 0 \(1000000x1000000\): 1,000,000,000,000 pixels exceeds"):
            reader(p)
    patch_exr_data_window(p, 10, 10, 0, 0)
    with pytest.raises(InputError, match="empty data window|cannot be read as EXR"):
        read_exr(p)


def test_exr_total_samples_limit(tmp_path, monkeypatch):
    p = write_exr(tmp_path / "many.exr", {f"c{i}": np.zeros((10, 10), np.float16) for i in range(8)})
    monkeypatch.setenv("ANCHORSTAGE_MAX_EXR_SAMPLES", "500")
    with pytest.raises(InputError, match=r"800 channel samples exceeds the limit of 500 \(set ANCHORSTAGE_MAX_EXR_SAMPLES"):
        read_exr(p)


def test_depth_api_arguments(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((3, 4), np.float32))
    for kwargs, message in (({"expected_hw": "3x4"}, "expected_hw"), ({"expected_hw": (3.0, 4)}, "two positive integers"),
                            ({"expected_hw": (10**6, 10**6)}, "ANCHORSTAGE_MAX_IMAGE_PIXELS"),
                            ({"far_limit_m": "far"}, "far_limit_m"), ({"far_limit_m": float("nan")}, "far_limit_m")):
        with pytest.raises(InputError, match=message):
            load_depth(tmp_path / "d.npy", **kwargs)
    for path in (None, 3, b"d.npy", "", "a\0b"):
        with pytest.raises(InputError):
            load_depth(path)


def test_npz_members_are_checked(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, a=np.ones(4, np.float32), b=np.array([{"x": 1}], dtype=object))
    specs = {"a": ArraySpec("f", (4,))}
    got, unknown = read_npz(p, "extra", specs)
    assert np.array_equal(got["a"], np.ones(4)) and unknown == ["b"]  # never unpickled
    with pytest.raises(InputError, match="Python objects"):
        read_npz(p, "extra", {**specs, "b": ArraySpec("f", (1,))})
    with pytest.raises(InputError, match=r"array 'a' must have shape \[5\]"):
        read_npz(p, "extra", {"a": ArraySpec("f", (5,))})
    with pytest.raises(InputError, match=r"lacks the array\(s\) 'c'"):
        read_npz(p, "extra", {**specs, "c": ArraySpec("f", (1,))})
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(InputError, match="not a readable .npz archive"):
        read_npz(p, "extra", specs)


def test_npz_families_of_any_shape_are_bounded(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, stored__f_rest=np.zeros((4, 45), np.float32), stored__id=np.arange(4))
    got, _ = read_npz(p, "extra", {}, {"stored__": ArraySpec("fiub", None, required=False, max_count=4 * 64)})
    assert got["stored__f_rest"].shape == (4, 45) and got["stored__id"].shape == (4,)
    with pytest.raises(InputError, match=r"'stored__f_rest' has 180 elements \(at most 100\)"):
        read_npz(p, "extra", {}, {"stored__": ArraySpec("fiub", None, required=False, max_count=100)})
