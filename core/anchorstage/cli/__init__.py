# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``anchorstage`` command line.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable ``func(args) -> int``; the work is one
call into the stage layer (:mod:`anchorstage.stages`). Registering imports nothing heavy, so
``--help`` and ``--version`` answer at once; torch loads only in a command that needs it.

The error boundary: a user's mistake (:class:`~anchorstage.errors.AnchorStageError`, or the
system refusing a file: no space, no permission, name too long) prints one line naming the
input and exits 2; anything else is a bug: one line saying so and where its traceback was
written (a log file, see :func:`anchorstage.errors.report_bug`), exit 1. ``--debug`` (or
``ANCHORSTAGE_DEBUG=1``) shows tracebacks instead.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

from .._version import __version__
from ..errors import AnchorStageError, report_bug

__all__ = ["main", "entry", "build_parser"]

#: OSErrors that are the machine's answer to the user's request, not a bug.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG,
                       errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY, errno.EXDEV,
                       errno.EMFILE, errno.ENFILE, errno.EIO}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        # An empty value (--frames '') is a mistake, never "not given" (subcommand parsers are _Parsers too).
        ns, rest = super().parse_known_args(args, namespace)
        for action in self._actions:
            value = getattr(ns, action.dest, None) if action.dest is not argparse.SUPPRESS else None
            values = value if isinstance(value, list) else [value]
            if value is not action.default and any(isinstance(v, str) and not v.strip() for v in values):
                self.error(f"{'/'.join(action.option_strings) or action.dest} must not be empty")
        return ns, rest


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="anchorstage",
        description="One photo → a metric 3D Gaussian-splat stage with compositing passes.",
    )
    parser.add_argument("--version", action="version", version=f"anchorstage {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage errors (one line, exit 2), --help and --version: a code, not an exception
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("ANCHORSTAGE_DEBUG", "") not in ("", "0")
    where = f"anchorstage {args.command}"
    try:
        return int(args.func(args) or 0)
    except AnchorStageError as e:
        if debug:
            raise
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if debug or e.errno not in _ENVIRONMENT_ERRNOS:
            if debug:
                raise
            print(f"{where}: {report_bug(e, where)}", file=sys.stderr)
            return 1
        target = f"{e.filename!r}: " if e.filename else ""
        print(f"{where}: error: {target}{e.strerror or e}", file=sys.stderr)
        return 2
    except MemoryError:
        if debug:
            raise
        print(f"{where}: error: not enough memory for this input (see docs/limits.md for the size limits)",
              file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the boundary: a bug is one line and a log file
        if debug:
            raise
        print(f"{where}: {report_bug(e, where)}", file=sys.stderr)
        return 1


def entry() -> None:
    """The program's entry point (the ``anchorstage`` script, ``python -m anchorstage``): :func:`main`, then exit.

    Two settings of the process, not of the work (results are identical):

    * ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it, before a command imports torch:
      torch's idle OpenMP threads sleep instead of spinning. On a machine shared with other jobs
      (a farm node, a workstation) the spinning threads burned the cores the others needed: loading
      the sample scene took 1.5-2 s instead of 0.3 s. The CPU renderer runs its own threads, each
      with one OpenMP thread, so its frames do not change.
    * Before exiting, every live object moves to the collector's permanent generation
      (:func:`gc.freeze`): interpreter shut-down otherwise walks the hundreds of thousands of objects
      torch and numba made, looking for cycles, which took ~1 s of every command. The work is done
      and written by then, and the process ends, so nothing is left that needs collecting.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
