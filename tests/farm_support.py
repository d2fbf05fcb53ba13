# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the farm tests: the openjd command, launchers for the jobs' executables, node."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
CORE_DIR = REPO_ROOT / "core"


def openjd_exe() -> str:
    """The ``openjd`` command of this environment (skips the test where openjd-cli is not installed)."""
    here = Path(sys.executable).parent / "openjd"
    found = str(here) if here.exists() else shutil.which("openjd")
    if not found:
        pytest.skip("openjd-cli is not installed (pip install 'anchorstage[farm]')")
    return found


def launcher(path: Path, *argv: str) -> str:
    """An executable file that runs ``argv`` + its own arguments: a job's command on the workers."""
    quoted = " ".join(f"'{a}'" for a in argv)
    path.write_text(f"#!/bin/sh\nexec {quoted} \"$@\"\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def anchorstage_launcher(folder: Path) -> str:
    """``anchorstage`` for this checkout's core, with this Python."""
    return launcher(folder / "anchorstage", sys.executable, "-m", "anchorstage")


def job_env() -> dict[str, str]:
    """The environment jobs run in: this checkout's core first on the path; no numba compile wait."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(CORE_DIR), os.environ.get("PYTHONPATH", "")]),
                ANCHORSTAGE_NUMBA="0")


def openjd_run(bundle: Path, step: str, chunks: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``openjd run`` of ``chunks`` (e.g. ["1-2", "3-4"]) of a bundle's step with its parameter file."""
    import json

    cmd = [openjd_exe(), "run", str(bundle / "template.json"), "--step", step,
           "-p", f"file://{bundle / 'openjd_parameters.json'}",
           "--tasks", json.dumps([{"Frame": c} for c in chunks])]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=job_env(), timeout=900)


def exr_channels(path: Path) -> set[str]:
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {name for part in f.parts for name in part.channels}
