# SPDX-License-Identifier: GPL-3.0-or-later
"""Documented size limits: readers check what a file declares against these before allocating.

Each limit has a default and an environment variable that raises (or lowers) it; a refusal
names the limit and the variable. See docs/limits.md.

=====================  ==================================  =====================================
limit                  default                             environment variable
=====================  ==================================  =====================================
``image_pixels``       100,000,000 (e.g. 12000 x 8333)     ``ANCHORSTAGE_MAX_IMAGE_PIXELS``
``render_pixels``      67,108,864 (8192 x 8192)            ``ANCHORSTAGE_MAX_RENDER_PIXELS``
``splats``             50,000,000                          ``ANCHORSTAGE_MAX_SPLATS``
``json_bytes``         67,108,864 (64 MiB)                 ``ANCHORSTAGE_MAX_JSON_BYTES``
``json_depth``         64 levels of nesting                ``ANCHORSTAGE_MAX_JSON_DEPTH``
``exr_samples``        1,073,741,824 (all channels, parts) ``ANCHORSTAGE_MAX_EXR_SAMPLES``
``request_bytes``      134,217,728 (128 MiB)               ``ANCHORSTAGE_MAX_REQUEST_BYTES``
=====================  ==================================  =====================================
"""

from __future__ import annotations

import os

from .errors import InputError

__all__ = ["LIMITS", "limit", "check_count"]

#: name -> (default, environment variable, what is counted)
LIMITS: dict[str, tuple[int, str, str]] = {
    "image_pixels": (100_000_000, "ANCHORSTAGE_MAX_IMAGE_PIXELS", "pixels in a photo or map"),
    "render_pixels": (8192 * 8192, "ANCHORSTAGE_MAX_RENDER_PIXELS", "pixels in a rendered frame"),
    "splats": (50_000_000, "ANCHORSTAGE_MAX_SPLATS", "splats in a file or scene"),
    "json_bytes": (64 << 20, "ANCHORSTAGE_MAX_JSON_BYTES", "bytes in a JSON file"),
    "json_depth": (64, "ANCHORSTAGE_MAX_JSON_DEPTH", "levels of nesting in a JSON document"),
    "exr_samples": (1 << 30, "ANCHORSTAGE_MAX_EXR_SAMPLES", "channel samples in an EXR file"),
    "request_bytes": (128 << 20, "ANCHORSTAGE_MAX_REQUEST_BYTES", "bytes in a remote worker request"),
}


def limit(name: str) -> int:
    """The current value of a limit (its environment variable wins over the default).

    Raises:
        InputError: the environment variable is set but is not a positive integer.
    """
    default, env, _ = LIMITS[name]
    raw = os.environ.get(env, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise InputError(f"{env}={raw!r} must be a positive integer")
    return value


def check_count(name: str, count: int, what: str) -> None:
    """Refuse ``count`` above limit ``name``, naming ``what``, the limit and how to raise it.

    Raises:
        InputError: the count exceeds the limit.
    """
    cap = limit(name)
    if count > cap:
        _, env, unit = LIMITS[name]
        raise InputError(f"{what}: {count:,} {unit.split(' in ')[0]} exceeds the limit of {cap:,} "
                         f"(set {env} to raise it)")
