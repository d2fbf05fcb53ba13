# SPDX-License-Identifier: GPL-3.0-or-later
"""Multilayer EXR: Blender naming, types, compression, camera header, atomic writes, reader."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest
import torch

from anchorstage import Camera, InputError, look_at, read_exr, write_exr
from anchorstage.exr import exr_channel_names


def _passes(h: int = 6, w: int = 10) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "color": torch.rand(h, w, 3, generator=g), "alpha": torch.rand(h, w, generator=g),
        # a transposed view: non-contiguous on purpose (OpenEXR writes those wrong)
        "depth": (torch.rand(w, h, generator=g) * 20 + 1).T,
        "normal": torch.nn.functional.normalize(torch.randn(h, w, 3, generator=g), dim=-1),
        "confidence": torch.rand(h, w, generator=g), "void": (torch.rand(h, w, generator=g) > 0.5).float(),
        "region": torch.randint(-1, 300, (h, w), generator=g, dtype=torch.int32),
    }


def _cam() -> Camera:
    return Camera(width=10, height=6, lens_mm=50.0, world_from_cam=look_at((1, -4, 1.5), (0, 0, 1)))


def test_blender_names_types_compression_and_header(tmp_path):
    p = write_exr(tmp_path / "f.exr", _passes(), camera=_cam(), meta={"frame": 3})
    with OpenEXR.File(str(p), separate_channels=True) as f:
        assert len(f.parts) == 1
        header = dict(f.parts[0].header)
        ch = {n: c for n, c in f.parts[0].channels.items()}
        types = {n: np.array(c.pixels).dtype for n, c in ch.items()}
    assert set(ch) == {"ViewLayer.Combined.R", "ViewLayer.Combined.G", "ViewLayer.Combined.B", "ViewLayer.Combined.A",
                       "ViewLayer.Depth.Z", "ViewLayer.Normal.X", "ViewLayer.Normal.Y", "ViewLayer.Normal.Z",
                       "ViewLayer.Confidence.X", "ViewLayer.Void.X", "ViewLayer.Region.X"}
    assert types["ViewLayer.Combined.R"] == np.float16 and types["ViewLayer.Normal.Y"] == np.float16
    assert types["ViewLayer.Depth.Z"] == np.float32 and types["ViewLayer.Region.X"] == np.float32
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    assert "BlenderMultiChannel" in header


def test_roundtrip_values_and_camera(tmp_path):
    src = _passes()
    back = read_exr(write_exr(tmp_path / "f.exr", src, camera=_cam(), meta={"frame": 3}))
    np.testing.assert_array_equal(back["depth"], src["depth"].numpy())  # float32: exact
    np.testing.assert_array_equal(back["region"], src["region"].numpy())
    assert back["region"].dtype == np.int32
    np.testing.assert_allclose(back["color"], src["color"].numpy(), atol=1e-3)  # half
    np.testing.assert_allclose(back["alpha"], src["alpha"].numpy(), atol=1e-3)
    np.testing.assert_allclose(back["normal"], src["normal"].numpy(), atol=1e-3)
    np.testing.assert_allclose(back["confidence"], src["confidence"].numpy(), atol=1e-3)
    np.testing.assert_array_equal(back["void"], src["void"].numpy())
    assert back["camera"].allclose(_cam()) and back["meta"] == {"frame": 3}


@pytest.mark.parametrize("naming", ["nuke", "plain"])
def test_other_namings_roundtrip(tmp_path, naming):
    src = _passes()
    if naming == "nuke":
        back = read_exr(write_exr(tmp_path / "n.exr", src, naming="nuke"))
        assert exr_channel_names("color", "nuke") == ["R", "G", "B", "A"]
        assert exr_channel_names("depth", "nuke") == ["depth.Z"]
        np.testing.assert_array_equal(back["depth"], src["depth"].numpy())
        np.testing.assert_array_equal(back["region"], src["region"].numpy())
        np.testing.assert_allclose(back["normal"], src["normal"].numpy(), atol=1e-3)
    else:
        back = read_exr(write_exr(tmp_path / "d.exr", {"depth": src["depth"]}, naming="plain"))
        np.testing.assert_array_equal(back["depth"], src["depth"].numpy())
        back = read_exr(write_exr(tmp_path / "c.exr", {"color": src["color"], "alpha": src["alpha"]}, naming="plain"))
        np.testing.assert_allclose(back["color"], src["color"].numpy(), atol=1e-3)
        with pytest.raises(InputError, match="one pass per file"):
            write_exr(tmp_path / "x.exr", {"depth": src["depth"], "void": src["void"]}, naming="plain")


def test_bad_input_and_atomicity(tmp_path):
    src = _passes()
    target = tmp_path / "keep.exr"
    write_exr(target, {"depth": src["depth"]})
    before = target.read_bytes()
    bad = dict(src, depth=torch.full((6, 10), float("nan")))
    with pytest.raises(InputError, match="'depth' has non-finite"):
        write_exr(target, bad)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.exr"]
    with pytest.raises(InputError, match="unknown pass.*'beauty'"):
        write_exr(tmp_path / "a.exr", {"beauty": src["color"]})
    with pytest.raises(InputError, match="differ in size"):
        write_exr(tmp_path / "a.exr", {"depth": src["depth"], "void": torch.zeros(3, 3)})
    with pytest.raises(InputError, match="naming"):
        write_exr(tmp_path / "a.exr", src, naming="houdini")
    with pytest.raises(InputError, match="does not exist"):
        read_exr(tmp_path / "missing.exr")
    (tmp_path / "junk.exr").write_bytes(b"not an exr")
    with pytest.raises(InputError, match="cannot be read"):
        read_exr(tmp_path / "junk.exr")
