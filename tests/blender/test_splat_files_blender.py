# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender's File > Import / Export of splat files: every format, SH and everything a file stored
kept as point attributes and custom properties, written back bit-exact."""

from __future__ import annotations

import gzip

import bpy
import numpy as np
import pytest
import torch

from anchorstage.splatio import read_splats, write_splats
from anchorstage.splatio._plyfile import read_ply_file


def _addon(module: str):
    import importlib

    return importlib.import_module(f"bl_ext.user_default.anchorstage.{module}")


def test_trained_ply_with_sh_round_trips_through_blender(fresh_scene, tmp_path):
    from test_ply import _write_raw
    from test_splatio import assert_same_stored_values, extra_elements, trainer_vertex

    boundary = _addon("boundary")
    v = trainer_vertex(80)
    _write_raw(tmp_path / "trained.ply", "binary_big_endian", [("vertex", v)] + list(extra_elements().items()),
               comments=["trained by a tool"])
    assert bpy.ops.anchorstage.import_ply(filepath=str(tmp_path / "trained.ply")) == {"FINISHED"}
    obj = bpy.data.objects["trained"]
    names = {a.name for a in obj.data.attributes}
    assert {f"sh_rest_{k}" for k in range(15)} <= names and {"file_object_id", "file_transform.0", "file_transform.1", "rotation_raw"} <= names  # double: two words
    assert obj.data["anchorstage_sh_encoding"] == "sRGB" and obj.data["anchorstage_stored"]["format"] == "ply"
    sp = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    src = read_splats(tmp_path / "trained.ply")
    for k in ("means", "quats", "scales", "opacities", "colors", "sh_rest"):
        assert torch.equal(getattr(sp, k), getattr(src, k)), k
    # The SH coefficients render: the engine composites view-dependent colour (mesh → core is exact).
    out = tmp_path / "out.ply"
    assert bpy.ops.anchorstage.export_ply(filepath=str(out), object_name=obj.name) == {"FINISHED"}
    assert_same_stored_values({"vertex": v, **extra_elements()}, read_ply_file(out, "out").elements)
    assert "trained by a tool" in read_ply_file(out, "out").comments
    # Other formats by extension.
    for name in ("out.spz", "out.splat", "out.compressed.ply"):
        assert bpy.ops.anchorstage.export_ply(filepath=str(tmp_path / name), object_name=obj.name) == {"FINISHED"}
        assert len(read_splats(tmp_path / name)) == 80
    assert read_splats(tmp_path / "out.spz").sh_degree == 3


@pytest.mark.parametrize("name", ["s.spz", "s.splat", "s.compressed.ply"])
def test_lossy_formats_round_trip_bit_exact_through_blender(fresh_scene, tmp_path, name):
    from test_splatio import _splats

    write_splats(tmp_path / name, _splats(300, sh=3))
    assert bpy.ops.anchorstage.import_ply(filepath=str(tmp_path / name)) == {"FINISHED"}
    obj = bpy.data.objects["s"]
    assert bpy.ops.anchorstage.export_ply(filepath=str(tmp_path / ("o" + name[1:])), object_name=obj.name) == {"FINISHED"}
    a, b = (tmp_path / name).read_bytes(), (tmp_path / ("o" + name[1:])).read_bytes()
    if name.endswith(".spz"):
        a, b = gzip.decompress(a), gzip.decompress(b)
    assert a == b


def test_sharp_file_keeps_its_frame_and_camera_through_blender(fresh_scene, tmp_path):
    from test_ply import _in_front_of_camera, _sharp_file

    from anchorstage.splatio import sharp

    boundary = _addon("boundary")
    extrinsic = np.eye(4)
    extrinsic[:3, 3] = [0.1, -0.2, 0.3]
    src = _sharp_file(tmp_path, _in_front_of_camera(), extrinsic)
    original = read_ply_file(tmp_path / "sharp.ply", "sharp").elements
    assert bpy.ops.anchorstage.import_ply(filepath=str(tmp_path / "sharp.ply")) == {"FINISHED"}
    obj = bpy.data.objects["sharp"]
    # The mesh holds the file's frame; the object's transform places it where AnchorStage places photos.
    np.testing.assert_allclose(np.array(obj.matrix_world), sharp.placement(src), atol=1e-6)
    placed = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    np.testing.assert_allclose(placed.means.numpy(), sharp.placed(src).means.numpy(), atol=1e-5)
    out = tmp_path / "out.ply"
    assert bpy.ops.anchorstage.export_ply(filepath=str(out), object_name=obj.name) == {"FINISHED"}
    from test_splatio import assert_same_stored_values

    assert_same_stored_values(original, read_ply_file(out, "out").elements)  # splats, camera, colour space: exact
    # Moved in Blender: exported in the file's frame, moved by as much.
    obj.location.z += 1.0
    bpy.context.view_layer.update()
    assert bpy.ops.anchorstage.export_ply(filepath=str(tmp_path / "moved.ply"), object_name=obj.name) == {"FINISHED"}
    moved = sharp.placed(read_splats(tmp_path / "moved.ply"))
    np.testing.assert_allclose(moved.means.numpy(), placed.means.numpy() + [0, 0, 1.0], atol=1e-5)
    # A SHARP export of a plain stage takes the scene camera.
    assert bpy.ops.anchorstage.export_ply(filepath=str(tmp_path / "again.ply"), object_name=obj.name,
                                          format="sharp") == {"FINISHED"}
    assert sharp.camera(read_splats(tmp_path / "again.ply")).resolution == (640, 480)
