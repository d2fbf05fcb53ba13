# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic outputs under failure: clear OutputErrors, no temp files left, kill-safe replacement, cleanup."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import anchorstage.atomic as atomic
from anchorstage import OutputError, load_scene, save_scene
from anchorstage.atomic import atomic_dir, atomic_file, clean_stale, exchange_paths
from untrusted_support import tiny_scene

REPO = Path(__file__).resolve().parents[1]


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_unwritable_folders(tmp_path):
    for path in ("/proc/frame.exr", "/proc/self/none/frame.exr"):
        with pytest.raises(OutputError, match="/proc"):
            with atomic_file(path) as tmp:
                tmp.write_bytes(b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with atomic_file(tmp_path / "file" / "frame.exr") as tmp:
            tmp.write_bytes(b"x")


def test_a_folder_where_a_file_belongs_and_back(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="out.json' is a folder; give a file path"):
        with atomic_file(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
    (tmp_path / "scene").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with atomic_dir(tmp_path / "scene") as tmp:
            pass
    assert _names(tmp_path) == ["out.json", "scene"]


def test_long_names_fit_and_too_long_names_are_refused(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    name = "f" * (limit - 4) + ".exr"  # exactly the longest name: the temp name must be shortened to fit
    with atomic_file(tmp_path / name) as tmp:
        assert len(tmp.name) <= limit and tmp.name.endswith(".exr")
        tmp.write_bytes(b"x")
    dirname = "d" * limit
    with atomic_dir(tmp_path / dirname) as tmp:
        (tmp / "a").write_text("1")
    assert _names(tmp_path) == sorted([name, dirname])
    with pytest.raises(OutputError, match=rf"file name is {limit + 1} bytes long; this filesystem allows at most {limit}"):
        with atomic_file(tmp_path / ("g" * (limit - 3) + ".exr")) as tmp:
            tmp.write_bytes(b"x")
    assert _names(tmp_path) == sorted([name, dirname])


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "disk is full"), (errno.EDQUOT, "quota"),
                                           (errno.EROFS, "read-only"), (errno.EFBIG, "too large")])
def test_write_errors_become_output_errors_and_leave_nothing(tmp_path, code, message):
    with pytest.raises(OutputError, match=f"frame.exr' cannot be written: .*{message}"):
        with atomic_file(tmp_path / "frame.exr") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(code, os.strerror(code))  # what write() returns on a full disk, a quota, ...
    with pytest.raises(OutputError, match="scene' cannot be written"):
        with atomic_dir(tmp_path / "scene") as tmp:
            (tmp / "part").write_bytes(b"partial")
            raise OSError(code, os.strerror(code))
    assert _names(tmp_path) == []


