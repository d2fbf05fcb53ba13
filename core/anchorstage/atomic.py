# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic file and folder output: write to a temporary sibling, then rename.

A failure part-way never leaves a half-written EXR, PNG or scene folder behind, and a process
killed at any moment leaves either the previous file / folder or the new one at the final path.

* Files: written to ``.<stem>.as<host>-<pid>-<random>.tmp<suffix>`` beside the final path, then
  renamed over it (``rename`` replaces atomically).
* Folders: built in ``.<name>.as<host>-<pid>-<random>.tmp`` beside the final folder. A new folder
  is renamed into place. An existing folder is *swapped* with the new one in one step with Linux's
  ``renameat2(RENAME_EXCHANGE)`` (called through ctypes), so the path never stops holding a complete
  folder; the old one, now under the temporary name, is then removed. Where the exchange is not
  available (not Linux, a kernel before 3.15, a filesystem without it such as some network
  mounts) the fallback renames the old folder to ``.<name>.as<host>-<pid>-<random>.old``, renames
  the new one into place and removes the old: a kill between those two renames leaves no folder at
  the path, and the next run that writes there renames the ``.old`` folder back first.
* Leftovers of killed runs (``.tmp`` files and folders, ``.old`` folders) are recognised by that
  name pattern and removed by the next write into the same folder: at once when their process id is
  no longer alive on this host, after a day when they come from another host.

Failures become :class:`OutputError` with the path and the reason: an unwritable or read-only
folder, a file name too long for the filesystem (temporary names are shortened to fit, so only a
final name that is itself too long is refused), a full disk or quota, and a folder where a file
belongs (or a file where a folder belongs).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

from .errors import InputError, OutputError

__all__ = ["atomic_file", "atomic_dir", "check_new_dir", "ensure_writable_dir", "default_mode", "clean_stale", "exchange_paths"]

_UMASK_LOCK = threading.Lock()
_CLEAN_LOCK = threading.Lock()
_CLEANED_AT: dict[str, float] = {}
#: Seconds between two scans of one folder for leftovers in the same process.
_RESCAN_S = 60.0
#: Leftovers from another host are removed after this many seconds.
_FOREIGN_AGE_S = 24 * 3600.0
_NAME_MAX_DEFAULT = 255
_RANDOM_LEN = 8  # tempfile's random part
_PID_DIGITS = 10
_MAX_KEPT_SUFFIX = 16
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# .<stem>.as<host>-<pid>-<random>.tmp<suffix> | .old
_LEFTOVER = re.compile(r"^\..*\.as(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[A-Za-z0-9_]{8}\.(?P<kind>tmp|old)(?:\.[^/]*)?$")
# errno -> what it means for an output
_WRITE_ERRORS = {
    errno.ENOSPC: "the disk is full (no space left on device)",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the filesystem is read-only",
    errno.EFBIG: "the file is too large for the filesystem",
    errno.ENAMETOOLONG: "the name is too long for the filesystem",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "an I/O error occurred",
    errno.EISDIR: "a folder is in the way",
    errno.ENOTDIR: "a file is in the way where a folder belongs",
    errno.ENOTEMPTY: "a non-empty folder is in the way",
}


def default_mode(directory: bool = False) -> int:
    """The mode ``open()`` (0o666) or ``mkdir`` (0o777) would give under the current umask.

    Temporary files and folders are created private (0o600 / 0o700); the result is given
    this mode before it is renamed into place, so a farm's compositor can read the frames.
    """
    with _UMASK_LOCK:  # the umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _reason(e: OSError) -> str:
    return _WRITE_ERRORS.get(e.errno or -1, e.strerror or str(e))


