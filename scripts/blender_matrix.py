#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the Blender tests (tests/blender/) on every Blender version the add-on claims.

Blender 5.0 runs in the project's own ``.venv`` (``scripts/test.sh``); this script adds the others,
each as the ``bpy`` module from PyPI:

=======  ============  ======  ==================================================================
Blender  bpy           Python  how, and what runs
=======  ============  ======  ==================================================================
4.2 LTS  bpy==4.2.23   3.11    ``.venv`` (the project's dependencies, torch included) with this
                               bpy in a folder of its own put first on ``PYTHONPATH``: every
                               Blender test
4.5 LTS  bpy==4.5.15   3.11    the same
5.3      bpy==5.3.0    3.13    a virtual environment of its own (bpy and pytest): the tests marked
                               ``no_torch`` (install, enable, registration, UI draw, preferences,
                               dependency check); torch for Python 3.13 is a multi-GB CUDA build,
                               so the rest of tests/blender skips there
=======  ============  ======  ==================================================================

Sharing ``.venv`` for 4.2 and 4.5 means the same dependency versions as on 5.0 and no second and
third copy of torch to install. Everything lives under ``.blender-matrix/`` and is kept between runs
(rebuilt when its requirement changes).

Usage::

    python scripts/blender_matrix.py [install|test|all] [--only 4.2,5.3] [-- PYTEST_ARGS]

``install`` fetches the bpy folders and the 5.3 environment (in parallel; it needs no ``.venv``, so
``scripts/test.sh`` runs it while ``.venv`` is set up); ``test`` runs the tests one version after
another (the machine has 2 cores; 4.2 and 4.5 need ``.venv``: ``scripts/bootstrap.sh test``) and
prints a table; ``all`` does both. Logs go to ``.blender-matrix/logs/``, the table also to
``.blender-matrix/summary.json``. Exit status 0 only when every version ran and nothing failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".blender-matrix"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class Target:
    blender: str      # "4.2"
    bpy: str          # the pip requirement
    python: str       # "3.11"
    overlay: bool     # True: bpy in a folder over .venv, every Blender test; False: own venv, no_torch tests

    @property
    def home(self) -> Path:
        """The bpy folder (overlay) or the virtual environment."""
        return WORK / f"bpy{self.blender.replace('.', '')}"

    @property
    def python_exe(self) -> Path:
        return PROJECT_PYTHON if self.overlay else self.home / "bin" / "python"

    @property
    def requirements(self) -> list[str]:
        return [self.bpy] if self.overlay else [self.bpy, "pytest>=8"]


MATRIX = (
    Target("4.2", "bpy==4.2.23", "3.11", True),
    Target("4.5", "bpy==4.5.15", "3.11", True),
    Target("5.3", "bpy==5.3.0", "3.13", False),
)


def find_python(version: str) -> str | None:
    """An interpreter of that version: on PATH, else under pyenv's root (these machines have one)."""
    found = shutil.which(f"python{version}")
    if found and _version_of(found) == version:
        return found
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    for root in filter(None, roots):
        for cand in sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")),
                           reverse=True):
            if _version_of(cand) == version:
                return cand
    return None


def _version_of(python: str) -> str:
    try:
        return subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _log(t: Target, what: str) -> Path:
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    return WORK / "logs" / f"blender-{t.blender}-{what}.log"


