# SPDX-License-Identifier: GPL-3.0-or-later
"""core/ must never import Blender modules; Blender conventions convert at the add-on boundary."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
FORBIDDEN = {"bpy", "mathutils", "bpy_extras", "bmesh", "gpu", "addon_utils"}


def test_no_blender_imports_in_core_sources():
    offenders = []
    files = sorted(CORE.rglob("*.py"))
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__"):
                names = [a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            offenders += [f"{path.relative_to(CORE)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, "core imports Blender modules:\n" + "\n".join(offenders)


def test_importing_the_whole_core_loads_no_blender_module():
    code = (
        "import importlib, pkgutil, sys, anchorstage\n"
        "for m in pkgutil.walk_packages(anchorstage.__path__, 'anchorstage.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