def _output_error(what: str, path: Path, e: OSError) -> OutputError:
    return OutputError(f"{what} {str(path)!r} cannot be written: {_reason(e)}")


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) if needed and check it is writable.

    Raises:
        OutputError: naming ``what`` and ``path`` when it cannot be created or written.
    """
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{what} {str(p)!r} is a file, not a folder") from None
    except OSError as e:
        raise OutputError(f"{what} {str(p)!r} cannot be created: {_reason(e)}") from None
    if not p.is_dir():
        raise OutputError(f"{what} {str(p)!r} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(p)!r} is not writable")
    return p


# ---------------------------------------------------------------------------- names
def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:4]


def _name_max(folder: Path) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return _NAME_MAX_DEFAULT


def _shorten(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (never inside a character)."""
    return text.encode("utf-8", "surrogateescape")[:max(0, max_bytes)].decode("utf-8", "ignore")


def _check_name(final: Path, parent: Path, what: str) -> int:
    limit = _name_max(parent)
    size = len(final.name.encode("utf-8", "surrogateescape"))
    if size > limit:
        raise OutputError(f"{what} {str(final)!r}: the file name is {size} bytes long; this filesystem allows at most "
                          f"{limit}: choose a shorter name")
    return limit


def _temp_affixes(final: Path, name_max: int, kind: str, keep_suffix: bool) -> tuple[str, str]:
    """(prefix, suffix) for mkstemp/mkdtemp: the final name shortened so the temp name fits ``name_max``."""
    suffix = final.suffix if keep_suffix and len(final.suffix) <= _MAX_KEPT_SUFFIX else ""
    tag = f"as{_host_tag()}-{os.getpid()}-"
    stem = final.stem if suffix else final.name
    tail = f".{kind}{suffix}"
    # Room for the stem as if the pid had its most digits, so a name shortens the same way in every run.
    room = name_max - len(f"..as{_host_tag()}-{'9' * _PID_DIGITS}-{tail}".encode()) - _RANDOM_LEN
    return f".{_shorten(stem, room)}.{tag}", tail


# ---------------------------------------------------------------------------- leftovers
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    except OSError:
        pass  # best effort: a leftover we cannot remove is retried next time


def _is_stale(entry: os.DirEntry, host: str, now: float) -> Optional[re.Match[str]]:
    m = _LEFTOVER.match(entry.name)
    if m is None:
        return None
    if m["host"] == host:
        return None if _alive(int(m["pid"])) else m
    try:
        age = now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return None
    return m if age > _FOREIGN_AGE_S else None


def clean_stale(folder: str | os.PathLike, final: Optional[Path] = None, *, force: bool = False) -> list[str]:
    """Remove leftovers of killed runs in ``folder`` (see the module docstring); restore a lost folder.

    Args:
        folder: the folder to scan.
        final: when given and absent, a leftover ``.old`` folder of the same name is renamed back
            to it first (the fallback replacement was killed between its two renames).
        force: scan even if this process scanned ``folder`` less than a minute ago.

    Returns:
        The names removed or restored.
    """
    key = os.path.abspath(folder)
    now = time.time()
    with _CLEAN_LOCK:
        if not force and final is None and now - _CLEANED_AT.get(key, -1e18) < _RESCAN_S:
            return []
        _CLEANED_AT[key] = now
    host, done = _host_tag(), []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    stale = [(e, m) for e in entries if (m := _is_stale(e, host, now)) is not None]
    if final is not None and not os.path.lexists(final):
        prefix = _temp_affixes(final, _name_max(Path(folder)), "old", False)[0].rsplit(".as", 1)[0] + ".as"
        olds = sorted((e for e, m in stale if m["kind"] == "old" and e.name.startswith(prefix)),
                      key=lambda e: e.stat(follow_symlinks=False).st_mtime, reverse=True)
        if olds:
            try:
                os.rename(olds[0].path, final)
                done.append(f"{olds[0].name} -> {final.name}")
                stale = [(e, m) for e, m in stale if e.name != olds[0].name]
            except OSError:
                pass
    for e, _ in stale:
        _remove(Path(e.path))
        done.append(e.name)
    return done


