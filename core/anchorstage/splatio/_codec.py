# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers every format shares: value encodings and the stored-value rule that makes round trips exact.

The rule (see :class:`anchorstage.StoredSplats`): a reader keeps a raw stored column only
where encoding the decoded working value would not give it back; a writer uses a stored raw
value for a splat only where decoding it still gives that splat's working value (compared bit
for bit), and encodes afresh everywhere else. All decoding here is deterministic numpy in
float64 rounded once to float32, so a decode at write time repeats the reader's exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..errors import InputError
from ..sh import SH_C0
from ..splats import Splats

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["decode_dc", "encode_dc", "srgb_bytes", "linear_from_srgb", "decode_opacity_logit", "encode_opacity_logit",
           "rows_equal", "keep_raw", "use_raw", "working", "f32", "floats", "tensor", "sh_rest_of", "quats_checked"]


def f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055)


def decode_dc(f_dc: np.ndarray, encoding: str) -> np.ndarray:
    """SH DC coefficients [N, 3] → float32 linear colours (unclipped: negative DC values stay negative)."""
    c = 0.5 + SH_C0 * np.asarray(f_dc, dtype=np.float64)
    return f32(_srgb_to_linear(c) if encoding == "sRGB" else c)


def encode_dc(colors: np.ndarray, encoding: str) -> np.ndarray:
    """Linear colours [N, 3] → float64 SH DC coefficients in ``encoding``."""
    c = np.asarray(colors, dtype=np.float64)
    return ((_linear_to_srgb(c) if encoding == "sRGB" else c) - 0.5) / SH_C0


def srgb_bytes(colors: np.ndarray) -> np.ndarray:
    """Linear colours → float64 sRGB-encoded values (unclipped)."""
    return _linear_to_srgb(np.asarray(colors, dtype=np.float64))


def linear_from_srgb(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded values → float32 linear."""
    return f32(_srgb_to_linear(np.asarray(values, dtype=np.float64)))


def decode_opacity_logit(logit: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # extreme logits saturate to 0 or 1
        return f32(1.0 / (1.0 + np.exp(-np.asarray(logit, dtype=np.float64))))


def encode_opacity_logit(opacity: np.ndarray) -> np.ndarray:
    # Clamped so the logit stays finite for (numerically) 0 or 1 opacities.
    op = np.clip(np.asarray(opacity, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(op / (1 - op))


def rows_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N] bool: rows of two same-dtype arrays ([N] or [N, k]) equal bit for bit."""
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b, dtype=a.dtype)
    n = a.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    # Compare bit patterns as unsigned integers of the item's width (NaN payloads, -0.0 count).
    word = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(a.dtype.itemsize, np.uint8)
    ua = a.reshape(n, -1).view(word)
    ub = b.reshape(n, -1).view(word)
    eq = ua == ub
    return eq[:, 0] if eq.shape[1] == 1 else eq.all(axis=1)


def _words(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(a.dtype.itemsize, np.uint8))


def keep_raw(columns: dict[str, np.ndarray], raw: dict[str, np.ndarray], reencoded: dict[str, np.ndarray]) -> None:
    """Add the ``raw`` columns of a group to ``columns`` unless ``reencoded`` (cast to the raw
    dtypes) reproduces every one of them bit for bit."""
    if all(np.array_equal(_words(raw[k]), _words(np.asarray(reencoded[k]).astype(raw[k].dtype))) for k in raw):
        return
    columns.update(raw)


def use_raw(encoded: dict[str, np.ndarray], stored: Optional[dict[str, np.ndarray]], names: list[str],
            decode: Callable[[dict[str, np.ndarray]], np.ndarray], current: np.ndarray) -> dict[str, np.ndarray]:
    """``encoded`` with the stored raw values put back for the splats whose raw values still decode
    to ``current`` (their working value), bit for bit.

    Args:
        encoded: name → freshly encoded column.
        stored: the stored columns (or None).
        names: the group's column names.
        decode: raw columns → working values, exactly as the reader decodes them.
        current: the working values [N, ...] the splats hold now.
    """
    if stored is None or not all(k in stored for k in names):
        return encoded
    raw = {k: stored[k] for k in names}
    same = rows_equal(f32(current), decode(raw))
    out = dict(encoded)
    for k in names:
        col = np.asarray(encoded[k]).astype(raw[k].dtype)
        col[same] = raw[k][same]
        out[k] = col
    return out


def working(splats: Splats) -> dict[str, np.ndarray]:
    """The splats' working values as float32 numpy arrays (CPU)."""
    return {k: f32(getattr(splats, k).detach().cpu().numpy()) for k in ("means", "quats", "scales", "opacities", "colors")}


def sh_rest_of(splats: Splats, k: int) -> np.ndarray:
    """[N, k, 3] float32 SH coefficients, zero-padded (or cut) to ``k`` per channel."""
    out = np.zeros((len(splats), k, 3), np.float32)
    if splats.sh_rest is not None and k:
        m = min(k, splats.sh_rest.shape[1])
        out[:, :m] = splats.sh_rest[:, :m].detach().cpu().numpy()
    return out


def quats_checked(quats: np.ndarray, where: str) -> np.ndarray:
    """Refuse zero or non-finite rotations (no rotation can be made of them)."""
    norm = np.linalg.norm(np.asarray(quats, dtype=np.float64), axis=1)
    bad = ~np.isfinite(norm) | (norm < 1e-12)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum()):,} splat(s) have a zero or non-finite rotation quaternion")
    return quats


def floats(a: np.ndarray) -> np.ndarray:
    """A float32 copy of a decoded array, owned by the splats made of it."""
    return np.array(a, dtype=np.float32)


def tensor(a: np.ndarray) -> "torch.Tensor":
    import torch

    return torch.from_numpy(floats(a))
