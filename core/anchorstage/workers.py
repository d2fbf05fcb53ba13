# SPDX-License-Identifier: GPL-3.0-or-later
"""CPU worker threads for independent pieces of work (splat chunks, row bands)."""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Workers", "cpu_workers", "cpu_threads"]


class Workers:
    """CPU threads for independent pieces of work (splat chunks, row bands), each running torch
    with one intra-op thread: single-threaded steps (radix sorts, scans) then run in parallel too,
    and a busy machine does not stall every op at OpenMP barriers."""

    def __init__(self, pool: Optional[ThreadPoolExecutor], n: int) -> None:
        self.pool, self.n = pool, n

    def map(self, fn: Callable, items: list) -> list:
        """``[fn(x) for x in items]``, on the threads when there are several."""
        return list(self.pool.map(fn, items)) if self.pool is not None and len(items) > 1 else [fn(x) for x in items]

    @staticmethod
    def chunks(n: int, size: int) -> list[tuple[int, int]]:
        """Split ``range(n)`` into contiguous ``(start, stop)`` pieces of ``size`` (the last one
        shorter). Many cache-sized pieces rather than one per thread: torch's elementwise
        temporaries stay small and hot, and the threads even out."""
        return [(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def cpu_threads() -> int:
    """How many CPU threads a frame uses: torch's thread count once torch is loaded; before (a frame
    on numpy alone) the same default without importing it: ``OMP_NUM_THREADS``, else the CPUs this
    process may run on."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        n = 0
    if n > 0:
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def cpu_workers(device: Union["torch.device", str], workers: Optional[Workers] = None) -> Iterator[Workers]:
    """:class:`Workers` for ``device`` (a ``torch.device`` or ``"cpu"``; none off the CPU); torch's
    thread count, where torch is loaded, is restored after.

    ``workers``, when given, are a caller's pool already set up: they are used as they are.
    """
    if workers is not None:
        yield workers
        return
    n = cpu_threads() if getattr(device, "type", device) == "cpu" else 1
    if n <= 1:
        yield Workers(None, 1)
        return
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n) as pool:
            yield Workers(pool, n)
    finally:
        if torch is not None:
            torch.set_num_threads(n)
