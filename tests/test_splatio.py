# SPDX-License-Identifier: GPL-3.0-or-later
"""Splat file formats: readers and writers cross-checked on generated files, hand-built records
checked against each format's published layout, bit-exact round trips, refusals that name the format."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from anchorstage import AnchorStageError, Camera, InputError, Region, Splats, load_scene, look_at, save_scene
from anchorstage.scene import Scene
from anchorstage.sh import SH_C0
from anchorstage.splatio import detect_format, read_splats, splat_file_info, write_splats
from anchorstage.splatio._plyfile import read_ply_file, write_ply_file
from anchorstage.splatio.compressed_ply import CHUNK_PROPS

STANDARD = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]


def _splats(n=300, seed=0, sh=15):
    g = torch.Generator().manual_seed(seed)
    return Splats(means=torch.randn(n, 3, generator=g) * 2, quats=torch.randn(n, 4, generator=g),
                  scales=torch.rand(n, 3, generator=g) * 0.1 + 1e-3, opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
                  colors=torch.rand(n, 3, generator=g) * 1.2 - 0.1,
                  sh_rest=torch.randn(n, sh, 3, generator=g) * 0.2 if sh else None)


def trainer_vertex(n=64, seed=1) -> np.ndarray:
    """A vertex element as a 3DGS trainer writes it, plus what other tools add: SH degree 3, DC
    values below 0 and above 1, unnormalised rotations, an int object id, a double property."""
    rng = np.random.default_rng(seed)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *[f"f_rest_{i}" for i in range(45)],
             "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    v = np.zeros(n, dtype=[(k, "f4") for k in names] + [("object_id", "i4"), ("transform", "f8")])
    for k in names:
        v[k] = rng.normal(size=n) * (3 if k.startswith(("x", "y", "z", "rot", "f_dc")) else 1)
    v["nx"] = v["ny"] = v["nz"] = 0.0
    v["f_dc_0"][:3] = [-4.0, 5.5, 0.0]  # colours far below 0 and above 1
    v["scale_0"] -= 4
    v["object_id"] = rng.integers(-5, 1000, n)
    v["transform"] = rng.normal(size=n)
    return v


def extra_elements() -> dict[str, np.ndarray]:
    return {"camera_rig": np.array([(1, 2.5), (7, -3.25)], dtype=[("id", "u2"), ("weight", "f8")]),
            "tag": np.array([(200,)], dtype=[("tag", "u1")])}


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


def assert_same_stored_values(original: dict[str, np.ndarray], written: dict[str, np.ndarray]) -> None:
    """Every property of every element in ``original`` is in ``written`` with the same bits."""
    for name, arr in original.items():
        assert name in written, name
        for prop in arr.dtype.names:
            assert prop in written[name].dtype.names, (name, prop)
            assert written[name].dtype[prop] == arr.dtype[prop], (name, prop)
            assert _bits(written[name][prop]) == _bits(arr[prop]), (name, prop)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_trained_ply_round_trips_every_stored_value(tmp_path, fmt):
    from test_ply import _write_raw

    v = trainer_vertex()
    elems = [("vertex", v)] + list(extra_elements().items())
    src = tmp_path / "trained.ply"
    _write_raw(src, fmt, elems, comments=["trained by a tool", "antialiased 1"])
    sp = read_splats(src)
    assert sp.sh_degree == 3 and sp.sh_encoding == "sRGB" and len(sp) == len(v)
    assert sp.stored.columns["object_id"].dtype == np.int32 and "tag" in sp.stored.elements
    # Unnormalised rotations are kept as stored; negative DC stays negative (not clipped).
    np.testing.assert_array_equal(sp.quats.numpy()[:, 0], v["rot_0"])
    assert sp.colors[0, 0] < 0 and sp.colors[1, 0] > 1
    out = tmp_path / "out.ply"
    write_splats(out, sp)
    back = read_ply_file(out, "out")
    original = {"vertex": v, **extra_elements()}
    assert_same_stored_values(original, back.elements)
    assert list(back.elements["vertex"].dtype.names)[:len(v.dtype.names)] == list(v.dtype.names)  # order kept
    assert "trained by a tool" in back.comments and "color_space sRGB" in back.comments
    assert back.elements["color_space"]["color_space"].tolist() == [0]


def test_edited_splats_are_encoded_afresh(tmp_path):
    from test_ply import _write_raw

    v = trainer_vertex()
    _write_raw(tmp_path / "t.ply", "binary_little_endian", [("vertex", v)])
    sp = read_splats(tmp_path / "t.ply")
    sp.opacities[:5] = 0.25  # edited: the stored logits of these no longer decode to them
    sp.scales[5] *= 2
    write_splats(tmp_path / "e.ply", sp)
    back = read_splats(tmp_path / "e.ply")
    torch.testing.assert_close(back.opacities[:5], torch.full((5,), 0.25), rtol=1e-6, atol=0)
    torch.testing.assert_close(back.scales[5], sp.scales[5], rtol=1e-6, atol=0)
    e = read_ply_file(tmp_path / "e.ply", "e").elements["vertex"]
    assert _bits(e["opacity"][5:]) == _bits(v["opacity"][5:]) and _bits(e["scale_0"][6:]) == _bits(v["scale_0"][6:])


def test_scene_folder_keeps_what_the_file_stored(tmp_path):
    from test_ply import _write_raw

    v = trainer_vertex(48)
    _write_raw(tmp_path / "t.ply", "binary_little_endian", [("vertex", v)] + list(extra_elements().items()))
    for src in (tmp_path / "t.ply", tmp_path / "t.spz"):
        if src.suffix == ".spz":
            write_splats(src, read_splats(tmp_path / "t.ply"))
        sp = read_splats(src)
        cam = Camera(width=8, height=6, lens_mm=30, world_from_cam=look_at((0, -5, 1), (0, 0, 1)))
        scene = Scene(cam, sp, np.zeros((6, 8, 3), np.float32), np.ones((6, 8), np.float32), [Region(id="a", index=0, label="object")])
        save_scene(scene, tmp_path / f"stage_{src.suffix[1:]}")
        loaded = load_scene(tmp_path / f"stage_{src.suffix[1:]}").splats
        for k in ("means", "quats", "scales", "opacities", "colors", "sh_rest"):
            assert torch.equal(getattr(loaded, k), getattr(sp, k)), k
        assert loaded.sh_encoding == sp.sh_encoding and loaded.stored.format == sp.stored.format
        out = tmp_path / f"again{src.suffix}"
        write_splats(out, loaded)
        if src.suffix == ".ply":
            assert_same_stored_values({"vertex": v, **extra_elements()}, read_ply_file(out, "o").elements)
        else:
            assert gzip.decompress(out.read_bytes()) == gzip.decompress(src.read_bytes())


@pytest.mark.parametrize("name", ["a.ply", "a.compressed.ply", "a.splat", "a.spz"])
def test_every_format_round_trips_bit_exact_and_detects_itself(tmp_path, name):
    sp = _splats(700)
    write_splats(tmp_path / name, sp)
    assert detect_format(tmp_path / name) == {"a.ply": "ply", "a.compressed.ply": "compressed_ply",
                                              "a.splat": "splat", "a.spz": "spz"}[name]
    a = read_splats(tmp_path / name)
    write_splats(tmp_path / ("b" + name[1:]), a)
    b = read_splats(tmp_path / ("b" + name[1:]))
    for k in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    raw = [(tmp_path / f).read_bytes() for f in (name, "b" + name[1:])]
    if name.endswith(".spz"):
        raw = [gzip.decompress(r) for r in raw]
    assert raw[0] == raw[1]
    # The lossy formats stay close to the splats written (matched by position: compressed PLY reorders).
    from scipy.spatial import cKDTree

    idx = cKDTree(sp.means.numpy()).query(a.means.numpy())[1]
    tol = {"a.ply": 1e-6, "a.compressed.ply": 0.02, "a.splat": 0.12, "a.spz": 0.07}[name]
    expect = sp.colors[idx].clamp(0, 1) if name == "a.splat" else sp.colors[idx]  # .splat holds bytes in [0, 1]
    assert float((a.colors - expect).abs().max()) < tol
    assert float((a.opacities - sp.opacities[idx]).abs().max()) < max(tol, 3e-3)


def test_sh_survives_each_format_with_its_precision(tmp_path):
    sp = _splats(256, sh=8)
    for name, tol in (("s.ply", 0.0), ("s.compressed.ply", 8 / 256), ("s.spz", 1 / 8)):
        write_splats(tmp_path / name, sp)
        back = read_splats(tmp_path / name)
        from scipy.spatial import cKDTree

        idx = cKDTree(sp.means.numpy()).query(back.means.numpy())[1]
        assert back.sh_degree == 2
        assert float((back.sh_rest - sp.sh_rest[idx]).abs().max()) <= tol + 1e-6, name
    write_splats(tmp_path / "s.splat", sp)
    assert read_splats(tmp_path / "s.splat").sh_rest is None  # the layout has no SH


# ---------------------------------------------------------------------------------------------- compressed PLY
def _unorm(value: int, bits: int) -> float:
    return value / ((1 << bits) - 1)


def test_hand_built_compressed_chunk_decodes_per_the_published_layout(tmp_path):
    chunk = np.zeros(1, dtype=[(p, "<f4") for p in CHUNK_PROPS])
    lo = dict(min_x=-1, min_y=0, min_z=2, max_x=3, max_y=1, max_z=4, min_scale_x=-6, min_scale_y=-5, min_scale_z=-4,
              max_scale_x=-2, max_scale_y=-1, max_scale_z=0, min_r=0.1, min_g=0.0, min_b=-0.2, max_r=0.9, max_g=1.0, max_b=1.2)
    for k, val in lo.items():
        chunk[k] = val
    fields = [(2047, 0, 1023), (1023, 512, 0)]  # (x 11 bits, y 10 bits, z 11 bits)
    pos = [(x << 21) | (y << 11) | z for x, y, z in fields]
    scl = [(0 << 21) | (1023 << 11) | 2047, (1024 << 21) | (0 << 11) | 5]
    col = [(255 << 24) | (0 << 16) | (128 << 8) | 200, (10 << 24) | (20 << 16) | (30 << 8) | 255]
    # Rotation: largest index 0 (rot_0), others 10 bits each; 512 ~ 0. Second: largest is rot_3.
    rot = [(0 << 30) | (512 << 20) | (512 << 10) | 512, (3 << 30) | (700 << 20) | (300 << 10) | 512]
    vertex = np.array(list(zip(pos, rot, scl, col)), dtype=[(k, "<u4") for k in
                                                             ("packed_position", "packed_rotation", "packed_scale", "packed_color")])
    sh = np.zeros(2, dtype=[(f"f_rest_{i}", "u1") for i in range(9)])
    sh["f_rest_0"] = [0, 255]
    sh["f_rest_4"] = [100, 128]
    path = tmp_path / "hand.compressed.ply"
    write_ply_file(path, {"chunk": chunk, "vertex": vertex, "sh": sh}, ["made by hand"])
    assert detect_format(path) == "compressed_ply"
    sp = read_splats(path)
    lerp = lambda a, b, t: a * (1 - t) + b * t  # noqa: E731
    for i, (x, y, z) in enumerate(fields):
        expect = [lerp(-1, 3, _unorm(x, 11)), lerp(0, 1, _unorm(y, 10)), lerp(2, 4, _unorm(z, 11))]
        np.testing.assert_allclose(sp.means[i].numpy(), expect, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sp.scales[0].numpy(), np.exp([-6, lerp(-5, -1, 1.0), lerp(-4, 0, 1.0)]), rtol=1e-6)
    np.testing.assert_allclose(sp.scales[1].numpy(), np.exp([lerp(-6, -2, _unorm(1024, 11)), -5, lerp(-4, 0, _unorm(5, 11))]), rtol=1e-6)
    # Colour: the sRGB-encoded DC colour lerped in the chunk's range, decoded to linear; opacity the low byte.
    srgb = np.array([lerp(0.1, 0.9, 1.0), 0.0, lerp(-0.2, 1.2, _unorm(128, 8))])
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((np.maximum(srgb, 0.04045) + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(sp.colors[0].numpy(), lin, atol=1e-6)
    assert sp.opacities[0] == pytest.approx(200 / 255) and sp.opacities[1] == pytest.approx(1.0)
    norm = math.sqrt(2)
    a, b, c = [(_unorm(v, 10) - 0.5) * norm for v in (700, 300, 512)]
    np.testing.assert_allclose(sp.quats[1].numpy(), [a, b, c, math.sqrt(1 - a * a - b * b - c * c)], atol=1e-6)
    np.testing.assert_allclose(sp.quats[0].numpy(), [1, 0, 0, 0], atol=2e-3)
    # SH bytes: 0 -> -4, 255 -> +4, n -> ((n + 0.5) / 256 - 0.5) * 8; f_rest_{c*3+k} is channel c, coefficient k.
    assert sp.sh_rest[0, 0, 0] == -4 and sp.sh_rest[1, 0, 0] == 4
    assert sp.sh_rest[0, 1, 1] == pytest.approx(((100 + 0.5) / 256 - 0.5) * 8)  # f_rest_4 = channel 1, coeff 1
    # Written back unchanged: the packed words and the chunk table are reused bit for bit.
    write_splats(tmp_path / "again.compressed.ply", sp)
    back = read_ply_file(tmp_path / "again.compressed.ply", "again").elements
    assert_same_stored_values({"chunk": chunk, "vertex": vertex, "sh": sh}, back)


def test_compressed_writer_packs_the_published_bit_fields(tmp_path):
    n = 3
    sp = Splats(means=torch.tensor([[0.0, 0, 0], [2.0, 1, 4], [1.0, 0.5, 2]]),
                quats=torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, -2.0], [0.5, 0.5, 0.5, 0.5]]),
                scales=torch.tensor([[0.01, 0.1, 1.0]] * n), opacities=torch.tensor([0.0, 1.0, 0.5]),
                colors=torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.2140, 0.2140, 0.2140]]))
    write_splats(tmp_path / "w.compressed.ply", sp)
    el = read_ply_file(tmp_path / "w.compressed.ply", "w").elements
    assert list(el) == ["chunk", "vertex"] and len(el["chunk"]) == 1
    ch = el["chunk"][0]
    assert (ch["min_x"], ch["max_x"], ch["min_z"], ch["max_z"]) == (0, 2, 0, 4)
    v = el["vertex"]
    order = np.argsort(read_splats(tmp_path / "w.compressed.ply").means[:, 0].numpy())  # Morton order: find rows
    first, mid, last = order
    assert v["packed_position"][first] == 0 and v["packed_position"][last] == 0xFFFFFFFF
    assert v["packed_position"][mid] >> 21 == 1024  # x halfway: floor(0.5 * 2047 + 0.5)
    assert v["packed_color"][first] & 0xFF == 0 and v["packed_color"][last] & 0xFF == 255
    assert v["packed_color"][last] >> 24 == 255 and v["packed_color"][first] >> 24 == 0
    # Identity rotation: largest = rot_0 (index 0), the others 0 -> 512 of 1023.
    assert v["packed_rotation"][first] == (0 << 30) | (512 << 20) | (512 << 10) | 512
    # (0, 0, 0, -2): normalised and negated so the largest (rot_3) is positive.
    assert v["packed_rotation"][last] == (3 << 30) | (512 << 20) | (512 << 10) | 512


# ---------------------------------------------------------------------------------------------- .splat
def test_hand_built_splat_records(tmp_path):
    rec = struct.pack("<3f3f4B4B", 1.0, -2.0, 3.5, 0.1, 0.2, 0.3, 255, 0, 188, 128, 255, 128, 128, 128)
    rec += struct.pack("<3f3f4B4B", 0, 0, 0, 1, 1, 1, 10, 20, 30, 255, 128, 0, 128, 128)
    (tmp_path / "h.splat").write_bytes(rec)
    sp = read_splats(tmp_path / "h.splat")
    np.testing.assert_array_equal(sp.means[0].numpy(), np.float32([1, -2, 3.5]))
    np.testing.assert_array_equal(sp.scales[0].numpy(), np.float32([0.1, 0.2, 0.3]))
    srgb = np.array([255, 0, 188]) / 255
    np.testing.assert_allclose(sp.colors[0].numpy(), np.where(srgb <= 0.04045, srgb / 12.92, ((np.maximum(srgb, 0.04045) + 0.055) / 1.055) ** 2.4), atol=1e-6)
    assert sp.opacities[0] == pytest.approx(128 / 255)
    np.testing.assert_allclose(sp.quats[0].numpy(), [127 / 128, 0, 0, 0])  # (byte - 128) / 128, w first
    np.testing.assert_allclose(sp.quats[1].numpy(), [0, -1, 0, 0])
    write_splats(tmp_path / "o.splat", sp)
    assert (tmp_path / "o.splat").read_bytes() == rec
    # A fresh splat: colour sRGB-encoded, rotation normalised x 128 + 128, clipped to a byte.
    fresh = Splats(means=torch.zeros(1, 3), quats=torch.tensor([[0.0, 0, 0, 3.0]]), scales=torch.ones(1, 3),
                   opacities=torch.tensor([0.5]), colors=torch.tensor([[0.2140, 0.0, 2.0]]))
    write_splats(tmp_path / "f.splat", fresh)
    b = (tmp_path / "f.splat").read_bytes()
    srgb = 1.055 * 0.2140 ** (1 / 2.4) - 0.055
    assert list(b[24:]) == [round(srgb * 255), 0, 255, 128, 128, 128, 128, 255]  # 127.5 rounds to even


# ---------------------------------------------------------------------------------------------- .spz
def _spz(version, count, degree, body, fb=12, flags=0):
    return gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, version, count, degree, fb, flags, 0) + body)


@pytest.mark.parametrize("version", [2, 3])
def test_hand_built_spz_decodes_per_the_published_layout(tmp_path, version):
    pos = (4096 * 1).to_bytes(3, "little", signed=True) + (-2048).to_bytes(3, "little", signed=True) + (5).to_bytes(3, "little", signed=True)
    alpha, color, scale = bytes([204]), bytes([127, 255, 0]), bytes([160, 144, 0])
    if version == 2:
        rot = bytes([128, 128, 255])  # x, y, z = (b / 127.5 - 1); w from the unit norm
    else:
        comp = (0 << 30) | (0 << 29) | (511 << 20) | (0 << 10) | (1 << 9) | 200  # largest x; y, z, w = +sqrt(1/2), 0, -200/511 sqrt(1/2)
        rot = comp.to_bytes(4, "little")
    sh = bytes([128 + 64, 0, 255, 128, 128, 128, 128, 128, 128])
    (tmp_path / "h.spz").write_bytes(_spz(version, 1, 1, pos + alpha + color + scale + rot + sh))
    sp = read_splats(tmp_path / "h.spz")
    np.testing.assert_array_equal(sp.means[0].numpy(), np.float32([1.0, -0.5, 5 / 4096]))
    assert sp.opacities[0] == pytest.approx(204 / 255)
    f_dc = (np.array([127, 255, 0]) / 255 - 0.5) / 0.15
    srgb = 0.5 + SH_C0 * f_dc
    np.testing.assert_allclose(sp.colors[0].numpy(), np.where(srgb <= 0.04045, srgb / 12.92, ((np.maximum(srgb, 0.04045) + 0.055) / 1.055) ** 2.4), atol=1e-6)
    np.testing.assert_allclose(sp.scales[0].numpy(), np.exp(np.array([160, 144, 0]) / 16 - 10), rtol=1e-6)
    if version == 2:
        xyz = np.array([128, 128, 255]) / 127.5 - 1
        np.testing.assert_allclose(sp.quats[0].numpy(), [math.sqrt(max(0, 1 - (xyz ** 2).sum())), *xyz], atol=1e-6)
    else:
        y, w = math.sqrt(0.5), -200 / 511 * math.sqrt(0.5)
        np.testing.assert_allclose(sp.quats[0].numpy(), [w, math.sqrt(1 - y * y - w * w), y, 0], atol=1e-6)
    # SH: coefficient-major, RGB inner, (byte - 128) / 128.
    np.testing.assert_allclose(sp.sh_rest[0].numpy(), [[0.5, -1, 127 / 128], [0, 0, 0], [0, 0, 0]])
    write_splats(tmp_path / "o.spz", sp)
    assert gzip.decompress((tmp_path / "o.spz").read_bytes()) == gzip.decompress((tmp_path / "h.spz").read_bytes())


def test_spz_bombs_truncation_and_trailing_data_are_refused(tmp_path):
    one = bytes(9 + 1 + 3 + 3 + 4)
    (tmp_path / "bomb.spz").write_bytes(_spz(3, 1, 0, one + bytes(50_000_000)))  # 50 MB inflate, one splat declared
    with pytest.raises(InputError, match=r"\.spz.*more data than its header declares"):
        read_splats(tmp_path / "bomb.spz")
    (tmp_path / "short.spz").write_bytes(_spz(3, 2, 0, one))
    with pytest.raises(InputError, match=r"Niantic \.spz.*truncated"):
        read_splats(tmp_path / "short.spz")
    (tmp_path / "v4.spz").write_bytes(b"NGSP" + struct.pack("<I", 4) + bytes(24))
    with pytest.raises(InputError, match="version 4"):
        read_splats(tmp_path / "v4.spz")
    (tmp_path / "huge.spz").write_bytes(_spz(3, 4_000_000_000, 0, b""))
    with pytest.raises(InputError, match="exceeds the limit"):
        read_splats(tmp_path / "huge.spz")


# ---------------------------------------------------------------------------------------------- refusals
def test_refusals_name_the_format_and_the_problem(tmp_path):
    from test_ply import _write_raw

    def bad(content: bytes, pattern: str, name="x.ply"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InputError, match=pattern):
            read_splats(tmp_path / name)

    head = b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n"
    bad(head.replace(b"property float x", b"property float"), "must be 'property TYPE NAME'")
    bad(head.replace(b"format binary_little_endian 1.0\n", b""), "no format line")
    bad(head.replace(b"float", b"quux"), "unknown PLY property type 'quux'")
    bad(head + b"\0" * 3, r"truncated.*declares 4 bytes")
    bad(head + b"\0" * 12, "8 bytes of trailing data")
    bad(head.replace(b"vertex 1", b"vertex 1000000000000"), "exceeds the limit")
    bad(b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty int y\nend_header\n1 2\n3 4 5\n",
        "row 2 of element 'vertex' has 3 values")
    bad(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty int y\nend_header\n1 2.5\n",
        "not a valid int")
    v = trainer_vertex(4)
    v["scale_1"][2] = np.nan
    _write_raw(tmp_path / "nan.ply", "binary_little_endian", [("vertex", v)])
    with pytest.raises(InputError, match="non-finite value.*'scale_1'"):
        read_splats(tmp_path / "nan.ply")
    comp = b"ply\nformat binary_little_endian 1.0\nelement chunk 1\nproperty float min_x\nelement vertex 1\n" \
           b"property uint packed_position\nend_header\n" + bytes(8)
    bad(comp, "compressed PLY.*chunk element must hold", "c.compressed.ply")
    bad(bytes(33), r"antimatter15 \.splat.*not a whole", "x.splat")
    bad(b"hello", "unknown format", "x.bin")


def test_info_summarises_a_file(tmp_path):
    from test_ply import _write_raw

    _write_raw(tmp_path / "t.ply", "binary_little_endian", [("vertex", trainer_vertex(10))] + list(extra_elements().items()))
    info = splat_file_info(tmp_path / "t.ply")
    assert (info.format, info.count, info.sh_degree, info.sh_encoding) == ("ply", 10, 3, "sRGB")
    assert {"object_id", "transform", "nx"} <= set(info.extra_properties) and info.extra_elements == ["camera_rig", "tag"]
    assert info.camera is None and np.all(np.array(info.bounds_min) <= np.array(info.bounds_max))


def test_writer_refuses_unknown_formats_and_names(tmp_path):
    with pytest.raises(InputError, match="cannot tell the format"):
        write_splats(tmp_path / "x.obj", _splats(3))
    with pytest.raises(InputError, match="unknown format 'obj'"):
        write_splats(tmp_path / "x.ply", _splats(3), "obj")
    with pytest.raises(AnchorStageError, match="needs the photo camera"):
        write_splats(tmp_path / "x.ply", _splats(3), "sharp")
