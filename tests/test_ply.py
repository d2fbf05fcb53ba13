# SPDX-License-Identifier: GPL-3.0-or-later
"""3DGS PLY: our layout round-trips; SHARP's files and generic (SH) 3DGS files read with everything they hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorstage import InputError, Splats, read_ply, write_ply
from anchorstage.image_io import srgb_to_linear
from anchorstage.sh import SH_C0
from anchorstage.splatio import sharp

STANDARD = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]


def _splats(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    return Splats(means=torch.randn(n, 3, generator=g) * 5, quats=q, scales=torch.rand(n, 3, generator=g) * 0.1 + 1e-4,
                  opacities=torch.rand(n, generator=g) * 0.98 + 0.01, colors=torch.rand(n, 3, generator=g))


def _write_raw(path, fmt, elements, comments=()):
    """A PLY written by hand: elements = [(name, structured array)], fmt binary_little_endian/big/ascii."""
    kinds = {"f4": "float", "u4": "uint", "i4": "int", "u1": "uchar", "f8": "double", "u2": "ushort", "i2": "short", "i1": "char"}
    head = ["ply", f"format {fmt} 1.0", *[f"comment {c}" for c in comments]]
    for name, arr in elements:
        head.append(f"element {name} {len(arr)}")
        head += [f"property {kinds[arr.dtype[k].str[1:]]} {k}" for k in arr.dtype.names]
    head.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(head) + "\n").encode())
        for _, arr in elements:
            if fmt == "ascii":
                for row in arr:
                    f.write((" ".join(repr(float(v)) if isinstance(v, np.floating) else str(v) for v in row) + "\n").encode())
            else:
                f.write(arr.astype(arr.dtype.newbyteorder("<" if fmt == "binary_little_endian" else ">")).tobytes())


def _vertex(sp, dc, extra=()):
    n = len(sp)
    names = STANDARD + [e for e, _ in extra]
    v = np.zeros(n, dtype=[(k, "f4") for k in names])
    v["x"], v["y"], v["z"] = sp.means.numpy().T
    v["f_dc_0"], v["f_dc_1"], v["f_dc_2"] = dc.T
    o = sp.opacities.double().numpy()
    v["opacity"] = np.log(o / (1 - o))
    v["scale_0"], v["scale_1"], v["scale_2"] = np.log(sp.scales.double().numpy()).T
    v["rot_0"], v["rot_1"], v["rot_2"], v["rot_3"] = sp.quats.numpy().T
    for name, values in extra:
        v[name] = values
    return v


def test_round_trip_and_standard_header(tmp_path):
    sp = _splats()
    path = tmp_path / "s.ply"
    write_ply(path, sp)
    head = path.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    assert head[1] == "format binary_little_endian 1.0"
    vertex = head[head.index(f"element vertex {len(sp)}") + 1:head.index("element color_space 1")]
    props = [line.split()[-1] for line in vertex]
    assert props[:3] == ["x", "y", "z"] and [p for p in props if p in STANDARD] == STANDARD
    assert all(line.split()[1] == "float" for line in vertex)
    # SHARP's machine-readable colour marker follows the splats: one uchar, 0 = sRGB.
    assert head[-2:] == ["element color_space 1", "property uchar color_space"] and "comment color_space sRGB" in head
    assert path.stat().st_size == len("\n".join(head)) + 1 + len("end_header\n") + 17 * 4 * len(sp) + 1
    assert path.read_bytes()[-1] == 0
    back = read_ply(path)
    assert torch.equal(back.means, sp.means) and torch.equal(back.quats, sp.quats)
    for k in ("scales", "opacities", "colors"):
        torch.testing.assert_close(getattr(back, k), getattr(sp, k), rtol=1e-6, atol=1e-6)
    # The written normals are the splats' local z axes.
    info = read_ply(path)
    assert info.sh_encoding == "sRGB" and info.sh_degree == 0
    # Other viewers read DC as a display colour: the file holds the sRGB encoding of our linear colours.
    raw = np.frombuffer(path.read_bytes().split(b"end_header\n")[1][:-1], dtype="<f4").reshape(len(sp), -1)
    dc = raw[:, props.index("f_dc_0"):props.index("f_dc_0") + 3]
    lin = sp.colors.double().numpy()
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(0.5 + SH_C0 * dc, srgb, atol=1e-6)


def test_empty_and_extreme_values(tmp_path):
    empty = Splats(means=torch.zeros(0, 3), quats=torch.zeros(0, 4), scales=torch.zeros(0, 3),
                   opacities=torch.zeros(0), colors=torch.zeros(0, 3))
    write_ply(tmp_path / "e.ply", empty)
    assert len(read_ply(tmp_path / "e.ply")) == 0
    sp = _splats(4)
    sp.opacities[:] = torch.tensor([0.0, 1.0, 0.5, 1e-9])
    sp.colors[:] = torch.tensor([[3.5, 0.0, 1.0], [0.001, 0.5, 12.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # HDR survives
    write_ply(tmp_path / "x.ply", sp)
    back = read_ply(tmp_path / "x.ply")
    assert torch.all(torch.isfinite(back.opacities)) and back.opacities[0] < 1e-6 and back.opacities[1] > 1 - 1e-6
    torch.testing.assert_close(back.colors, sp.colors, rtol=1e-5, atol=1e-6)


def test_sharp_layout_with_supplementary_elements(tmp_path):
    sp = _splats(300)
    srgb = np.where(sp.colors.numpy() <= 0.0031308, sp.colors.numpy() * 12.92,
                    1.055 * sp.colors.numpy() ** (1 / 2.4) - 0.055)
    v = _vertex(sp, (srgb - 0.5) / SH_C0)
    elems = [("vertex", v),
             ("extrinsic", np.array([(x,) for x in np.eye(4).ravel()], dtype=[("extrinsic", "f4")])),
             ("intrinsic", np.array([(x,) for x in [500, 0, 320, 0, 500, 240, 0, 0, 1]], dtype=[("intrinsic", "f4")])),
             ("image_size", np.array([(640,), (480,)], dtype=[("image_size", "u4")])),
             ("frame", np.array([(1,), (300,)], dtype=[("frame", "i4")])),
             ("disparity", np.array([(0.1,), (0.9,)], dtype=[("disparity", "f4")])),
             ("color_space", np.array([(0,)], dtype=[("color_space", "u1")])),
             ("version", np.array([(1,), (5,), (0,)], dtype=[("version", "u1")]))]
    _write_raw(tmp_path / "sharp.ply", "binary_little_endian", elems)
    info = read_ply(tmp_path / "sharp.ply")
    assert info.sh_encoding == "sRGB"
    np.testing.assert_allclose(info.colors.numpy(), sp.colors.numpy(), atol=1e-5)  # back to linear
    np.testing.assert_allclose(info.means.numpy(), sp.means.numpy())
    np.testing.assert_allclose(info.opacities.numpy(), sp.opacities.numpy(), rtol=1e-5)
    el = info.stored.elements
    assert el["image_size"]["image_size"].tolist() == [640, 480]
    assert el["intrinsic"]["intrinsic"].reshape(3, 3)[0, 0] == 500
    assert el["version"]["version"].tolist() == [1, 5, 0]
    # color_space 1 means the DC colours are already linear.
    elems[6] = ("color_space", np.array([(1,)], dtype=[("color_space", "u1")]))
    _write_raw(tmp_path / "sharp_lin.ply", "binary_little_endian", elems)
    np.testing.assert_allclose(read_ply(tmp_path / "sharp_lin.ply").colors.numpy(), srgb, atol=1e-5)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_generic_3dgs_with_spherical_harmonics(tmp_path, fmt):
    sp = _splats(50)
    rest = [(f"f_rest_{i}", np.random.default_rng(i).normal(size=50).astype(np.float32)) for i in range(45)]
    normals = [(k, np.zeros(50, np.float32)) for k in ("nx", "ny", "nz")]
    v = _vertex(sp, (sp.colors.numpy() - 0.5) / SH_C0, normals + rest)
    v["rot_0"] *= 3.0  # trained files store unnormalised rotations
    v["rot_1"] *= 3.0
    v["rot_2"] *= 3.0
    v["rot_3"] *= 3.0
    _write_raw(tmp_path / "g.ply", fmt, [("vertex", v)], comments=["generated by a trainer"])
    info = read_ply(tmp_path / "g.ply")
    assert info.sh_degree == 3 and info.stored.comments == ["generated by a trainer"]
    # Trainers fit sRGB photos: unmarked DC colours are sRGB values, decoded to linear.
    assert info.sh_encoding == "sRGB"
    np.testing.assert_allclose(info.colors.numpy(), srgb_to_linear(sp.colors.numpy()), atol=1e-5)
    # Unnormalised rotations are kept as stored (every consumer normalises).
    np.testing.assert_allclose(info.quats.numpy(), 3.0 * sp.quats.numpy(), atol=1e-6)
    np.testing.assert_allclose(info.scales.numpy(), sp.scales.numpy(), rtol=1e-5)
    # f_rest_{c * 15 + k} is coefficient k of channel c.
    np.testing.assert_array_equal(info.sh_rest.numpy()[:, 4, 2], rest[2 * 15 + 4][1])


def test_a_file_marked_linear_is_read_as_stored(tmp_path):
    sp = _splats(20)
    _write_raw(tmp_path / "lin.ply", "binary_little_endian", [("vertex", _vertex(sp, (sp.colors.numpy() - 0.5) / SH_C0))],
               comments=["color_space linearRGB"])
    info = read_ply(tmp_path / "lin.ply")
    assert info.sh_encoding == "linearRGB"
    np.testing.assert_allclose(info.colors.numpy(), sp.colors.numpy(), atol=1e-5)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_ply(tmp_path / "none.ply")
    (tmp_path / "t.ply").write_text("hello")
    with pytest.raises(InputError, match="not a PLY"):
        read_ply(tmp_path / "t.ply")
    mesh = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    _write_raw(tmp_path / "m.ply", "binary_little_endian", [("vertex", mesh)])
    with pytest.raises(InputError, match="missing vertex properties f_dc_0"):
        read_ply(tmp_path / "m.ply")
    write_ply(tmp_path / "s.ply", _splats(10))
    data = (tmp_path / "s.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-20])
    with pytest.raises(InputError, match="truncated"):
        read_ply(tmp_path / "cut.ply")


def _sharp_file(tmp_path, sp, extrinsic):
    """A SHARP-style PLY of ``sp`` (in SHARP's camera frame) with a 640x480, f=500 px camera."""
    elems = [("vertex", _vertex(sp, (sp.colors.numpy() - 0.5) / SH_C0)),
             ("extrinsic", np.array([(x,) for x in np.asarray(extrinsic).ravel()], dtype=[("extrinsic", "f4")])),
             ("intrinsic", np.array([(x,) for x in [500, 0, 330, 0, 500, 236, 0, 0, 1]], dtype=[("intrinsic", "f4")])),
             ("image_size", np.array([(640,), (480,)], dtype=[("image_size", "u4")])),
             ("color_space", np.array([(1,)], dtype=[("color_space", "u1")]))]
    _write_raw(tmp_path / "sharp.ply", "binary_little_endian", elems)
    return read_ply(tmp_path / "sharp.ply")


def _in_front_of_camera(n=400, seed=3):
    sp = _splats(n, seed)
    g = torch.Generator().manual_seed(seed)
    sp.means = torch.rand(n, 3, generator=g) * torch.tensor([4.0, 3.0, 3.0]) + torch.tensor([-2.0, -1.5, 3.0])
    sp.scales = sp.scales * 0.5 + 0.02
    return sp


def test_sharp_file_is_placed_in_the_z_up_world_with_its_camera(tmp_path):
    from anchorstage import Camera, render

    sp = _in_front_of_camera()
    info = _sharp_file(tmp_path, sp, np.eye(4))
    assert sharp.is_sharp(info)
    cam = sharp.camera(info)
    assert cam.resolution == (640, 480) and cam.focal_px == pytest.approx(500.0)
    assert cam.principal_point_px == pytest.approx((330.0, 236.0))
    np.testing.assert_allclose(cam.forward, [0, 1, 0], atol=1e-12)  # looks along world +Y, Z up
    np.testing.assert_allclose(cam.up, [0, 0, 1], atol=1e-12)
    world = sharp.placed(info)
    # Camera-frame z (forward) becomes world +Y, camera-frame -y (up) becomes world +Z.
    np.testing.assert_allclose(world.means.numpy()[:, 1], sp.means.numpy()[:, 2], atol=1e-5)
    np.testing.assert_allclose(world.means.numpy()[:, 2], -sp.means.numpy()[:, 1], atol=1e-5)
    # The photo camera sees the placed splats exactly as SHARP's camera saw the file's.
    in_file = render(info, Camera.from_K(cam.K, 640, 480), passes=("color", "depth"), backend="torch")
    placed = render(world, cam, passes=("color", "depth"), backend="torch")
    torch.testing.assert_close(placed["color"], in_file["color"], atol=2e-4, rtol=0)
    torch.testing.assert_close(placed["depth"], in_file["depth"], rtol=1e-4, atol=1e-4)


def test_sharp_extrinsic_is_honoured(tmp_path):
    from anchorstage import look_at

    sp = _in_front_of_camera()
    view = np.linalg.inv(look_at((0.5, -0.2, 0.1), (0.4, 0.1, 5.0), up=(0, -1, 0)))  # world → camera
    placed = sharp.placed(_sharp_file(tmp_path, sp, view)).means.numpy()
    expected = (look_at((0, 0, 0), (0, 1, 0)) @ view @ np.c_[sp.means.numpy(), np.ones(len(sp))].T).T[:, :3]
    np.testing.assert_allclose(placed, expected, atol=1e-4)


def test_plain_3dgs_files_stay_in_their_frame(tmp_path):
    sp = _splats(50)
    write_ply(tmp_path / "s.ply", sp)
    info = read_ply(tmp_path / "s.ply")
    assert not sharp.is_sharp(info) and sharp.camera(info) is None
    assert sharp.placed(info) is info


def test_rigid_transform_of_splats():
    from scipy.spatial.transform import Rotation

    sp = _splats(64)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", [20, -35, 110], degrees=True).as_matrix()
    m[:3, 3] = [1.0, -2.0, 0.5]
    out = sp.transformed(m)
    np.testing.assert_allclose(out.means.numpy(), sp.means.numpy() @ m[:3, :3].T + m[:3, 3], atol=1e-5)
    # Local axes rotate with the transform: R(q') = M R(q).
    r_in = Rotation.from_quat(sp.quats.numpy()[:, [1, 2, 3, 0]]).as_matrix()
    r_out = Rotation.from_quat(out.quats.numpy()[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(r_out, m[:3, :3] @ r_in, atol=1e-5)
    assert torch.equal(out.scales, sp.scales) and torch.equal(out.colors, sp.colors)
    with pytest.raises(InputError, match="rigid"):
        sp.transformed(np.diag([2.0, 1, 1, 1]))
