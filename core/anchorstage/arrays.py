# SPDX-License-Identifier: GPL-3.0-or-later
"""numpy or torch: which module an array belongs to, asked without loading torch.

The compiled CPU path runs on numpy alone, so a frame rendered there never imports torch (about
1.5 s of a command's start-up); code shared with the torch path asks here which module to call.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["is_tensor", "array_module"]


def is_tensor(a: Any) -> bool:
    """Whether ``a`` is a torch tensor (none can exist before torch is loaded, so this never loads it)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor)


def array_module(a: Any) -> ModuleType:
    """``numpy`` for a numpy array (or anything not a tensor), ``torch`` for a tensor."""
    return sys.modules["torch"] if is_tensor(a) else np
