# SPDX-License-Identifier: GPL-3.0-or-later
"""The Gaussian-splat container shared by reconstruction, rendering, regions and export."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

import numpy as np
import torch

from .errors import InputError

__all__ = ["Splats"]


@dataclass
class Splats:
    """A set of 3D Gaussians with activated parameters.

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
        m = np.asarray(world_from_local, dtype=np.float64)
        r = m[:3, :3]
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(r.T @ r, np.eye(3), atol=1e-5) \
                or np.linalg.det(r) < 0:
            raise InputError("splats: transform must be a finite rigid 4x4 matrix (rotation + translation)")
        rt = torch.as_tensor(r, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(m[:3, 3], dtype=torch.float32, device=self.device)
        axes = [tuple(torch.tensor([v], dtype=torch.float64) for v in r[:, k]) for k in range(3)]
        q = tuple(float(c) for c in quat_from_axes(*axes))
        return Splats(means=self.means @ rt.T + t, quats=quat_mul(q, self.quats.unbind(1)),
                      scales=self.scales.clone(), opacities=self.opacities.clone(), colors=self.colors.clone(),
                      confidence=self.confidence.clone(), region_ids=self.region_ids.clone())

    @staticmethod
    def concat(parts: "list[Splats]") -> "Splats":
        """Concatenate several splat sets (same device)."""
        return Splats(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Splats)})


def quat_from_axes(a1: tuple[torch.Tensor, ...], a2: tuple[torch.Tensor, ...], a3: tuple[torch.Tensor, ...]
                    ) -> tuple[torch.Tensor, ...]:
    """Unit wxyz quaternions of the rotations whose columns are ``a1, a2, a3`` (each 3 [M] tensors)."""
    m00, m10, m20 = a1
    m01, m11, m21 = a2
    m02, m12, m22 = a3
    # Four proportional closed forms; use the one built on the largest diagonal term (well conditioned).
    t0, t1 = m00 + m11 + m22, m00 - m11 - m22
    t2, t3 = m11 - m00 - m22, m22 - m00 - m11
    c0 = (t0 >= t1) & (t0 >= t2) & (t0 >= t3)
    c1 = ~c0 & (t1 >= t2) & (t1 >= t3)
    c2 = ~c0 & ~c1 & (t2 >= t3)

    def pick(v0: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor, v3: torch.Tensor) -> torch.Tensor:
        return torch.where(c0, v0, torch.where(c1, v1, torch.where(c2, v2, v3)))

    w = pick(1 + t0, m21 - m12, m02 - m20, m10 - m01)
    x = pick(m21 - m12, 1 + t1, m01 + m10, m02 + m20)
    y = pick(m02 - m20, m01 + m10, 1 + t2, m12 + m21)
    z = pick(m10 - m01, m02 + m20, m12 + m21, 1 + t3)
    inv = torch.rsqrt(w * w + x * x + y * y + z * z) * torch.where(w < 0, -1.0, 1.0)  # canonical sign: w ≥ 0
    return w * inv, x * inv, y * inv, z * inv


def quat_mul(a: tuple[float, ...], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """[M, 4] Hamilton product a ⊗ b of one constant wxyz quaternion ``a`` and [M] components ``b``, w ≥ 0."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    w = aw * bw - ax * bx - ay * by - az * bz
    sign = torch.where(w < 0, -1.0, 1.0)
    return torch.stack([w * sign, (aw * bx + ax * bw + ay * bz - az * by) * sign,
                        (aw * by - ax * bz + ay * bw + az * bx) * sign, (aw * bz + ax * by - ay * bx + az * bw) * sign], -1)
