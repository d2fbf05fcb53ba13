# SPDX-License-Identifier: GPL-3.0-or-later
"""JSON from outside (camera files, camera lists): limits, special files, exact types, clear messages."""

from __future__ import annotations

import json
import os
import time

import pytest

from anchorstage import Camera, InputError, load_camera_json
from anchorstage.export import load_camera_list
from anchorstage.safe_json import load_json, parse_json
from untrusted_support import finishes_within, tiny_camera


@pytest.fixture
def cam_doc():
    return tiny_camera().to_json_dict()


def _write(tmp_path, doc, name="cam.json"):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_deep_nesting_is_refused_by_the_limit_not_by_recursion(tmp_path):
    p = _write(tmp_path, "[" * 100_000 + "]" * 100_000)
    t0 = time.perf_counter()
    with pytest.raises(InputError, match=r"100,000 levels of nesting exceeds the limit of 64 \(set ANCHORSTAGE_MAX_JSON_DEPTH"):
        load_camera_json(p)
    assert time.perf_counter() - t0 < 2.0
    # Brackets inside strings are not nesting.
    assert parse_json(json.dumps({"s": "[" * 1000}), "doc") == {"s": "[" * 1000}


def test_depth_limit_is_configurable(monkeypatch):
    doc = "[" * 70 + "]" * 70
    with pytest.raises(InputError, match="JSON_DEPTH"):
        parse_json(doc, "doc")
    monkeypatch.setenv("ANCHORSTAGE_MAX_JSON_DEPTH", "100")
    assert parse_json(doc, "doc") is not None


@pytest.mark.parametrize("text, message", [
    ('{"lens_mm": ' + "9" * 5000 + "}", r"\(5000 digits\) does not fit in 64 bits"),
    ('{"lens_mm": 1e400}', "too large for a double"),
    ('{"lens_mm": NaN}', "JSON has no NaN"),
    ('{"lens_mm": -Infinity}', "JSON has no NaN or Infinity"),
    ("\xff\xfe{}", "not UTF-8"),
    ('{"lens_mm": 35,', "not valid JSON"),
])
def test_numbers_and_text_that_json_libraries_choke_on(tmp_path, text, message):
    p = tmp_path / "cam.json"
    p.write_bytes(text.encode("latin1"))
    with pytest.raises(InputError, match=message):
        load_camera_json(p)


def test_size_limit_is_checked_before_reading(tmp_path, monkeypatch):
    p = _write(tmp_path, {"pad": "x" * 5000})
    monkeypatch.setenv("ANCHORSTAGE_MAX_JSON_BYTES", "1000")
    with pytest.raises(InputError, match=r"exceeds the limit of 1,000 \(set ANCHORSTAGE_MAX_JSON_BYTES"):
        load_json(p, "camera file")


@pytest.mark.parametrize("kind", ["fifo", "dev_zero", "folder", "missing"])
def test_special_files_are_refused_without_hanging(tmp_path, kind):
    p = {"fifo": tmp_path / "cam.json", "dev_zero": "/dev/zero", "folder": tmp_path,
         "missing": tmp_path / "nope.json"}[kind]
    if kind == "fifo":
        os.mkfifo(p)
    done, result = finishes_within(5.0, lambda: load_camera_json(p))
    assert done, "reading a special file hung"
    assert isinstance(result, InputError)
    expected = {"fifo": "FIFO", "dev_zero": "character device", "folder": "folder", "missing": "does not exist"}[kind]
    assert expected in str(result)
    # Camera lists go through the same loader.
    done, result = finishes_within(5.0, lambda: load_camera_list(p))
    assert done and isinstance(result, InputError)


