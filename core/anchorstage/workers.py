# SPDX-License-Identifier: GPL-3.0-or-later
"""CPU worker threads for independent pieces of work (splat chunks, row bands)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional

import torch

__all__ = ["Workers", "cpu_workers"]


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


@contextlib.contextmanager
def cpu_workers(device: torch.device, workers: Optional[Workers] = None) -> Iterator[Workers]:
    """:class:`Workers` for ``device`` (none off the CPU); torch's thread count is restored after.

    ``workers``, when given, are a caller's pool already set up: they are used as they are.
    """
    if workers is not None:
        yield workers
        return
    n = torch.get_num_threads() if device.type == "cpu" else 1
    if n <= 1:
        yield Workers(None, 1)
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n) as pool:
            yield Workers(pool, n)
    finally:
        torch.set_num_threads(n)
