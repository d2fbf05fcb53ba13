# SPDX-License-Identifier: GPL-3.0-or-later
"""Reusable buffers for a frame's big temporaries (a level-of-detail cut's copy of its splats, the
projection's arrays, the per-splat channels, the compositor's band records).

A frame of a multi-million-splat scene needs hundreds of MB of temporaries. Allocated afresh
every frame, that memory comes back from the allocator as new pages, which the kernel zeroes
on first touch; in a virtual machine whose host reclaims freed guest memory (free page
reporting, ballooning: the shared benchmark machines do, within about a second) every such
page also faults out to the host, at ≈ 1.5 s per GB measured there. The next frame of a
sequence, or the render engine's next re-render, reuses the same buffers instead.

A frame borrows buffers through :class:`Buffers` (a context manager) and gives them back when
it ends; a buffer borrowed by one frame is never handed to another at the same time (a second
frame running meanwhile gets fresh memory). What a frame returns to its caller must not alias
a borrowed buffer. Requests below :data:`MIN_BYTES` are ordinary allocations. :func:`release`
frees the kept buffers (the Blender add-on calls it when a file is loaded).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["Buffers", "release", "held_bytes", "MIN_BYTES"]

#: Smaller requests are ordinary allocations (the allocator keeps those warm itself).
MIN_BYTES = 32 << 20

_lock = threading.Lock()
_held: dict[str, np.ndarray] = {}


class Buffers:
    """The big temporaries of one frame, borrowed from the kept ones and given back on exit."""

    def __init__(self) -> None:
        self._taken: list[tuple[str, np.ndarray]] = []

    def empty(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous numpy array, valid until this frame ends (``torch.from_numpy``
        makes a tensor of it).

        Args:
            name: what the buffer is for (one name per use within a frame).
            shape: the array's shape.
            dtype: its numpy dtype.
        """
        dtype = np.dtype(dtype)
        count = 1
        for d in shape:
            count *= int(d)
        nbytes = count * dtype.itemsize
        if nbytes < MIN_BYTES:
            return np.empty(shape, dtype)
        with _lock:
            buf = _held.pop(name, None)
        if buf is None or buf.shape[0] < nbytes:
            buf = None  # the old one goes first: the peak holds one of them, not both
            buf = np.empty(nbytes + (nbytes >> 3), np.uint8)  # 1/8 slack: frames vary
        self._taken.append((name, buf))
        return buf[:nbytes].view(dtype).reshape(shape)

    def give_back(self, name: str) -> None:
        """Give the buffer borrowed as ``name`` back before the frame ends: the frame's next
        request of that name reuses it (a buffer per worker thread rather than per piece of work)."""
        for k, (n, buf) in enumerate(self._taken):
            if n == name:
                del self._taken[k]
                with _lock:
                    _keep(name, buf)
                return

    def close(self) -> None:
        """Give the borrowed buffers back (the larger is kept where two frames borrowed one name)."""
        with _lock:
            for name, buf in self._taken:
                _keep(name, buf)
        self._taken.clear()

    def __enter__(self) -> "Buffers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _keep(name: str, buf: np.ndarray) -> None:
    """Keep ``buf`` as ``name`` unless a larger one is kept (``_lock`` held)."""
    old = _held.get(name)
    if old is None or old.shape[0] < buf.shape[0]:
        _held[name] = buf


def release() -> None:
    """Free the kept buffers (those a running frame borrowed are kept again when it ends)."""
    with _lock:
        _held.clear()


def held_bytes() -> int:
    """Bytes the kept buffers take."""
    with _lock:
        return sum(b.nbytes for b in _held.values())