@pytest.mark.parametrize("field, value, message", [
    ("lens_mm", True, r"lens_mm must be a number \(got true \(a boolean\)\)"),
    ("lens_mm", "50", r"lens_mm must be a number \(got '50' \(a string\)\)"),
    ("lens_mm", None, "lens_mm must be a number"),
    ("lens_mm", 0, "lens_mm must be > 0"),
    ("sensor_width_mm", False, "sensor_width_mm must be a number"),
    ("shift_x", "0.1", "shift_x must be a number"),
    ("clip_start", -1, "clip_start must be > 0"),
    ("sensor_fit", 1, "sensor_fit must be a string"),
    ("sensor_fit", "DIAGONAL", "sensor_fit must be one of"),
    ("resolution", [1920.0, 1080], "resolution must be .width, height., two positive integers"),
    ("resolution", [True, 1080], "two positive integers"),
    ("resolution", "1920x1080", "resolution must be a list"),
    ("resolution", [1920], "resolution must have 2 items"),
    ("resolution", [0, 1080], "two positive integers"),
    ("resolution", [2**40, 2**40], "two positive integers"),
    ("resolution", [120000, 120000], r"resolution 120000x120000: 14,400,000,000 pixels exceeds the limit of "
                                     r"67,108,864 \(set ANCHORSTAGE_MAX_RENDER_PIXELS"),
    ("matrix_world", [[1, 0, 0, 0]] * 3, "matrix_world must have 4 items"),
    ("matrix_world", [[1, 0, 0, "0"], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], r"cam.json': matrix_world\[0\]\[3\] must be a number \(got '0' \(a string\)\)"),
    ("matrix_world", [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, True]], "must be a number"),
    ("matrix_world", [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "not rigid"),
])
def test_camera_fields_are_checked_by_exact_type_and_range(tmp_path, cam_doc, field, value, message):
    cam_doc[field] = value
    with pytest.raises(InputError, match=message) as e:
        load_camera_json(_write(tmp_path, cam_doc))
    assert "cam.json" in str(e.value)


def test_missing_and_non_object(tmp_path, cam_doc):
    del cam_doc["lens_mm"]
    with pytest.raises(InputError, match="missing field 'lens_mm'"):
        load_camera_json(_write(tmp_path, cam_doc))
    with pytest.raises(InputError, match=r"expected a JSON object, got a list of 0"):
        load_camera_json(_write(tmp_path, []))


def test_the_render_pixel_limit_can_be_raised(tmp_path, cam_doc, monkeypatch):
    cam_doc["resolution"] = [10000, 10000]
    p = _write(tmp_path, cam_doc)
    with pytest.raises(InputError, match="ANCHORSTAGE_MAX_RENDER_PIXELS"):
        load_camera_json(p)
    monkeypatch.setenv("ANCHORSTAGE_MAX_RENDER_PIXELS", "200_000_000")
    assert load_camera_json(p).resolution == (10000, 10000)  # the camera alone allocates nothing


def test_camera_api_refuses_booleans_strings_and_overflow():
    for kwargs, message in (({"lens_mm": True}, "lens_mm must be a number"), ({"lens_mm": "50"}, "lens_mm must be a number"),
                            ({"width": 2**80}, "positive integer"), ({"width": 3.0}, "positive integer"),
                            ({"world_from_cam": "eye"}, "4x4"), ({"world_from_cam": [[object()]]}, "4x4")):
        args = {"width": 4, "height": 3, "lens_mm": 35.0, **kwargs}
        with pytest.raises(InputError, match=message):
            Camera(**args)
    with pytest.raises(InputError, match="no field"):
        tiny_camera().replace(focal=3)


def test_camera_list_entries_are_checked(tmp_path, cam_doc):
    for entries, message in (([{"frame": 2**40, **cam_doc}], "frame must be an integer in"),
                             ([{"frame": True, **cam_doc}], "frame must be an integer"),
                             ([5], "entry 0 is not a JSON object"), ([], "non-empty JSON list"),
                             ([{"camera": {**cam_doc, "lens_mm": "x"}}], "entry 0: lens_mm must be a number")):
        with pytest.raises(InputError, match=message):
            load_camera_list(_write(tmp_path, entries, "list.json"))