def _unshare_available() -> bool:
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    r = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _unshare_available(), reason="needs user namespaces to mount a tiny tmpfs")
def test_a_really_full_disk(tmp_path):
    """A 256 KiB tmpfs (private mount namespace): save_png, write_exr and save_camera_json fill it."""
    script = textwrap.dedent("""
        import os, sys, numpy as np
        sys.path.insert(0, TESTS)
        from untrusted_support import tiny_scene
        from anchorstage import OutputError
        from anchorstage.image_io import save_png
        from anchorstage.exr import write_exr
        from anchorstage.atomic import atomic_dir
        rng = np.random.default_rng(0)
        def folder(p):
            with atomic_dir(p) as tmp:
                (tmp / "x").write_bytes(os.urandom(300_000))
        def scene(p):  # a small PLY, then an image EXR too large for the disk
            from anchorstage import save_scene
            sc = tiny_scene(16)
            sc.camera = sc.camera.with_resolution(320, 240)
            sc.image_linear = rng.random((240, 320, 3), dtype=np.float32)
            sc.depth_m = np.ones((240, 320), np.float32)
            sc.regions = []
            save_scene(sc, p)
        for name, write in (("a.png", lambda p: save_png(p, rng.random((400, 400, 3), dtype=np.float32))),
                            ("b.exr", lambda p: write_exr(p, {"depth": rng.random((300, 300), dtype=np.float32)})),
                            ("c", folder), ("d", scene)):
            try:
                write("/mnt/" + name)
                print(name, "written")
            except OutputError as e:
                print(name, "OutputError", e)
        print("left:", sorted(os.listdir("/mnt")))
    """).replace("TESTS", repr(str(REPO / "tests")))
    (tmp_path / "fill.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(REPO / "core")}
    r = subprocess.run(["unshare", "-Urm", "sh", "-c",
                        f"mount -t tmpfs -o size=256k tmpfs /mnt && {sys.executable} {tmp_path / 'fill.py'}"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "a.png OutputError" in r.stdout and "disk is full" in r.stdout, r.stdout
    assert "b.exr OutputError" in r.stdout and "c OutputError" in r.stdout, r.stdout
    assert "d OutputError" in r.stdout and "image.exr cannot be written" in r.stdout, r.stdout
    assert "left: []" in r.stdout and "Traceback" not in r.stderr


def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("b")
    if not exchange_paths(tmp_path / "a", tmp_path / "b"):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here (the fallback is tested below)")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
def test_replace_keeps_a_complete_folder_and_leaves_nothing(tmp_path, monkeypatch, mode):
    if mode == "fallback":
        monkeypatch.setenv("ANCHORSTAGE_NO_RENAME_EXCHANGE", "1")
    for gen in range(3):
        with atomic_dir(tmp_path / "scene", replace=True) as tmp:
            (tmp / "gen").write_text(str(gen))
    assert _names(tmp_path) == ["scene"] and (tmp_path / "scene" / "gen").read_text() == "2"


# ---------------------------------------------------------------------------- kill safety
def _writer(folder: Path, files: int, kind: str, fallback: bool) -> None:
    """Child process body: replace ``folder/scene`` (or write ``folder/frame.bin``) forever."""
    if fallback:
        os.environ["ANCHORSTAGE_NO_RENAME_EXCHANGE"] = "1"
    gen = 0
    while True:
        gen += 1
        if kind == "dir":
            with atomic_dir(folder / "scene", replace=True) as tmp:
                for i in range(files):
                    (tmp / f"part{i}").write_text(f"{gen}\n" * 200)
        else:
            with atomic_file(folder / "frame.bin") as tmp:
                tmp.write_bytes(f"{gen:08d}".encode() * 4096)


def _complete_generation(folder: Path, files: int) -> int:
    parts = sorted(folder.iterdir())
    assert len(parts) == files, [p.name for p in parts]
    texts = {p.read_text() for p in parts}
    assert len(texts) == 1 and len(next(iter(texts))) == len(next(iter(texts)).split("\n")[0]) * 200 + 200
    return int(next(iter(texts)).split("\n")[0])


@pytest.mark.parametrize("kind, fallback", [("dir", False), ("dir", True), ("file", False)])
def test_sigkill_at_random_moments_never_leaves_a_gap(tmp_path, kind, fallback):
    """Children replace a folder (or file) in a loop and are SIGKILLed at random moments.

    After each kill the path holds a complete old or new version (with the two-rename fallback:
    after the next run's cleanup, which restores the old folder); leftovers are removed by it.
    """
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    rng = random.Random(17)
    files = 6
    with atomic_dir(tmp_path / "scene") as tmp:  # the first, complete version
        for i in range(files):
            (tmp / f"part{i}").write_text("0\n" * 200)
    with atomic_file(tmp_path / "frame.bin") as tmp:
        tmp.write_bytes(b"00000000" * 4096)
    leftovers_seen = restored = newest = 0
    for _ in range(25):
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            try:
                _writer(tmp_path, files, kind, fallback)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, 0.03))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        names = _names(tmp_path)
        leftovers_seen += sum(n.startswith(".") for n in names)
        done = clean_stale(tmp_path, tmp_path / "scene" if kind == "dir" else None, force=True)
        restored += sum("->" in d for d in done)
        assert _names(tmp_path) == ["frame.bin", "scene"], (names, done)
        if kind == "dir":
            if not fallback:
                assert "scene" in names  # RENAME_EXCHANGE: never a moment without the folder
            gen = _complete_generation(tmp_path / "scene", files)
        else:
            data = (tmp_path / "frame.bin").read_bytes()
            assert len(data) == 8 * 4096 and data == data[:8] * 4096
            gen = int(data[:8])
        newest = max(newest, gen)
    assert newest > 0  # the children did replace it
    print(f"{kind}{' fallback' if fallback else ''}: {leftovers_seen} leftovers cleaned, {restored} restored")


def test_killed_save_scene_leaves_the_old_scene_and_the_next_run_cleans(tmp_path):
    """A real `save_scene(force=True)` loop in a subprocess, SIGKILLed at random moments (twice)."""
    out = tmp_path / "stage"
    save_scene(tiny_scene(), out)
    script = textwrap.dedent(f"""
        import sys
        from anchorstage import save_scene
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from untrusted_support import tiny_scene
        sc = tiny_scene(2000)
        print("ready", flush=True)
        i = 0
        while True:
            i += 1
            sc.meta["generation"] = i
            save_scene(sc, {str(out)!r}, force=True)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "core")}
    rng = random.Random(3)
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.2, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert load_scene(out).splats.means.shape[1] == 3  # a complete scene is there
    save_scene(tiny_scene(), out, force=True)  # the next run
    assert _names(tmp_path) == ["stage"]


def test_stale_leftovers_of_other_hosts_wait_a_day(tmp_path, monkeypatch):
    foreign = tmp_path / ".frame.asffff-123-abcdefgh.tmp.exr"
    if atomic._host_tag() == "ffff":
        pytest.skip("this host's tag collides with the test's foreign tag")
    foreign.write_bytes(b"x")
    mine_dead = tmp_path / f".frame.as{atomic._host_tag()}-999999999-abcdefgh.tmp.exr"
    mine_dead.write_bytes(b"x")
    user_file = tmp_path / ".hidden.tmp"
    user_file.write_bytes(b"keep")
    clean_stale(tmp_path, force=True)
    assert _names(tmp_path) == sorted([foreign.name, user_file.name])
    old = time.time() - 2 * 24 * 3600
    os.utime(foreign, (old, old))
    clean_stale(tmp_path, force=True)
    assert _names(tmp_path) == [user_file.name]
