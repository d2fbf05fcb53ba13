#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the Blender tests (tests/blender/) on every Blender version the add-on claims.

Blender 5.0 runs in the project's own ``.venv`` (``scripts/test.sh``); this script adds the
other versions, each as the ``bpy`` module in a virtual environment of its own under
``.blender-matrix/`` (kept between runs; rebuilt when its requirements change):

=======  ==============  ======  ===============================================
Blender  bpy             Python  what runs
=======  ==============  ======  ===============================================
4.2 LTS  bpy==4.2.23     3.11    every Blender test
4.5 LTS  bpy==4.5.15     3.11    every Blender test
5.3      bpy==5.3.0      3.13    tests marked ``no_torch``: install, enable,
                                 registration, UI draw, preferences, dependency
                                 check (torch for Python 3.13 is a multi-GB CUDA
                                 download; the rest of tests/blender needs it)
=======  ==============  ======  ===============================================

Usage::

    python scripts/blender_matrix.py [install|test|all] [--only 4.2,5.3] [-- PYTEST_ARGS]

``install`` creates the environments (in parallel: the downloads overlap); ``test`` runs the
tests one version after another (the machine has 2 cores) and prints a table; ``all`` does
both. Logs go to ``.blender-matrix/logs/``, the table also to ``.blender-matrix/summary.json``.
Exit status 0 only when every version ran and nothing failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import hashlib
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


@dataclass(frozen=True)
class Target:
    blender: str      # "4.2"
    bpy: str          # the pip requirement
    python: str       # "3.11"
    full: bool        # every Blender test (True) or only those marked no_torch (False)

    @property
    def venv(self) -> Path:
        return WORK / f"bpy{self.blender.replace('.', '')}"


MATRIX = (
    Target("4.2", "bpy==4.2.23", "3.11", True),
    Target("4.5", "bpy==4.5.15", "3.11", True),
    Target("5.3", "bpy==5.3.0", "3.13", False),
)


def _pyproject() -> dict:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def requirements(t: Target) -> list[str]:
    """What the target's environment holds: its bpy, and for full targets the core's dependencies
    and the test extra (less the 5.0 bpy pin), so the same tests run as on 5.0."""
    if not t.full:
        return [t.bpy, "pytest>=8"]
    project = _pyproject()
    test = [r for r in project["optional-dependencies"]["test"] if not r.replace(" ", "").startswith("bpy")]
    return [t.bpy, *project["dependencies"], *test]


def find_python(version: str) -> str | None:
    """An interpreter of that version: on PATH, else under pyenv's root (these machines have one)."""
    for name in (f"python{version}",):
        found = shutil.which(name)
        if found and _version_of(found) == version:
            return found
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    try:
        roots.insert(0, subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    for root in filter(None, roots):
        for cand in sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")), reverse=True):
            if _version_of(cand) == version:
                return cand
    return None


def _version_of(python: str) -> str:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return out


def _log(t: Target, what: str) -> Path:
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    return WORK / "logs" / f"blender-{t.blender}-{what}.log"


def install(t: Target) -> tuple[Target, bool, float, str]:
    """Create (or keep) the target's environment. Returns (target, ok, seconds, message)."""
    t0 = time.monotonic()
    reqs = requirements(t)
    stamp = t.venv / "anchorstage-requirements.txt"
    want = "\n".join(reqs) + "\n"
    py = t.venv / "bin" / "python"
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return t, True, time.monotonic() - t0, "up to date"
    base = find_python(t.python)
    if base is None:
        return t, False, 0.0, f"no Python {t.python} interpreter found (PATH or pyenv)"
    log = _log(t, "install")
    with open(log, "w") as f:
        shutil.rmtree(t.venv, ignore_errors=True)
        steps = [[base, "-m", "venv", str(t.venv)],
                 # torch==2.13.0 comes from the wheel on this machine's disk (pip's find-links);
                 # the bpy wheels and the rest from the package index, through pip's cache.
                 [str(py), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *reqs]]
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
    py = t.venv / "bin" / "python"
    paths = ["tests/blender"] if t.full else no_torch_files()
    cmd = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *paths, *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "core") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("BLENDER_USER_RESOURCES", None)  # tests/conftest.py gives each run a fresh temporary one
    log = _log(t, "tests")
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=env).returncode
    text = log.read_text(errors="replace")
    tail = text.strip().splitlines()[-1] if text.strip() else ""
    counts = {k.rstrip("s") if k.startswith("error") else k: int(n) for n, k in _COUNTS.findall(tail)}
    return {"blender": t.blender, "bpy": t.bpy, "python": t.python, "scope": "all" if t.full else "no_torch",
            "returncode": rc, "seconds": round(time.monotonic() - t0, 1), "summary": tail,
            "log": str(log.relative_to(ROOT)), **counts}


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
        print(f"blender matrix: no version in {args.only!r}; known: {', '.join(t.blender for t in MATRIX)}", file=sys.stderr)
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
            if not (t.venv / "bin" / "python").exists():
                print(f"blender matrix: {t.blender}: not installed (run: python scripts/blender_matrix.py install)",
                      file=sys.stderr)
                return 1
            row = run_tests(t, extra)
            rows.append(row)
            print(f"blender matrix: Blender {t.blender}: {row['summary']} [{row['log']}]", flush=True)
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
