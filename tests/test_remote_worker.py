# SPDX-License-Identifier: GPL-3.0-or-later
"""The remote worker: payload files (names, base64, sizes), the handler's refusals, the guard in front of
the RunPod SDK's app (API key, body size, malformed requests, RunPod-like /status, /cancel), and a real
worker on loopback in a subprocess that generates the same frame a local run does, bit for bit, and keeps
serving after bad requests."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import anchorstage as a
from anchorstage.remote import handler as h
from anchorstage.remote import payload as pl
from gt_fixture import load_view

REPO = Path(__file__).resolve().parents[1]


def _client_module():
    """blender_addon/remote_client.py as a plain module (it imports no bpy)."""
    spec = importlib.util.spec_from_file_location("anchorstage_remote_client", REPO / "blender_addon" / "remote_client.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


rc = _client_module()


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


@functools.lru_cache(maxsize=None)
def _cond():
    res = a.refresh(_stage(), load_view("orbit")["camera"], locks=["facade_001"], device="cpu")
    return a.condition(res, _stage(), prompt="a brick wall", seed=3)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------------- payload
def test_payload_names_and_sizes(tmp_path, monkeypatch):
    for bad in ("../x", "/etc/passwd", "a/../../b", ".hidden", "a/b/c", "a\\b", "", "x" * 200, 5):
        with pytest.raises(a.InputError, match="not allowed"):
            pl.check_name(bad, "test")
    assert pl.check_name("regions/sky.png", "test") == "regions/sky.png"
    (tmp_path / "src" / "regions").mkdir(parents=True)
    (tmp_path / "src" / "scene.json").write_text("{}")
    (tmp_path / "src" / "regions" / "sky.png").write_bytes(b"\x89PNG")
    enc = pl.encode_folder(tmp_path / "src")
    assert sorted(enc["files"]) == ["regions/sky.png", "scene.json"]
    out = pl.decode_folder(enc, tmp_path / "dst", "test", required=("scene.json",))
    assert (out / "regions" / "sky.png").read_bytes() == b"\x89PNG"
    with pytest.raises(a.InputError, match="not valid base64"):
        pl.decode_folder({"files": {"a.png": "@@@"}}, tmp_path / "d2", "test")
    with pytest.raises(a.InputError, match="lacks scene.json"):
        pl.decode_folder({"files": {}}, tmp_path / "d3", "test", required=("scene.json",))
    with pytest.raises(a.InputError, match="must be an object"):
        pl.decode_folder(["a"], tmp_path / "d4", "test")
    with pytest.raises(a.InputError, match="must be one of"):
        pl.decode_file({"name": "photo.sh", "data": ""}, tmp_path, "test", suffixes=(".png",))
    monkeypatch.setenv("ANCHORSTAGE_MAX_REQUEST_BYTES", "1000")
    with pytest.raises(a.InputError, match="exceeds the limit of 1,000 .*ANCHORSTAGE_MAX_REQUEST_BYTES"):
        pl.decode_folder({"files": {"a.png": _b64(b"x" * 2000)}}, tmp_path / "d5", "test")
    assert not (tmp_path / "d5").exists()


# ---------------------------------------------------------------------------------------------- handler
@pytest.mark.parametrize("job, match", [
    ({"id": "1", "input": "generate"}, "must be a JSON object"),
    ({"id": "2", "input": {"task": "rm -rf"}}, "task must be one of"),
    ({"id": "3", "input": {"task": "render", "path": "/etc"}}, "unknown key.*'path'"),
    ({"id": "4", "input": {"task": "generate"}}, "conditioning is missing"),
    ({"id": "5", "input": {"task": "generate", "conditioning": {"files": {"../../etc/passwd": "AAAA"}}}},
     "lacks conditioning.json"),
    ({"id": "6", "input": {"task": "render", "scene": {"files": {"scene.json": _b64(b"{}"), "../x": "AAAA"}},
                            "camera": {}}}, "'../x' is not allowed"),
    ({"id": "7", "input": {"task": "render", "splats": {"name": "s.ply", "data": _b64(b"ply\n")}, "camera": {"lens_mm": 1}}},
     "splats"),
    ({"id": "8", "input": {"task": "depth", "photo": {"name": "p.png", "data": _b64(b"not a png")}}}, "photo"),
    ({"id": "9", "input": {"task": "refresh", "scene": {"files": {"scene.json": _b64(b"[]")}}, "camera": {}}},
     "scene.json"),
])
def test_handler_refuses_bad_jobs_with_one_line(job, match):
    out = h.run_job(job)
    assert set(out) == {"error"} and "\n" not in out["error"], out
    assert __import__("re").search(match, out["error"]), out["error"]
    assert "internal error" not in out["error"]


def test_handler_renders_a_scene_from_its_files(tmp_path):
    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    cam = load_view("dolly")["camera"].with_resolution(80, 45)
    out = h.run_job({"id": "r1", "input": {"task": "render", "scene": pl.encode_folder(scene_dir),
                                           "camera": cam.to_json_dict(), "passes": ["color", "depth"]}})
    assert "error" not in out, out
    (tmp_path / "got").mkdir()
    (tmp_path / "got" / "frame.exr").write_bytes(base64.b64decode(out["files"]["frame.exr"]))
    frame = a.read_exr(tmp_path / "got" / "frame.exr")
    local = a.render_frame(_stage(), cam, ["color", "depth"], device="cpu")
    assert np.array_equal(frame["color"], local.passes["color"])
    assert np.array_equal(frame["depth"], local.passes["depth"])
    assert h.job_state("r1")["status"] == "COMPLETED"


def test_a_queued_job_can_be_cancelled():
    with h._RUN_LOCK:  # another job holds the worker
        import threading

        result = {}
        t = threading.Thread(target=lambda: result.update(h.run_job({"id": "c1", "input": {"task": "render"}})))
        t.start()
        for _ in range(100):
            if h.job_state("c1") is not None:
                break
            time.sleep(0.01)
        assert h.job_state("c1")["status"] == "IN_QUEUE"
        assert h.cancel_job("c1")
    t.join(10)
    assert "cancelled" in result["error"] and h.job_state("c1")["status"] == "CANCELLED"
    assert not h.cancel_job("c1") and not h.cancel_job("nobody")


# ---------------------------------------------------------------------------------------------- guard
def test_binding_off_loopback_needs_an_api_key():
    from anchorstage.remote.server import check_bind

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.20", "::", "worker.example.org"):
        with pytest.raises(a.InputError, match="refusing to listen on .* without an API key"):
            check_bind(host, None)
        check_bind(host, "k" * 32)
    with pytest.raises(a.InputError, match="at least 16 characters"):
        check_bind("0.0.0.0", "short")
    from anchorstage.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2  # refused before anything loads


@pytest.fixture
def guarded():
    """The guard in front of the SDK's own app, through an in-process ASGI client."""
    pytest.importorskip("runpod")
    from starlette.testclient import TestClient

    from anchorstage.remote.server import Guard, _runpod_app

    app = _runpod_app().rp_app
    app.add_middleware(Guard, api_key="k" * 20, max_bytes=4096)
    with TestClient(app) as client:
        yield client


