# SPDX-License-Identifier: GPL-3.0-or-later
"""The anchorstage command line: version, help, one-line errors, the camera command."""

import json
import subprocess
import sys

import numpy as np
import pytest

from anchorstage import Camera, load_camera_json, look_at, save_camera_json
from anchorstage.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "anchorstage", *args], capture_output=True, text=True)


def test_version_and_help():
    import anchorstage

    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"anchorstage {anchorstage.__version__}"
    r = run_cli("--help")
    assert r.returncode == 0
    assert "camera" in r.stdout


def test_user_mistake_is_one_line_without_traceback(tmp_path):
    r = run_cli("camera", str(tmp_path / "missing.json"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "missing.json" in r.stderr and "does not exist" in r.stderr


def test_unknown_option_is_one_line():
    r = run_cli("camera", "x.json", "--no-such-flag")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0


def test_camera_moves_apply_in_order(tmp_path, capsys):
    src = tmp_path / "cam.json"
    cam = Camera(width=800, height=600, lens_mm=35.0, world_from_cam=look_at((0, -5, 1.5), (0, 0, 1.5)))
    save_camera_json(src, cam)
    out = tmp_path / "moved.json"
    assert main(["camera", str(src), "--dolly", "1", "--pan", "90", "--dolly", "2", "--lens", "85", "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    moved = load_camera_json(out)
    expected = cam.dolly(1).pan(90).dolly(2).with_lens(85)
    assert moved.allclose(expected, atol=1e-9)
    np.testing.assert_allclose(info["position_m"], expected.position, atol=1e-9)
    assert info["fov_deg"][0] == pytest.approx(expected.fov_deg[0])


def test_bench_runs_each_script_with_its_json_path(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    for name in ("render", "segment"):
        (bench / f"bench_{name}.py").write_text(
            "import json, sys\n"
            "path = sys.argv[sys.argv.index('--json') + 1]\n"
            f"json.dump({{'name': '{name}'}}, open(path, 'w'))\n"
        )
    out = tmp_path / "results"
    assert main(["bench", "render", "segment", "--benchmarks", str(bench), "--json-dir", str(out)]) == 0
    assert json.loads((out / "segment.json").read_text()) == {"name": "segment"}
    assert (out / "render.json").exists()
    assert main(["bench", "nope"]) == 2


def test_bench_reports_a_failing_script(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_render.py").write_text("raise SystemExit(3)\n")
    assert main(["bench", "render", "--benchmarks", str(bench), "--json-dir", str(tmp_path)]) == 2


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom anchorstage.cli import build_parser\nbuild_parser()\n"
            "import anchorstage\nanchorstage.__dir__()\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_render_imports_no_model_library(tmp_path):
    """One `anchorstage render` frame loads what a render needs, not the generation stack (its start-up
    is measured by benchmarks/bench_latency.py)."""
    import torch

    from anchorstage import Scene, Splats
    from anchorstage.scene import save_scene

    n = 200
    g = torch.Generator().manual_seed(0)
    sp = Splats(means=torch.rand(n, 3, generator=g) + torch.tensor([-0.5, 2.0, -0.5]),
                quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), scales=torch.full((n, 3), 0.05),
                opacities=torch.full((n,), 0.9), colors=torch.rand(n, 3, generator=g))
    cam = Camera(width=32, height=24, lens_mm=30.0, world_from_cam=look_at((0, 0, 0), (0, 1, 0)))
    save_scene(Scene(camera=cam, splats=sp, image_linear=np.zeros((24, 32, 3), np.float32),
                     depth_m=np.full((24, 32), 2.5, np.float32), regions=[], meta={}), tmp_path / "scene")
    save_camera_json(tmp_path / "cam.json", cam)
    code = ("import sys\nfrom anchorstage.cli import main\n"
            f"assert main(['render', {str(tmp_path / 'scene')!r}, '--camera', {str(tmp_path / 'cam.json')!r}, "
            f"'--out', {str(tmp_path / 'f.exr')!r}]) == 0\n"
            "heavy = {'transformers', 'diffusers', 'accelerate', 'huggingface_hub', 'av', 'cv2', 'runpod'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_internal_error_is_one_line_with_a_log_file(tmp_path, monkeypatch, capsys):
    import anchorstage.cli.camera as cam_cli

    monkeypatch.setenv("ANCHORSTAGE_LOG_DIR", str(tmp_path))
    monkeypatch.setattr(cam_cli, "load_camera_json", lambda path: 1 / 0)
    assert main(["camera", "x.json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (a bug)" in err[0] and "ZeroDivisionError" in err[0]
    log = err[0].rsplit("traceback in ", 1)[1]
    assert "Traceback" in open(log).read()
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "camera", "x.json"])
