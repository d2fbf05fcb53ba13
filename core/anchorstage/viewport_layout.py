# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-splat arrays laid out for a GPU viewer: what the Blender add-on's drawer uploads as textures.

A GPU drawer reads splat ``i`` from texel ``(i % TEXTURE_WIDTH, i // TEXTURE_WIDTH)`` of a few RGBA
float textures, so every array here is [rows · TEXTURE_WIDTH, 4] float32, zero-padded past the
last splat. The splats stay in their own ("object") frame; the drawer applies the object's matrix.

* ``center_opacity``: centre x, y, z (object frame) and opacity.
* ``cov_a`` / ``cov_b``: the 3D covariance Σ = R S² Rᵀ (object frame, units²): ``cov_a`` holds
  xx, xy, xz, yy and ``cov_b`` yz, zz (then zeros). The drawer projects it exactly as
  :func:`anchorstage.projection.project` does (EWA, Jacobian clamped to 1.3× the field of view,
  0.3 px² low-pass).
* :func:`pass_channels`: the per-splat values a viewport pass composites, from the pass
  registry's ``splat_channels`` where a row has them.

Which passes a viewport offers and how it shows each one follow the registry too
(:data:`VIEWPORT_PASSES`, :func:`display_kind`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError
from .passes import COMBINED, REGISTRY, spec

if TYPE_CHECKING:  # pragma: no cover
    from .splats import Splats

__all__ = ["TEXTURE_WIDTH", "VIEWPORT_PASSES", "texture_shape", "padded", "splat_arrays", "pass_channels",
           "display_kind"]

#: Texels per texture row (well under every GPU's 16384 limit; 4M splats take 1024 rows).
TEXTURE_WIDTH = 4096

#: Passes a viewport can show: the registry's rows less alpha, which Blender shows inside Combined.
VIEWPORT_PASSES: tuple[str, ...] = tuple(p.name for p in REGISTRY if p.name != COMBINED[1])


def texture_shape(n: int, width: int = TEXTURE_WIDTH) -> tuple[int, int]:
    """(width, height) of a texture holding ``n`` texels row by row (at least 1×1)."""
    w = max(1, min(int(width), int(n)))
    return w, max(1, -(-int(n) // w))


def padded(values: np.ndarray, width: int = TEXTURE_WIDTH) -> np.ndarray:
    """[N, C ≤ 4] values as a contiguous [H · W, 4] float32 array for :func:`texture_shape` (zeros after)."""
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 1:
        v = v[:, None]
    w, h = texture_shape(v.shape[0], width)
    out = np.zeros((w * h, 4), np.float32)
    out[: v.shape[0], : v.shape[1]] = v
    return out


def splat_arrays(splats: "Splats", width: int = TEXTURE_WIDTH) -> dict[str, np.ndarray]:
    """The geometry textures of a splat set (see the module docstring).

    Args:
        splats: the Gaussians in their object frame.
        width: texels per texture row.

    Returns:
        ``center_opacity``, ``cov_a``, ``cov_b`` ([H · W, 4] float32) and ``means`` ([N, 3]
        float32, unpadded, for sorting).
    """
    import torch

    from .rotation import rotmat_entries

    with torch.no_grad():
        # Σ = M Mᵀ with M = R S, in float32 like the projection (one [N] tensor per entry).
        r = rotmat_entries(splats.quats.detach().cpu().float())
        sc = splats.scales.detach().cpu().float().unbind(1)
        m = [r[3 * i + k] * sc[k] for i in range(3) for k in range(3)]

        def cov(i: int, j: int) -> torch.Tensor:
            return m[3 * i] * m[3 * j] + m[3 * i + 1] * m[3 * j + 1] + m[3 * i + 2] * m[3 * j + 2]

        cov_a = torch.stack([cov(0, 0), cov(0, 1), cov(0, 2), cov(1, 1)], 1).numpy()
        cov_b = torch.stack([cov(1, 2), cov(2, 2)], 1).numpy()
        means = np.ascontiguousarray(splats.means.detach().cpu().float().numpy())
        op = splats.opacities.detach().cpu().float().numpy()
    return {
        "center_opacity": padded(np.concatenate([means, op[:, None]], 1), width),
        "cov_a": padded(cov_a, width),
        "cov_b": padded(cov_b, width),
        "means": means,
    }


def display_kind(name: str) -> str:
    """How a viewport shows a pass: ``"void"`` for the void mask (a pass made from alpha), else the
    registry row's ``preview`` (``"srgb"``, ``"depth"``, ``"normal"``, ``"unit"``, ``"ids"``).

    Raises:
        InputError: not a viewport pass.
    """
    if name not in VIEWPORT_PASSES:
        raise InputError(f"viewport: unknown pass {name!r}; valid passes: {', '.join(VIEWPORT_PASSES)}")
    row = spec(name)
    if row.needs == "alpha":  # the void mask: painted over the colour view
        return "void"
    if row.preview is not None:
        return row.preview
    raise InputError(f"viewport: pass {name!r} has no way to be shown")  # pragma: no cover - registry guard


def pass_channels(splats: "Splats", name: str, camera_position, width: int = TEXTURE_WIDTH) -> np.ndarray:
    """Per-splat values a viewport composites for a pass, padded for upload ([H · W, 4] float32).

    * a row with ``splat_channels`` (colour, normal, confidence) gives those, for
      ``camera_position`` (normals face that point; the drawer flips them again for its view);
    * ``region``: each splat's region colour (the contact sheet's palette, sRGB; -1 black), so the
      viewport composites the region colours;
    * ``void``: the colour channels (the void view is the colour view with void painted over);
    * ``depth``: nothing (zeros): depth and alpha come from the drawer's own accumulation.

    Args:
        splats: the Gaussians (object frame).
        name: a pass of :data:`VIEWPORT_PASSES`.
        camera_position: [3] a camera position in the splats' frame.
        width: texels per texture row.
    """
    import torch

    kind = display_kind(name)
    row = spec(name)
    n = len(splats)
    if row.splat_channels is not None:
        cam = torch.as_tensor(np.asarray(camera_position, dtype=np.float32).reshape(3))
        with torch.no_grad():
            values = row.splat_channels(splats.to("cpu"), cam).float().numpy()
    elif kind == "ids":
        from .preview import region_colors

        values = region_colors(splats.region_ids.detach().cpu().numpy()).astype(np.float32)
    elif kind == "void":
        return pass_channels(splats, COMBINED[0], camera_position, width)
    else:
        values = np.zeros((n, 1), np.float32)
    return padded(values.reshape(n, -1), width)
