# SPDX-License-Identifier: GPL-3.0-or-later
"""The Flamenco job type (farm/flamenco/anchorstage.js): its Node.js tests (tests/flamenco/, against a
harness of Flamenco's job-compiler calls), and the commands it compiles, run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from anchorstage.export import frame_is_complete, save_camera_list
from anchorstage.farm import BLENDER_ENTRY
from anchorstage.scene import save_scene
from farm_support import REPO_ROOT, anchorstage_launcher, job_env
from test_export import _moves, _scene

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (the Flamenco job type is JavaScript)")
JOB_TYPE = REPO_ROOT / "farm" / "flamenco" / "anchorstage.js"
HARNESS = REPO_ROOT / "tests" / "flamenco" / "harness.js"


def test_job_type_tests_pass_under_node():
    env = dict(os.environ, ANCHORSTAGE_BLENDER_ENTRY=BLENDER_ENTRY)
    res = subprocess.run([NODE, "--test", str(REPO_ROOT / "tests" / "flamenco")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", res.stdout, re.M)
    assert passed and int(passed.group(1)) >= 6 and re.search(r"^# fail 0$", res.stdout, re.M), res.stdout[-2000:]


def _compile(settings: dict, tmp_path) -> dict:
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    res = subprocess.run([NODE, str(HARNESS), str(JOB_TYPE), str(tmp_path / "settings.json")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _run_exec_tasks(job: dict, cwd) -> list[str]:
    """Run every ``exec`` command of the compiled tasks, as a Flamenco worker does; their stdout."""
    outs = []
    for task in job["tasks"]:
        for cmd in task["commands"]:
            assert cmd["type"] == "exec"
            p = cmd["parameters"]
            res = subprocess.run([p["exe"], *p["args"]], capture_output=True, text=True, cwd=cwd, env=job_env(),
                                 timeout=600)
            assert res.returncode == 0, f"{task['name']}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
            outs.append(res.stdout)
    return outs


def test_compiled_cli_tasks_export_their_chunks_and_resume(tmp_path):
    sc = _scene()
    save_scene(sc, tmp_path / "scene")
    save_camera_list(tmp_path / "cams.json", _moves(sc, 3))
    settings = {"engine": "cli", "frames": "1-3", "chunk_size": 2, "output_dir": str(tmp_path / "out"),
                "scene_dir": str(tmp_path / "scene"), "cameras": str(tmp_path / "cams.json"), "device": "cpu",
                "anchorstage_cmd": anchorstage_launcher(tmp_path)}
    job = _compile(settings, tmp_path)
    assert [t["name"] for t in job["tasks"]] == ["render-1,2", "render-3"]  # Flamenco's own chunk names
    _run_exec_tasks(job, tmp_path)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.exr")) == ["render.0001.exr", "render.0002.exr", "render.0003.exr"]
    assert all(frame_is_complete(out, f) for f in (1, 2, 3))
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.exr")}
    again = _run_exec_tasks(job, tmp_path)  # a requeued job: nothing is rendered twice
    assert all("already complete" in o for o in again), again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.exr")} == stamps
