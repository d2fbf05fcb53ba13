# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction against Blender Cycles ground truth (tests/data/cycles_gt, see gt_fixture.py).

One view with its exact Cycles depth is reconstructed; the splats are checked against the
stage's analytic geometry: centres on the true surfaces, metric distances, thin axes along the
true normals, nothing from the sky.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anchorstage import reconstruct
from gt_fixture import PASS_INDEX, TRUTH, load_view, surface_distance


@pytest.fixture(scope="module")
def v0():
    return load_view("v0")


@pytest.fixture(scope="module")
def scene_one_layer(v0):
    return reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], second_layer=False, device="cpu")


@pytest.fixture(scope="module")
def scene_two_layers(v0):
    return reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], second_layer=True, device="cpu")


def _source_object(scene, view):
    """Object index of the reference pixel each (first-layer) splat's centre projects into."""
    uv, z = view["camera"].project(scene.splats.means.numpy())
    assert np.all(z > 0)
    h, w = view["object_index"].shape
    ij = np.clip(np.floor(uv).astype(int), 0, [w - 1, h - 1])
    return view["object_index"][ij[:, 1], ij[:, 0]]


def _thin_axis(quats: np.ndarray) -> np.ndarray:
    w, x, y, z = quats.T
    return np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)


def _fit_plane(p: np.ndarray) -> tuple[np.ndarray, float]:
    c = p.mean(0)
    n = np.linalg.svd(p - c, full_matrices=False)[2][-1]
    return n, -float(n @ c)


def _fit_sphere(p: np.ndarray) -> tuple[np.ndarray, float]:
    # |p|^2 = 2 c.p + (r^2 - |c|^2): linear least squares.
    a = np.concatenate([2 * p, np.ones((len(p), 1))], axis=1)
    sol = np.linalg.lstsq(a, (p * p).sum(1), rcond=None)[0]
    c = sol[:3]
    return c, float(np.sqrt(sol[3] + c @ c))


def test_splat_centres_lie_on_the_true_surfaces(scene_one_layer, v0):
    means = scene_one_layer.splats.means.numpy().astype(np.float64)
    obj = _source_object(scene_one_layer, v0)
    assert np.count_nonzero(obj == PASS_INDEX["sky"]) == 0
    for name in ("ground", "facade"):
        d = surface_distance(means[obj == PASS_INDEX[name]], name)
        assert len(d) > 1000
        assert d.max() < 0.01, f"{name}: plane residual {d.max():.4g} m"
    d = surface_distance(means[obj == PASS_INDEX["sphere"]], "sphere")
    assert d.max() < 0.01 and np.median(d) < TRUTH["sphere"]["max_facet_error_m"]
    # The facade is 10 m from the camera: its residual must stay under 1 cm there, and then some.
    facade = means[obj == PASS_INDEX["facade"]]
    assert np.abs(facade[:, 1] - 10.0).max() < 0.001


def test_known_distances_are_right_to_one_percent(scene_one_layer, v0):
    means = scene_one_layer.splats.means.numpy().astype(np.float64)
    obj = _source_object(scene_one_layer, v0)
    cam_pos = v0["camera"].position
    n, d = _fit_plane(means[obj == PASS_INDEX["ground"]])
    assert abs(abs(n @ cam_pos + d) - 1.6) / 1.6 < 0.01  # camera height above the ground
    n, d = _fit_plane(means[obj == PASS_INDEX["facade"]])
    assert abs(abs(n @ cam_pos + d) - 10.0) / 10.0 < 0.01  # camera to facade
    c, r = _fit_sphere(means[obj == PASS_INDEX["sphere"]])
    true_c = np.array(TRUTH["sphere"]["center"])
    assert abs(r - TRUTH["sphere"]["radius"]) / TRUTH["sphere"]["radius"] < 0.01
    assert abs(np.linalg.norm(c - cam_pos) - np.linalg.norm(true_c - cam_pos)) / np.linalg.norm(true_c - cam_pos) < 0.01
    box = means[obj == PASS_INDEX["box"]]
    # The box's visible faces: every point lies within the 1 m cube around its centre.
    yaw = np.radians(TRUTH["box"]["yaw_deg"])
    rz = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    local = (box - TRUTH["box"]["center"]) @ rz
    assert np.abs(local).max() < 0.5 + 0.005


