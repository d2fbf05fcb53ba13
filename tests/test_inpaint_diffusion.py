# SPDX-License-Identifier: GPL-3.0-or-later
"""Diffusion inpainting end to end on the CPU with tiny random models loaded through diffusers'
``from_pretrained`` (nothing on the network), and its plumbing: latent-grid masks, locks, composite."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import anchorstage as a
from anchorstage import inpaint_diffusion as dif
from gt_fixture import load_view

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_diffusion import tiny_controlnet_inpaint

    return tiny_controlnet_inpaint(tmp_path_factory.mktemp("tiny_sd"))


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


def test_latent_mask_grows_to_cells_and_gives_locks_back():
    m = np.zeros((10, 12), bool)
    m[4, 5] = True
    locks = np.zeros_like(m)
    locks[5, 4] = True
    out = dif.latent_mask(m, 4, locks)
    assert out[4:8, 4:8].sum() == 15 and out.sum() == 15 and not out[5, 4]
    edge = np.zeros((10, 12), bool)
    edge[9, 11] = True
    assert dif.latent_mask(edge, 4)[8:10, 8:12].all()


def test_composite_keeps_everything_outside_the_mask():
    rng = np.random.default_rng(0)
    base, gen = rng.random((6, 7, 3), dtype=np.float32), rng.random((6, 7, 3), dtype=np.float32)
    mask = np.zeros((6, 7), bool)
    mask[2:5, 1:4] = True
    locks = np.zeros_like(mask)
    locks[3, 2] = True
    out = dif.composite_generated(base, gen, mask, locks)
    assert np.array_equal(out[~mask | locks], base[~mask | locks])
    assert np.array_equal(out[mask & ~locks], gen[mask & ~locks])


def test_conditioning_images():
    cam = load_view("v0")["camera"]
    depth = load_view("v0")["depth_m"]
    d = dif.depth_control(depth)
    assert d.shape == depth.shape + (3,) and d.min() >= 0 and d.max() <= 1
    assert np.all(d[~np.isfinite(depth)] == 0)  # infinity is black
    assert d[170, 160, 0] > d[60, 160, 0]  # the near ground is brighter than the far facade
    n = dif.normals_from_depth(depth, cam)
    ground = n[170, 100]
    up_cam = cam.rotation.T @ np.array([0.0, 0.0, 1.0])  # world up in the camera frame
    assert ground @ up_cam > 0.99
    c = dif.normal_control(n)
    assert c.shape == n.shape and c.min() >= 0 and c.max() <= 1


def test_diffusion_refresh_runs_end_to_end_with_tiny_models(tiny):
    stage = _stage()
    cam = load_view("orbit")["camera"]
    messages = []
    settings = dif.DiffusionSettings(model=tiny["model"], controlnets=tiny["controlnets"], steps=2, max_side=48,
                                     prompt="a brick wall")
    res = a.refresh(stage, cam, inpaint="diffusion", locks=["facade_001"], diffusion=settings, device="cpu",
                    progress=lambda f, m: messages.append(m))
    assert [m for m in messages if m.startswith("diffusion step")] == ["diffusion step 1/2", "diffusion step 2/2"]
    assert res.inpaint == "diffusion" and any("diffusion:" in n for n in res.notes)
    # locked pixels bit-exact; only the void grown to the latent grid (less the locks) was regenerated
    assert np.array_equal(res.witness[res.locks], res.warp.color[res.locks])
    assert (res.filled & res.locks).sum() == 0
    assert np.all(res.filled[res.void & ~res.locks])
    assert res.filled.sum() > (res.void & ~res.locks).sum()  # grown to whole latent cells
    classical = a.refresh(stage, cam, locks=["facade_001"], device="cpu")
    outside = ~res.filled
    assert np.array_equal(res.witness[outside], classical.witness[outside])
    assert not np.allclose(res.witness[res.filled], classical.witness[res.filled])
    # deterministic for a seed
    again = a.refresh(stage, cam, inpaint="diffusion", locks=["facade_001"], diffusion=settings, device="cpu")
    assert np.array_equal(again.witness, res.witness)


def test_missing_weights_name_the_model(tmp_path, tiny):
    with pytest.raises(a.MissingDependencyError, match="nowhere/inpaint-model"):
        dif.load_pipeline(dif.DiffusionSettings(model="nowhere/inpaint-model", controlnets=tiny["controlnets"]))
    with pytest.raises(a.MissingDependencyError, match=f"{tmp_path / 'no-controlnet'}.*--inpaint classical"):
        dif.load_pipeline(dif.DiffusionSettings(model=tiny["model"],
                                                controlnets=(str(tmp_path / "no-controlnet"), tiny["controlnets"][1])))


def test_cli_diffusion_without_weights_is_a_clear_error(tmp_path, capsys):
    from anchorstage.camera import save_camera_json
    from anchorstage.cli import main

    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    save_camera_json(tmp_path / "c.json", load_view("dolly")["camera"])
    code = main(["refresh", str(scene_dir), "--camera", str(tmp_path / "c.json"), "--out", str(tmp_path / "o"),
                 "--inpaint", "diffusion", "--controlnet-depth", "nobody/depth-net", "--device", "cpu"])
    assert code == 2
    assert "nobody/depth-net" in capsys.readouterr().err


def test_settings_are_checked():
    with pytest.raises(a.InputError, match="steps"):
        dif.DiffusionSettings(steps=0)
    with pytest.raises(a.InputError, match="controlnets"):
        dif.DiffusionSettings(controlnets=("only-one",))


def test_refresh_models_stay_sd15_whatever_generation_family_is_set(monkeypatch):
    from anchorstage.inpaint_diffusion import DiffusionSettings, _models

    monkeypatch.setenv("ANCHORSTAGE_DIFFUSION_FAMILY", "sdxl")
    settings = DiffusionSettings.resolved()
    assert len(settings.controlnets) == 2 and all(settings.controlnets)
    assert _models(settings).family == "sd15"
