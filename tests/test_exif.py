# SPDX-License-Identifier: GPL-3.0-or-later
"""EXIF intrinsics: JPEGs with EXIF built in-test with Pillow, read back through load_image."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

from anchorstage import load_image, read_intrinsics
from anchorstage.exif import DEFAULT_FOCAL_35MM, intrinsics_from_exif

TAG = {name: code for code, name in ExifTags.TAGS.items()}


def _jpeg(path, w=60, h=40, base=None, sub=None, raw=None):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    if raw is not None:
        im.save(path, exif=raw)
        return path
    ex = Image.Exif()
    for k, v in (base or {}).items():
        ex[TAG[k]] = v
    ifd = ex.get_ifd(ExifTags.IFD.Exif)
    for k, v in (sub or {}).items():
        ifd[TAG[k]] = v
    im.save(path, exif=ex.tobytes())
    return path


def test_no_exif_uses_documented_default(tmp_path):
    p = tmp_path / "plain.jpg"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(p)
    img = load_image(p)
    intr = read_intrinsics(img)
    assert intr.source == "default"
    cam = intr.camera(img.width, img.height)
    assert cam.focal_35mm_equiv == pytest.approx(DEFAULT_FOCAL_35MM)
    assert any("50 mm-equivalent" in n for n in intr.notes)
    # Default pose: origin, looking down +Y, Z up.
    np.testing.assert_allclose(cam.forward, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(cam.up, [0, 0, 1], atol=1e-12)


def test_corrupt_exif_block_falls_back_with_note(tmp_path):
    raw = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x0f\x00\x02\xff\xff\xff\xff"
    p = _jpeg(tmp_path / "corrupt.jpg", raw=raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = load_image(p)
        intr = read_intrinsics(img)
    assert intr.source == "default"
    assert any("corrupt" in n for n in intr.notes)


def test_corrupt_values_are_skipped_with_notes():
    tags = {"FocalLength": IFDRational(35, 0), "FocalLengthIn35mmFilm": "abc", "Orientation": 42}
    intr = intrinsics_from_exif(tags, 300, 200)
    assert intr.source == "default"
    assert intr.orientation is None
    joined = " ".join(intr.notes)
    assert "FocalLength" in joined and "FocalLengthIn35mmFilm" in joined and "Orientation" in joined


def test_focal_and_35mm_equivalent_give_real_lens_and_sensor(tmp_path):
    # A phone: 4.25 mm lens, 26 mm equivalent, 4:3 image.
    p = _jpeg(tmp_path / "phone.jpg", 80, 60, base={"Make": "Apple", "Model": "iPhone"},
              sub={"FocalLength": IFDRational(425, 100), "FocalLengthIn35mmFilm": 26})
    img = load_image(p)
    intr = read_intrinsics(img)
    assert intr.source == "exif-35mm"
    assert intr.lens_mm == pytest.approx(4.25)
    assert (intr.make, intr.model) == ("Apple", "iPhone")
    cam = intr.camera(img.width, img.height)
    assert cam.focal_35mm_equiv == pytest.approx(26.0)
    # Diagonal rule: sensor diagonal = 43.27 * 4.25 / 26 mm; the long side is 4/5 of it.
    assert intr.sensor_width_mm == pytest.approx(math.hypot(36, 24) * 4.25 / 26 * 0.8)


def test_35mm_only(tmp_path):
    p = _jpeg(tmp_path / "eq.jpg", 60, 40, sub={"FocalLengthIn35mmFilm": 35})
    img = load_image(p)
    intr = read_intrinsics(img)
    assert intr.source == "exif-35mm"
    assert intr.lens_mm == pytest.approx(35.0)
    # 3:2 image: the equivalent full-frame sensor is exactly 36 mm wide.
    assert intr.sensor_width_mm == pytest.approx(36.0)
    assert intr.camera(img.width, img.height).fov_deg[0] == pytest.approx(2 * math.degrees(math.atan(18 / 35)))


def test_focal_plane_resolution(tmp_path):
    # 60 px over a 6 mm sensor: 10 px/mm = 254 px/inch.
    p = _jpeg(tmp_path / "fp.jpg", 60, 40, sub={"FocalLength": IFDRational(12, 1),
                                               "FocalPlaneXResolution": IFDRational(254, 1),
                                               "FocalPlaneYResolution": IFDRational(254, 1),
                                               "FocalPlaneResolutionUnit": 2})
    intr = read_intrinsics(load_image(p))
    assert intr.source == "exif-focal-plane"
    assert intr.sensor_width_mm == pytest.approx(6.0)
    assert intr.camera(60, 40).focal_px == pytest.approx(12 / 6 * 60)


def test_focal_plane_in_centimetres_and_capture_size():
    # Stored image resized to 600 px but captured at 6000 px over 24 mm (2500 px/cm).
    tags = {"FocalLength": 18.0, "FocalPlaneXResolution": 2500.0, "FocalPlaneResolutionUnit": 3,
            "ExifImageWidth": 6000, "ExifImageHeight": 4000}
    intr = intrinsics_from_exif(tags, 600, 400)
    assert intr.source == "exif-focal-plane"
    assert intr.sensor_width_mm == pytest.approx(24.0)


def test_rotated_orientation_keeps_intrinsics(tmp_path):
    # Stored landscape 60x40, orientation 6 (rotate 90° CW): upright image is 40x60 portrait.
    sub = {"FocalLength": IFDRational(12, 1), "FocalPlaneXResolution": IFDRational(254, 1),
           "FocalPlaneResolutionUnit": 2}
    p = _jpeg(tmp_path / "rot.jpg", 60, 40, base={"Orientation": 6}, sub=sub)
    img = load_image(p)
    assert (img.width, img.height) == (40, 60)
    intr = read_intrinsics(img)
    assert intr.orientation == 6
    assert intr.source == "exif-focal-plane"
    # The sensor's long side (6 mm across 60 captured px) stays the long side after rotation.
    assert intr.sensor_width_mm == pytest.approx(6.0)
    cam = intr.camera(img.width, img.height)
    assert cam.focal_px == pytest.approx(12 / 6 * 60)  # measured against the long (vertical) side
    upright = _jpeg(tmp_path / "upright.jpg", 60, 40, sub=sub)
    cam_up = read_intrinsics(load_image(upright)).camera(60, 40)
    assert cam.fov_deg[0] == pytest.approx(cam_up.fov_deg[1])


def test_make_model_sensor_table():
    intr = intrinsics_from_exif({"Make": "Canon", "Model": "Canon EOS 5D Mark IV", "FocalLength": 50.0}, 600, 400)
    assert intr.source == "exif-focal+sensor"
    assert intr.sensor_width_mm == pytest.approx(36.0)


def test_focal_without_sensor_falls_back_with_note():
    intr = intrinsics_from_exif({"Make": "Obscure", "FocalLength": 7.0}, 600, 400)
    assert intr.source == "default"
    assert any("no sensor size" in n for n in intr.notes)


def test_implausible_focal_plane_is_ignored():
    tags = {"FocalLength": 50.0, "FocalPlaneXResolution": 1.0, "FocalPlaneResolutionUnit": 2}
    intr = intrinsics_from_exif(tags, 6000, 4000)  # would be a 152 m sensor
    assert intr.source == "default"
    assert any("focal-plane" in n for n in intr.notes)


def test_json_record_names_the_source():
    d = intrinsics_from_exif({"FocalLengthIn35mmFilm": 28}, 300, 200).to_json_dict()
    assert d["source"] == "exif-35mm" and d["focal_35mm"] == pytest.approx(28.0)


def test_heic_without_reader_says_which_package(tmp_path, monkeypatch):
    import anchorstage.image_io as image_io
    from anchorstage import InputError

    monkeypatch.setattr(image_io, "_register_heif", lambda: False)  # as on a machine without pillow-heif
    p = tmp_path / "photo.heic"
    p.write_bytes(b"\x00\x00\x00\x18ftypheic")
    with pytest.raises(InputError, match="pillow-heif"):
        load_image(p)
