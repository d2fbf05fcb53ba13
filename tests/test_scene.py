# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene folders: exact round trip (splats, image, depth, camera, regions), versions, refusal, atomicity."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import anchorstage.scene as scene_mod
from anchorstage import InputError, OutputError, Region, load_scene, read_ply, reconstruct, save_scene
from anchorstage.scene import FORMAT_VERSION, Scene
from gt_fixture import PASS_INDEX, load_view


@pytest.fixture(scope="module")
def scene():
    v = load_view("v0")
    sc = reconstruct(v["image_linear"], v["depth_m"], v["camera"], max_splats=8000, device="cpu",
                     meta={"depth_source": "Cycles", "intrinsics_source": "camera file"})
    ground = Region(index=0, id="ground_001", label="ground", mask=v["object_index"] == PASS_INDEX["ground"],
                    plane=(0, 0, 1, 0), splat_indices=np.arange(0, 50, dtype=np.int64), locked=True)
    sky = Region(index=1, id="sky", label="sky", mask=v["object_index"] == PASS_INDEX["sky"], extra={"note": "no splats"})
    obj = Region(index=2, id="object_001", label="object")  # no mask, no indices yet
    sc.regions = [ground, sky, obj]
    sc.splats.region_ids[:50] = 0
    sc.splats.region_ids[50:60] = 2
    return sc


def _same(a: Scene, b: Scene) -> None:
    for k in ("means", "quats", "scales", "opacities", "colors", "confidence", "region_ids"):
        x, y = getattr(a.splats, k), getattr(b.splats, k)
        assert x.dtype == y.dtype and torch.equal(x, y), k
    assert np.array_equal(a.image_linear, b.image_linear) and a.image_linear.dtype == b.image_linear.dtype
    assert np.array_equal(a.depth_m, b.depth_m) and np.isinf(b.depth_m).any()
    assert a.camera.allclose(b.camera, atol=0)
    assert a.meta == {k: v for k, v in b.meta.items() if k != "load_notes"}
    assert len(a.regions) == len(b.regions)
    for r, s in zip(a.regions, b.regions):
        assert (r.index, r.id, r.label, r.plane, r.locked, r.extra) == (s.index, s.id, s.label, s.plane, s.locked, s.extra)
        assert (r.mask is None) == (s.mask is None) and (r.mask is None or np.array_equal(r.mask, s.mask))
        assert (r.splat_indices is None) == (s.splat_indices is None)
        assert r.splat_indices is None or np.array_equal(r.splat_indices, s.splat_indices)


def test_round_trip_is_exact(scene, tmp_path):
    out = save_scene(scene, tmp_path / "s")
    names = sorted(os.listdir(out))
    assert names == ["depth.exr", "image.exr", "regions", "scene.json", "splats.ply", "splats_extra.npz"]
    assert sorted(os.listdir(out / "regions")) == ["ground_001.png", "sky.png"]
    doc = json.loads((out / "scene.json").read_text())
    assert doc["format_version"] == FORMAT_VERSION and doc["metric_scale"] == 1.0
    assert doc["intrinsics_source"] == "camera file" and doc["image"]["width"] == 320
    assert doc["regions"][0]["id"] == "ground_001" and doc["regions"][0]["mask"] == "regions/ground_001.png"
    back = load_scene(out)
    _same(scene, back)
    # The colour fit's values outside [0, 1] (the PLY cannot hold negative ones) come back exactly.
    assert (scene.splats.colors < 0).any() and (scene.splats.colors > 1).any()
    assert "load_notes" not in back.meta
    assert "load_notes" not in back.meta
    # The PLY alone is a standard 3DGS file another viewer reads.
    assert len(read_ply(out / "splats.ply")) == len(scene.splats)


def test_refuses_to_overwrite_without_force(scene, tmp_path):
    out = save_scene(scene, tmp_path / "s")
    before = {n: (out / n).read_bytes() for n in ("scene.json", "splats.ply")}
    with pytest.raises(OutputError, match="already holds a scene.*--force"):
        save_scene(scene, out)
    assert {n: (out / n).read_bytes() for n in before} == before
    scene2 = Scene(camera=scene.camera, splats=scene.splats.subset(torch.arange(100)), image_linear=scene.image_linear,
                   depth_m=scene.depth_m, meta={"metric_scale": 1.0})
    save_scene(scene2, out, force=True)
    assert len(load_scene(out).splats) == 100
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary or old folders left behind


