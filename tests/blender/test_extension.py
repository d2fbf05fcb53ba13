# SPDX-License-Identifier: GPL-3.0-or-later
"""The built extension zip installs, enables, registers and unregisters in real Blender."""

import zipfile

import bpy
import pytest


@pytest.mark.no_torch
def test_zip_layout(addon_zip):
    with zipfile.ZipFile(addon_zip) as z:
        names = set(z.namelist())
        manifest = z.read("blender_manifest.toml").decode()
    assert {"blender_manifest.toml", "__init__.py", "nodes/__init__.py", "boundary.py"} <= names
    wheels = [n for n in names if n.startswith("wheels/") and n.endswith("-py3-none-any.whl")]
    assert len(wheels) == 1, names
    assert f'"./{wheels[0]}"' in manifest


def test_installs_enables_and_unregisters_cleanly(fresh_scene, installed_addon):
    import addon_utils
    from blender_support import registered_addon_classes

    tree = bpy.data.node_groups.new("Stage", "AnchorStageNodeTree")
    assert tree.bl_idname == "AnchorStageNodeTree"
    bpy.data.node_groups.remove(tree)

    before = registered_addon_classes()
    assert "AnchorStageNodeTree" in before
    addon_utils.disable(installed_addon, default_set=True)
    assert not registered_addon_classes(), "classes left registered after unregister"
    assert bpy.types.NodeTree.bl_rna_get_subclass_py("AnchorStageNodeTree") is None
    addon_utils.enable(installed_addon, default_set=True)
    assert registered_addon_classes() == before


@pytest.mark.no_torch
def test_core_comes_from_the_bundled_wheel_or_environment(installed_addon):
    import anchorstage

    assert anchorstage.__version__
