# SPDX-License-Identifier: GPL-3.0-or-later
"""The image formation's constants and the compositors' sums layout, shared by every backend
(see :mod:`anchorstage.projection`).

Importing this module is cheap (no torch): the compiled CPU path reads it without loading torch.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["ALPHA_MIN", "ALPHA_MAX", "T_MIN", "EPS2D", "SPAN_MARGIN", "sums_as_images"]

#: Pairs below this alpha are skipped (gsplat's ALPHA_THRESHOLD).
ALPHA_MIN = 1.0 / 255.0
#: Per-splat alpha cap (3DGS). gsplat 1.5 caps at 0.999; the gsplat backend clamps opacity to match.
ALPHA_MAX = 0.99
#: A pixel stops before the splat that would take its transmittance to this or below.
T_MIN = 1e-4
#: Low-pass filter added to the projected 2D covariance, pixels².
EPS2D = 0.3
#: Pixels of slack on a splat's row span: spans are a superset, the exact alpha test decides.
SPAN_MARGIN = 1e-3


def sums_as_images(out: Any, cls_out: Optional[Any], F: int, width: int, height: int, with_depth: bool) -> dict[str, Any]:
    """A compositor's results from the [H * W, C] sums (F features, [depth], ..., alpha last)
    and the [H * W] dominant classes (None: no classes); views of them, tensors or numpy arrays."""
    return {
        "features": out[:, :F].reshape(height, width, F),
        "alpha": out[:, -1].reshape(height, width),
        **({"depth_sum": out[:, F].reshape(height, width)} if with_depth else {}),
        **({"class_weight_argmax": cls_out.reshape(height, width)} if cls_out is not None else {}),
    }
