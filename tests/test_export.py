# SPDX-License-Identifier: GPL-3.0-or-later
"""Export: presets, per-frame files, metadata, camera lists, frame chunks; render/export CLIs."""

from __future__ import annotations

import json

import numpy as np
import OpenEXR
import pytest
import torch
from PIL import Image

from anchorstage import Camera, InputError, Region, Splats, export_frames, look_at, read_exr
from anchorstage.cli import main
from anchorstage.export import load_camera_list, parse_frame_range, save_camera_list
from anchorstage.scene import Scene, save_scene


def _scene() -> Scene:
    """A ground plane (region 0, locked) and a wall (region 1) of dense splats, seen by a 48x32 camera."""
    g = torch.linspace(-3, 3, 90)
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    n = xx.numel()
    ground = torch.stack([xx.reshape(-1), yy.reshape(-1) + 3, torch.zeros(n)], 1)
    wall = torch.stack([xx.reshape(-1), torch.full((n,), 6.0), yy.reshape(-1) + 3], 1)
    s = 6 / 89
    quat_ground = torch.tensor([1.0, 0, 0, 0])
    quat_wall = torch.tensor([0.7071068, 0.7071068, 0, 0])  # local z → world -y
    sp = Splats(means=torch.cat([ground, wall]), quats=torch.cat([quat_ground.repeat(n, 1), quat_wall.repeat(n, 1)]),
                scales=torch.tensor([[s, s, s * 0.02]]).repeat(2 * n, 1), opacities=torch.full((2 * n,), 0.97),
                colors=torch.cat([torch.tensor([[0.3, 0.6, 0.2]]).repeat(n, 1), torch.tensor([[0.8, 0.3, 0.2]]).repeat(n, 1)]),
                confidence=torch.full((2 * n,), 0.9),
                region_ids=torch.cat([torch.zeros(n, dtype=torch.int32), torch.ones(n, dtype=torch.int32)]))
    cam = Camera(width=48, height=32, lens_mm=30.0, world_from_cam=look_at((0, -2, 1.5), (0, 4, 1.0)))
    regions = [Region(index=0, id="ground_001", label="ground", plane=(0, 0, 1, 0), locked=True),
               Region(index=1, id="facade_001", label="facade", plane=(0, 1, 0, -6))]
    return Scene(camera=cam, splats=sp, image_linear=np.zeros((32, 48, 3), np.float32),
                 depth_m=np.ones((32, 48), np.float32), regions=regions, meta={"metric_scale": 1.0})


def _moves(scene: Scene, n: int = 3) -> list[Camera]:
    return [scene.camera.truck(0.2 * i) for i in range(n)]


def test_blender_preset_files_and_metadata(tmp_path):
    sc = _scene()
    done = export_frames(sc, _moves(sc), tmp_path, backend="torch", generation={"prompt": "none", "seed": 7})
    assert [d["frame"] for d in done] == [1, 2, 3]
    for f in (1, 2, 3):
        assert (tmp_path / f"render.{f:04d}.exr").is_file()
        fd = tmp_path / f"frame_{f:04d}"
        assert sorted(p.name for p in (fd / "region_masks").iterdir()) == ["facade_001.png", "ground_001.png"]
        for name in ("void_map.png", "proxy_render.png", "metadata.json"):
            assert (fd / name).is_file()
    md = json.loads((tmp_path / "frame_0002" / "metadata.json").read_text())
    cam = _moves(sc)[1]
    np.testing.assert_allclose(md["camera"]["position_m"], cam.position)
    assert md["camera"]["lens_mm"] == 30.0 and md["metric_scale"] == 1.0 and md["units"] == "metres"
    q = np.array(md["camera"]["rotation_quaternion_wxyz"])
    assert abs(np.linalg.norm(q) - 1) < 1e-9
    assert Camera.from_json_dict(md["camera"]).allclose(cam, atol=1e-9)
    regs = {r["id"]: r for r in md["regions"]}
    assert regs["ground_001"]["locked"] is True and regs["facade_001"]["locked"] is False
    assert regs["ground_001"]["plane"] == [0, 0, 1, 0] and regs["facade_001"]["visible_px"] > 50
    assert md["generation"] == {"prompt": "none", "seed": 7}
    assert 0 <= md["confidence"]["void_coverage"] <= 1 and md["confidence"]["baseline_m"] == pytest.approx(0.2)
    # Masks and the void map agree with the EXR.
    exr = read_exr(tmp_path / "render.0002.exr")
    mask = np.asarray(Image.open(tmp_path / "frame_0002" / "region_masks" / "facade_001.png"))
    np.testing.assert_array_equal(mask > 0, exr["region"] == 1)
    void = np.asarray(Image.open(tmp_path / "frame_0002" / "void_map.png"))
    np.testing.assert_array_equal(void > 0, exr["void"] > 0.5)
    assert exr["camera"].allclose(cam, atol=1e-9) and exr["meta"]["frame"] == 2


