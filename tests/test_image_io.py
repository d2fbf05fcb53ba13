# SPDX-License-Identifier: GPL-3.0-or-later
"""Photo input: formats, colour decoding, orientation, odd modes, and clear errors."""

import numpy as np
import OpenEXR
import pytest
from PIL import Image

from anchorstage import InputError, load_image, read_intrinsics
from anchorstage.image_io import linear_to_srgb, save_png, srgb_to_linear


def _gradient(h=48, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), (xx + yy) * 255 // (w + h - 2)], axis=-1).astype(np.uint8)


def test_srgb_round_trip():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)


def test_png_decodes_to_linear_and_back(tmp_path):
    a = _gradient()
    Image.fromarray(a).save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.rgb_linear.dtype == np.float32 and img.rgb_linear.shape == (48, 64, 3)
    np.testing.assert_allclose(img.rgb_linear, srgb_to_linear(a / 255.0), atol=1e-6)
    save_png(tmp_path / "back.png", img.rgb_linear)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), a)


@pytest.mark.parametrize("mode,note", [("L", "grayscale"), ("RGBA", "alpha channel dropped"), ("LA", "alpha")])
def test_odd_modes_become_rgb_with_a_note(tmp_path, mode, note):
    Image.fromarray(_gradient()).convert(mode).save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.rgb_linear.shape == (48, 64, 3)
    assert any(note in n for n in img.notes), img.notes


def test_16bit_grayscale_keeps_its_precision(tmp_path):
    a = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(img.rgb_linear[..., 1], srgb_to_linear(a / 65535.0), atol=1e-6)


@pytest.mark.parametrize("naming", ["plain", "blender"])
def test_exr_is_linear_already(tmp_path, naming):
    rgb = np.random.default_rng(0).random((8, 12, 3)).astype(np.float32) * 4.0  # HDR values survive
    prefix = "" if naming == "plain" else "ViewLayer.Combined."
    chans = {f"{prefix}{c}": np.ascontiguousarray(rgb[..., i]) for i, c in enumerate("RGB")}
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, chans).write(str(tmp_path / "i.exr"))
    np.testing.assert_array_equal(load_image(tmp_path / "i.exr").rgb_linear, rgb)


def test_heic_photo_with_exif(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    a = _gradient()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90° clockwise: the loaded pixels must be upright (portrait)
    exif.get_ifd(0x8769)[0xA405] = 28  # FocalLengthIn35mmFilm
    Image.fromarray(a).save(tmp_path / "photo.heic", exif=exif.tobytes(), quality=100)
    img = load_image(tmp_path / "photo.heic")
    assert img.rgb_linear.shape == (64, 48, 3)
    upright = np.rot90(srgb_to_linear(a / 255.0), k=-1)
    assert np.abs(img.rgb_linear - upright).mean() < 0.02  # lossy codec
    intr = read_intrinsics(img)
    assert intr.source == "exif-35mm" and intr.focal_35mm == pytest.approx(28.0)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InputError, match="missing.png.*does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InputError, match="notes.png"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(InputError, match="is not a file"):
        load_image(tmp_path)
    (tmp_path / "bad.exr").write_bytes(b"v/1\x01garbage")
    with pytest.raises(InputError, match="bad.exr"):
        load_image(tmp_path / "bad.exr")
