# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic file and folder output: write to a temporary sibling, then rename.

A failure part-way never leaves a half-written EXR, PNG or scene folder behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from .errors import OutputError

__all__ = ["atomic_file", "atomic_dir", "ensure_writable_dir", "default_mode"]

_UMASK_LOCK = threading.Lock()


def default_mode(directory: bool = False) -> int:
    """The mode ``open()`` (0o666) or ``mkdir`` (0o777) would give under the current umask.

    Temporary files and folders are created private (0o600 / 0o700); the result is given
    this mode before it is renamed into place, so a farm's compositor can read the frames.
    """
    with _UMASK_LOCK:  # the umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) if needed and check it is writable.

    Raises:
        OutputError: naming ``what`` and ``path`` when it cannot be created or written.
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{what} {str(p)!r} cannot be created: {e.strerror or e}") from None
    if not p.is_dir():
        raise OutputError(f"{what} {str(p)!r} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(p)!r} is not writable")
    return p


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str = "output file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the suffix so libraries that pick a format from it work.
    """
    final = Path(path)
    parent = ensure_writable_dir(final.parent if str(final.parent) else ".", f"folder of {what}")
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_mode())
        os.replace(tmp_path, final)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False, what: str = "output folder") -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it into place on success.

    Args:
        path: the final folder.
        replace: remove an existing ``path`` once the new one is complete. When False the
            caller must already have decided that ``path`` is absent or empty.
    """
    final = Path(path)
    parent = ensure_writable_dir(final.parent if str(final.parent) else ".", f"folder of {what}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, default_mode(directory=True))
        if final.exists():
            if not replace and any(final.iterdir()):
                raise OutputError(f"{what} {str(final)!r} appeared while writing; not overwritten")
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
