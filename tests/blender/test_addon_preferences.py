# SPDX-License-Identifier: GPL-3.0-or-later
"""Preferences: the dependency check names exactly what is missing; Install pip-installs into the
extension's own site folder (here from a local wheel folder, no network) and refuses to touch
the network while Blender's online access is off; the add-on registers its preferences even
when torch is missing; unregistering leaves nothing behind."""

import base64
import hashlib
import importlib
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

import bpy
from blender_support import ADDON_MODULE, registered_addon_classes


def _prefs_module():
    return importlib.import_module(f"{ADDON_MODULE}.preferences")


def _make_wheel(folder, name="astiny", version="0.1"):
    """A minimal pure-Python wheel, written by hand (no build backend, no network)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for n, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{n},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for n, text in files.items():
            z.writestr(n, text)
    return path


@pytest.mark.no_torch
def test_dependency_check_names_exactly_what_is_missing(fresh_scene, monkeypatch):
    prefs_mod = _prefs_module()
    missing = {m[0] for m in prefs_mod.missing_dependencies()}
    for name, *_ in prefs_mod.DEPENDENCIES:
        assert (name in missing) == (importlib.util.find_spec(name) is None), name
    monkeypatch.setattr(prefs_mod, "DEPENDENCIES", prefs_mod.DEPENDENCIES + (
        ("anchorstage_not_a_module", "anchorstage-not-a-module", "testing", True),))
    text = prefs_mod.describe_missing(prefs_mod.missing_dependencies())
    assert "anchorstage_not_a_module (testing)" in text
    assert ("torch (" in text) == (importlib.util.find_spec("torch") is None)  # named exactly when missing
    assert bpy.ops.anchorstage.check_dependencies() == {"FINISHED"}


@pytest.mark.no_torch
def test_install_refuses_the_network_when_online_access_is_off(fresh_scene):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.wheelhouse = ""
    assert bpy.app.online_access is False  # the bpy module runs offline by default
    with pytest.raises(RuntimeError, match="online access is off"):
        bpy.ops.anchorstage.install_dependencies(packages="astiny")


@pytest.mark.no_torch
def test_install_from_a_local_wheel_folder_into_the_extension_site(fresh_scene, tmp_path):
    prefs_mod = _prefs_module()
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    _make_wheel(tmp_path / "wheels")
    prefs.wheelhouse = str(tmp_path / "wheels")
    try:
        assert bpy.ops.anchorstage.install_dependencies(packages="astiny") == {"FINISHED"}
    finally:
        prefs.wheelhouse = ""
    site = prefs_mod.site_folder()
    assert os.path.isfile(os.path.join(site, "astiny", "__init__.py"))
    assert site.startswith(os.environ["BLENDER_USER_RESOURCES"])  # the extension's own user folder
    import astiny

    assert astiny.VALUE == 42 and os.path.dirname(os.path.dirname(astiny.__file__)) == site


@pytest.mark.no_torch
def test_install_reports_pip_failure(fresh_scene, tmp_path):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    (tmp_path / "empty").mkdir()
    prefs.wheelhouse = str(tmp_path / "empty")
    try:
        with pytest.raises(RuntimeError, match="pip failed"):
            bpy.ops.anchorstage.install_dependencies(packages="astiny-not-there")
    finally:
        prefs.wheelhouse = ""


def test_unregister_leaves_nothing_behind(fresh_scene, installed_addon):
    import addon_utils
    import nodeitems_utils

    engines = lambda: {getattr(c, "bl_idname", None) for c in bpy.types.RenderEngine.__subclasses__()  # noqa: E731
                       if getattr(c, "is_registered", False)}
    before = registered_addon_classes()
    assert {"AnchorStageRenderEngine", "AnchorStagePreferences", "ANCHORSTAGE_OT_new_stage",
            "AnchorStageImageNode", "AnchorStageSocketScene", "ANCHORSTAGE_PT_camera"} <= before
    assert "ANCHORSTAGE" in engines() and hasattr(bpy.types.Scene, "anchorstage")
    try:
        addon_utils.disable(installed_addon, default_set=True)
        assert registered_addon_classes() == set()
        assert "ANCHORSTAGE" not in engines()
        assert not hasattr(bpy.types.Scene, "anchorstage")
        assert "ANCHORSTAGE_NODES" not in nodeitems_utils._node_categories
        for menu in (bpy.types.TOPBAR_MT_file_import, bpy.types.TOPBAR_MT_file_export):
            funcs = getattr(menu.draw, "_draw_funcs", [])
            assert not [f for f in funcs if f.__module__.startswith(installed_addon)]
        for panel in ("RENDER_PT_format", "RENDER_PT_output"):
            assert "ANCHORSTAGE" not in getattr(bpy.types, panel).COMPAT_ENGINES
    finally:
        addon_utils.enable(installed_addon, default_set=True)
    assert registered_addon_classes() == before


@pytest.mark.no_torch
def test_registers_preferences_without_torch(addon_zip, tmp_path):
    """With torch unimportable, only the preferences (and dependency operators) register, naming torch."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # import torch -> ImportError
        import bpy, addon_utils
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.extensions.package_install_files(filepath={str(addon_zip)!r}, repo="user_default", enable_on_install=True)
        mod = "{ADDON_MODULE}"
        assert addon_utils.check(mod)[1], "not enabled"
        prefs = sys.modules[mod + ".preferences"]
        print("IMPORT_ERROR=" + prefs.IMPORT_ERROR[0])
        print("HAS_PREFS=" + str(bpy.context.preferences.addons[mod].preferences is not None))
        print("HAS_ENGINE=" + str(hasattr(bpy.types.Scene, "anchorstage")))
        print("HAS_INSTALL=" + str(hasattr(bpy.ops.anchorstage, "install_dependencies")))
    """)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    out = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line and line.split("=")[0].isupper())
    assert "torch" in out["IMPORT_ERROR"]
    assert out["HAS_PREFS"] == "True" and out["HAS_ENGINE"] == "False"