def test_nuke_and_after_effects_presets(tmp_path):
    sc = _scene()
    export_frames(sc, _moves(sc, 1), tmp_path / "nk", preset="nuke", backend="torch")
    with OpenEXR.File(str(tmp_path / "nk" / "render.0001.exr"), separate_channels=True) as f:
        names = set(f.parts[0].channels)
    assert {"R", "G", "B", "A", "depth.Z", "normal.X", "region.X"} <= names
    export_frames(sc, _moves(sc, 1), tmp_path / "ae", preset="after-effects", backend="torch")
    exrs = sorted(p.name for p in (tmp_path / "ae").glob("*.exr"))
    assert exrs == ["color.0001.exr", "confidence.0001.exr", "depth.0001.exr", "normal.0001.exr",
                    "region.0001.exr", "void.0001.exr"]
    d = read_exr(tmp_path / "ae" / "depth.0001.exr")
    assert d["depth"].shape == (32, 48) and d["depth"].min() > 0


def test_camera_list_and_frame_chunks(tmp_path):
    sc = _scene()
    lst = tmp_path / "cams.json"
    save_camera_list(lst, _moves(sc, 5), first_frame=10)
    cams = load_camera_list(lst)
    assert [f for f, _ in cams] == [10, 11, 12, 13, 14]
    done = export_frames(sc, lst, tmp_path / "out", frames=parse_frame_range("11-12"), backend="torch")
    assert [d["frame"] for d in done] == [11, 12]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.exr")) == ["render.0011.exr", "render.0012.exr"]
    with pytest.raises(InputError, match="no frames in the chunk 20-30"):
        export_frames(sc, lst, tmp_path / "out", frames=(20, 30))
    with pytest.raises(InputError, match="preset"):
        export_frames(sc, lst, tmp_path / "out", preset="fusion")
    with pytest.raises(InputError, match="10-19"):
        parse_frame_range("ten")
    (tmp_path / "bad.json").write_text(json.dumps([{"frame": 1, "lens_mm": 35}]))
    with pytest.raises(InputError, match="entry 0.*missing field"):
        load_camera_list(tmp_path / "bad.json")


