#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Headless AnchorStage batch entry (see docs/headless.md).

Inside Blender::

    blender -b [stage.blend] --python scripts/blender_batch.py -- --image photo.jpg --out renders/ --frames 1-24

With the ``bpy`` module (Blender as a Python module)::

    python scripts/blender_batch.py [--addon-zip dist/anchorstage-X.zip] --image photo.jpg --out renders/

The AnchorStage extension must be installed in Blender's user extensions (``user_default``), or
given with ``--addon-zip`` (installed first). Everything after that is ``batch.main``'s options.
"""

import sys


def _argv() -> list[str]:
    return sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]


def _enable(zip_path: str | None) -> str:
    import bpy  # first: with the bpy module, this sets up Blender's own script paths

    import addon_utils

    if zip_path:
        result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        if result != {"FINISHED"}:
            raise SystemExit(f"blender_batch: could not install {zip_path!r}")
    for mod in addon_utils.modules(refresh=True):
        name = mod.__name__
        if name == "anchorstage" or name.endswith(".anchorstage"):
            if not addon_utils.check(name)[1]:
                addon_utils.enable(name, default_set=True)
            return name
    raise SystemExit("blender_batch: the AnchorStage extension is not installed; pass --addon-zip "
                     "dist/anchorstage-<version>.zip (python build_addon.py makes it) or install it in Blender")


def main() -> int:
    import importlib

    argv = _argv()
    zip_path = None
    if "--addon-zip" in argv:
        i = argv.index("--addon-zip")
        zip_path = argv[i + 1] if i + 1 < len(argv) else None
        del argv[i:i + 2]
    module = _enable(zip_path)
    code = importlib.import_module(f"{module}.batch").main(argv)
    # Ends the process with that status (at once on Blender 4.2, whose shutdown can crash: see farm.exit_process).
    importlib.import_module(f"{module}.farm").exit_process(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
