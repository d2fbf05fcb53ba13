# SPDX-License-Identifier: GPL-3.0-or-later
"""Input files from outside: path arguments, regular files only, paths that stay inside a folder.

Every reader opens its input through :func:`open_input` (or checks it with
:func:`check_input_file` when a library insists on a path), so a FIFO, a device such as
``/dev/zero``, a socket or a folder is refused with one clear message before a byte is read:
such files would hang the reader or feed it data without end. Scene folders resolve the paths
they hold through :func:`inside_folder`, which refuses anything (``..``, absolute paths,
symlinks) that leads out of the folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InputError

__all__ = ["path_arg", "check_input_file", "open_input", "inside_folder", "describe_file_kind"]


def path_arg(value: Any, what: str) -> Path:
    """``value`` as a :class:`Path`, refusing what cannot name a file.

    Args:
        value: a ``str`` or ``os.PathLike`` from a caller.
        what: how the message names the argument (e.g. ``"load_image: path"``).

    Raises:
        InputError: not a string or path, empty, or holding a NUL character.
    """
    if isinstance(value, bytes) or not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{what} must be a file path (str or os.PathLike), got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise InputError(f"{what} must be a text path, got {type(text).__name__}")
    if not text.strip():
        raise InputError(f"{what} must not be empty")
    if "\x00" in text:
        raise InputError(f"{what} {text!r} contains a NUL character")
    return Path(text)


def describe_file_kind(mode: int) -> str:
    """What ``st_mode`` is, in words (for refusals)."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(p: Path, what: str, e: OSError) -> InputError:
    if isinstance(e, FileNotFoundError):
        return InputError(f"{what} {str(p)!r} does not exist")
    if isinstance(e, PermissionError):
        return InputError(f"{what} {str(p)!r} cannot be read: permission denied")
    return InputError(f"{what} {str(p)!r} cannot be read: {e.strerror or e}")


def check_input_file(path: Any, what: str) -> Path:
    """Check that ``path`` names an existing regular file (symlinks followed) and return it.

    For libraries that only take a path; prefer :func:`open_input`, which cannot race.

    Raises:
        InputError: missing, unreadable, or a folder / FIFO / device / socket.
    """
    p = path_arg(path, what)
    try:
        st = os.stat(p)
    except OSError as e:
        raise _refuse(p, what, e) from None
    except ValueError as e:  # e.g. a path too long for the platform's C API
        raise InputError(f"{what} {str(p)!r} is not a usable path: {e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {str(p)!r} is not a file: it is {describe_file_kind(st.st_mode)}")
    return p


def open_input(path: Any, what: str) -> tuple[BinaryIO, int]:
    """Open a regular file for binary reading; refuse anything else without blocking.

    The file is opened non-blocking (so a FIFO without a writer does not hang the open),
    checked with ``fstat`` on the open descriptor (no race with a swapped file), and then
    switched back to blocking reads.

    Args:
        path: the file.
        what: how the message names it (e.g. ``"camera file"``).

    Returns:
        (binary file object positioned at 0, size in bytes). The caller closes it.

    Raises:
        InputError: missing, unreadable, or a folder / FIFO / device / socket.
    """
    p = path_arg(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except IsADirectoryError:
        raise InputError(f"{what} {str(p)!r} is not a file: it is a folder") from None
    except OSError as e:
        raise _refuse(p, what, e) from None
    except ValueError as e:
        raise InputError(f"{what} {str(p)!r} is not a usable path: {e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {str(p)!r} is not a file: it is {describe_file_kind(st.st_mode)}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), int(st.st_size)
    except BaseException:
        os.close(fd)
        raise


def inside_folder(root: Path, relative: Any, what: str) -> Path:
    """``root / relative`` when it stays inside ``root`` after resolving ``..`` and symlinks.

    Args:
        root: the folder (e.g. a scene folder).
        relative: a relative path read from a file in that folder.
        what: how the message names the entry (e.g. ``"scene.json regions[2].mask"``).

    Raises:
        InputError: not a non-empty string, absolute, or leading outside ``root``.
    """
    if not isinstance(relative, str) or not relative.strip():
        raise InputError(f"{what} must be a non-empty relative path string (got {relative!r})")
    if "\x00" in relative or "\\" in relative:
        raise InputError(f"{what} {relative!r} must be a relative path with '/' separators")
    rel = Path(relative)
    if rel.is_absolute() or (rel.drive or rel.root):
        raise InputError(f"{what} {relative!r} is absolute; paths in a scene folder must be relative to it")
    try:
        base = root.resolve(strict=False)
        target = (root / rel).resolve(strict=False)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on older Pythons
        raise InputError(f"{what} {relative!r} cannot be resolved: {e}") from None
    if target != base and base not in target.parents:
        raise InputError(f"{what} {relative!r} leads outside the folder {str(root)!r} (through '..' or a symlink); "
                         "refused")
    return target