def install(t: Target) -> tuple[Target, bool, float, str]:
    """Fetch (or keep) the target's bpy folder or environment. Returns (target, ok, seconds, message)."""
    t0 = time.monotonic()
    want = "\n".join(t.requirements) + "\n"
    stamp = WORK / f"{t.home.name}.requirements"
    if t.home.is_dir() and stamp.exists() and stamp.read_text() == want:
        return t, True, time.monotonic() - t0, "up to date"
    base = find_python(t.python)
    if base is None:
        return t, False, 0.0, f"no Python {t.python} interpreter found (PATH or pyenv)"
    log = _log(t, "install")
    stamp.unlink(missing_ok=True)
    shutil.rmtree(t.home, ignore_errors=True)
    pip = ["-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    if t.overlay:  # bpy alone; its own dependencies (numpy, cython, requests, zstandard) are .venv's
        steps = [[base, *pip, "--no-deps", "--target", str(t.home), *t.requirements]]
    else:
        steps = [[base, "-m", "venv", str(t.home)], [str(t.home / "bin" / "python"), *pip, *t.requirements]]
    with open(log, "w") as f:
        for cmd in steps:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
                return t, False, time.monotonic() - t0, f"install failed, see {log.relative_to(ROOT)}"
    stamp.write_text(want)
    return t, True, time.monotonic() - t0, "installed"


def no_torch_files() -> list[str]:
    """Test files holding tests marked no_torch (the only ones collected where torch is absent)."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "blender").glob("test_*.py")
                  if "no_torch" in p.read_text(encoding="utf-8"))


_COUNTS = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def run_tests(t: Target, extra: list[str]) -> dict:
    paths = ["tests/blender"] if t.overlay else no_torch_files()
    cmd = [str(t.python_exe), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *paths, *extra]
    first = [str(t.home)] if t.overlay else []  # this bpy before .venv's own (5.0.1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*first, str(ROOT / "core"), os.environ.get("PYTHONPATH", "")]))
    env.pop("BLENDER_USER_RESOURCES", None)  # tests/conftest.py gives each run a fresh temporary one
    log = _log(t, "tests")
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write(f"$ PYTHONPATH={env['PYTHONPATH']} " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env).returncode
    text = log.read_text(errors="replace").strip()
    tail = text.splitlines()[-1] if text else ""
    counts = {("error" if k.startswith("error") else k): int(n) for n, k in _COUNTS.findall(tail)}
    version = subprocess.run([str(t.python_exe), "-c", "import bpy; print(bpy.app.version_string)"], env=env,
                             capture_output=True, text=True).stdout.strip().splitlines()
    return {"blender": t.blender, "bpy": t.bpy, "python": t.python, "scope": "all" if t.overlay else "no_torch",
            "version_string": version[-1] if version else "", "returncode": rc,
            "seconds": round(time.monotonic() - t0, 1), "summary": tail, "log": str(log.relative_to(ROOT)), **counts}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", nargs="?", choices=("install", "test", "all"), default="all")
    p.add_argument("--only", default="", help="comma-separated Blender versions (default: all of them)")
    args = p.parse_args(argv)
    targets = [t for t in MATRIX if not args.only or t.blender in args.only.split(",")]
    if not targets:
        print(f"blender matrix: no version in {args.only!r}; known: {', '.join(t.blender for t in MATRIX)}",
              file=sys.stderr)
        return 2
    ok = True
    if args.action in ("install", "all"):
        with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
            for t, good, secs, msg in pool.map(install, targets):
                print(f"blender matrix: {t.blender} ({t.bpy}, Python {t.python}): {msg} ({secs:.0f} s)", flush=True)
                ok &= good
        if not ok:
            return 1
    if args.action in ("test", "all"):
        rows = []
        for t in targets:
            if not t.home.is_dir() or not t.python_exe.exists():
                need = "scripts/bootstrap.sh test" if t.overlay and not t.python_exe.exists() else \
                    "python scripts/blender_matrix.py install"
                print(f"blender matrix: {t.blender}: not ready (run: {need})", file=sys.stderr)
                return 1
            row = run_tests(t, extra)
            rows.append(row)
            print(f"blender matrix: Blender {row['version_string'] or t.blender}: {row['summary']} [{row['log']}]",
                  flush=True)
            ok &= row["returncode"] == 0
        WORK.mkdir(exist_ok=True)
        (WORK / "summary.json").write_text(json.dumps(rows, indent=1))
        print("\n| Blender | bpy | Python | tests | passed | failed | skipped | time | result |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            result = "ok" if r["returncode"] == 0 else f"FAILED (exit {r['returncode']}, see {r['log']})"
            print(f"| {r['blender']} | {r['bpy']} | {r['python']} | {r['scope']} | {r.get('passed', 0)} | "
                  f"{r.get('failed', 0) + r.get('error', 0)} | {r.get('skipped', 0)} | {r['seconds']:.0f} s | {result} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
