# SPDX-License-Identifier: GPL-3.0-or-later
"""Render a splat scene from a metric camera into compositing passes.

Passes ([H, W] or [H, W, C] tensors on the rendering device) are the rows of the pass registry
(:mod:`anchorstage.passes`): ``color`` (linear RGB, premultiplied on black), ``alpha``,
``depth`` (metres, z along the view axis, 1e10 where nothing is hit), ``normal`` (world),
``confidence``, ``region`` (int32 ids, -1 none) and ``void``. The renderer composites each
wanted row's per-splat channels in one pass of a backend and lets each row finish its pass.

Here w = alpha_i · T_i is splat i's blending weight (see :mod:`anchorstage.projection`
for the exact image formation, identical on every backend).

The region rule picks the dominant region rather than the single heaviest splat because a
blended renderer (gsplat) can only deliver per-region sums (one-hot channels); both backends
compute exactly the same rule.

On the CPU with the compiled compositor (:mod:`anchorstage.raster_cpu`) a frame runs on numpy
from the splats to the passes; :func:`render_host` returns those arrays and, given numpy-backed
splats, never loads torch (the CLI renders a frame that way). Elsewhere the frame runs on torch.
"""

from __future__ import annotations

import contextlib
import numbers
from typing import TYPE_CHECKING, Optional, Sequence, Union

import numpy as np

from .camera import Camera
from .device import BACKENDS, cuda_possible, resolve_device
from .errors import InputError, MissingDependencyError
from .limits import check_count
from .passes import BACKGROUND_DEPTH, DEFAULT_VOID_THRESHOLD, PASSES, FinishInputs, check_passes, spec
from .splat_store import release_pages
from .splats import Splats
from .workers import Workers, cpu_workers

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .lod import LodTree
    from .scratch import Buffers

__all__ = ["render", "render_host", "check_passes", "PASSES", "BACKENDS", "BACKGROUND_DEPTH", "DEFAULT_VOID_THRESHOLD"]

#: Below this alpha nothing contributed: a single splat always brings at least 1/255.
_EMPTY_ALPHA = 0.5 / 255.0
_FEATURES_CHUNK = 1 << 16  # splats per parallel piece of the per-splat channels
_FINISH_PIXELS = 1 << 16  # pixels per parallel piece of the passes' finish (whole rows)


def _resolve(device: Union[str, "torch.device"]) -> Union[str, "torch.device"]:
    """The rendering device: ``"cpu"`` (a string: torch not loaded) when the CPU is asked for, or
    when ``"auto"`` can find no CUDA without loading torch; else a ``torch.device``."""
    if isinstance(device, str) and (device.lower() == "cpu" or (device.lower() == "auto" and not cuda_possible())):
        return "cpu"
    return resolve_device(device)