def test_guard_refuses_before_the_handler(guarded):
    auth = {"Authorization": "Bearer " + "k" * 20}
    assert guarded.get("/health").status_code == 401
    assert guarded.get("/health", headers={"Authorization": "Bearer wrong-key-xxxxxxxx"}).status_code == 401
    assert guarded.get("/health", headers=auth).json()["workers"] == {"running": 0, "idle": 1}
    r = guarded.post("/run", content=b"x" * 5000, headers=auth)
    assert r.status_code == 413 and "larger than this worker accepts" in r.json()["error"]
    r = guarded.post("/run", content=b"{not json", headers=auth)
    assert r.status_code == 400 and "request body" in r.json()["error"]
    r = guarded.post("/run", json={"input": {"task": "format-disk"}}, headers=auth)
    assert r.status_code == 400 and "task must be one of" in r.json()["error"]
    r = guarded.post("/run", json={"input": {"task": "render"}, "webhook": "http://evil"}, headers=auth)
    assert r.status_code == 400 and "webhooks" in r.json()["error"]
    assert guarded.get("/status/nobody", headers=auth).status_code == 404
    # a job the handler refuses: accepted, then FAILED with its one-line reason, kept for later polls
    r = guarded.post("/run", json={"input": {"task": "render"}}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "IN_QUEUE"
    job_id = r.json()["id"]
    for _ in range(200):
        s = guarded.get(f"/status/{job_id}", headers=auth).json()
        if s["status"] not in ("IN_QUEUE", "IN_PROGRESS"):
            break
        time.sleep(0.02)
    assert s["status"] == "FAILED" and "give either scene" in s["error"]
    assert guarded.post(f"/status/{job_id}", headers=auth).json() == s
    r = guarded.post("/runsync", json={"input": {"task": "render"}}, headers=auth)
    assert r.json()["status"] == "FAILED"


# ---------------------------------------------------------------------------------------------- a real worker
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("diffusers")
    from tiny_diffusion import tiny_controlnet_inpaint

    return tiny_controlnet_inpaint(tmp_path_factory.mktemp("tiny_worker"))


@pytest.fixture(scope="module")
def worker(tiny, tmp_path_factory):
    pytest.importorskip("runpod")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = dict(os.environ, PYTHONPATH=str(REPO / "core"), HF_HUB_OFFLINE="1",
               ANCHORSTAGE_MAX_REQUEST_BYTES=str(8 << 20))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "anchorstage", "serve", "--port", str(port), "--model", tiny["model"],
                                 "--controlnet-depth", tiny["controlnets"][0], "--controlnet-normal", tiny["controlnets"][1],
                                 "--device", "cpu"], env=env, stdout=out, stderr=subprocess.STDOUT)
    client = rc.WorkerClient(f"http://127.0.0.1:{port}", poll_s=0.1)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                client.health()
                break
            except rc.WorkerError:
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "worker did not start: " + log.read_text()[-2000:]
                time.sleep(0.2)
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Handler output" not in log.read_text()  # no megabytes of base64 in the worker's log


