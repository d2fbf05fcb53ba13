# SPDX-License-Identifier: GPL-3.0-or-later
"""Device selection. CUDA is probed lazily and only when asked for."""

from __future__ import annotations

import torch

from .errors import InputError

__all__ = ["resolve_device", "cuda_available"]


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    d = str(device).lower()
    if d == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if d.startswith("cuda"):
        if not cuda_available():
            raise InputError("device 'cuda' was asked for but no CUDA device is available; use --device cpu or auto")
        return torch.device(d)
    if d == "cpu":
        return torch.device("cpu")
    raise InputError(f"device must be auto, cpu or cuda (got {device!r})")
