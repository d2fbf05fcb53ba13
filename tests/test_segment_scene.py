# SPDX-License-Identifier: GPL-3.0-or-later
"""segment() on a real reconstructed Scene from the Cycles fixture, and regions through save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from anchorstage import load_scene, reconstruct, save_scene, segment


@pytest.fixture(scope="module")
def scene():
    from gt_fixture import load_view

    v = load_view("v0")
    return reconstruct(v["image_linear"], v["depth_m"], v["camera"], device="cpu"), v


def test_segment_real_scene_and_round_trip(scene, tmp_path):
    sc, v = scene
    regions = segment(sc)
    assert sc.regions is regions
    ids = sc.splats.region_ids
    assert ids.shape == (len(sc.splats),) and ids.dtype == torch.int32
    assert float((ids >= 0).float().mean()) > 0.99  # every splat of the photo belongs somewhere
    # Splats of a planar region lie on its plane (the reconstruction is metric and exact here).
    means = sc.splats.means.numpy().astype(np.float64)
    for r in regions:
        if r.plane is not None:
            m = means[r.splat_indices]
            dist = np.abs(m @ np.asarray(r.plane[:3]) + r.plane[3])
            assert np.median(dist) < 0.05, r.id
    out = save_scene(sc, tmp_path / "scene")
    doc = json.loads((out / "scene.json").read_text())
    assert [d["id"] for d in doc["regions"]] == [r.id for r in regions]
    back = load_scene(out)
    for a, b in zip(regions, back.regions):
        assert (a.id, a.label, a.index, a.locked) == (b.id, b.label, b.index, b.locked)
        assert np.array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.plane or (), b.plane or (), atol=1e-12)
        assert np.array_equal(a.splat_indices, b.splat_indices)
    assert torch.equal(back.splats.region_ids, ids)
