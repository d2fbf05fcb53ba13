# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``anchorstage`` command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``func(args) -> int``. User mistakes raise :class:`~anchorstage.errors.AnchorStageError`
and are printed as one line; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from .._version import __version__
from ..errors import AnchorStageError

__all__ = ["main", "build_parser"]


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except AnchorStageError as e:
        print(f"anchorstage {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"anchorstage {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
