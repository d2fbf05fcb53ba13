# SPDX-License-Identifier: GPL-3.0-or-later
"""User-facing errors.

Every entry point (CLI, Python API, node, operator) reports bad input by raising
:class:`AnchorStageError` (or a subclass) with a message that names the input and
what is wrong with it. The CLI prints that message on one line and exits non-zero;
nodes show it on the node. Anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = ["AnchorStageError", "InputError", "OutputError", "MissingDependencyError", "Cancelled", "report_bug", "log_dir", "error_message"]


#: Longest message kept; a repr of a huge argument is cut here.
_MAX_MESSAGE = 2000


class AnchorStageError(Exception):
    """Base class for errors caused by the user's input or environment.

    The message is kept to one line (newlines, e.g. from the repr of an array, become spaces)
    and at most ``_MAX_MESSAGE`` characters, so every entry point can print it as one line.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            text = " ".join(args[0].split())
            args = (text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "...",)
        super().__init__(*args)


class InputError(AnchorStageError, ValueError):
    """An input (file, array, camera, option) is missing, unreadable or invalid."""


class OutputError(AnchorStageError, OSError):
    """An output location cannot be written (or would overwrite something)."""


class MissingDependencyError(AnchorStageError, ImportError):
    """An optional dependency (gsplat, transformers, model weights, ...) is absent."""


class Cancelled(AnchorStageError):
    """The user (or a remote client) cancelled a long run; nothing was written."""


def log_dir():
    """Where bug reports go: ``$ANCHORSTAGE_LOG_DIR``, else ``$XDG_CACHE_HOME/anchorstage/logs``
    (``~/.cache/anchorstage/logs``), else the temporary folder."""
    import os
    import tempfile
    from pathlib import Path

    env = os.environ.get("ANCHORSTAGE_LOG_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "anchorstage" / "logs" if os.path.isabs(cache) else Path(tempfile.gettempdir())


def report_bug(exc: BaseException, where: str) -> str:
    """One line for an unexpected exception (a bug, not the user's mistake), its traceback written
    to a log file under :func:`log_dir`.

    Returns:
        ``"internal error (a bug) in WHERE: TYPE: MESSAGE; traceback in PATH"`` (the path is left
        out when no log file could be written).
    """
    import datetime
    import os
    import tempfile
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    first = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    first = first.splitlines()[0] if first else type(exc).__name__
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for folder in (log_dir(), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix=f"anchorstage-bug-{stamp}-", suffix=".log", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(f"AnchorStage internal error in {where}\n\n{text}")
            return f"internal error (a bug) in {where}: {first}; traceback in {path}"
        except OSError:
            continue
    return f"internal error (a bug) in {where}: {first}"


def error_message(exc: BaseException, where: str) -> str:
    """The one line a front end shows for a failure: the message of a user mistake
    (:class:`AnchorStageError`), else :func:`report_bug`'s line (a log file holds the traceback)."""
    if isinstance(exc, AnchorStageError):
        return str(exc) or type(exc).__name__
    return report_bug(exc, where)
