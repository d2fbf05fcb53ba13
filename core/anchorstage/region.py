# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene regions an artist can lock or replace (sky, ground, facades, objects).

The on-disk format is documented in docs/region_data_format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from .errors import InputError

__all__ = ["Region", "REGION_LABELS", "label_map"]

REGION_LABELS = ("sky", "ground", "facade", "object")


@dataclass
class Region:
    """One region of a scene.

    Attributes:
        index: integer id used in the render ``region`` pass and ``Splats.region_ids``.
        id: stable name, e.g. ``"facade_001"``, ``"ground_001"``, ``"sky"``, ``"object_003"``.
        label: one of ``REGION_LABELS``.
        mask: [H, W] bool in the reference image (not serialised into JSON; stored as PNG).
        plane: (a, b, c, d) with a·x + b·y + c·z + d = 0 in world metres, (a, b, c) unit;
            None for non-planar regions.
        splat_indices: [M] int64 indices into the scene's splats (None when not computed).
        locked: whether refresh/generation must keep this region's pixels unchanged.
    """

    index: int
    id: str
    label: str
    mask: Optional[np.ndarray] = None
    plane: Optional[tuple[float, float, float, float]] = None
    splat_indices: Optional[np.ndarray] = None
    locked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label not in REGION_LABELS:
            raise InputError(f"region {self.id!r}: label must be one of {', '.join(REGION_LABELS)} (got {self.label!r})")
        if self.plane is not None:
            p = np.asarray(self.plane, dtype=np.float64).reshape(-1)
            if p.shape != (4,) or not np.all(np.isfinite(p)):
                raise InputError(f"region {self.id!r}: plane must be 4 finite numbers (a, b, c, d)")
            n = np.linalg.norm(p[:3])
            if n < 1e-12:
                raise InputError(f"region {self.id!r}: plane normal (a, b, c) must be non-zero")
            self.plane = tuple(float(v) for v in p / n)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready metadata (the mask and splat indices are stored beside it)."""
        d: dict[str, Any] = {"index": int(self.index), "id": self.id, "label": self.label,
                             "plane": list(self.plane) if self.plane is not None else None,
                             "locked": bool(self.locked)}
        if self.mask is not None:
            d["pixel_count"] = int(np.count_nonzero(self.mask))
        if self.splat_indices is not None:
            d["splat_count"] = int(len(self.splat_indices))
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_json_dict(cls, d: Mapping[str, Any]) -> "Region":
        try:
            return cls(index=int(d["index"]), id=str(d["id"]), label=str(d["label"]),
                       plane=tuple(d["plane"]) if d.get("plane") is not None else None,
                       locked=bool(d.get("locked", False)), extra=dict(d.get("extra", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"region entry {dict(d)!r} is malformed: {e}") from None


def label_map(regions: list[Region], shape: tuple[int, int]) -> np.ndarray:
    """[H, W] int32 map of ``Region.index`` (-1 where no region) from the regions' masks."""
    out = np.full(shape, -1, dtype=np.int32)
    for r in regions:
        if r.mask is not None:
            if r.mask.shape != tuple(shape):
                raise InputError(f"region {r.id!r}: mask shape {list(r.mask.shape)} does not match {list(shape)}")
            out[r.mask] = r.index
    return out
