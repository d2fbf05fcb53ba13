# SPDX-License-Identifier: GPL-3.0-or-later
"""Frames on numpy alone: numpy-backed splats, the compiled CPU path without torch, and the CLI's
one-frame render that never imports torch (the start-up latency of docs/scale.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from anchorstage import InputError, Splats, read_exr
from anchorstage import lod as lod_mod
from anchorstage import raster_cpu
from anchorstage.camera import save_camera_json
from anchorstage.passes import PASSES
from anchorstage.renderer import render, render_host
from anchorstage.scene import load_scene, save_scene
from anchorstage.splatio.ply import read_ply, write_ply
from anchorstage.stages import render_frame
from untrusted_support import tiny_camera, tiny_scene, tiny_splats

pytestmark = pytest.mark.skipif(not raster_cpu.available(), reason="the numpy path is the compiled CPU path (numba)")

_FIELDS = ("means", "quats", "scales", "opacities", "colors", "confidence", "region_ids", "sh_rest")


def _sh_splats(n: int = 400, seed: int = 3) -> Splats:
    """Random splats in front of :func:`tiny_camera` with SH3 colours, confidences and several regions."""
    g = torch.Generator().manual_seed(seed)
    sp = tiny_splats(n, seed)
    sp.sh_rest = 0.2 * torch.randn(n, 15, 3, generator=g)
    sp.confidence = torch.rand(n, generator=g)
    sp.region_ids = torch.randint(-1, 5, (n,), generator=g, dtype=torch.int32)
    sp.opacities = 0.2 + 0.79 * torch.rand(n, generator=g)
    sp.scales = 0.04 + 0.12 * torch.rand(n, 3, generator=g)
    return sp


def test_numpy_backed_splats_check_like_tensors_and_convert_without_copies():
    sp = _sh_splats(50)
    host = sp.numpy()
    assert host.numpy_backed and not sp.numpy_backed and host.numpy() is host
    for k in _FIELDS:  # views of the tensors, no copy
        assert isinstance(getattr(host, k), np.ndarray)
        assert np.shares_memory(getattr(host, k), getattr(sp, k).numpy())
    back = host.to("cpu")
    assert not back.numpy_backed and all(np.shares_memory(getattr(back, k).numpy(), getattr(host, k)) for k in _FIELDS)
    assert str(host.device) == "cpu" and host.sh_degree == 3

    # Construction refuses what a tensor set refuses, in the same words.
    fields = {k: getattr(host, k).copy() for k in _FIELDS}
    fields["scales"][3, 1] = np.nan
    with pytest.raises(InputError, match=r"1 of 50 splats .* in scales \(1\)"):
        Splats(**fields)
    with pytest.raises(InputError, match="region_ids must be an integer array"):
        Splats(**{**{k: getattr(host, k) for k in _FIELDS}, "region_ids": np.zeros(50, np.float32)})
    with pytest.raises(InputError, match=r"quats must have shape \[50, 4\]"):
        Splats(**{**{k: getattr(host, k) for k in _FIELDS}, "quats": host.quats[:, :3]})
    plain = Splats(means=host.means, quats=host.quats, scales=host.scales, opacities=host.opacities, colors=host.colors)
    assert plain.numpy_backed and plain.confidence.dtype == np.float32 and (plain.region_ids == -1).all()

    # Subsets take tensor or numpy indices on either kind; transforms and concatenation give tensors.
    idx = np.array([4, 1, 7])
    for a, b in ((host.subset(idx), sp.subset(torch.from_numpy(idx))), (host.subset(torch.from_numpy(idx)), sp.subset(idx)),
                 (host.subset(slice(2, 9)), sp.subset(slice(2, 9)))):
        assert a.numpy_backed and not b.numpy_backed
        for k in _FIELDS:
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k).numpy())
    moved = host.transformed(np.diag([1.0, 1.0, 1.0, 1.0]))
    assert not moved.numpy_backed and torch.equal(moved.means, sp.means)
    both = Splats.concat([host, sp])
    assert not both.numpy_backed and len(both) == 100


@pytest.mark.parametrize("background", [None, (0.1, 0.2, 0.3)])
def test_render_host_on_numpy_matches_the_torch_oracle(monkeypatch, background):
    """Every pass of a numpy-backed frame against the pure-torch pipeline (features, compositor and
    finish on torch), and exactly equal to the same frame of tensor splats."""
    sp, cam = _sh_splats(), tiny_camera(48, 36)
    host = render_host(sp.numpy(), cam, device="cpu", background=background)
    via_tensors = render(sp, cam, device="cpu", background=background)
    assert set(host) == set(PASSES)
    for k in PASSES:
        assert isinstance(host[k], np.ndarray) and host[k].dtype == via_tensors[k].numpy().dtype
        np.testing.assert_array_equal(host[k], via_tensors[k].numpy(), err_msg=k)
    assert 0.1 < float((host["alpha"] > 0.5).mean()) < 1.0 and len(np.unique(host["region"])) > 3

    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "0")  # the torch oracle
    ref = render(sp, cam, device="cpu", background=background)
    assert (host["region"] == ref["region"].numpy()).mean() > 0.995
    for k in set(PASSES) - {"region"}:
        np.testing.assert_allclose(host[k], ref[k].numpy(), atol=5e-5, rtol=1e-4, err_msg=k)


def test_numpy_scene_renders_like_the_tensor_scene(tmp_path):
    """load_scene(numpy=True) and read_ply(numpy=True) give the same splats as tensors, and a
    render_frame of them (Void from the witness included) equals the tensor scene's."""
    save_scene(tiny_scene(300), tmp_path / "sc")
    a, b = load_scene(tmp_path / "sc", numpy=True), load_scene(tmp_path / "sc")
    assert a.splats.numpy_backed and not b.splats.numpy_backed
    for k in _FIELDS[:-1]:
        np.testing.assert_array_equal(getattr(a.splats, k), getattr(b.splats, k).numpy(), err_msg=k)
    cam = a.camera.truck(0.3)
    fa, fb = render_frame(a, cam), render_frame(b, cam)
    for k in PASSES:
        np.testing.assert_array_equal(fa.passes[k], fb.passes[k], err_msg=k)
    assert 0 < fa.passes["void"].mean() < 1

    write_ply(tmp_path / "s.ply", _sh_splats())
    p, q = read_ply(tmp_path / "s.ply", numpy=True), read_ply(tmp_path / "s.ply")
    assert p.numpy_backed and p.sh_degree == 3 and not q.numpy_backed
    np.testing.assert_array_equal(p.sh_rest, q.sh_rest.numpy())
    with pytest.raises(InputError, match="numpy must be True or False"):
        load_scene(tmp_path / "sc", numpy="yes")


