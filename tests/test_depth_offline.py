# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth models offline: a missing extra is named, and no network fails in seconds with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from anchorstage import InputError, MissingDependencyError
from anchorstage import depth as depth_mod

REPO = Path(__file__).resolve().parents[1]
MODEL = "depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf"


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    depth_mod._load_cached.cache_clear()
    with pytest.raises(MissingDependencyError, match=r"pip install 'anchorstage\[ml\]'"):
        depth_mod.load_depth_model(MODEL, "cpu")


def _run(env_extra: dict[str, str], tmp_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    script = textwrap.dedent(f"""
        import time
        from anchorstage.depth import load_depth_model
        t0 = time.perf_counter()
        try:
            load_depth_model({MODEL!r}, "cpu")
        except Exception as e:
            print(type(e).__name__, "|", e)
        print("seconds", time.perf_counter() - t0)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")}
    env.update(PYTHONPATH=str(REPO / "core"), HF_HOME=str(tmp_path / "hf"), **env_extra)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    return r, time.perf_counter() - t0


@pytest.mark.parametrize("env, reason", [
    ({"HF_HUB_OFFLINE": "1"}, "offline mode is on"),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot be reached"),  # nothing listens on the discard port
])
def test_no_network_fails_fast_with_one_line(tmp_path, env, reason):
    r, _ = _run(env, tmp_path)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert lines[0].startswith("MissingDependencyError | ") and reason in lines[0], r.stdout + r.stderr
    assert "not in the local cache" in lines[0] and "hf download" in lines[0]
    assert float(lines[1].split()[1]) < 8.0  # the model load itself: seconds, not the retry schedule
    assert "Retry" not in r.stderr and "Retry" not in r.stdout, r.stderr


def test_probe_gives_up_in_seconds(monkeypatch):
    """A network that accepts the connection and never answers: the probe still returns in time."""
    import http.server
    import socket
    import threading

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (the kernel completes the handshake) but never replies
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    t0 = time.perf_counter()
    reason = depth_mod._hub_unreachable(timeout_s=0.5)
    assert reason and "127.0.0.1" in reason and time.perf_counter() - t0 < 2.0
    silent.close()

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - http.server's naming
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    assert depth_mod._hub_unreachable(timeout_s=2.0) is None  # any HTTP answer counts as reachable
    server.shutdown()


@pytest.mark.parametrize("prep, message", [
    ("[" * 5000 + "]" * 5000, "JSON_DEPTH"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"size": {"height": "tall"}}', "malformed field"),
    ('{"image_mean": 5}', "malformed field"),
])
def test_a_malformed_preprocessor_config_is_an_input_error(tmp_path, prep, message):
    """A model folder is user input too: its preprocessor_config.json goes through the safe loader."""
    from test_depth_estimation import _save, tiny_depth_anything

    folder = _save(tiny_depth_anything(), tmp_path / "da")
    (folder / "preprocessor_config.json").write_text(prep)
    depth_mod._load_cached.cache_clear()
    with pytest.raises(InputError, match=message):
        depth_mod.load_depth_model(str(folder), "cpu")
