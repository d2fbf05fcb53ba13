# SPDX-License-Identifier: GPL-3.0-or-later
"""The Gaussian-splat container shared by reconstruction, rendering, regions and export."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import numpy as np
import torch

from .errors import InputError
from .rotation import quat_from_matrix, quat_mul

__all__ = ["Splats"]


_FLOAT_FIELDS = ("means", "quats", "scales", "opacities", "colors", "confidence")


def _refuse_non_finite(sp: "Splats", n: int) -> None:
    """NaN / inf in a splat parameter is an error naming the fields and how many splats (never a black frame)."""
    if n <= 0:
        return
    bad = torch.stack([(~torch.isfinite(getattr(sp, k).reshape(n, -1))).any(1) for k in _FLOAT_FIELDS])
    per_field = bad.sum(1).tolist()
    if any(per_field):
        total = int(bad.any(0).sum())
        which = ", ".join(f"{k} ({c:,})" for k, c in zip(_FLOAT_FIELDS, per_field) if c)
        raise InputError(f"splats: {total:,} of {n:,} splats have non-finite parameters (NaN or inf) in {which}; "
                         "remove or repair them before use")


@dataclass
class Splats:
    """A set of 3D Gaussians with activated parameters.

    Construction checks shapes, dtypes and devices and refuses NaN / inf in any float field
    (an :class:`InputError` saying how many splats and which fields): a non-finite splat would
    otherwise render as a silently black or empty frame.

    Attributes:
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 unit rotations, wxyz, local → world.
        scales: [N, 3] float32 standard deviations along the local axes, metres (not log).
        opacities: [N] float32 in (0, 1) (not logit).
        colors: [N, 3] float32 linear Rec.709 RGB.
        confidence: [N] float32 in [0, 1], per-splat depth confidence (1 when unknown).
        region_ids: [N] int32 region index into ``Scene.regions`` (-1 = unassigned).
    """

    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    confidence: Optional[torch.Tensor] = None
    region_ids: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        for name in ("means", "quats", "scales", "opacities", "colors"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise InputError(f"splats: {name} must be a torch.Tensor (got {type(getattr(self, name)).__name__})")
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expect = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "colors": (n, 3)}
        if self.confidence is None:
            self.confidence = torch.ones(max(n, 0), dtype=torch.float32, device=self.means.device)
        if self.region_ids is None:
            self.region_ids = torch.full((max(n, 0),), -1, dtype=torch.int32, device=self.means.device)
        expect["confidence"] = (n,)
        expect["region_ids"] = (n,)
        for name, shape in expect.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise InputError(f"splats: {name} must be a torch.Tensor (got {type(t).__name__})")
            if tuple(t.shape) != shape:
                raise InputError(f"splats: {name} must have shape {list(shape)} (got {list(t.shape)})")
            if t.device != self.means.device:
                raise InputError(f"splats: {name} is on {t.device} but means are on {self.means.device}")
            if name == "region_ids":
                if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                    raise InputError(f"splats: region_ids must be an integer tensor (got {t.dtype})")
            elif not t.dtype.is_floating_point:
                raise InputError(f"splats: {name} must be a floating-point tensor (got {t.dtype})")
        _refuse_non_finite(self, n)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: str | torch.device) -> "Splats":
        """A copy on ``device``."""
        return Splats(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def subset(self, index: torch.Tensor) -> "Splats":
        """The splats selected by a boolean mask or an index tensor."""
        return Splats(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def transformed(self, world_from_local: np.ndarray) -> "Splats":
        """The splats moved by a rigid transform (rotation + translation, metres).

        Args:
            world_from_local: [4, 4] rigid matrix taking the splats' current frame to the new one.
        """
        m = np.array(world_from_local, dtype=np.float64)  # a writable copy (torch warns on read-only arrays)
        r = m[:3, :3] if m.shape == (4, 4) else np.zeros((3, 3))
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(r.T @ r, np.eye(3), atol=1e-5) \
                or np.linalg.det(r) < 0:
            raise InputError("splats: transform must be a finite rigid 4x4 matrix (rotation + translation)")
        rt = torch.as_tensor(r, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(m[:3, 3], dtype=torch.float32, device=self.device)
        return Splats(means=torch.addmm(t[None], self.means, rt.T), quats=quat_mul(quat_from_matrix(r), self.quats.unbind(1)),
                      scales=self.scales.clone(), opacities=self.opacities.clone(), colors=self.colors.clone(),
                      confidence=self.confidence.clone(), region_ids=self.region_ids.clone())

    @staticmethod
    def concat(parts: "list[Splats]") -> "Splats":
        """Concatenate several splat sets (same device)."""
        return Splats(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Splats)})

