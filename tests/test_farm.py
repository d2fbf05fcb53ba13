# SPDX-License-Identifier: GPL-3.0-or-later
"""Farm jobs: OpenJD job bundles (written, checked by openjd, run locally in chunks, resumed),
``export --skip-existing``, and bad input answered in one line."""

from __future__ import annotations

import json
import os

import pytest

from anchorstage import InputError, OutputError
from anchorstage.cli import main
from anchorstage.export import export_frames, frame_is_complete, save_camera_list
from anchorstage.farm import BLENDER_ENTRY, check_template, openjd_template, write_openjd_bundle
from anchorstage.scene import save_scene
from farm_support import anchorstage_launcher, exr_channels, openjd_exe, openjd_run
from test_export import _moves, _scene


@pytest.fixture
def stage(tmp_path):
    """A small scene folder and a 6-frame camera list."""
    sc = _scene()
    save_scene(sc, tmp_path / "scene")
    save_camera_list(tmp_path / "cams.json", _moves(sc, 6))
    return tmp_path


def test_openjd_bundle_runs_two_chunks_locally_and_a_rerun_skips_them(stage):
    """The issue's check: openjd check accepts the bundle; openjd run executes two chunks, which write
    exactly their frames as Blender-named multilayer EXRs; a second run renders nothing again."""
    import subprocess

    job = stage / "job"
    res = write_openjd_bundle(stage / "scene", job, frames=(1, 6), chunk=2, cameras=stage / "cams.json",
                              device="cpu", command=anchorstage_launcher(stage))
    assert res["step"] == "Export" and res["tasks"] == 3
    check = subprocess.run([openjd_exe(), "check", str(job / "template.json")], capture_output=True, text=True)
    assert check.returncode == 0 and "passes validation" in check.stdout, check.stdout + check.stderr

    run = openjd_run(job, "Export", ["1-2", "3-4"], cwd=stage)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = job / "output"
    assert sorted(p.name for p in out.glob("*.exr")) == [f"render.000{f}.exr" for f in (1, 2, 3, 4)]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"frame_000{f}" for f in (1, 2, 3, 4)]
    assert all(frame_is_complete(out, f) for f in (1, 2, 3, 4))
    assert {"ViewLayer.Combined.R", "ViewLayer.Combined.A", "ViewLayer.Depth.Z", "ViewLayer.Normal.X",
            "ViewLayer.Confidence.X"} <= exr_channels(out / "render.0003.exr")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.exr")}

    again = openjd_run(job, "Export", ["1-2", "3-4"], cwd=stage)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("already complete, nothing to do") == 2, again.stdout[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.exr")} == stamps


def test_template_shape_values_and_asset_references(stage):
    job = stage / "job"
    res = write_openjd_bundle(stage / "scene", job, frames=(1, 5), chunk=2, cameras=stage / "cams.json",
                              output=stage / "frames", preset="nuke", passes=["color", "depth"])
    t = json.loads((job / "template.json").read_text())
    assert t["specificationVersion"] == "jobtemplate-2023-09" and t["extensions"] == ["TASK_CHUNKING"]
    (frame,) = t["steps"][0]["parameterSpace"]["taskParameterDefinitions"]
    assert frame == {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
                     "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}
    args = t["steps"][0]["script"]["actions"]["onRun"]["args"]
    assert args[:2] == ["export", "{{Param.SceneDir}}"] and "--skip-existing" in args
    assert args[args.index("--frames") + 1] == "{{Task.Param.Frame}}"
    values = {v["name"]: v["value"] for v in json.loads((job / "parameter_values.json").read_text())["parameterValues"]}
    assert values["Frames"] == "1-5" and values["ChunkSize"] == 2 and values["Preset"] == "nuke"
    assert values["Passes"] == "color,depth" and values["OutputDir"] == str(stage / "frames")
    assert json.loads((job / "openjd_parameters.json").read_text())["SceneDir"] == str(stage / "scene")
    refs = json.loads((job / "asset_references.json").read_text())["assetReferences"]
    assert refs["inputs"] == {"filenames": [str(stage / "cams.json")], "directories": [str(stage / "scene")]}
    assert refs["outputs"]["directories"] == [str(stage / "frames")]
    assert res["tasks"] == 3
    assert (stage / "frames").is_dir()  # made at once, so a permission problem shows before submitting
    if res["checked_with"] is None:
        pytest.skip("openjd-model not installed: the template was not validated")
    assert check_template(t, values) == res["checked_with"]
    t["steps"][0]["parameterSpace"]["taskParameterDefinitions"][0]["chunks"]["rangeConstraint"] = "SOMETIMES"
    with pytest.raises(InputError, match="does not validate"):
        check_template(t)


def test_blender_engine_template(tmp_path):
    blend = tmp_path / "shot.blend"
    blend.write_bytes(b"BLENDER-v405")  # only its name and existence are read here
    res = write_openjd_bundle(blend, tmp_path / "job", frames=(10, 19), chunk=5, command="/opt/blender/blender")
    step = res["template"]["steps"][0]
    assert step["name"] == "Render" and res["tasks"] == 2
    action = step["script"]["actions"]["onRun"]
    assert action["command"] == "{{Param.BlenderCommand}}"
    assert action["args"][:6] == ["-b", "{{Param.BlendFile}}", "--python-exit-code", "1", "--python-expr", BLENDER_ENTRY]
    assert action["args"][6:] == ["--", "--frames", "{{Task.Param.Frame}}", "--out", "{{Param.OutputDir}}",
                                  "--skip-existing", "--device", "{{Param.Device}}"]
    assert res["values"]["BlenderCommand"] == "/opt/blender/blender"
    compile(BLENDER_ENTRY, "<BLENDER_ENTRY>", "exec")  # valid Python, one line
    assert "\n" not in BLENDER_ENTRY
    with pytest.raises(InputError, match="unknown blender job parameter"):
        openjd_template("blender", name="x", defaults={"SceneDir": "scene"})
    with pytest.raises(InputError, match="engine"):
        openjd_template("cycles", name="x")


def test_bad_input_names_the_input(stage, tmp_path, capsys):
    cams = stage / "cams.json"
    with pytest.raises(InputError, match="does not exist"):
        write_openjd_bundle(tmp_path / "nope", tmp_path / "j", frames=(1, 2), cameras=cams)
    with pytest.raises(InputError, match="--cameras is required"):
        write_openjd_bundle(stage / "scene", tmp_path / "j", frames=(1, 2))
    with pytest.raises(InputError, match=r"no camera for frame\(s\) 7, 8"):
        write_openjd_bundle(stage / "scene", tmp_path / "j", frames=(5, 8), cameras=cams)
    with pytest.raises(InputError, match="--chunk"):
        write_openjd_bundle(stage / "scene", tmp_path / "j", frames=(1, 2), chunk=0, cameras=cams)
    with pytest.raises(InputError, match="use --engine blender"):
        (tmp_path / "a.blend").write_bytes(b"x")
        write_openjd_bundle(tmp_path / "a.blend", tmp_path / "j", frames=(1, 2), engine="cli", cameras=cams)
    with pytest.raises(InputError, match="does not exist"):
        write_openjd_bundle(tmp_path / "b.blend", tmp_path / "j", frames=(1, 2))
    with pytest.raises(InputError, match="not an AnchorStage scene"):
        write_openjd_bundle(tmp_path, tmp_path / "j", frames=(1, 2), cameras=cams)
    with pytest.raises(InputError, match="unknown pass"):
        write_openjd_bundle(stage / "scene", tmp_path / "j", frames=(1, 2), cameras=cams, passes=["beauty"])
    assert not (tmp_path / "j").exists()  # nothing written for bad input

    job = tmp_path / "job"
    write_openjd_bundle(stage / "scene", job, frames=(1, 2), cameras=cams)
    (job / "output" / "keep.txt").write_text("a frame")
    with pytest.raises(OutputError, match="already holds a job"):
        write_openjd_bundle(stage / "scene", job, frames=(1, 3), cameras=cams)
    write_openjd_bundle(stage / "scene", job, frames=(1, 3), cameras=cams, force=True)
    assert (job / "output" / "keep.txt").exists()
    assert json.loads((job / "openjd_parameters.json").read_text())["Frames"] == "1-3"

    capsys.readouterr()
    assert main(["farm", "openjd", str(stage / "scene"), "--frames", "3-1", "--out", str(tmp_path / "k"),
                 "--cameras", str(cams)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anchorstage farm: error:") and "frame range" in err and "\n" not in err
    assert main(["farm", "openjd", str(stage / "scene"), "--frames", "1-4", "--chunk", "3", "--out",
                 str(tmp_path / "k"), "--cameras", str(cams)]) == 0
    out = capsys.readouterr().out
    assert "step Export, frames 1-4 in 2 task(s)" in out and "openjd run" in out and "deadline bundle submit" in out


def test_export_skip_existing_renders_only_incomplete_frames(stage, capsys):
    from anchorstage.scene import load_scene

    sc = load_scene(stage / "scene")
    out = stage / "out"
    export_frames(sc, stage / "cams.json", out, frames=(1, 3), backend="torch", device="cpu")
    (out / "render.0002.exr").unlink()  # as a run killed between the frame folder and its EXR leaves it
    stamps = {f: (out / f"render.000{f}.exr").stat().st_mtime_ns for f in (1, 3)}
    done = export_frames(sc, stage / "cams.json", out, frames=(1, 3), backend="torch", device="cpu",
                         skip_existing=True)
    assert [d["frame"] for d in done] == [2]
    assert all(frame_is_complete(out, f) for f in (1, 2, 3))
    assert {f: (out / f"render.000{f}.exr").stat().st_mtime_ns for f in (1, 3)} == stamps
    assert export_frames(sc, stage / "cams.json", out, frames=(1, 3), skip_existing=True) == []
    capsys.readouterr()
    args = ["export", str(stage / "scene"), "--cameras", str(stage / "cams.json"), "--out", str(out),
            "--skip-existing", "--device", "cpu"]
    assert main([*args, "--frames", "1-3"]) == 0
    assert "every frame of 1-3 is already complete" in capsys.readouterr().out
    assert main([*args, "--frames", "3-4"]) == 0
    assert "1 frame(s) 4-4" in capsys.readouterr().out and frame_is_complete(out, 4)
    assert os.listdir(out).count("render.0004.exr") == 1
