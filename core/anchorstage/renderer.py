# SPDX-License-Identifier: GPL-3.0-or-later
"""Render a splat scene from a metric camera into compositing passes.

Passes (all [H, W] or [H, W, C] tensors on the rendering device):

=============  =========================================================================
``color``      [H, W, 3] float32 linear Rec.709: sum of w·colour + (1 - alpha)·background
               (with the default black background this is premultiplied, as Blender's
               Combined pass with a transparent film).
``alpha``      [H, W] float32 accumulated opacity, 1 - final transmittance.
``depth``      [H, W] float32 metres, z along the view axis (Blender's Depth pass): the
               alpha-normalised expected depth sum(w·z) / alpha, hole-free inside the
               splats; ``BACKGROUND_DEPTH`` (1e10, as Blender writes) where nothing is hit.
``normal``     [H, W, 3] float32 unit world-space normal: each splat's thinnest axis turned
               towards the camera, composited and renormalised; 0 on the background.
``confidence`` [H, W] float32 per-splat confidence composited like colour (sum of w·c),
               so it fades to 0 in voids.
``region``     [H, W] int32 region id, never blended: the region whose splats carry the
               largest share of the pixel's composited weight, the background counting
               for -1 with weight 1 - alpha. -1 is background or unassigned splats.
``void``       [H, W] float32, 1 where alpha < ``void_threshold`` (disocclusion), else 0.
=============  =========================================================================

Here w = alpha_i · T_i is splat i's blending weight (see :mod:`anchorstage.projection`
for the exact image formation, identical on every backend).

The region rule picks the dominant region rather than the single heaviest splat because a
blended renderer (gsplat) can only deliver per-region sums (one-hot channels); both backends
compute exactly the same rule.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import Iterable, Optional, Sequence

import torch

from .camera import Camera
from .device import resolve_device
from .errors import InputError, MissingDependencyError
from .limits import check_count
from .rotation import thin_axis
from .splats import Splats
from .workers import Workers, cpu_workers

__all__ = ["render", "check_passes", "PASSES", "BACKENDS", "BACKGROUND_DEPTH", "DEFAULT_VOID_THRESHOLD", "splat_normals"]

PASSES = ("color", "alpha", "depth", "normal", "confidence", "region", "void")
BACKENDS = ("auto", "torch", "gsplat")
#: What Blender writes into the Depth pass where no surface is hit.
BACKGROUND_DEPTH = 1e10
DEFAULT_VOID_THRESHOLD = 0.5
#: Below this alpha nothing contributed: a single splat always brings at least 1/255.
_EMPTY_ALPHA = 0.5 / 255.0
_NORMALS_CHUNK = 1 << 16  # splats per parallel piece of the feature channels (normals), at least


def check_passes(passes: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(passes, str):
        passes = [p.strip() for p in passes.split(",") if p.strip()]
    if not isinstance(passes, (list, tuple)) or not all(isinstance(p, str) for p in passes):
        raise InputError(f"render: passes must be a list of pass names or a comma-separated string (got {passes!r})")
    out = tuple(dict.fromkeys(passes))
    bad = [p for p in out if p not in PASSES]
    if bad:
        raise InputError(f"render: unknown pass(es) {', '.join(map(repr, bad))}; valid passes: {', '.join(PASSES)}")
    if not out:
        raise InputError(f"render: no passes asked for; valid passes: {', '.join(PASSES)}")
    return out


def splat_normals(splats: Splats, camera_position: torch.Tensor) -> torch.Tensor:
    """World-space unit normals: each splat's thinnest axis, flipped to face the camera.

    Args:
        splats: the splats.
        camera_position: [3] camera centre, metres, world frame.

    Returns:
        [N, 3] float32 unit normals, world frame.
    """
    n = thin_axis(splats.quats, splats.scales)
    m, c = splats.means.unbind(1), camera_position.tolist()
    facing = (c[0] - m[0]) * n[0] + (c[1] - m[1]) * n[1] + (c[2] - m[2]) * n[2] < 0
    sign = torch.where(facing, -1.0, 1.0)
    return torch.stack([n[0] * sign, n[1] * sign, n[2] * sign], dim=1)


def _choose_backend(backend: str, device: torch.device) -> str:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"render: backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    if backend == "torch":
        return "torch"
    from . import raster_gsplat

    if backend == "gsplat":
        if device.type != "cuda":
            raise InputError("render: backend 'gsplat' needs a CUDA device; use backend 'torch' or 'auto'")
        if not raster_gsplat.available():
            raise MissingDependencyError("render: backend 'gsplat' needs the gsplat package (pip install 'anchorstage[cuda]')")
        return "gsplat"
    return "gsplat" if device.type == "cuda" and raster_gsplat.available() else "torch"


def render(
    splats: Splats,
    camera: Camera,
    passes: Sequence[str] | str = PASSES,
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    background: Optional[Sequence[float]] = None,
    void_threshold: float = DEFAULT_VOID_THRESHOLD,
) -> dict[str, torch.Tensor]:
    """Render splats into compositing passes.

    Args:
        splats: the Gaussians (world frame, metres); moved to ``device`` if needed.
        camera: the metric camera (OpenCV frame, pixel centres at +0.5); its
            ``clip_start`` / ``clip_end`` cull splats by view depth.
        passes: pass names (or a comma-separated string) from ``PASSES``.
        backend: ``"auto"`` (gsplat on CUDA when installed, else torch), ``"torch"`` or ``"gsplat"``.
            On the CPU, ``"torch"`` composites with the compiled kernel of :mod:`anchorstage.raster_cpu`
            when numba is installed (``ANCHORSTAGE_NUMBA=0`` turns it off), else with pure torch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        background: linear RGB behind the splats in ``color`` (default black: premultiplied).
        void_threshold: alpha below which a pixel counts as void.

    Returns:
        pass name → tensor on the rendering device, shapes as in the module docstring.

    Raises:
        InputError: unknown pass, bad backend/device/background/threshold.
        MissingDependencyError: backend ``"gsplat"`` without gsplat installed.
    """
    wanted = check_passes(passes)
    if not isinstance(splats, Splats):
        raise InputError(f"render: splats must be a Splats (got {type(splats).__name__})")
    if not isinstance(camera, Camera):
        raise InputError(f"render: camera must be a Camera (got {type(camera).__name__})")
    check_count("render_pixels", camera.width * camera.height, f"render: camera resolution {camera.width}x{camera.height}")
    if isinstance(void_threshold, bool) or not isinstance(void_threshold, numbers.Real):
        raise InputError(f"render: void_threshold must be a number (got {void_threshold!r})")
    void_threshold = float(void_threshold)
    if not 0.0 <= void_threshold <= 1.0:
        raise InputError(f"render: void_threshold must be in [0, 1] (got {void_threshold:g})")
    dev = resolve_device(device)
    which = _choose_backend(backend, dev)
    try:
        bg = torch.zeros(3) if background is None else torch.as_tensor(background, dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        bg = torch.zeros(0)
    if bg.shape != (3,) or not torch.isfinite(bg).all():
        raise InputError(f"render: background must be 3 finite linear RGB values (got {background!r})")

    sp = splats if splats.device == dev else splats.to(dev)
    with cpu_workers(dev) if which == "torch" else contextlib.nullcontext(Workers(None, 1)) as workers:
        return _render(sp, camera, wanted, which, dev, bg, void_threshold, workers)


def _render(sp: Splats, camera: Camera, wanted: tuple[str, ...], which: str, dev: torch.device, bg: torch.Tensor,
            void_threshold: float, workers: Workers) -> dict[str, torch.Tensor]:
    """The body of :func:`render` once inputs are checked (``workers``: CPU threads, torch backend)."""
    cam_pos = torch.as_tensor(camera.position, dtype=torch.float32, device=dev)

    # Channels composited per splat: only what the passes need, written piecewise on the workers.
    slots: dict[str, slice] = {}
    nf = 0
    for name, n in (("color", 3), ("normal", 3), ("confidence", 1)):
        if name in wanted:
            slots[name], nf = slice(nf, nf + n), nf + n
    features = torch.empty(len(sp), nf, dtype=torch.float32, device=dev)

    def fill(r: tuple[int, int]) -> None:
        part = sp.subset(slice(*r))
        if "color" in wanted:
            features[r[0]:r[1], slots["color"]] = part.colors
        if "normal" in wanted:
            features[r[0]:r[1], slots["normal"]] = splat_normals(part, cam_pos)
        if "confidence" in wanted:
            features[r[0]:r[1], slots["confidence"]] = part.confidence[:, None]

    workers.map(fill, workers.ranges(len(sp), _NORMALS_CHUNK))

    region_lut = None
    classes = None
    if "region" in wanted:
        # Class 0 = no region (unassigned splats and the background); 1.. = region ids present.
        ids = sp.region_ids.to(dev)
        present = torch.unique(ids)  # unique values first: a radix sort of the narrow ids, no inverse
        region_lut = torch.unique(torch.cat([present.new_tensor([-1]), present])).to(torch.int64)
        classes = torch.searchsorted(region_lut.to(ids.dtype), ids)

    need_depth = "depth" in wanted
    backend_mod = _backend_module(which, dev)
    raw = _rasterize(backend_mod, sp, camera, features, classes, region_lut, need_depth, dev, workers)

    # Passes from the raw sums, written into place row range by row range on the workers.
    h, w = camera.height, camera.width
    out = {p: torch.empty((h, w, 3) if p in ("color", "normal") else (h, w),
                          dtype=torch.int32 if p == "region" else torch.float32, device=dev) for p in wanted}
    bg_dev = bg.to(dev) if bg.any() else None  # a black background adds exact zeros: skipped

    def finish(r: tuple[int, int]) -> None:
        rows = slice(*r)
        alpha, acc = raw["alpha"][rows], raw["features"][rows]
        empty = alpha < _EMPTY_ALPHA
        if "color" in wanted:
            c = acc[..., slots["color"]]
            out["color"][rows] = c if bg_dev is None else c + (1.0 - alpha)[..., None] * bg_dev
        if "alpha" in wanted:
            out["alpha"][rows] = alpha
        if need_depth:
            out["depth"][rows] = raw["depth"][rows].masked_fill(empty, BACKGROUND_DEPTH)
        if "normal" in wanted:
            n = acc[..., slots["normal"]]
            # torch.nn.functional.normalize, zeroed on the background.
            n = n / torch.linalg.vector_norm(n, dim=-1, keepdim=True).clamp_(min=1e-12)
            out["normal"][rows] = n.masked_fill_(empty[..., None], 0.0)
        if "confidence" in wanted:
            out["confidence"][rows] = acc[..., slots["confidence"].start]
        if "region" in wanted:
            out["region"][rows] = region_lut[raw["class_weight_argmax"][rows]]
        if "void" in wanted:
            out["void"][rows] = alpha < void_threshold

    workers.map(finish, workers.ranges(h, 1))
    return out


def _backend_module(which: str, dev: torch.device):
    """The raster module for a chosen backend: gsplat, else the compiled CPU compositor on the CPU
    when numba is there, else the pure-torch oracle."""
    from . import raster_cpu, raster_gsplat, raster_torch

    if which == "gsplat":
        return raster_gsplat
    return raster_cpu if dev.type == "cpu" and raster_cpu.available() else raster_torch


def _rasterize(backend_mod, sp: Splats, camera: Camera, features: torch.Tensor, classes, region_lut,
               need_depth: bool, dev: torch.device, workers: Workers) -> dict[str, torch.Tensor]:
    """Run one backend; returns ``features`` [H, W, F] sums, ``alpha``, ``depth`` (ED) and
    ``class_weight_argmax`` when classes are given."""
    viewmat = torch.as_tensor(camera.cam_from_world, dtype=torch.float32, device=dev)
    K = torch.as_tensor(camera.K, dtype=torch.float32, device=dev)
    ncls = 0 if region_lut is None else int(region_lut.shape[0])
    return backend_mod.rasterize_splats(
        sp.means.float(), sp.quats.float(), sp.scales.float(), sp.opacities.float(), features, viewmat, K,
        camera.width, camera.height, near=camera.clip_start, far=camera.clip_end,
        classes=classes, num_classes=ncls, with_depth=need_depth, workers=workers,
    )
