# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for tests that run inside real Blender (the ``bpy`` module).

The extension is built with build_addon.py and installed from its zip into the
temporary user folder set up in tests/conftest.py, the way a user installs it.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

REPO_ROOT = Path(__file__).resolve().parents[2]
from blender_support import ADDON_MODULE, factory_reset  # noqa: E402


#: Blender 5.1+ runs Python 3.13, for which torch is a multi-GB CUDA download: there (see
#: scripts/blender_matrix.py) only the tests marked ``no_torch`` run, the others skip.
HAS_TORCH = importlib.util.find_spec("torch") is not None


def pytest_collection_modifyitems(items):
    needs_torch = pytest.mark.skip(reason="needs torch, not installed for this Blender's Python")
    for item in items:
        if "tests/blender/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.blender)
            if not HAS_TORCH and item.get_closest_marker("no_torch") is None:
                item.add_marker(needs_torch)


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, str(REPO_ROOT / "build_addon.py"), "--out-dir", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def installed_addon(addon_zip) -> str:
    """Install and enable the extension once per session; yields its module name."""
    import addon_utils

    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.extensions.package_install_files(filepath=str(addon_zip), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}, result
    loaded_default, loaded_state = addon_utils.check(ADDON_MODULE)
    assert loaded_state, f"{ADDON_MODULE} did not enable"
    return ADDON_MODULE


@pytest.fixture(scope="session")
def reset_blender(installed_addon):
    """The factory_reset function, for module-scoped fixtures."""
    return factory_reset


@pytest.fixture
def fresh_scene(installed_addon):
    """An empty factory scene with the add-on enabled."""
    return factory_reset()