def test_thin_axes_follow_the_true_normals(scene_one_layer, v0):
    sp = scene_one_layer.splats
    obj = _source_object(scene_one_layer, v0)
    axis = _thin_axis(sp.quats.numpy().astype(np.float64))
    # A pixel on the image border cannot tell a crease from its plane continuing: left out.
    uv, _ = v0["camera"].project(sp.means.numpy())
    inner = np.all((uv > 1) & (uv < [v0["camera"].width - 1, v0["camera"].height - 1]), axis=1)
    conf = np.where(inner, sp.confidence.numpy(), 0.0)
    for name, normal in (("ground", [0, 0, 1]), ("facade", [0, 1, 0])):
        sel = (obj == PASS_INDEX[name]) & (conf > 0.5)
        cos = np.abs(axis[sel] @ np.array(normal, dtype=float))
        assert np.degrees(np.arccos(cos.min())) < 1.0
    sel = (obj == PASS_INDEX["sphere"]) & (conf > 0.5)
    radial = sp.means.numpy()[sel] - np.array(TRUTH["sphere"]["center"])
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(np.abs((axis[sel] * radial).sum(1)), 0.0, 1.0)))
    # A curved surface sampled every pixel (~1.6 cm on a 0.8 m sphere); worst where it meets the ground.
    assert np.median(angle) < 1.5 and np.percentile(angle, 99) < 5.0 and angle.max() < 10.0
    # Thin along the normal: the third scale is a tenth of the in-plane ones.
    s = sp.scales.numpy()
    assert np.all(s[:, 2] <= 0.11 * s[:, 1])


def test_no_splat_comes_from_the_sky(v0):
    depth = v0["depth_m"].copy()
    sky = ~np.isfinite(depth)
    assert sky.any()
    counts = []
    for sky_value in (np.inf, np.nan, 1e10, -1.0, 0.0):  # every way a renderer or a model marks "no depth"
        depth[sky] = sky_value
        sc = reconstruct(v0["image_linear"], depth, v0["camera"], second_layer=False, device="cpu",
                         max_splats=10**6)
        means = sc.splats.means.numpy()
        assert np.all(np.isfinite(means))
        assert np.linalg.norm(means - v0["camera"].position, axis=1).max() < 40.0
        assert np.count_nonzero(_source_object(sc, v0) == PASS_INDEX["sky"]) == 0
        counts.append(len(sc.splats))
    assert len(set(counts)) == 1 and counts[0] == np.count_nonzero(~sky)  # no budget: one splat per pixel


def test_second_layer_continues_the_background_behind_edges(scene_two_layers, v0):
    m = scene_two_layers.meta
    n2 = m["second_layer_splats"]
    assert n2 > 100 and m["pruned_splats"] == 0
    layer2 = scene_two_layers.splats.means.numpy()[-n2:].astype(np.float64)
    # On an analytic surface (the ground or the facade extended behind the objects) ...
    d = np.minimum(surface_distance(layer2, "ground"), surface_distance(layer2, "facade"))
    assert np.percentile(d, 95) < 0.01
    # ... and hidden behind the foreground from the reference camera.
    cam = v0["camera"]
    uv, z = cam.project(layer2)
    ij = np.clip(np.floor(uv).astype(int), 0, [cam.width - 1, cam.height - 1])
    assert np.all(z > v0["depth_m"][ij[:, 1], ij[:, 0]] * 1.04)
    assert np.all(scene_two_layers.splats.confidence[-n2:].numpy() < 0.5)


def test_colours_are_the_linear_pixels(v0):
    # Without the colour fit (see test_colorfit.py for the fit).
    sp = reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], second_layer=False, fit_colors=False,
                     device="cpu").splats
    uv, _ = v0["camera"].project(sp.means.numpy())
    px = np.floor(uv).astype(int)
    centred = np.all(np.abs(uv - px - 0.5) < 1e-3, axis=1)  # unmerged splats sit on pixel centres
    assert centred.sum() > 1000
    got = sp.colors.numpy()[centred]
    want = v0["image_linear"][px[centred, 1], px[centred, 0]]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert torch.all(sp.opacities > 0) and torch.all(sp.opacities < 1)


def test_default_stage_reproduces_its_photo_and_covers_a_moved_view(scene_two_layers, v0):
    # Default settings (colour fit on): the photo's own view comes back at >= 40 dB (8-bit sRGB,
    # pixels with depth), and exact silhouettes stay opaque, so a moved camera sees no holes.
    from anchorstage import render
    from anchorstage.image_io import to_uint8_srgb
    from gt_fixture import covisible

    valid = np.isfinite(v0["depth_m"])
    out = render(scene_two_layers.splats, v0["camera"], ["color"], device="cpu")
    a = to_uint8_srgb(out["color"].numpy()).astype(np.float64)
    b = to_uint8_srgb(v0["image_linear"]).astype(np.float64)
    assert 10 * np.log10(255.0 ** 2 / ((a - b)[valid] ** 2).mean()) >= 40.0
    v2 = load_view("v2")
    cov = covisible(v2, v0)
    alpha = render(scene_two_layers.splats, v2["camera"], ["alpha"], device="cpu")["alpha"].numpy()
    assert (alpha[cov] >= 0.5).mean() >= 0.9995  # 0.9989 with the two-sided edge opacity
