#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""A ``blender`` command line for the ``bpy`` module, for machines without a Blender binary.

Farm jobs run ``blender -b FILE.blend --python-exit-code N --python-expr CODE -- ARGS``. The test
machines have Blender only as the ``bpy`` module, so the farm tests point the jobs' Blender
command at this file (``python tests/bpy_blender.py ...`` through a generated launcher). It
handles exactly the arguments the farm jobs use, in order, as Blender does: ``-b`` / ``--background``
then the .blend to open, ``--python-exit-code``, ``--python-expr``, ``--python``, and ``--`` (what
follows is left to the script in ``sys.argv``). Any other argument is refused rather than ignored.
A ``SystemExit`` from a script ends the process with its code, as in Blender; another exception
exits with the ``--python-exit-code`` value.
"""

import runpy
import sys
import traceback


def main(argv: list[str]) -> int:
    import bpy  # first: sets up Blender's own script paths (addon_utils, ...)

    sys.argv = ["blender", *argv]  # what scripts see in Blender
    exit_code = 0
    args = argv[:argv.index("--")] if "--" in argv else list(argv)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-b", "--background"):
            i += 1
            continue
        if a == "--python-exit-code":
            exit_code = int(args[i + 1])
            i += 2
            continue
        if a in ("--python-expr", "--python"):
            code = args[i + 1]
            try:
                if a == "--python":
                    runpy.run_path(code, run_name="__main__")
                else:
                    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                    return 1
                return int(e.code or 0)
            except Exception:  # noqa: BLE001 - as Blender: print, then exit with --python-exit-code
                traceback.print_exc()
                if exit_code:
                    return exit_code
            i += 2
            continue
        if a.endswith(".blend") and not a.startswith("-"):
            bpy.ops.wm.open_mainfile(filepath=a)
            i += 1
            continue
        print(f"bpy_blender: unsupported Blender argument {a!r}", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