def test_render_and_export_cli(tmp_path, capsys):
    sc = _scene()
    scene_dir = tmp_path / "scene"
    save_scene(sc, scene_dir)
    cam_json = tmp_path / "cam.json"
    cam_json.write_text(json.dumps(sc.camera.truck(0.1).to_json_dict()))
    assert main(["render", str(scene_dir), "--camera", str(cam_json), "--out", str(tmp_path / "f.exr"),
                 "--backend", "torch", "--device", "cpu"]) == 0
    back = read_exr(tmp_path / "f.exr")
    assert {"color", "alpha", "depth", "normal", "confidence", "void", "region"} <= set(back)
    assert main(["render", str(scene_dir), "--camera", str(cam_json), "--out", str(tmp_path / "g.exr"),
                 "--passes", "depth,region"]) == 0
    assert set(k for k in read_exr(tmp_path / "g.exr") if k not in ("camera", "meta")) == {"depth", "region"}
    capsys.readouterr()
    assert main(["render", str(scene_dir), "--camera", str(cam_json), "--out", str(tmp_path / "h.exr"),
                 "--passes", "beauty"]) == 2
    err = capsys.readouterr().err
    assert "unknown pass" in err and "valid passes" in err and not (tmp_path / "h.exr").exists()
    assert main(["render", str(tmp_path / "nope"), "--camera", str(cam_json), "--out", str(tmp_path / "h.exr")]) == 2
    lst = tmp_path / "cams.json"
    save_camera_list(lst, _moves(sc, 4))
    assert main(["export", str(scene_dir), "--cameras", str(lst), "--out", str(tmp_path / "ex"),
                 "--frames", "2-3", "--preset", "nuke", "--backend", "torch"]) == 0
    assert sorted(p.name for p in (tmp_path / "ex").glob("*.exr")) == ["render.0002.exr", "render.0003.exr"]
    assert main(["export", str(scene_dir), "--camera", str(cam_json), "--out", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "frame_0001" / "metadata.json").is_file()


def test_export_renders_a_sequence_with_one_scene_load_and_one_kernel_load(tmp_path, monkeypatch):
    """`anchorstage export` renders the whole camera list in one process: the scene folder is read
    once, the witness mesh built once, and every compiled kernel loaded for the first frame only."""
    import anchorstage.scene
    import anchorstage.region
    from anchorstage import _raster_cpu_kernels, _refresh_kernels

    sc = _scene()
    save_scene(sc, tmp_path / "scene")
    lst = tmp_path / "cams.json"
    save_camera_list(lst, _moves(sc, 4))
    calls: dict[str, list] = {"load_scene": [], "label_map": [], "composite_rows": [], "mesh_warp": []}

    def counted(module, name, note=lambda fn: None):
        fn = getattr(module, name)

        def wrapper(*a, **kw):
            out = fn(*a, **kw)
            calls[name].append(note(fn))
            return out

        monkeypatch.setattr(module, name, wrapper)

    counted(anchorstage.scene, "load_scene")
    counted(anchorstage.region, "label_map")  # once per witness mesh built
    # a kernel's overloads (compiled or read from numba's cache) after each frame's call
    counted(_raster_cpu_kernels, "composite_rows", lambda fn: len(fn.overloads))
    counted(_refresh_kernels, "mesh_warp", lambda fn: len(fn.overloads))
    assert main(["export", str(tmp_path / "scene"), "--cameras", str(lst), "--out", str(tmp_path / "ex"),
                 "--device", "cpu"]) == 0
    assert len(list((tmp_path / "ex").glob("render.*.exr"))) == 4
    assert len(calls["load_scene"]) == 1 and len(calls["label_map"]) == 1
    assert len(calls["mesh_warp"]) == 4 and len(set(calls["mesh_warp"])) == 1
    assert len(calls["composite_rows"]) >= 4 and len(set(calls["composite_rows"])) == 1


def test_a_killed_export_leaves_only_complete_frames_and_a_rerun_cleans_up(tmp_path):
    """SIGKILL an export at a spread of moments: every EXR on disk has its complete frame folder,
    and a re-run removes what the killed run left and completes every frame."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from anchorstage.export import frame_is_complete

    save_scene(_scene(), tmp_path / "scene")
    cam = _scene().camera
    save_camera_list(tmp_path / "cams.json", [cam.dolly(0.05 * i) for i in range(40)])
    cmd = [sys.executable, "-m", "anchorstage", "export", str(tmp_path / "scene"), "--cameras",
           str(tmp_path / "cams.json"), "--out", str(tmp_path / "out"), "--device", "cpu"]
    env = dict(os.environ, ANCHORSTAGE_NUMBA="0")  # no compile: the frames start at once
    out = tmp_path / "out"
    for wanted, extra in ((1, 0.0), (3, 0.05), (6, 0.13), (9, 0.21)):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill once this run has written `wanted` frames, plus a little: somewhere inside a frame's writes.
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and len(list(out.glob("render.*.exr"))) >= wanted:
                break
            time.sleep(0.005)
        time.sleep(extra)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for exr in sorted(out.glob("render.*.exr")):
            assert frame_is_complete(out, int(exr.name.split(".")[1])), exr.name
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    out = tmp_path / "out"
    assert all(frame_is_complete(out, f) for f in range(1, 41))
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_empty_frame_range_is_an_error_not_everything(tmp_path, capsys):
    from anchorstage import save_camera_json

    save_scene(_scene(), tmp_path / "scene")
    save_camera_json(tmp_path / "cam.json", _scene().camera)
    rc = main(["export", str(tmp_path / "scene"), "--camera", str(tmp_path / "cam.json"), "--out", str(tmp_path / "o"),
               "--frames", ""])
    assert rc == 2 and "--frames must not be empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
