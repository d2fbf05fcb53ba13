# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based fuzzing of every reader and the public API: only AnchorStageError may escape.

Hypothesis generates malformed camera JSON, scene.json documents, splats_extra.npz members, EXR
channel layouts and bytes, .npy headers, images, and wrong arguments to the public functions.
Each case must either succeed or raise an :class:`AnchorStageError` subclass; any other exception
(``TypeError``, ``KeyError``, ``MemoryError``, ...) fails the test with the shrunk example.

Examples per test: ``ANCHORSTAGE_FUZZ_EXAMPLES`` (default 200, twice that for the API test;
derandomised, so CI runs are repeatable; ``ANCHORSTAGE_FUZZ_RANDOM=1`` explores new examples).
Run longer locally, e.g. ``ANCHORSTAGE_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_inputs.py``;
add ``--hypothesis-show-statistics`` to see the counts. Nasty cases found are kept as files under
``tests/data/fuzz/`` and replayed by ``test_fuzz_corpus.py``.
"""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import anchorstage as a
from anchorstage import AnchorStageError
from anchorstage.camera import turntable_path
from anchorstage.stages import render_video
from untrusted_support import npy_bytes, png_bytes, tiny_camera, tiny_scene, tiny_splats, write_exr

EXAMPLES = int(os.environ.get("ANCHORSTAGE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not os.environ.get("ANCHORSTAGE_FUZZ_RANDOM"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def only_ours(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; an AnchorStageError is a proper refusal, anything else propagates and fails the test."""
    try:
        return fn()
    except AnchorStageError as e:
        assert str(e).strip() and "\n" not in str(e).strip(), f"message must be one line: {e!r}"
        return e


# ---------------------------------------------------------------------------- JSON documents
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["50", "AUTO", "VERTICAL", "", "../x", "/etc/passwd", "regions/../../x", "image.exr", "Z",
                     "sky", "ground_001", "..", "/dev/zero", "a\\b"]),
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
                           max_leaves=16)


