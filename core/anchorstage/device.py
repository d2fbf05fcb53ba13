# SPDX-License-Identifier: GPL-3.0-or-later
"""Device selection. CUDA is probed lazily and only when asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["resolve_device", "cuda_available", "DEVICES", "BACKENDS"]

#: Where to compute (``--device``).
DEVICES = ("auto", "cpu", "cuda")
#: Render backends (``--backend``): gsplat on CUDA when installed (auto), the CPU compositors (torch).
BACKENDS = ("auto", "torch", "gsplat")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device: Union[str, "torch.device"] = "auto") -> "torch.device":
    """``"auto"`` → CUDA when available else CPU; ``"cuda"`` without a GPU is an error."""
    import torch

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
