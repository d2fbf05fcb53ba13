# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress reporting shared by the CLI (tqdm bar) and Blender (window-manager progress).

Long-running core functions take ``progress: ProgressFn | None`` and call it with a
fraction in [0, 1] and a short message. ``None`` means silent.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator, Optional

__all__ = ["ProgressFn", "report", "cli_progress", "scaled"]

ProgressFn = Callable[[float, str], None]


def report(progress: Optional[ProgressFn], fraction: float, message: str = "") -> None:
    """Call ``progress`` if given, clamping ``fraction`` to [0, 1]."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))), message)


def scaled(progress: Optional[ProgressFn], start: float, end: float) -> Optional[ProgressFn]:
    """A ProgressFn mapping [0, 1] onto [start, end] of ``progress`` (for nested stages)."""
    if progress is None:
        return None
    return lambda f, msg="": progress(start + (end - start) * min(1.0, max(0.0, f)), msg)


@contextlib.contextmanager
def cli_progress(description: str, enabled: bool = True) -> Iterator[ProgressFn]:
    """A tqdm bar on stderr (only when stderr is a terminal or ``enabled`` is forced)."""
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=description, unit="‰", file=sys.stderr,
               disable=not enabled, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def update(fraction: float, message: str = "") -> None:
        bar.n = int(round(1000 * fraction))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()
