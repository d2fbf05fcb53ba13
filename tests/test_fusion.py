# SPDX-License-Identifier: GPL-3.0-or-later
"""Capture fusion on the bundled Cycles product capture (sample/product): no duplicated surfaces where
views overlap, background dropped, a floater one view's depth invents is carved away by the others,
every view re-renders faithfully, the fused scene saves and loads as a scene; the multi-view colour fit
stacks the views' weights; bad capture folders give one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation
from scipy.spatial import cKDTree

from anchorstage.cli import main
from anchorstage.fidelity import masked_psnr
from anchorstage.fusion import fuse, load_capture, regress_view
from anchorstage.renderer import render

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "product"


@pytest.fixture(scope="module")
def views():
    return load_capture(SAMPLE, device="cpu")


@pytest.fixture(scope="module")
def fused(views):
    return fuse(views, device="cpu")


def _cross_view_neighbours(means: np.ndarray, own: np.ndarray, radius: np.ndarray) -> float:
    """Share of splats with a splat of another view closer than ``radius`` (a doubled surface)."""
    tree = cKDTree(means)
    hits = 0
    for i, nb in enumerate(tree.query_ball_point(means, radius)):
        hits += any(own[j] != own[i] for j in nb)
    return hits / len(means)


def test_capture_loads_frontal_first_with_alpha_masks(views):
    assert [v.name for v in views][0] == "az000" and len(views) == 8
    assert all(v.mask_source == "alpha" and v.depth_source == f"file {v.name}_depth.npy" for v in views)
    assert all(not np.isfinite(v.depth_m[~v.mask]).any() for v in views)


def test_no_duplicated_surfaces_where_views_overlap(views, fused):
    scene, rep = fused
    parts = [regress_view(v, device="cpu").splats for v in views]
    all_means = torch.cat([p.means for p in parts]).numpy()
    all_own = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    spacing = torch.cat([p.scales for p in parts]).max(1).values.numpy()
    before = _cross_view_neighbours(all_means, all_own, 0.5 * spacing)
    keep = np.ones(len(all_means), bool)
    # the fused splats are the regressed ones less the dropped: recover which view each came from
    kept_means = scene.splats.means.numpy()
    d, idx = cKDTree(all_means).query(kept_means)
    assert d.max() < 1e-6
    after = _cross_view_neighbours(kept_means, all_own[idx], 0.5 * spacing[idx])
    assert before > 0.5  # every surface is seen by two or three views
    assert after < 0.15, (before, after)  # only the seams between views' territories remain
    assert sum(rep.kept) == len(scene.splats) < 0.5 * len(all_means)
    assert all(k > 0 for k in rep.kept)
    del keep


def test_background_dropped_and_every_view_rerenders_faithfully(views, fused):
    scene, _ = fused
    for v in views:
        out = render(scene.splats, v.camera, ("color", "alpha"), device="cpu")
        alpha, color = out["alpha"].numpy(), out["color"].numpy()
        outside = ~binary_dilation(v.mask, iterations=2)
        # at most the blur of a few silhouette splats reaches 2 px past the product
        assert alpha[outside].max() < 0.5 and alpha[outside].sum() < 4.0, (v.name, alpha[outside].sum())
        assert masked_psnr(color, v.image_linear, v.mask) > 30.0, v.name


def test_one_views_floater_is_carved_by_the_others(views):
    bad = [v for v in views]
    front = bad[0]
    depth = front.depth_m.copy()
    patch = np.zeros_like(front.mask)
    patch[70:100, 80:110] = True
    patch &= np.isfinite(depth)
    depth[patch] *= 0.8  # a blob 18 cm in front of the carton, seen only by this view
    bad[0] = type(front)(front.name, front.image_linear, front.mask, depth, front.camera)
    scene, rep = fuse(bad, device="cpu", fit_colors=False)
    assert rep.empty_space[0] >= 0.9 * patch.sum()
    floater = front.camera.unproject(np.argwhere(patch)[:, ::-1] + 0.5, depth[patch])
    d, _ = cKDTree(scene.splats.means.numpy()).query(floater)
    assert d.min() > 0.05  # nothing left where the floater was


def test_stacked_colour_fit_equals_the_sum_of_views(views):
    from anchorstage.colorfit import stacked_weights, witness_weights

    sp = regress_view(views[0], device="cpu").splats
    ws = []
    for v in views[:3]:
        c = v.camera
        ws.append(witness_weights(sp.means, sp.quats, sp.scales, sp.opacities,
                                  torch.as_tensor(c.cam_from_world, dtype=torch.float32),
                                  torch.as_tensor(c.K, dtype=torch.float32), c.width, c.height,
                                  near=c.clip_start, far=c.clip_end))
    st = stacked_weights(ws)
    x = torch.rand(len(sp), 3)
    got, sums = st.normal(x)
    want = sum(w.normal(x)[0] for w in ws)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert st.n_pixels == sum(w.n_pixels for w in ws)
    torch.testing.assert_close(st.forward(x)[:ws[0].n_pixels], ws[0].forward(x))


def test_fuse_cli_writes_a_scene_that_renders(tmp_path, capsys):
    cap = tmp_path / "cap"
    cap.mkdir()
    for name in ("az000", "az090", "az180", "az270"):
        for f in SAMPLE.glob(f"{name}*"):
            shutil.copy(f, cap)
    assert main(["fuse", str(cap), "--out", str(tmp_path / "scene"), "--device", "cpu"]) == 0
    assert "fused from 4 views" in capsys.readouterr().out
    meta = json.loads((tmp_path / "scene" / "scene.json").read_text())["meta"]
    assert [v["view"] for v in meta["fusion"]["views"]] == ["az000", "az090", "az180", "az270"]
    assert main(["render", str(tmp_path / "scene"), "--camera", str(cap / "az090_camera.json"),
                 "--passes", "color,alpha,depth", "--out", str(tmp_path / "f.exr"), "--device", "cpu"]) == 0


def _capture(tmp_path: Path, names=("az000", "az045", "az090")) -> Path:
    cap = tmp_path / "cap"
    cap.mkdir(exist_ok=True)
    for name in names:
        for f in SAMPLE.glob(f"{name}*"):
            shutil.copy(f, cap)
    return cap


def test_turntable_manifest_gives_one_camera_for_every_view(tmp_path):
    cap = _capture(tmp_path, ("az000", "az045", "az090"))
    for f in cap.glob("*_camera.json"):
        f.unlink()
    shutil.copy(SAMPLE / "az000_camera.json", cap / "camera.json")
    # a fixed camera over a turntable: the product turned clockwise by the cameras' azimuth
    (cap / "manifest.json").write_text(json.dumps({"frontal_view": "az000", "turntable": {
        "camera": "camera.json", "center_m": [0.0, 0.0, 0.12], "angles_deg": {"az000": 0, "az045": -45, "az090": -90}}}))
    got = {v.name: v.camera for v in load_capture(cap, device="cpu")}
    from anchorstage.camera import load_camera_json

    for name in ("az000", "az045", "az090"):
        want = load_camera_json(SAMPLE / f"{name}_camera.json")
        np.testing.assert_allclose(got[name].world_from_cam, want.world_from_cam, atol=1e-5)


@pytest.mark.parametrize("breakage, message", [
    ("missing_camera", "has no camera file 'az045_camera.json'"),
    ("mask_size", "capture mask 'az045_mask.png' is 10x10 but its view 'az045.png' is 192x192"),
    ("depth_size", "depth file .* is 100x50 but the image is 192x192"),
    ("empty", "has no views"),
    ("missing", "does not exist or is not a folder"),
    ("bad_frontal", "names frontal_view 'front'"),
    ("bad_turntable", "the angle of view 'az045' must be a finite number of degrees"),
])
def test_bad_captures_give_one_line_errors(tmp_path, capsys, breakage, message):
    from PIL import Image

    cap = _capture(tmp_path)
    if breakage == "missing_camera":
        (cap / "az045_camera.json").unlink()
    elif breakage == "mask_size":
        Image.new("L", (10, 10), 255).save(cap / "az045_mask.png")
    elif breakage == "depth_size":
        np.save(cap / "az045_depth.npy", np.ones((50, 100), np.float32))
    elif breakage == "empty":
        for f in cap.iterdir():
            f.unlink()
    elif breakage == "missing":
        cap = tmp_path / "nowhere"
    elif breakage == "bad_frontal":
        (cap / "manifest.json").write_text(json.dumps({"frontal_view": "front"}))
    elif breakage == "bad_turntable":
        (cap / "az045_camera.json").unlink()
        (cap / "manifest.json").write_text(json.dumps({"turntable": {"camera": "az000_camera.json",
                                                                      "angles_deg": {"az045": "left"}}}))
    assert main(["fuse", str(cap), "--out", str(tmp_path / "scene"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("anchorstage fuse: error: ")
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "scene").exists()


def test_a_view_without_depth_gets_the_depth_model(tmp_path):
    pytest.importorskip("transformers")
    from test_depth_estimation import DA_PREP, _constant_head, _save, tiny_depth_anything

    net = tiny_depth_anything(max_depth=2)
    _constant_head(net.head.conv3, 0.0)  # sigmoid(0) * 2 m = 1 m everywhere
    model = _save(net, tmp_path / "depth_model", DA_PREP)
    cap = _capture(tmp_path, ("az000", "az045", "az090"))
    (cap / "az090_depth.npy").unlink()
    views = {v.name: v for v in load_capture(cap, depth_model=str(model), device="cpu")}
    v = views["az090"]
    assert v.depth_source == str(model) and views["az000"].depth_source == "file az000_depth.npy"
    d = v.depth_m[v.mask]  # one constant depth (the model's 1 m, scaled by its focal-length rule)
    assert np.isfinite(d).all() and d.min() > 0 and np.ptp(d) < 1e-5 * d.max()
    assert not np.isfinite(v.depth_m[~v.mask]).any()
    scene, rep = fuse(list(views.values()), device="cpu")
    assert len(scene.splats) == sum(rep.kept) > 0
