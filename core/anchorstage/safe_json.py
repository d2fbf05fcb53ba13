# SPDX-License-Identifier: GPL-3.0-or-later
"""The one JSON loader for untrusted files (camera JSON, camera lists, scene.json), and typed fields.

:func:`load_json` refuses, before parsing: special files (FIFOs, devices, folders), files over the
``json_bytes`` limit, and documents nested deeper than the ``json_depth`` limit (counted with a
linear scan, so a 100,000-deep document never reaches the recursive parser). While parsing it
refuses ``NaN`` / ``Infinity`` (not JSON), numbers that overflow a double, and integers outside
the signed 64-bit range (a 5,000-digit integer is an error naming the field's file, not a crash).

The ``number`` / ``integer`` / ``string`` / ``boolean`` / ``array`` / ``mapping`` readers take one
field of a parsed object and check its JSON type exactly: booleans are not numbers, strings are
not numbers, and every message names the field (``where: field``) and what it holds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from .errors import InputError
from .input_files import open_input
from .limits import check_count, limit

__all__ = ["load_json", "parse_json", "describe", "as_number", "number", "integer", "string", "boolean", "array", "mapping",
           "INT64_RANGE"]

#: Integers in JSON inputs must fit a signed 64-bit integer.
INT64_RANGE = (-(2**63), 2**63 - 1)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_MISSING = object()


def _nesting_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text, outside strings (vectorised, no recursion)."""
    bare = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    step = np.zeros(bare.shape, dtype=np.int32)
    step[(bare == ord("[")) | (bare == ord("{"))] = 1
    step[(bare == ord("]")) | (bare == ord("}"))] = -1
    return int(np.cumsum(step).max(initial=0))


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:  # before int(): a 5,000-digit literal must not reach the converter
        raise InputError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} ({len(text.lstrip('-'))} digits) "
                         "does not fit in 64 bits")
    v = int(text)
    if not INT64_RANGE[0] <= v <= INT64_RANGE[1]:
        raise InputError(f"integer {text} does not fit in 64 bits")
    return v


def _parse_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise InputError(f"number {text[:24]}{'...' if len(text) > 24 else ''} is too large for a double")
    return v


def _parse_constant(text: str) -> Any:
    raise InputError(f"{text} is not a JSON number (JSON has no NaN or Infinity)")


def parse_json(raw: bytes | str, what: str) -> Any:
    """Parse an untrusted JSON text, refusing what the module docstring lists.

    Args:
        raw: the document (UTF-8 bytes, a UTF-8 BOM allowed, or str).
        what: how messages name the document (e.g. ``"camera file 'shot.json'"``).

    Raises:
        InputError: too large, too deep, not UTF-8, not JSON, or a number out of range.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    check_count("json_bytes", len(data), what)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    depth, cap = _nesting_depth(data), limit("json_depth")
    if depth > cap:
        check_count("json_depth", depth, what)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text (byte {e.start}: {e.reason})") from None
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except InputError as e:
        raise InputError(f"{what}: {e}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{what} cannot be read: not valid JSON: {e}") from None
    except (RecursionError, ValueError) as e:  # belt and braces: the depth scan should have caught these
        raise InputError(f"{what} cannot be parsed: {type(e).__name__}: {e}") from None


def load_json(path: Any, what: str, *, where: Optional[str] = None) -> Any:
    """Read and parse a JSON file from outside (see the module docstring).

    Args:
        path: the file (a FIFO, device or folder is refused before reading).
        what: how messages name it, e.g. ``"camera file"``; the path is added.
        where: the whole name for messages instead (e.g. ``"scene folder 'x': scene.json"``).

    Raises:
        InputError: unreadable, not a regular file, over a limit, or not valid JSON.
    """
    f, size = open_input(path, what)
    where = where or f"{what} {str(path)!r}"
    with f:
        check_count("json_bytes", size, where)
        try:
            raw = f.read(limit("json_bytes") + 1)  # the file may have grown since fstat
        except OSError as e:
            raise InputError(f"{where} cannot be read: {e.strerror or e}") from None
    return parse_json(raw, where)


def describe(value: Any) -> str:
    """A short description of a JSON value for messages: ``true (a boolean)``, ``'50' (a string)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'} (a boolean)"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"{shown!r} (a string)"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return type(value).__name__