def test_level_of_detail_frame_of_numpy_splats(monkeypatch):
    """Numpy-backed splats at the level-of-detail size go through the cut as tensor splats do."""
    monkeypatch.setattr(lod_mod, "MIN_SPLATS", 200)
    sp, cam = _sh_splats(1500), tiny_camera(40, 30)
    host = sp.numpy()
    fa = render_frame(host, cam, lod_threshold_px=4.0)
    fb = render_frame(sp, cam, lod_threshold_px=4.0)
    tree = lod_mod.tree_for(host)
    c, d = lod_mod.cut(tree, host, cam, 4.0), lod_mod.cut(tree, sp, cam, 4.0)
    assert c.merged > 0 and c.leaves is not None  # a copied cut, merged nodes in it
    assert c.splats.numpy_backed and isinstance(c.leaves, np.ndarray)  # the kind the splats came in
    assert not d.splats.numpy_backed and isinstance(d.leaves, torch.Tensor)
    for k in _FIELDS[:-1]:
        np.testing.assert_array_equal(getattr(c.splats, k), getattr(d.splats, k).numpy(), err_msg=k)
    for k in PASSES:
        np.testing.assert_allclose(fa.passes[k], fb.passes[k], atol=1e-6, err_msg=k)


def _run(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


_CLI = r"""
import json, sys
from anchorstage.cli import main
rc = main(["render", sys.argv[1], "--camera", sys.argv[2], "--out", sys.argv[3]])
from anchorstage.device import cuda_possible
print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "cuda_possible": cuda_possible(),
                  "torch_after": "torch" in sys.modules}))
"""


def test_cli_render_of_a_scene_and_a_ply_never_imports_torch(tmp_path):
    """``anchorstage render`` of a scene folder or a PLY on the CPU loads neither torch nor anything
    that imports it, and writes the frame a tensor render gives."""
    sc = tiny_scene(300)
    save_scene(sc, tmp_path / "sc")
    cam = sc.camera.truck(0.2)
    save_camera_json(tmp_path / "cam.json", cam)
    write_ply(tmp_path / "s.ply", _sh_splats())
    for src, ref in ((tmp_path / "sc", load_scene(tmp_path / "sc")), (tmp_path / "s.ply", read_ply(tmp_path / "s.ply"))):
        out = tmp_path / f"{src.stem}.exr"
        got = _run(_CLI, str(src), str(tmp_path / "cam.json"), str(out))
        torch_build_cpu = torch.version.cuda is None
        assert got["rc"] == 0
        if torch_build_cpu:  # a CUDA build asks torch whether a GPU is there
            assert not got["torch"] and not got["cuda_possible"] and not got["torch_after"]
        frame = render_frame(ref, cam)
        written = read_exr(out)
        for k in ("color", "depth", "region", "void"):
            np.testing.assert_allclose(written[k], frame.passes[k], rtol=1e-3, atol=1e-3, err_msg=k)  # half floats


def test_compiled_normals_equal_the_array_code_bit_for_bit():
    """The normal pass's per-splat channel: the compiled kernel against the tensor code it follows,
    with tied scales (the first thin axis wins) and splats on both sides of the camera."""
    from anchorstage.rotation import facing_thin_axis

    rng = np.random.default_rng(5)
    n = 20000
    q = rng.standard_normal((n, 4)).astype(np.float32)
    s = np.abs(rng.standard_normal((n, 3))).astype(np.float32)
    s[::7, 1] = s[::7, 0]
    s[::11, 2] = s[::11, 1]
    m = rng.standard_normal((n, 3)).astype(np.float32)
    eye = np.array([0.3, -0.2, 0.1], np.float32)
    got = facing_thin_axis(q, s, m, eye)
    want = facing_thin_axis(*(torch.from_numpy(a) for a in (q, s, m)), torch.from_numpy(eye)).numpy()
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert ((eye - m) * got).sum(1).min() >= 0  # every normal faces the camera