def test_worker_generates_what_a_local_run_does_bit_for_bit(worker, tiny, tmp_path):
    from anchorstage.diffusion import model_set
    from anchorstage.generation import GenerationSettings
    from anchorstage.remote.jobs import generate_job, read_generation

    cond = _cond()
    knobs = {"steps": 2, "max_side": 48}
    reports = []
    output = worker.run(generate_job(cond, knobs), progress=lambda f, m: reports.append((f, m)), timeout_s=120)
    got = read_generation(output, tmp_path / "answer", cond)
    local = a.generate(cond, GenerationSettings(models=model_set("sd15", model=tiny["model"],
                                                                 controlnet_depth=tiny["controlnets"][0],
                                                                 controlnet_normal=tiny["controlnets"][1]), **knobs),
                       device="cpu")
    assert np.array_equal(got.image, local.image)
    assert np.array_equal(got.generated, local.generated)
    assert np.array_equal(got.image[cond.locked], cond.image[cond.locked])
    assert got.steps_run == 2 and got.settings.to_json_dict() == local.settings.to_json_dict()
    assert any(m.startswith("diffusion step") for _, m in reports), reports  # progress came through /status


def test_worker_answers_bad_requests_clearly_and_keeps_serving(worker, tmp_path):
    from anchorstage.remote.jobs import generate_job

    with pytest.raises(rc.WorkerError, match="answered 400: request task must be one of"):
        worker.run({"task": "nope"})
    with pytest.raises(rc.WorkerError, match="job failed: generate: .*lacks conditioning.json"):
        worker.run({"task": "generate", "conditioning": {"files": {"../x": "AAAA"}}})
    with pytest.raises(rc.WorkerError, match="job failed: .*unknown setting.*'model'"):
        worker.run(generate_job(_cond(), {"model": "evil/model"}))
    with pytest.raises(rc.WorkerError, match="request is too large"):
        worker.run({"task": "depth", "photo": {"name": "p.png", "data": "A" * (9 << 20)}})
    with pytest.raises(rc.WorkerError, match="no longer knows the job"):
        worker.status("test-unknown")
    assert rc.WorkerClient(worker.url, api_key="x" * 20).health()["workers"]["idle"] == 1  # no key needed on loopback
    out = worker.run(generate_job(_cond(), {"steps": 1, "max_side": 32}), timeout_s=120)
    assert sorted(out["files"]) == ["generated.exr", "generated.png", "generated_mask.png", "generation.json"]
    # cancel a running job: the worker stops it at its next step and answers CANCELLED
    seen = []

    def cancel_after_first_step():
        return any(m.startswith("diffusion step") for m in seen)

    with pytest.raises(rc.WorkerError, match="cancelled"):
        worker.run(generate_job(_cond(), {"steps": 500, "max_side": 48}), progress=lambda f, m: seen.append(m),
                   cancelled=cancel_after_first_step, timeout_s=120)
    # a job that outlives the client's timeout is cancelled on the worker too (500 steps: a short job
    # could finish on a busy worker before the cancel reaches it, and never count as cancelled; both
    # jobs stop at their next step once cancelled)
    with pytest.raises(rc.WorkerError, match="did not finish within 0 s .*cancelled"):
        worker.run(generate_job(_cond(), {"steps": 500, "max_side": 32}), timeout_s=0)
    deadline = time.monotonic() + 60
    while worker.health()["jobs"]["cancelled"] < 2:  # both stopped at their next step
        assert time.monotonic() < deadline, worker.health()
        time.sleep(0.1)
    assert worker.health()["jobs"]["inProgress"] == 0