def _choose_backend(backend: str, device: Union[str, "torch.device"]) -> str:
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise InputError(f"render: backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    on_cuda = getattr(device, "type", device) == "cuda"
    if backend == "torch" or (backend == "auto" and not on_cuda):
        return "torch"
    from . import raster_gsplat

    if backend == "gsplat":
        if not on_cuda:
            raise InputError("render: backend 'gsplat' needs a CUDA device; use backend 'torch' or 'auto'")
        if not raster_gsplat.available():
            raise MissingDependencyError("render: backend 'gsplat' needs the gsplat package (pip install 'anchorstage[cuda]')")
        return "gsplat"
    return "gsplat" if raster_gsplat.available() else "torch"


def render(
    splats: Splats,
    camera: Camera,
    passes: Sequence[str] | str = PASSES,
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    background: Optional[Sequence[float]] = None,
    void_threshold: float = DEFAULT_VOID_THRESHOLD,
    lod: Optional["LodTree"] = None,
    lod_threshold_px: Optional[float] = None,
) -> dict[str, "torch.Tensor"]:
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
        lod: the splats' level-of-detail hierarchy (:func:`anchorstage.lod.build_lod`), or None for
            the exact render of every splat. With it, subtrees outside the view frustum are dropped
            before projection and merged nodes smaller than ``lod_threshold_px`` stand in for
            their splats (see docs/scale.md for the error bound).
        lod_threshold_px: projected size (largest standard deviation, pixels) below which a merged
            node is drawn (default :data:`anchorstage.lod.DEFAULT_THRESHOLD_PX`; 0: cull only).

    Returns:
        pass name → tensor on the rendering device, shapes as in the module docstring.

    Raises:
        InputError: unknown pass, bad backend/device/background/threshold, a hierarchy of other splats.
        MissingDependencyError: backend ``"gsplat"`` without gsplat installed.
    """
    import torch

    out = _render_checked(splats, camera, passes, backend, device, background, void_threshold, lod, lod_threshold_px)
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in out.items()}


def render_host(
    splats: Splats,
    camera: Camera,
    passes: Sequence[str] | str = PASSES,
    *,
    backend: str = "auto",
    device: str | "torch.device" = "auto",
    background: Optional[Sequence[float]] = None,
    void_threshold: float = DEFAULT_VOID_THRESHOLD,
    lod: Optional["LodTree"] = None,
    lod_threshold_px: Optional[float] = None,
) -> dict[str, np.ndarray]:
    """:func:`render` with the passes as numpy arrays in host memory.

    On the CPU with the compiled compositor the frame runs on numpy throughout: numpy-backed
    splats (:attr:`Splats.numpy_backed`) render without loading torch.

    Arguments, shapes and errors are those of :func:`render`.
    """
    out = _render_checked(splats, camera, passes, backend, device, background, void_threshold, lod, lod_threshold_px)
    return {k: v if isinstance(v, np.ndarray) else v.detach().cpu().numpy() for k, v in out.items()}


def _render_checked(splats, camera, passes, backend, device, background, void_threshold, lod, lod_threshold_px) -> dict:
    """The frame of :func:`render` / :func:`render_host`: numpy arrays on the compiled CPU path, else tensors."""
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
    dev = _resolve(device)
    which = _choose_backend(backend, dev)
    try:
        bg = np.zeros(3, np.float32) if background is None else np.asarray(background, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        bg = np.zeros(0, np.float32)
    if bg.shape != (3,) or not np.isfinite(bg).all():
        raise InputError(f"render: background must be 3 finite linear RGB values (got {background!r})")
    from . import raster_cpu

    on_numpy = which == "torch" and getattr(dev, "type", dev) == "cpu" and raster_cpu.available()

    from .scratch import Buffers

    # The frame's big temporaries (a cut, the projection, the per-splat channels, the compositor's
    # bands) live in buffers the next frame reuses: fresh memory costs page faults every frame.
    with Buffers() as buffers:
        if lod is None:
            splats.ensure_finite()  # memory-mapped splats are checked where read: here, all of them
        else:
            from .lod import DEFAULT_THRESHOLD_PX, cut

            # The cut lives only for this frame, drawn from this camera: its SH colours are evaluated
            # as it is copied.
            splats = cut(lod, splats, camera, DEFAULT_THRESHOLD_PX if lod_threshold_px is None else lod_threshold_px,
                         buffers=buffers, bake_view_colors=True).splats
        if on_numpy:
            sp, dev = splats.numpy(), None
        else:
            dev = resolve_device(dev)
            sp = splats if not splats.numpy_backed and splats.device == dev else splats.to(dev)
        with cpu_workers(dev or "cpu") if which == "torch" else contextlib.nullcontext(Workers(None, 1)) as workers:
            return _render(sp, camera, wanted, which, dev, bg, void_threshold, workers, buffers)


def _render(sp: Splats, camera: Camera, wanted: tuple[str, ...], which: str, dev: Optional["torch.device"],
            bg: np.ndarray, void_threshold: float, workers: Workers, buffers: "Buffers") -> dict:
    """The body of :func:`render` once inputs are checked: on numpy (``dev`` None, numpy-backed
    ``sp``: the compiled CPU path, its temporaries in the frame's ``buffers``) or on torch on
    ``dev`` (``workers``: CPU threads, torch backend)."""
    rows = [spec(name) for name in wanted]
    if dev is None:
        def empty(shape: tuple[int, ...], dtype: str) -> np.ndarray:
            return np.empty(shape, dtype)

        cam_pos = np.asarray(camera.position, np.float32)
    else:
        import torch

        def empty(shape: tuple[int, ...], dtype: str) -> "torch.Tensor":
            return torch.empty(shape, dtype=getattr(torch, dtype), device=dev)

        cam_pos = torch.as_tensor(camera.position, dtype=torch.float32, device=dev)

    # Per-splat channels of the passes that composite features, written piecewise on the workers.
    slots: dict[str, slice] = {}
    nf = 0
    for p in rows:
        if p.splat_channels is not None:
            slots[p.name], nf = slice(nf, nf + p.channels), nf + p.channels
    features = empty((len(sp), nf), "float32") if dev is not None else buffers.empty("render.features", (len(sp), nf), np.float32)

    def fill(r: tuple[int, int]) -> None:
        part = sp.subset(slice(*r))
        for p in rows:
            if p.splat_channels is not None:
                features[r[0]:r[1], slots[p.name]] = p.splat_channels(part, cam_pos)
        for t in sp._tensors().values():  # a memory-mapped scene's pages of these rows, read: given back
            if t is not None:
                release_pages(t, r)

    workers.map(fill, workers.chunks(len(sp), _FEATURES_CHUNK))

    region_lut = None
    classes = None
    if any(p.needs == "classes" for p in rows):
        ids = sp.region_ids
        region_lut, classes = _region_classes(ids if dev is None else ids.cpu().numpy())
        release_pages(ids)
        if dev is not None:
            region_lut, classes = (torch.from_numpy(a).to(dev) for a in (region_lut, classes))

    need_depth = any(p.needs == "depth" for p in rows)
    if dev is None:
        from .raster_cpu import rasterize_arrays

        raw = rasterize_arrays(sp.means, sp.quats, sp.scales, sp.opacities, features,
                               np.asarray(camera.cam_from_world, np.float32), np.asarray(camera.K, np.float32),
                               camera.width, camera.height, near=camera.clip_start, far=camera.clip_end,
                               classes=classes, num_classes=0 if region_lut is None else len(region_lut),
                               with_depth=need_depth, workers=workers, buffers=buffers)
    else:
        raw = _rasterize(_backend_module(which), sp, camera, features, classes, region_lut, need_depth, dev, workers)

    # Passes from the raw sums, written into place row range by row range on the workers.
    h, w = camera.height, camera.width
    out = {p.name: empty((h, w) if p.channels == 1 else (h, w, p.channels), p.dtype) for p in rows}
    bg_dev = None  # a black background adds exact zeros: skipped
    if bg.any():
        bg_dev = bg if dev is None else torch.from_numpy(bg).to(dev)

    def finish(r: tuple[int, int]) -> None:
        band = slice(*r)
        alpha = raw["alpha"][band]
        x = FinishInputs(alpha=alpha, features=raw["features"][band],
                         depth=raw["depth"][band] if need_depth else None,
                         classes=raw["class_weight_argmax"][band] if classes is not None else None,
                         class_ids=region_lut, empty=alpha < _EMPTY_ALPHA, background=bg_dev,
                         void_threshold=void_threshold)
        for p in rows:
            out[p.name][band] = p.finish(x, slots.get(p.name))

    workers.map(finish, workers.chunks(h, max(1, _FINISH_PIXELS // w)))
    return out


def _region_classes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region ids as classes: class 0 = no region (unassigned splats, -1, and the background),
    1.. = the region ids present, ascending.

    Args:
        ids: [N] int32 region id per splat (-1: none).

    Returns:
        ``lut`` [C] int64 region id of each class (``lut[0] = -1``) and ``classes`` [N] int64.
    """
    if ids.shape[0] > 0:
        lo, hi = int(ids.min()), int(ids.max())
        lo = min(lo, -1)
        if hi - lo < max(1 << 16, ids.shape[0]):
            # A narrow id range (regions are numbered from 0): which ids are present by one
            # count, classes by one lookup, instead of sorting every id.
            shifted = ids.astype(np.int64) - lo
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            present[-1 - lo] = True  # -1 (no region) is class 0
            table = np.cumsum(present) - 1
            return np.flatnonzero(present) + lo, table[shifted]
    lut = np.unique(np.concatenate([np.array([-1], np.int64), ids.astype(np.int64)]))
    return lut, np.searchsorted(lut, ids.astype(np.int64))


def _backend_module(which: str):
    """The raster module of a frame on torch: gsplat, else the pure-torch compositor (the compiled
    CPU compositor runs the frames on numpy)."""
    from . import raster_gsplat, raster_torch

    return raster_gsplat if which == "gsplat" else raster_torch


def _rasterize(backend_mod, sp: Splats, camera: Camera, features: "torch.Tensor", classes, region_lut,
               need_depth: bool, dev: "torch.device", workers: Workers) -> dict[str, "torch.Tensor"]:
    """Run one torch backend; returns ``features`` [H, W, F] sums, ``alpha``, ``depth`` (ED) and
    ``class_weight_argmax`` when classes are given."""
    import torch

    viewmat = torch.as_tensor(camera.cam_from_world, dtype=torch.float32, device=dev)
    K = torch.as_tensor(camera.K, dtype=torch.float32, device=dev)
    ncls = 0 if region_lut is None else int(region_lut.shape[0])
    return backend_mod.rasterize_splats(
        sp.means.float(), sp.quats.float(), sp.scales.float(), sp.opacities.float(), features, viewmat, K,
        camera.width, camera.height, near=camera.clip_start, far=camera.clip_end,
        classes=classes, num_classes=ncls, with_depth=need_depth, workers=workers,
    )