def _field(obj: Mapping[str, Any], key: str, where: str, default: Any) -> tuple[bool, Any]:
    """(present, value); a missing field without a default is an error."""
    if key in obj:
        return True, obj[key]
    if default is _MISSING:
        raise InputError(f"{where}: missing field {key!r}")
    return False, default


def as_number(value: Any, name: str, where: str, *, minimum: Optional[float] = None,
              maximum: Optional[float] = None, exclusive_minimum: bool = False) -> float:
    """``value`` (named ``name`` in messages) as a finite float; a JSON boolean or string is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: {name} must be a number (got {describe(value)})")
    f = float(value)
    if not math.isfinite(f):
        raise InputError(f"{where}: {name} must be finite (got {value!r})")
    if minimum is not None and (f <= minimum if exclusive_minimum else f < minimum):
        raise InputError(f"{where}: {name} must be {'>' if exclusive_minimum else '≥'} {minimum:g} (got {value!r})")
    if maximum is not None and f > maximum:
        raise InputError(f"{where}: {name} must be ≤ {maximum:g} (got {value!r})")
    return f


def number(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING,
           minimum: Optional[float] = None, maximum: Optional[float] = None, exclusive_minimum: bool = False) -> Any:
    """Field ``key`` as a finite float (see :func:`as_number`).

    ``default`` (when the field is absent) is returned as given, so ``None`` can mean "unset".
    """
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    return as_number(v, key, where, minimum=minimum, maximum=maximum, exclusive_minimum=exclusive_minimum)


def integer(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING,
            minimum: int = INT64_RANGE[0], maximum: int = INT64_RANGE[1]) -> Any:
    """A JSON integer (not a boolean, not a float such as 2.0) within [minimum, maximum]."""
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{where}: {key} must be an integer (got {describe(v)})")
    if not minimum <= v <= maximum:
        raise InputError(f"{where}: {key} must be in [{minimum}, {maximum}] (got {v})")
    return v


def string(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING,
           choices: Optional[Iterable[str]] = None, pattern: Optional[re.Pattern[str]] = None,
           max_length: int = 4096) -> Any:
    """A JSON string, optionally one of ``choices`` or matching ``pattern``."""
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    if not isinstance(v, str):
        raise InputError(f"{where}: {key} must be a string (got {describe(v)})")
    if len(v) > max_length:
        raise InputError(f"{where}: {key} is {len(v)} characters long (at most {max_length})")
    if choices is not None:
        options = tuple(choices)
        if v not in options:
            raise InputError(f"{where}: {key} must be one of {', '.join(options)} (got {describe(v)})")
    if pattern is not None and not pattern.fullmatch(v):
        raise InputError(f"{where}: {key} {v!r} has characters that are not allowed")
    return v


def boolean(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> Any:
    """A JSON ``true`` / ``false`` (never 0/1 or a string)."""
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    if not isinstance(v, bool):
        raise InputError(f"{where}: {key} must be true or false (got {describe(v)})")
    return v


def array(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING,
          length: Optional[int] = None, max_length: Optional[int] = None) -> Any:
    """A JSON list, optionally of an exact ``length`` or at most ``max_length`` items."""
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    if not isinstance(v, list):
        raise InputError(f"{where}: {key} must be a list (got {describe(v)})")
    if length is not None and len(v) != length:
        raise InputError(f"{where}: {key} must have {length} items (got {len(v)})")
    if max_length is not None and len(v) > max_length:
        raise InputError(f"{where}: {key} has {len(v)} items (at most {max_length})")
    return v


def mapping(obj: Mapping[str, Any], key: str, where: str, *, default: Any = _MISSING) -> Any:
    """A JSON object."""
    present, v = _field(obj, key, where, default)
    if not present:
        return v
    if not isinstance(v, dict):
        raise InputError(f"{where}: {key} must be an object (got {describe(v)})")
    return v
