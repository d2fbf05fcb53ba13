# SPDX-License-Identifier: GPL-3.0-or-later
"""Device selection. CUDA is probed lazily and only when asked for."""

from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import TYPE_CHECKING, Union

from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["resolve_device", "cuda_available", "cuda_possible", "DEVICES", "BACKENDS"]

#: Where to compute (``--device``).
DEVICES = ("auto", "cpu", "cuda")
#: Render backends (``--backend``): gsplat on CUDA when installed (auto), the CPU compositors (torch).
BACKENDS = ("auto", "torch", "gsplat")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def cuda_possible() -> bool:
    """Whether a CUDA device may be there, answered without importing torch where it can be: no
    when torch is absent or a CPU build (its version ends in ``+cpu``), on macOS, or on Linux
    without an NVIDIA driver loaded; otherwise torch is asked (:func:`cuda_available`)."""
    if "torch" not in sys.modules:
        try:
            version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return False
        if version.endswith("+cpu") or sys.platform == "darwin" or (
                sys.platform.startswith("linux") and not os.path.exists("/proc/driver/nvidia/version")):
            return False
    return cuda_available()


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
