# SPDX-License-Identifier: GPL-3.0-or-later
"""Files in a remote worker's requests and answers: base64 in JSON, never paths.

A folder (a conditioning stack, a scene, a refresh's outputs) travels as ``{"files": {NAME: BASE64}}``;
a single file (a photo, a depth map) as ``{"name": NAME, "data": BASE64}``. Names are plain file names
or one folder deep (``regions/sky.png``), of letters, digits, ``_``, ``-`` and ``.`` and starting
with a letter or digit, so they can never climb out of the folder they are written into (no ``..``,
no absolute paths, no hidden files). Sizes are checked against the ``request_bytes`` limit
(``ANCHORSTAGE_MAX_REQUEST_BYTES``) before anything is decoded.

Standard library only: the Blender add-on's client uses it too.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from ..errors import InputError
from ..limits import check_count

__all__ = ["NAME_RE", "encode_folder", "decode_folder", "encode_file", "decode_file", "check_name", "encoded_size"]

#: A file name in a payload: one folder deep at most, no dot files, no '..'.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127})?")
_MAX_FILES = 4096


def check_name(name: Any, where: str, allowed: Optional[Iterable[str]] = None) -> str:
    """``name`` when it is a safe payload file name (and among ``allowed`` when given).

    Raises:
        InputError: not a string, not a safe name, or not allowed.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise InputError(f"{where}: file name {name!r} is not allowed (letters, digits, _ - . and one folder level; "
                         "no paths)")
    if allowed is not None and name not in set(allowed):
        raise InputError(f"{where}: unexpected file {name!r} (expected {', '.join(sorted(allowed))})")
    return name


def encoded_size(obj: Any) -> int:
    """Bytes of base64 text in a payload (strings anywhere in it), for the size check."""
    if isinstance(obj, str):
        return len(obj)
    if isinstance(obj, Mapping):
        return sum(len(k) + encoded_size(v) for k, v in obj.items() if isinstance(k, str))
    if isinstance(obj, (list, tuple)):
        return sum(encoded_size(v) for v in obj)
    return 8


def _b64(data: Any, where: str) -> bytes:
    if not isinstance(data, str):
        raise InputError(f"{where} must be base64 text (got {type(data).__name__})")
    check_count("request_bytes", len(data), where)
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InputError(f"{where} is not valid base64") from None


def encode_file(path: str | os.PathLike, name: Optional[str] = None) -> dict[str, str]:
    """``{"name", "data"}`` of a file (``name`` defaults to its file name)."""
    p = Path(path)
    return {"name": check_name(name or p.name, "encode_file"), "data": base64.b64encode(p.read_bytes()).decode("ascii")}


def decode_file(obj: Any, dest_dir: Path, where: str, *, suffixes: Optional[Iterable[str]] = None,
                stem: Optional[str] = None) -> Path:
    """Write a ``{"name", "data"}`` file into ``dest_dir`` (a folder the caller created); returns its path.

    Args:
        obj: the payload entry.
        dest_dir: where it is written.
        where: how messages name it (e.g. ``"request photo"``).
        suffixes: allowed file suffixes (lower case, with the dot).
        stem: write it under this stem instead of the sender's (the suffix is kept).

    Raises:
        InputError: malformed, a bad name or suffix, not base64, or over the size limit.
    """
    if not isinstance(obj, Mapping) or set(obj) - {"name", "data"} or "name" not in obj or "data" not in obj:
        raise InputError(f"{where} must be an object {{\"name\": FILE_NAME, \"data\": BASE64}}")
    name = check_name(obj["name"], where)
    if "/" in name:
        raise InputError(f"{where}: file name {name!r} must not hold a folder")
    suffix = ("." + name.rsplit(".", 1)[1].lower()) if "." in name else ""
    if suffixes is not None and suffix not in set(suffixes):
        raise InputError(f"{where}: {name!r} must be one of {', '.join(sorted(suffixes))}")
    target = dest_dir / ((stem + suffix) if stem else name)
    target.write_bytes(_b64(obj["data"], f"{where} {name!r}"))
    return target


def encode_folder(folder: str | os.PathLike, names: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """``{"files": {NAME: BASE64}}`` of every file in ``folder`` (one level of subfolders), or of ``names``.

    Raises:
        InputError: a file whose name is not a safe payload name, or over the size limit.
    """
    root = Path(folder)
    if names is None:
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    files: dict[str, str] = {}
    total = 0
    for name in names:
        check_name(name, f"folder {str(root)!r}")
        data = base64.b64encode((root / name).read_bytes()).decode("ascii")
        total += len(data)
        check_count("request_bytes", total, f"folder {str(root)!r} encoded")
        files[name] = data
    return {"files": files}


def decode_folder(obj: Any, dest: Path, where: str, *, required: Iterable[str] = (),
                  allowed: Optional[Iterable[str]] = None) -> Path:
    """Write a ``{"files": {NAME: BASE64}}`` folder into ``dest`` (created; it must not exist yet).

    Args:
        obj: the payload entry.
        dest: the folder to create (inside a temporary folder of the caller's).
        where: how messages name it (e.g. ``"request conditioning"``).
        required: names that must be present.
        allowed: the only names accepted (default: any safe name).

    Raises:
        InputError: malformed, a bad or unexpected name, a missing file, not base64, or over the size limit.
    """
    if not isinstance(obj, Mapping) or set(obj) != {"files"} or not isinstance(obj["files"], Mapping):
        raise InputError(f"{where} must be an object {{\"files\": {{FILE_NAME: BASE64, ...}}}}")
    files = obj["files"]
    if len(files) > _MAX_FILES:
        raise InputError(f"{where} holds {len(files):,} files (at most {_MAX_FILES:,})")
    check_count("request_bytes", encoded_size(files), where)
    missing = [n for n in required if n not in files]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}")
    dest.mkdir(parents=False, exist_ok=False)
    for name, data in files.items():
        check_name(name, where, allowed)
        target = dest / name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(_b64(data, f"{where} {name!r}"))
    return dest
