# SPDX-License-Identifier: GPL-3.0-or-later
"""The command line on splat files: convert, info, render FILE."""

from __future__ import annotations

import gzip
import json

import numpy as np
import torch

from anchorstage import render, save_camera_json
from anchorstage.cli import main
from anchorstage.exr import read_exr
from anchorstage.splatio import read_splats, write_splats
from anchorstage.splatio.sharp import camera as sharp_camera
from anchorstage.splatio.sharp import placed


def _sharp_file(tmp_path):
    from test_ply import _in_front_of_camera, _sharp_file as make

    make(tmp_path, _in_front_of_camera(), np.eye(4))
    return tmp_path / "sharp.ply"


def test_convert_and_info(tmp_path, capsys):
    src = _sharp_file(tmp_path)
    assert main(["info", str(src), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "sharp" and doc["splats"] == 400 and doc["color_space"] == "linearRGB"
    assert doc["camera"]["resolution"] == [640, 480] and doc["camera"]["K"][0][0] == 500
    assert {"extrinsic", "intrinsic", "image_size", "color_space"} <= set(doc["extra_elements"])
    assert main(["info", str(src)]) == 0
    assert "focal 500.00 px" in capsys.readouterr().out
    for out in ("a.spz", "a.splat", "a.compressed.ply", "a.ply"):
        assert main(["convert", str(src), str(tmp_path / out)]) == 0
        assert len(read_splats(tmp_path / out)) == 400
    # Back to the format it came from: every stored value kept, SHARP's camera elements included.
    back = read_splats(tmp_path / "a.ply")
    assert torch.equal(back.means, read_splats(src).means) and sharp_camera(back).allclose(sharp_camera(read_splats(src)))
    # spz -> spz again: the same bytes.
    assert main(["convert", str(tmp_path / "a.spz"), str(tmp_path / "b.spz")]) == 0
    assert gzip.decompress((tmp_path / "a.spz").read_bytes()) == gzip.decompress((tmp_path / "b.spz").read_bytes())
    capsys.readouterr()
    assert main(["convert", str(src), str(tmp_path / "a.ply")]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "a.obj")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.spz")]) == 2


def test_convert_to_sharp_with_a_camera(tmp_path, capsys):
    src = _sharp_file(tmp_path)
    cam = sharp_camera(read_splats(src)).with_resolution(320, 240)
    save_camera_json(tmp_path / "cam.json", cam)
    assert main(["convert", str(src), str(tmp_path / "s.ply"), "--format", "sharp", "--camera", str(tmp_path / "cam.json")]) == 0
    out = read_splats(tmp_path / "s.ply")
    assert sharp_camera(out).resolution == (320, 240)
    torch.testing.assert_close(out.means, read_splats(src).means, atol=1e-5, rtol=0)  # the same photo camera frame


def test_render_a_splat_file_directly(tmp_path, capsys):
    src = _sharp_file(tmp_path)
    sp = read_splats(src)
    cam = sharp_camera(sp).with_resolution(160, 120)
    save_camera_json(tmp_path / "cam.json", cam)
    for name in ("sharp.ply", "a.spz"):
        path = tmp_path / name
        if name != "sharp.ply":
            write_splats(path, placed(sp))  # .spz has no camera: written in the Z-up world
        assert main(["render", str(path), "--camera", str(tmp_path / "cam.json"), "--out", str(tmp_path / "f.exr"),
                     "--passes", "color,alpha", "--backend", "torch"]) == 0
        got = read_exr(tmp_path / "f.exr")
        want = render(placed(read_splats(path)), cam, ("color", "alpha"), backend="torch")
        np.testing.assert_allclose(got["color"], want["color"].numpy(), rtol=2e-3, atol=1e-4)  # EXR colour is half float
        assert float(want["alpha"].mean()) > 0.05  # the splats are in view: placed as Blender's import places them