def _locations(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair in a JSON document, for picking a node to mutate."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((doc, k))
            out += _locations(v)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((doc, i))
            out += _locations(v)
    return out


@st.composite
def mutated(draw: Any, base: Any) -> Any:
    """``base`` with one to four nodes replaced, deleted or given a sibling."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        locs = _locations(doc)
        if not locs:
            break
        parent, key = draw(st.sampled_from(locs))
        action = draw(st.sampled_from(["replace", "replace", "delete", "insert"]))
        if action == "replace":
            parent[key] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(JSON_VALUES)
        else:
            parent.insert(key, draw(JSON_VALUES))
    return doc


@st.composite
def json_text(draw: Any, base: Any) -> bytes:
    """A mutated document as JSON text, sometimes cut short or with stray bytes spliced in."""
    text = json.dumps(draw(mutated(base)), allow_nan=True).encode()
    kind = draw(st.sampled_from(["as is", "as is", "as is", "cut", "splice"]))
    if kind == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif kind == "splice":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=6)) + text[at:]
    return text


CAMERA = tiny_camera().to_json_dict()


@FUZZ
@given(text=json_text(CAMERA))
def test_fuzz_camera_json(tmp_path_factory, text):
    p = tmp_path_factory.getbasetemp() / "fuzz_camera.json"
    p.write_bytes(text)
    only_ours(lambda: a.load_camera_json(p))
    only_ours(lambda: a.export.load_camera_list(p) if hasattr(a, "export") else None)


@FUZZ
@given(doc=mutated([{"frame": 1, **CAMERA}, {"frame": 2, "camera": CAMERA}, CAMERA]))
def test_fuzz_camera_list(tmp_path_factory, doc):
    from anchorstage.export import load_camera_list

    p = tmp_path_factory.getbasetemp() / "fuzz_cameras.json"
    p.write_text(json.dumps(doc, allow_nan=True))
    only_ours(lambda: load_camera_list(p))


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    out = a.save_scene(tiny_scene(), tmp_path_factory.mktemp("fuzz_scene") / "s")
    return out, json.loads((out / "scene.json").read_text())


@FUZZ
@given(data=st.data())
def test_fuzz_scene_json(scene_folder, data):
    folder, base = scene_folder
    (folder / "scene.json").write_bytes(data.draw(json_text(base)))
    only_ours(lambda: a.load_scene(folder))


NPZ_ARRAYS = st.one_of(
    st.just(np.ones(64, np.float32)), st.just(np.zeros(64, np.int32)), st.just(np.full(64, -1, np.int64)),
    st.just(np.ones((64, 3), np.float32)), st.just(np.ones(3, np.float32)), st.just(np.array(["x"] * 64)),
    st.just(np.array([None] * 64, dtype=object)), st.just(np.full(64, np.nan, np.float32)),
    st.just(np.zeros((64, 2), np.float64)), st.just(np.array(10**9, np.int64)), st.just(np.zeros((0,), np.float32)),
    st.just(np.arange(64, dtype=np.uint8)), st.just(np.array([True] * 64)),
)


@FUZZ
@given(members=st.dictionaries(st.sampled_from(["confidence", "region_ids", "opacities", "scales", "colors",
                                                "region_splats_0", "region_splats_1", "other"]), NPZ_ARRAYS, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 2000)))
def test_fuzz_splats_extra(scene_folder, members, cut):
    folder, base = scene_folder
    (folder / "scene.json").write_text(json.dumps(base))
    buf = io.BytesIO()
    np.savez(buf, **members)
    raw = buf.getvalue()
    (folder / "splats_extra.npz").write_bytes(raw if cut is None else raw[:cut])
    only_ours(lambda: a.load_scene(folder))


# ---------------------------------------------------------------------------- EXR
EXR_NAMES = st.one_of(
    st.sampled_from(["R", "G", "B", "A", "Y", "Z", "V", "depth", "ViewLayer.Combined.R", "ViewLayer.Combined.G",
                     "ViewLayer.Combined.B", "ViewLayer.Combined.A", "ViewLayer.Depth.Z", "ViewLayer.Normal.X",
                     "ViewLayer.Normal.Y", "ViewLayer.Normal.Z", "ViewLayer.Region.X", "normal.X", "depth.Z",
                     "region.X", "Layer.Foo.R", ".R", "a..b", "Combined.R"]),
    st.text(alphabet="RGBAXYZ.ViewLayerDpthCombind_", min_size=1, max_size=16),
)
EXR_HEADER = st.dictionaries(
    st.sampled_from(["anchorstage/camera", "anchorstage/meta", "anchorstage/pass"]),
    st.one_of(st.text(max_size=20), JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True)),
              mutated(CAMERA).map(lambda v: json.dumps(v, allow_nan=True))),
    max_size=3)


@FUZZ
@given(names=st.lists(EXR_NAMES, min_size=1, max_size=6, unique=True),
       dtype=st.sampled_from([np.float16, np.float32, np.uint32]),
       h=st.integers(1, 6), w=st.integers(1, 6),
       fill=st.sampled_from([0.0, 1.0, np.nan, np.inf, -2.0, 1e10]),
       header=EXR_HEADER)
def test_fuzz_exr_channel_layouts(tmp_path_factory, names, dtype, h, w, fill, header):
    p = tmp_path_factory.getbasetemp() / "fuzz_layout.exr"
    value = np.uint32(7) if dtype == np.uint32 else fill
    try:
        write_exr(p, {n: np.full((h, w), value, dtype) for n in names}, header)
    except Exception:  # noqa: BLE001 - names OpenEXR will not write are not a reader's problem
        assume(False)
    only_ours(lambda: a.read_exr(p))
    only_ours(lambda: a.load_depth(p))
    only_ours(lambda: a.load_image(p))


@pytest.fixture(scope="module")
def exr_bytes(tmp_path_factory):
    p = write_exr(tmp_path_factory.mktemp("fuzz_exr") / "base.exr",
                  {"ViewLayer.Combined.R": np.random.default_rng(0).random((16, 16), dtype=np.float32),
                   "ViewLayer.Depth.Z": np.ones((16, 16), np.float32)},
                  {"anchorstage/camera": json.dumps(CAMERA)})
    return p.read_bytes()


@FUZZ
@given(data=st.data())
def test_fuzz_exr_bytes(tmp_path_factory, exr_bytes, data):
    b = bytearray(exr_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        b = b[: data.draw(st.integers(0, len(b)))]
    p = tmp_path_factory.getbasetemp() / "fuzz_bytes.exr"
    p.write_bytes(bytes(b))
    only_ours(lambda: a.read_exr(p))
    only_ours(lambda: a.load_depth(p))


# ---------------------------------------------------------------------------- .npy headers
NPY_DESCR = st.one_of(st.sampled_from(["<f4", "<f8", "|u1", "<i2", "|b1", "|O", "<U3", ">f4", "<c8", "V8", "<M8[s]",
                                       "<f2", "|S2"]), st.text(max_size=6))
NPY_SHAPE = st.one_of(st.lists(st.integers(-2, 2**40), max_size=4).map(tuple), st.text(max_size=5), st.integers(-3, 3),
                      st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple))


@st.composite
def npy_files(draw: Any) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    descr = draw(NPY_DESCR)
    descr_text = repr(descr) if draw(st.booleans()) else "[('a', '<f4'), ('b', '|O')]"
    header = (f"{{'descr': {descr_text}, 'fortran_order': {draw(st.sampled_from(['False', 'True', '1', 'None']))!s}, "
              f"'shape': {draw(NPY_SHAPE)!r}, }}")
    if draw(st.integers(0, 5)) == 0:
        header = draw(st.text(max_size=60))
    version = draw(st.sampled_from([(1, 0), (1, 0), (2, 0), (3, 0)]))
    try:
        raw = npy_bytes(header, draw(st.binary(max_size=256)), version if version != (3, 0) else (2, 0))
    except (UnicodeEncodeError, ValueError):
        raw = draw(st.binary(max_size=64))
    if version == (3, 0):
        raw = raw[:6] + bytes([3, 0]) + raw[8:]
    return raw


@FUZZ
@given(raw=npy_files())
def test_fuzz_npy_headers(tmp_path_factory, raw):
    p = tmp_path_factory.getbasetemp() / "fuzz_depth.npy"
    p.write_bytes(raw)
    only_ours(lambda: a.load_depth(p))


# ---------------------------------------------------------------------------- images
@st.composite
def image_files(draw: Any) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["header", "mutated", "mutated", "random"]))
    if kind == "header":
        w = draw(st.integers(0, 2**31 - 1) | st.integers(1, 64))
        h = draw(st.integers(0, 2**31 - 1) | st.integers(1, 64))
        depth, color = draw(st.sampled_from([(1, 0), (8, 0), (16, 0), (8, 2), (16, 2), (8, 3), (8, 4), (8, 6), (3, 9)]))
        return ".png", png_bytes(w, h, bit_depth=depth, color_type=color, rows=draw(st.binary(max_size=300)))
    if kind == "random":
        return draw(st.sampled_from([".png", ".jpg", ".tif", ".webp"])), draw(st.binary(max_size=300))
    fmt, ext = draw(st.sampled_from([("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("GIF", ".gif"),
                                     ("BMP", ".bmp"), ("WEBP", ".webp")]))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "I;16"] if fmt in ("PNG", "TIFF") else ["RGB", "L"]))
    im = Image.new(mode, (draw(st.integers(1, 24)), draw(st.integers(1, 24))))
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    b = bytearray(buf.getvalue())
    for _ in range(draw(st.integers(0, 6))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        b = b[: draw(st.integers(0, len(b)))]
    return ext, bytes(b)


@FUZZ
@given(image=image_files())
def test_fuzz_images(tmp_path_factory, image):
    ext, raw = image
    p = tmp_path_factory.getbasetemp() / f"fuzz_image{ext}"
    p.write_bytes(raw)
    only_ours(lambda: a.load_image(p))
    if ext == ".png":
        only_ours(lambda: a.load_depth(p))


# ---------------------------------------------------------------------------- the public API
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**65), max_value=2**65), st.floats(), st.text(max_size=4),
    st.binary(max_size=4), st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from([np.zeros((2, 2)), np.zeros((0, 3)), np.full((4, 4), np.nan), torch.zeros(3), torch.ones(2, 2, 3),
                     object(), [[1, 2], [3]], ("a", "b"), {"color": 1}, float("nan"), 10**30, -1, 0, "", "\x00"]),
)


@pytest.fixture(scope="module")
def api_world(tmp_path_factory):
    """Valid arguments for every public function, in a folder where junk paths can land harmlessly."""
    work = tmp_path_factory.mktemp("fuzz_api")
    scene = tiny_scene()
    cam = tiny_camera()
    old = os.getcwd()
    os.chdir(work)
    yield {"scene": scene, "camera": cam, "splats": tiny_splats(16), "work": work,
           "image": scene.image_linear, "depth": scene.depth_m}
    os.chdir(old)


def _calls(w: dict[str, Any]) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    cam, sp, work = w["camera"], w["splats"], w["work"]
    return {
        "render": (a.render, dict(splats=sp, camera=cam, passes=["alpha"], backend="torch", device="cpu",
                                  background=None, void_threshold=0.5)),
        "reconstruct": (a.reconstruct, dict(image=w["image"], depth_m=w["depth"], camera=cam, max_splats=200,
                                            confidence=None, far_limit_m=100.0, second_layer=False, device="cpu")),
        "segment": (lambda scene, max_regions: a.segment(copy.deepcopy(scene), max_regions=max_regions),
                    dict(scene=w["scene"], max_regions=5)),
        "write_exr": (a.write_exr, dict(path=work / "f.exr", passes={"alpha": np.zeros((2, 2), np.float32)}, camera=cam,
                                        layer="ViewLayer", naming="blender", half_for=("alpha",), meta={"k": 1})),
        "read_exr": (a.read_exr, dict(path=work / "f.exr")),
        "load_image": (a.load_image, dict(path=work / "f.exr")),
        "load_depth": (a.load_depth, dict(path=work / "f.exr", expected_hw=(2, 2), far_limit_m=10.0)),
        "load_camera_json": (a.load_camera_json, dict(path=work / "none.json")),
        "save_camera_json": (a.save_camera_json, dict(path=work / "c.json", camera=cam)),
        "load_scene": (a.load_scene, dict(path=work / "none")),
        "save_scene": (a.save_scene, dict(scene=w["scene"], path=work / "scene", force=True)),
        "export_frames": (a.export_frames, dict(scene=w["scene"], cameras=[cam], out_dir=work / "export", preset="blender",
                                                frames=None, first_frame=1, passes=("alpha", "depth"), backend="torch",
                                                device="cpu", void_threshold=0.5)),
        "Camera": (a.Camera, dict(width=8, height=6, lens_mm=35.0, sensor_width_mm=36.0, sensor_height_mm=24.0,
                                  sensor_fit="AUTO", shift_x=0.0, shift_y=0.0, clip_start=0.1, clip_end=100.0,
                                  world_from_cam=np.eye(4))),
        "look_at": (a.look_at, dict(eye=(0, 0, 0), target=(0, 1, 0), up=(0, 0, 1))),
        "camera_moves": (lambda move, value: getattr(cam, move)(value), dict(move="dolly", value=0.5)),
        "orbit": (lambda pivot, yaw_deg, pitch_deg: cam.orbit(pivot, yaw_deg, pitch_deg),
                  dict(pivot=(0, 5, 1), yaw_deg=10.0, pitch_deg=5.0)),
        "turntable_path": (turntable_path, dict(reference=cam, centre=(0, 5, 1), views=4, radius_m=2.0,
                                                elevation_deg=10.0, start_deg=0.0, sweep_deg=360.0)),
        "render_video": (render_video, dict(scene=w["scene"], cameras=[cam, cam], out=work / "v.mp4", fps=24.0,
                                            gif=work / "v.gif", frames_from="render", background=(0, 0, 0),
                                            crf=30, gif_max_side=16, backend="torch", device="cpu")),
    }


API_NAMES = sorted(_calls({"camera": None, "splats": None, "work": Path("."), "image": None, "depth": None,
                           "scene": None}))


@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(data=st.data())
def test_fuzz_public_api_arguments(api_world, data):
    """One or two arguments of a public function replaced by junk: an AnchorStageError, never a raw error."""
    fn, kwargs = _calls(api_world)[data.draw(st.sampled_from(API_NAMES))]
    kwargs = dict(kwargs)
    for name in data.draw(st.lists(st.sampled_from(sorted(kwargs)), min_size=1, max_size=2, unique=True)):
        kwargs[name] = data.draw(JUNK)
    if "move" in kwargs and not (isinstance(kwargs["move"], str) and kwargs["move"] in
                                 ("dolly", "truck", "pedestal", "pan", "tilt", "roll", "zoom", "with_lens")):
        kwargs["move"] = "zoom"
    only_ours(lambda: fn(**kwargs))
    shutil.rmtree(api_world["work"] / "export", ignore_errors=True)


# ---------------------------------------------------------------------------- EXIF
EXIF_VALUES = st.one_of(JSON_SCALARS, st.binary(max_size=8), st.tuples(st.integers(-5, 10**6), st.integers(-5, 10**6)),
                        st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**40, (1, 0),
                                         (0, 0), ("a", 2), b"\xff\xfe"]))
EXIF_TAGS = st.dictionaries(st.sampled_from(["Make", "Model", "Orientation", "FocalLength", "FocalLengthIn35mmFilm",
                                             "FocalPlaneXResolution", "FocalPlaneYResolution",
                                             "FocalPlaneResolutionUnit", "ExifImageWidth", "ExifImageHeight",
                                             "LensModel", "DigitalZoomRatio"]), EXIF_VALUES, max_size=8)


@FUZZ
@given(tags=EXIF_TAGS, w=st.integers(-1, 5000), h=st.integers(-1, 5000))
def test_fuzz_exif_intrinsics(tags, w, h):
    from anchorstage.exif import intrinsics_from_exif

    result = only_ours(lambda: intrinsics_from_exif(tags, w, h))
    if not isinstance(result, AnchorStageError):
        only_ours(lambda: result.camera(max(w, 1), max(h, 1)))