# ---------------------------------------------------------------------------- exchange
def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns:
        True when swapped; False when this platform, kernel or filesystem cannot (the caller
        falls back to two renames).

    Raises:
        OSError: the exchange was possible but failed (e.g. permission denied).
    """
    if not sys.platform.startswith("linux") or os.environ.get("ANCHORSTAGE_NO_RENAME_EXCHANGE"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, or another libc without the wrapper
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(b))


# ---------------------------------------------------------------------------- writers
def _parent_of(final: Path, what: str) -> Path:
    return ensure_writable_dir(final.parent if str(final.parent) else ".", f"the folder that holds {what} {str(final)!r},")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, what: str = "output file") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary name keeps the suffix so libraries that pick a format from it work.

    Raises:
        OutputError: the folder cannot be written, ``path`` is a folder, its name is too long,
            or the disk is full (the temporary file is removed in every case).
    """
    final = Path(path)
    parent = _parent_of(final, what)
    name_max = _check_name(final, parent, what)
    if final.is_dir():
        raise OutputError(f"{what} {str(final)!r} is a folder; give a file path")
    clean_stale(parent)
    prefix, suffix = _temp_affixes(final, name_max, "tmp", True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=parent)
    except OSError as e:
        raise OutputError(f"{what} {str(final)!r} cannot be written: its folder {str(parent)!r} does not take new "
                          f"files ({_reason(e)})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, default_mode())
        os.replace(tmp_path, final)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        if isinstance(e, OutputError) or e.errno not in _WRITE_ERRORS:
            raise
        raise _output_error(what, final, e) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def check_new_dir(path: str | os.PathLike, force: bool, what: str) -> Path:
    """``path`` as a Path, refused when it is a file or a non-empty folder and ``force`` is off: called
    before the work, since :func:`atomic_dir` only finds out when the result is ready.

    Raises:
        InputError: the folder exists and is not empty (without ``force``).
    """
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise InputError(f"{what} {str(out)!r} already exists and is not empty (use --force to replace it)")
    return out


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False, what: str = "output folder") -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it into place on success.

    Args:
        path: the final folder.
        replace: swap out an existing non-empty ``path`` once the new one is complete (see the
            module docstring: never a moment without a complete folder on Linux). When False,
            ``path`` must be absent or empty.

    Raises:
        OutputError: ``path`` is a file, is not empty (without ``replace``), or cannot be written.
    """
    final = Path(path)
    parent = _parent_of(final, what)
    name_max = _check_name(final, parent, what)
    clean_stale(parent, final)
    if final.exists() and not final.is_dir():
        raise OutputError(f"{what} {str(final)!r} is a file, not a folder")
    prefix, suffix = _temp_affixes(final, name_max, "tmp", False)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    except OSError as e:
        raise OutputError(f"{what} {str(final)!r} cannot be written: its folder {str(parent)!r} does not take new "
                          f"files ({_reason(e)})") from None
    try:
        yield tmp
        os.chmod(tmp, default_mode(directory=True))
        if final.is_dir() and any(final.iterdir()):
            if not replace:
                raise OutputError(f"{what} {str(final)!r} appeared while writing; not overwritten")
            if exchange_paths(tmp, final):
                _remove(tmp)  # now the old folder
            else:
                old_prefix, old_suffix = _temp_affixes(final, name_max, "old", False)
                old = Path(tempfile.mkdtemp(prefix=old_prefix, suffix=old_suffix, dir=parent))
                os.replace(final, old)  # replaces the empty placeholder
                os.replace(tmp, final)
                _remove(old)
        else:
            os.replace(tmp, final)  # atomic, also over an empty folder
    except OSError as e:
        _remove(tmp)
        if isinstance(e, OutputError) or e.errno not in _WRITE_ERRORS:
            raise
        raise _output_error(what, final, e) from None
    except BaseException:
        _remove(tmp)
        raise
