#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the installable AnchorStage Blender extension zip.

Assembles ``blender_addon/`` (manifest, registration, operators, ...) and ``nodes/``
(as the ``nodes`` sub-package) with the core package built as a pure-Python wheel
under ``wheels/``, then packs it with Blender's own extension builder
(``blender_ext.py build``, shipped inside the ``bpy`` module), which validates the
manifest as Blender will.

Usage:
    python build_addon.py [--out-dir dist]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def core_version() -> str:
    ns: dict = {}
    exec((ROOT / "core" / "anchorstage" / "_version.py").read_text(), ns)
    return ns["__version__"]


def build_core_wheel(dest: Path) -> Path:
    """Build the ``anchorstage`` core as a ``py3-none-any`` wheel into ``dest``."""
    with tempfile.TemporaryDirectory() as tmp:
        # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(ROOT / "pyproject.toml", src)
        shutil.copy2(ROOT / "README.md", src)
        shutil.copytree(ROOT / "core", src / "core", ignore=_IGNORE)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
             "-w", str(dest), str(src)],
            check=True,
        )
    wheels = sorted(dest.glob("anchorstage-*-py3-none-any.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"build_addon: expected one pure-Python core wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def blender_ext_script() -> Path | None:
    """Blender's extension command-line tool inside the installed ``bpy`` module, if any."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        found = sorted(Path(base).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def stage(staging: Path) -> Path:
    """Lay out the extension source folder; returns the manifest path."""
    shutil.copytree(ROOT / "blender_addon", staging, ignore=_IGNORE)
    shutil.copytree(ROOT / "nodes", staging / "nodes", ignore=_IGNORE)
    wheel = build_core_wheel(staging / "wheels")
    manifest = staging / "blender_manifest.toml"
    text = manifest.read_text(encoding="utf-8")
    version = core_version()
    text = text.replace('version = "0.1.0"', f'version = "{version}"', 1)
    marker = "# wheels = []"
    if marker not in text:
        raise SystemExit(f"build_addon: {manifest.name} lacks the '{marker}' line the wheel list replaces")
    text = text.replace(marker, f'wheels = ["./wheels/{wheel.name}"]', 1)
    manifest.write_text(text, encoding="utf-8")
    return manifest


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"anchorstage-{core_version()}.zip"
    script = blender_ext_script()
    if script is None:
        raise SystemExit("build_addon: the 'bpy' module is needed to validate and pack the extension "
                         "(pip install bpy==5.0.1), or build with Blender: blender --command extension build")
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "anchorstage"
        stage(staging)
        partial = target.with_name(f".{target.stem}.partial.zip")
        result = subprocess.run([sys.executable, str(script), "build", "--source-dir", str(staging),
                                 "--output-filepath", str(partial)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise SystemExit(f"build_addon: Blender's extension builder failed:\n{result.stdout}")
        partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist", help="where to write the zip (default: dist/)")
    args = parser.parse_args()
    print(build(args.out_dir))


if __name__ == "__main__":
    main()
