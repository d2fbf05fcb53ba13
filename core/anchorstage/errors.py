# SPDX-License-Identifier: GPL-3.0-or-later
"""User-facing errors.

Every entry point (CLI, Python API, node, operator) reports bad input by raising
:class:`AnchorStageError` (or a subclass) with a message that names the input and
what is wrong with it. The CLI prints that message on one line and exits non-zero;
nodes show it on the node. Anything else escaping is a bug.
"""

__all__ = ["AnchorStageError", "InputError", "OutputError", "MissingDependencyError"]


class AnchorStageError(Exception):
    """Base class for errors caused by the user's input or environment."""


class InputError(AnchorStageError, ValueError):
    """An input (file, array, camera, option) is missing, unreadable or invalid."""


class OutputError(AnchorStageError, OSError):
    """An output location cannot be written (or would overwrite something)."""


class MissingDependencyError(AnchorStageError, ImportError):
    """An optional dependency (gsplat, transformers, model weights, ...) is absent."""
