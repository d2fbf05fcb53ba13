# SPDX-License-Identifier: GPL-3.0-or-later
"""Regenerate the fuzz corpus: the nastiest malformed inputs found while fuzzing, one file each.

Run from the repository root: ``PYTHONPATH=core python tests/data/fuzz/make_corpus.py``.
Every file must be refused with an AnchorStageError by the reader its folder names
(``tests/test_fuzz_corpus.py`` replays them); see README.md here for what each one is.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/: untrusted_support

from untrusted_support import npy_bytes, patch_exr_data_window, png_bytes, tiny_camera, tiny_scene, write_exr  # noqa: E402


def main() -> None:
    for sub in ("camera", "scene", "npy", "image", "exr", "extra"):
        shutil.rmtree(HERE / sub, ignore_errors=True)
        (HERE / sub).mkdir()
    cam = tiny_camera().to_json_dict()

    def camera(name: str, text: str | bytes) -> None:
        (HERE / "camera" / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    camera("deep_nesting.json", "[" * 5_000 + "]" * 5_000)  # beyond Python's recursion limit
    camera("5000_digit_integer.json", json.dumps(cam).replace('"lens_mm": 35.0', '"lens_mm": ' + "9" * 5000))
    camera("float_overflow.json", json.dumps(cam).replace('"lens_mm": 35.0', '"lens_mm": 1e400'))
    camera("nan_lens.json", json.dumps({**cam, "lens_mm": float("nan")}))
    camera("bool_lens.json", json.dumps({**cam, "lens_mm": True}))
    camera("string_lens.json", json.dumps({**cam, "lens_mm": "50"}))
    camera("terapixel_resolution.json", json.dumps({**cam, "resolution": [120000, 120000]}))
    camera("int64_overflow_resolution.json", json.dumps({**cam, "resolution": [2**63 - 1, 2**63 - 1]}))
    camera("float_resolution.json", json.dumps({**cam, "resolution": [32.0, 24]}))
    camera("ragged_matrix.json", json.dumps({**cam, "matrix_world": [[1, 0, 0], [0, 1], [0], []]}))
    camera("utf16.json", json.dumps(cam).encode("utf-16"))
    camera("truncated.json", json.dumps(cam)[:57])
    camera("list_entry_huge_frame.json", json.dumps([{"frame": 2**62, **cam}]))

    scene_doc = json.loads(json.dumps(_scene_json()))

    def scene(name: str, edit) -> None:
        d = json.loads(json.dumps(scene_doc))
        edit(d)
        (HERE / "scene" / name).write_text(json.dumps(d, indent=1))

    scene("image_null.json", lambda d: d.update(image=None))
    scene("regions_string.json", lambda d: d.update(regions="x"))
    scene("mask_escapes_folder.json", lambda d: d["regions"][0].update(mask="../../../../etc/passwd"))
    scene("absolute_depth_path.json", lambda d: d["depth"].update(file="/dev/zero"))
    scene("newer_version.json", lambda d: d.update(format_version=99))
    scene("metric_scale_string.json", lambda d: d.update(metric_scale="1"))
    scene("locked_string.json", lambda d: d["regions"][0].update(locked="false"))
    scene("region_index_overflow.json", lambda d: d["regions"][0].update(index=2**40))
    scene("camera_bool_lens.json", lambda d: d["camera"].update(lens_mm=True))
    scene("duplicate_region_ids.json", lambda d: d["regions"][1].update(id=d["regions"][0]["id"]))

    def npy(name: str, raw: bytes) -> None:
        (HERE / "npy" / name).write_bytes(raw)

    npy("terabyte_shape.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                                        b"\0" * 64))
    npy("pickled_objects.npy", npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\0" * 8))
    npy("unclosed_header.npy", b"\x93NUMPY\x01\x006\x00[" + b" " * 52 + b"\n")
    npy("code_in_header.npy", npy_bytes("__import__('os').system('false')"))
    npy("structured.npy", npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\0" * 4))
    npy("truncated_data.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (8, 8), }", b"\0" * 100))
    buf = io.BytesIO()
    np.savez(buf, depth=np.ones((4, 4), np.float32))
    npy("npz_under_npy_name.npy", buf.getvalue())

    (HERE / "image" / "decompression_bomb.png").write_bytes(png_bytes(100_000, 100_000, bit_depth=1))
    (HERE / "image" / "gigapixel_16bit.png").write_bytes(png_bytes(50_000, 50_000, bit_depth=16))
    (HERE / "image" / "zero_width.png").write_bytes(png_bytes(0, 10))
    (HERE / "image" / "truncated_idat.png").write_bytes(png_bytes(64, 64, rows=b"\x00" * 10))

    base = write_exr(HERE / "exr" / "huge_data_window.exr", {"Z": np.ones((3, 5), np.float32)})
    patch_exr_data_window(base, 0, 0, 999_999, 999_999)
    good = write_exr(HERE / "exr" / "tmp.exr", {"ViewLayer.Combined.R": np.random.default_rng(0).random((16, 16), np.float32),
                                                "ViewLayer.Depth.Z": np.ones((16, 16), np.float32)},
                     {"anchorstage/camera": json.dumps(cam)})
    raw = bytearray(good.read_bytes())
    good.unlink()
    corrupt_type = bytearray(raw)
    corrupt_type[27] = 0x80  # inside the attribute's type name: OpenEXR keeps it as an opaque attribute
    (HERE / "exr" / "undecodable_attribute_type.exr").write_bytes(bytes(corrupt_type))
    (HERE / "exr" / "truncated_pixels.exr").write_bytes(bytes(raw[: len(raw) * 3 // 4]))
    bad_cam = write_exr(HERE / "exr" / "camera_attribute_not_json.exr", {"Z": np.ones((2, 2), np.float32)},
                        {"anchorstage/camera": "{" * 5_000})
    assert bad_cam.is_file()

    n = 64

    def extra(name: str, members: dict[str, np.ndarray] | None = None, raw_bytes: bytes | None = None) -> None:
        p = HERE / "extra" / name
        if raw_bytes is not None:
            p.write_bytes(raw_bytes)
        else:
            np.savez(p, **members)

    ok = {"confidence": np.ones(n, np.float32), "region_ids": np.zeros(n, np.int32)}
    extra("missing_confidence.npz", {"region_ids": ok["region_ids"]})
    extra("pickled_member.npz", {**ok, "confidence": np.array([{"x": 1}] * n, dtype=object)})
    extra("float_region_ids.npz", {**ok, "region_ids": np.zeros(n, np.float32)})
    extra("region_splats_out_of_range.npz", {**ok, "region_splats_0": np.array([0, 10**6])})
    extra("nan_confidence.npz", {**ok, "confidence": np.full(n, np.nan, np.float32)})
    extra("not_a_zip.npz", raw_bytes=b"PK\x03\x04" + bytes(range(256)))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("confidence.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (10**12,), }"))
        zf.writestr("region_ids.npy", npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (64,), }", b"\0" * 256))
    extra("terabyte_member_header.npz", raw_bytes=zbuf.getvalue())


def _scene_json() -> dict:
    import tempfile

    from anchorstage import save_scene

    with tempfile.TemporaryDirectory() as d:
        out = save_scene(tiny_scene(), Path(d) / "s")
        return json.loads((out / "scene.json").read_text())


if __name__ == "__main__":
    main()