def test_never_writes_into_a_folder_of_other_files(scene, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.jpg").write_bytes(b"precious")
    for force in (False, True):
        with pytest.raises(OutputError, match="holds no AnchorStage scene"):
            save_scene(scene, other, force=force)
    assert (other / "holiday.jpg").read_bytes() == b"precious"
    empty = tmp_path / "empty"
    empty.mkdir()
    save_scene(scene, empty)
    assert (empty / "scene.json").is_file()


def test_unwritable_output(scene, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot be created|not a folder"):
        save_scene(scene, blocker / "scene")
    with pytest.raises(OutputError, match="not a folder"):
        save_scene(scene, blocker)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent_folder(scene, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            save_scene(scene, ro / "scene")
    finally:
        ro.chmod(0o755)
    assert list(ro.iterdir()) == []


def test_failure_midway_leaves_nothing(scene, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(scene_mod, "write_channels", boom)
    with pytest.raises(OSError, match="disk full"):
        save_scene(scene, tmp_path / "s")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    save_scene(scene, tmp_path / "s")
    monkeypatch.setattr(scene_mod, "write_channels", boom)
    with pytest.raises(OSError):
        save_scene(scene, tmp_path / "s", force=True)
    _same(scene, load_scene(tmp_path / "s"))  # the old scene is intact
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_newer_or_broken_versions_are_clear_errors(scene, tmp_path):
    out = save_scene(scene, tmp_path / "s")
    doc = json.loads((out / "scene.json").read_text())
    doc["format_version"] = FORMAT_VERSION + 1
    (out / "scene.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=f"newer AnchorStage.*format_version {FORMAT_VERSION + 1}.*upgrade"):
        load_scene(out)
    doc.pop("format_version")
    (out / "scene.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="no integer format_version"):
        load_scene(out)
    (out / "scene.json").write_text("{not json")
    with pytest.raises(InputError, match="scene.json cannot be read"):
        load_scene(out)
    with pytest.raises(InputError, match="no scene.json"):
        load_scene(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_scene(tmp_path / "nowhere")


def test_missing_parts_and_edited_ply(scene, tmp_path):
    out = save_scene(scene, tmp_path / "s")
    # Another tool edits splats.ply (opacities): the PLY wins and the load says so.
    edited = read_ply(out / "splats.ply")
    edited.opacities[:] = 0.5
    from anchorstage import write_ply

    write_ply(out / "splats.ply", edited)
    back = load_scene(out)
    torch.testing.assert_close(back.splats.opacities, torch.full_like(back.splats.opacities, 0.5))
    assert any("opacities" in n for n in back.meta["load_notes"])
    (out / "splats_extra.npz").unlink()
    back = load_scene(out)
    assert torch.all(back.splats.region_ids == -1) and torch.all(back.splats.confidence == 1)
    (out / "regions" / "sky.png").unlink()
    with pytest.raises(InputError, match="region mask regions/sky.png is missing"):
        load_scene(out)
    (out / "depth.exr").unlink()
    with pytest.raises(InputError, match="depth.exr is missing"):
        load_scene(out)


def test_inconsistent_scenes_are_refused(scene, tmp_path):
    bad = Scene(camera=scene.camera, splats=scene.splats, image_linear=scene.image_linear[:10], depth_m=scene.depth_m)
    with pytest.raises(InputError, match="scene image"):
        save_scene(bad, tmp_path / "a")
    bad = Scene(camera=scene.camera, splats=scene.splats, image_linear=scene.image_linear, depth_m=scene.depth_m,
                regions=[Region(index=0, id="../evil", label="sky")])
    with pytest.raises(InputError, match="region id"):
        save_scene(bad, tmp_path / "b")
    bad = Scene(camera=scene.camera, splats=scene.splats, image_linear=scene.image_linear, depth_m=scene.depth_m,
                meta={"x": object()})
    with pytest.raises(InputError, match="JSON"):
        save_scene(bad, tmp_path / "c")
    assert list(tmp_path.iterdir()) == []