def test_client_errors_are_one_clear_line():
    with pytest.raises(rc.WorkerError, match="must look like http"):
        rc.WorkerClient("ftp://worker")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(rc.WorkerError, match="cannot reach the remote worker .*is `anchorstage serve` running"):
        rc.WorkerClient(f"http://127.0.0.1:{port}", request_timeout_s=2).health()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        with pytest.raises(rc.WorkerError, match="did not answer within 0.5 s"):
            rc.WorkerClient(f"http://127.0.0.1:{silent.getsockname()[1]}", request_timeout_s=0.5).health()
    finally:
        silent.close()
    assert rc._error_text(json.dumps({"error": json.dumps({"error_type": "ValueError", "error_message": "bad"})}).encode()) \
        == "ValueError: bad"


def test_the_deploy_entry_runs_a_test_job_through_the_sdk():
    """``python -m anchorstage.remote`` is runpod.serverless.start: --test_input runs one job, exit 1 on failure."""
    pytest.importorskip("runpod")
    env = dict(os.environ, PYTHONPATH=str(REPO / "core"), RUNPOD_LOG_LEVEL="INFO")
    r = subprocess.run([sys.executable, "-m", "anchorstage.remote", "--test_input", json.dumps({"input": {"task": "nope"}})],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "request task must be one of generate, refresh, depth, reconstruct, render" in r.stdout + r.stderr


def test_diffusion_refresh_on_an_sdxl_worker_is_refused_clearly(tmp_path):
    from anchorstage.diffusion import model_set

    scene_dir = a.save_scene(_stage(), tmp_path / "scene")
    cam = load_view("dolly")["camera"].with_resolution(80, 45)
    kept = h._CONFIG[0]
    h.configure(h.WorkerConfig(models=model_set("sdxl", env={}), device="cpu"))
    try:
        out = h.run_job({"id": "sdxl-refresh", "input": {"task": "refresh", "scene": pl.encode_folder(scene_dir),
                                                         "camera": cam.to_json_dict(), "inpaint": "diffusion"}})
    finally:
        h._CONFIG[0] = kept
    assert set(out) == {"error"} and "\n" not in out["error"], out
    assert "runs SD 1.5" in out["error"] and "serves sdxl with depth ControlNet" in out["error"], out["error"]
