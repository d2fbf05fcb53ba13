# SPDX-License-Identifier: GPL-3.0-or-later
"""User-facing errors.

Every entry point (CLI, Python API, node, operator) reports bad input by raising
:class:`AnchorStageError` (or a subclass) with a message that names the input and
what is wrong with it. The CLI prints that message on one line and exits non-zero;
nodes show it on the node. Anything else escaping is a bug.
"""

__all__ = ["AnchorStageError", "InputError", "OutputError", "MissingDependencyError"]


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
