# SPDX-License-Identifier: GPL-3.0-or-later
"""Witness colour fit: splat colours that make the render at the photo's camera equal the photo.

With the geometry fixed, the image the compositor makes of any per-splat feature ``x`` at one
camera is linear in ``x``: ``image = W x``, where ``W`` [pixels, splats] holds each
(pixel, splat) pair's blending weight ``alpha · T`` (see :mod:`anchorstage.projection`).
:func:`witness_weights` records those pairs once, as a sparse matrix (never a dense one):

* on the CPU with numba, by the compiled compositor itself (:func:`anchorstage.raster_cpu.witness_pairs`),
  one CSR piece per row band; ``W x`` and ``Wᵀ y`` are compiled passes over the pieces
  (:mod:`anchorstage._colorfit_kernels`), bands on the worker threads;
* elsewhere (CUDA, or without numba), by the pure-torch compositor
  (:func:`anchorstage.raster_torch.composite` with ``pairs``), as (pixel, splat, weight)
  triples whose products are ``index_add_`` scatters. This path is also the compiled one's oracle.

:func:`solve_colors` then minimises ``|W x - photo|² + λ |x - x₀|²`` over the valid pixels,
x₀ being the pixel colours, with a few Jacobi-preconditioned conjugate-gradient iterations on
the normal equations (each one pass over the pairs). The fitted colours may leave [0, 1]
where that is what reproduces the photo.

Several cameras (a fused multi-view capture, :mod:`anchorstage.fusion`) fit the same way:
:func:`stacked_weights` stacks their ``W_j`` into one map whose pixels are all the views'
pixels one after the other, so ``WᵀW = Σ W_jᵀW_j`` and the same solver reproduces every view.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Protocol

import numpy as np
import torch

from .projection import Projection, project_parallel
from .workers import Workers, cpu_workers

__all__ = ["DEFAULT_ITERATIONS", "DEFAULT_TIKHONOV", "MIN_WEIGHT", "WitnessWeights", "witness_weights",
           "stacked_weights", "solve_colors"]

#: Conjugate-gradient iterations (each one pass over the recorded pairs).
DEFAULT_ITERATIONS = 7
#: Weight of the pull towards the pixel colours, relative to one pixel's squared error: smaller
#: reproduces the photo closer (its sharpest detail) with more extreme colours, which moved
#: cameras then show (docs/reconstruction.md has the measured trade-off).
DEFAULT_TIKHONOV = 0.03
#: Pairs blending less than this are left out of the fit (about 45 % of them at 1080p; the render keeps
#: them). 5e-3 rather than 2e-3: the fit takes ~15 % less time for 0.2-0.5 dB of witness PSNR.
MIN_WEIGHT = 5e-3


class WitnessWeights(Protocol):
    """The blending weights ``W`` [H * W pixels, N splats] of one camera, as a linear map."""

    n_splats: int
    n_pixels: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``W x``: [N, C] float32 per-splat values → [H * W, C] float32 composited pixels."""

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Wᵀ y``: [H * W, C] float32 per-pixel values → [N, C] float32, by each pair's weight."""

    def normal(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Wᵀ v, sum of v² per channel)`` with ``v = W x`` or, given a [H * W, C] ``target``,
        ``v = target - W x``; ``x`` [N, C] float32, the sums [C] float64."""

    def column_sumsq(self) -> torch.Tensor:
        """[N] float32 the diagonal of ``WᵀW`` (each splat's sum of squared weights)."""


def witness_weights(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    cam_from_world: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    near: float,
    far: float,
    pixel_ok: Optional[torch.Tensor] = None,
    min_weight: float = 0.0,
) -> WitnessWeights:
    """Record the compositor's blending weights at one camera.

    Args:
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 rotations, wxyz.
        scales: [N, 3] float32 standard deviations, metres.
        opacities: [N] float32.
        cam_from_world: [4, 4] float32 world → camera (OpenCV), metres.
        K: [3, 3] float32 intrinsics, pixels.
        width: image width in pixels.
        height: image height in pixels.
        near: near plane, metres.
        far: far plane, metres.
        pixel_ok: optional [H, W] bool: pixels whose pairs are recorded (default all).
        min_weight: pairs blending less than this are left out.

    Returns:
        The weights on the splats' device: compiled CSR bands on the CPU with numba, else torch triples.
    """
    from . import raster_cpu

    dev = means.device
    ok = torch.ones(height * width, dtype=torch.bool, device=dev) if pixel_ok is None else pixel_ok.reshape(-1).to(dev)
    n = means.shape[0]
    with cpu_workers(dev) as w:
        if dev.type == "cpu" and raster_cpu.available():
            proj = raster_cpu.project(means, quats, scales, opacities, cam_from_world, K, width, height, near, far,
                                      workers=w)
            return _BandWeights(raster_cpu.witness_pairs(proj, width, height, ok, min_weight, workers=w), n, width, height,
                                w.n)
        proj = project_parallel(means, quats, scales, opacities, cam_from_world, K, width, height, near, far, workers=w)
        return _torch_weights(proj, n, width, height, ok, min_weight, w)


def _torch_weights(proj: Projection, n: int, width: int, height: int, ok: torch.Tensor, min_weight: float,
                   workers: Workers) -> "_PairWeights":
    """The pure-torch compositor's pairs, kept where the weight is at least ``min_weight`` and the pixel is ok."""
    from . import raster_torch

    pieces: list = []
    dev = ok.device
    raster_torch.composite(proj, torch.zeros(n, 0, device=dev), width, height, workers=workers, pairs=pieces)
    if not pieces:
        e = torch.zeros(0, dtype=torch.int64, device=dev)
        return _PairWeights(e, e, torch.zeros(0, device=dev), n, width * height)
    pixel, splat, weight = (torch.cat(t) for t in zip(*pieces))
    keep = (weight > 0) & (weight >= min_weight) & ok.index_select(0, pixel)
    return _PairWeights(pixel[keep], splat[keep], weight[keep], n, width * height)


class _PairWeights:
    """``W`` as (pixel, splat, weight) triples; products by ``index_add_`` (any device)."""

    def __init__(self, pixel: torch.Tensor, splat: torch.Tensor, weight: torch.Tensor, n_splats: int,
                 n_pixels: int) -> None:
        self.pixel, self.splat, self.weight = pixel, splat, weight
        self.n_splats, self.n_pixels = n_splats, n_pixels
        # Only pixels with pairs take part in the fit (as in the compiled path).
        self.has_pairs = torch.zeros(n_pixels, dtype=torch.bool, device=weight.device)
        self.has_pairs[pixel] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.n_pixels, x.shape[1], dtype=torch.float32, device=x.device)
        return out.index_add_(0, self.pixel, x.index_select(0, self.splat) * self.weight[:, None])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        acc = torch.zeros(self.n_splats, y.shape[1], dtype=torch.float32, device=y.device)
        return acc.index_add_(0, self.splat, y.index_select(0, self.pixel) * self.weight[:, None])

    def normal(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.forward(x)
        if target is not None:
            v = (target.to(v.device) - v) * self.has_pairs[:, None]
        return self.adjoint(v), (v.double() ** 2).sum(0)

    def column_sumsq(self) -> torch.Tensor:
        acc = torch.zeros(self.n_splats, dtype=torch.float32, device=self.weight.device)
        return acc.index_add_(0, self.splat, self.weight * self.weight)


class _BandWeights:
    """``W`` as the compiled compositor's CSR bands; products run band by band on a thread pool
    (the kernels release the GIL; torch keeps its own threads for the solver's vector steps).
    The kernels take three channels at a time: other widths go through in zero-padded triples."""

    def __init__(self, bands: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]], n_splats: int, width: int,
                 height: int, n_threads: int) -> None:
        self.bands, self.n_splats, self.width, self.n_pixels = bands, n_splats, width, width * height
        self.n_threads = max(1, min(n_threads, len(bands)))
        # Contiguous runs of bands, one per thread: each adds into its own per-splat accumulator.
        b = len(bands)
        self.groups = [list(range(b * k // self.n_threads, b * (k + 1) // self.n_threads)) for k in range(self.n_threads)]
        self.pixels = [slice(r0 * width, r0 * width + indptr.shape[0] - 1) for r0, indptr, _, _ in bands]
        # For the solver's passes: one run of pixels per thread with equal numbers of pairs (the
        # bands' pairs are uneven: sky rows have none), as (band, first pixel, end pixel) pieces.
        # A pixel goes with the thread that its first pair falls to.
        sizes = [int(band[1][-1]) for band in bands]
        total, first = sum(sizes), np.cumsum([0] + sizes[:-1])
        self.pieces: list[list[tuple[int, int, int]]] = []
        for g in range(self.n_threads):
            lo, hi, run = total * g // self.n_threads, total * (g + 1) // self.n_threads, []
            for k, (_, indptr, _, _) in enumerate(bands):
                a, z = (min(max(v - int(first[k]), 0), sizes[k]) for v in (lo, hi))
                p0, p1 = (int(np.searchsorted(indptr[:-1], v, side="left")) for v in (a, z))
                if p1 > p0:
                    run.append((k, p0, p1))
            self.pieces.append(run)

    @property
    def nnz(self) -> int:
        """Number of recorded pairs."""
        return sum(int(band[2].shape[0]) for band in self.bands)

    def _run(self, fn, items: list) -> list:
        if self.n_threads == 1 or len(items) == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.n_threads) as pool:
            return list(pool.map(fn, items))

    def _accumulate(self, per_band, shape: tuple[int, ...]) -> tuple[np.ndarray, list]:
        """``per_band(k, acc)`` for every band, each run of bands into its own accumulator; their sum
        and the per-band results."""

        def group(ks: list[int]) -> tuple[np.ndarray, list]:
            acc = np.zeros(shape, np.float32)
            return acc, [per_band(k, acc) for k in ks]

        parts = self._run(group, self.groups)
        total = parts[0][0]
        for acc, _ in parts[1:]:
            total += acc
        return total, [r for _, rs in parts for r in rs]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kern = _kernels()
        out = np.empty((self.n_pixels, _padded(x.shape[1])), np.float32)  # the bands cover every pixel
        for c, xs in _triples(x):
            o = out[:, c:c + 3]

            def run(k: int) -> None:
                _, indptr, splat, weight = self.bands[k]
                kern.forward(indptr, splat, weight, xs, o[self.pixels[k]])

            self._run(run, list(range(len(self.bands))))
        return torch.from_numpy(out[:, :x.shape[1]])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        kern = _kernels()
        parts = []
        for _, ys in _triples(y):
            def run(k: int, acc: np.ndarray) -> None:
                _, indptr, splat, weight = self.bands[k]
                kern.adjoint(indptr, splat, weight, ys[self.pixels[k]], acc)

            parts.append(self._accumulate(run, (self.n_splats, 3))[0])
        return torch.from_numpy(np.concatenate(parts, axis=1)[:, :y.shape[1]] if len(parts) > 1 else parts[0])

    def _normal_into(self, xs: np.ndarray, ts: Optional[np.ndarray], acc: np.ndarray) -> np.ndarray:
        """The :meth:`normal` pass for [N, 3] float32 ``xs`` (and [H * W, 3] ``ts``), adding each
        run of bands into its own ``acc[g]`` ([G, N, 3]); returns the [3] float64 sums of v²."""
        kern = _kernels()
        none = np.zeros((0, 3), np.float32)

        def group(g: int) -> np.ndarray:
            sumsq = np.zeros(3, np.float64)
            for k, p0, p1 in self.pieces[g]:
                _, indptr, splat, weight = self.bands[k]
                px = self.pixels[k].start
                kern.normal(indptr[p0:p1 + 1], splat, weight, xs, none if ts is None else ts[px + p0:px + p1], acc[g],
                            sumsq)
            return sumsq

        return np.sum(self._run(group, list(range(self.n_threads))), axis=0)

    def normal(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        targets = dict(_triples(target)) if target is not None else {}
        parts, sums = [], []
        for c, xs in _triples(x):
            acc = np.zeros((self.n_threads, self.n_splats, 3), np.float32)
            sums.append(self._normal_into(xs, targets.get(c), acc))
            parts.append(acc.sum(axis=0))
        n = x.shape[1]
        return torch.from_numpy(np.concatenate(parts, axis=1)[:, :n]), torch.from_numpy(np.concatenate(sums)[:n])

    def column_sumsq(self) -> torch.Tensor:
        kern = _kernels()

        def run(k: int, acc: np.ndarray) -> None:
            _, indptr, splat, weight = self.bands[k]
            kern.column_sumsq(indptr, splat, weight, acc)

        return torch.from_numpy(self._accumulate(run, (self.n_splats,))[0])


class _StackedWeights:
    """Several cameras' weights as one map: the views' pixels one after the other."""

    def __init__(self, parts: list[WitnessWeights]) -> None:
        self.parts = parts
        self.n_splats = parts[0].n_splats
        self.n_pixels = sum(p.n_pixels for p in parts)
        self.starts = np.cumsum([0] + [p.n_pixels for p in parts]).tolist()

    def _slices(self, y: torch.Tensor) -> list[torch.Tensor]:
        return [y[a:b] for a, b in zip(self.starts[:-1], self.starts[1:])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p.forward(x) for p in self.parts])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return sum(p.adjoint(ys) for p, ys in zip(self.parts, self._slices(y)))

    def normal(self, x: torch.Tensor, target: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        targets = self._slices(target) if target is not None else [None] * len(self.parts)
        outs = [p.normal(x, t) for p, t in zip(self.parts, targets)]
        return sum(o[0] for o in outs), sum(o[1] for o in outs)

    def column_sumsq(self) -> torch.Tensor:
        return sum(p.column_sumsq() for p in self.parts)


def stacked_weights(parts: "list[WitnessWeights]") -> WitnessWeights:
    """Several cameras' blending weights (same splats) as one linear map for :func:`solve_colors`.

    Args:
        parts: one :func:`witness_weights` per camera, all over the same N splats.

    Returns:
        ``W`` [Σ pixels, N]: its rows are the first camera's pixels, then the second's, ...; a
        target for it is the cameras' [H * W, C] images concatenated in the same order.
    """
    if not parts or len({p.n_splats for p in parts}) != 1:
        raise ValueError("stacked_weights needs at least one weights map, all over the same splats")
    return parts[0] if len(parts) == 1 else _StackedWeights(list(parts))


def _padded(n: int) -> int:
    return -(-n // 3) * 3


def _triples(x: torch.Tensor) -> list[tuple[int, np.ndarray]]:
    """[R, C] values as contiguous float32 [R, 3] numpy arrays (first channel, array), the last zero-padded."""
    a = x.detach().to(torch.float32).numpy()
    if a.shape[1] == 3:
        return [(0, np.ascontiguousarray(a))]
    padded = np.zeros((a.shape[0], _padded(a.shape[1])), np.float32)
    padded[:, :a.shape[1]] = a
    return [(c, np.ascontiguousarray(padded[:, c:c + 3])) for c in range(0, padded.shape[1], 3)]


def _kernels():
    """The compiled product kernels (numba is imported and the cache read on first use only)."""
    from . import _colorfit_kernels

    return _colorfit_kernels


def solve_colors(
    weights: WitnessWeights,
    colors: torch.Tensor,
    target: torch.Tensor,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    tikhonov: float = DEFAULT_TIKHONOV,
) -> torch.Tensor:
    """Colours that make ``W x`` reproduce ``target``: regularised least squares by conjugate gradients.

    Minimises ``|W x - target|² + tikhonov · |x - colors|²`` (each channel on its own; only
    pixels with recorded pairs count) by conjugate gradients on the normal equations,
    preconditioned by the diagonal of ``WᵀW + tikhonov · I``, starting at ``colors``. Each
    iteration is one pass over the pairs (:meth:`WitnessWeights.normal`) and two over the splats.

    Args:
        weights: the blending weights at the target's camera.
        colors: [N, C] float32 starting values (the pixel colours), also the regulariser's anchor.
        target: [H * W, C] float32 the image to reproduce (linear).
        iterations: conjugate-gradient iterations.
        tikhonov: weight of the pull towards ``colors``.

    Returns:
        [N, C] float32 fitted values (not clamped).
    """
    x0 = colors.to(torch.float32)
    if iterations <= 0 or x0.shape[0] == 0:
        return x0.clone()
    lam = float(tikhonov)
    cg = (_CompiledCG if isinstance(weights, _BandWeights) and x0.shape[1] == 3 and x0.device.type == "cpu"
          else _TorchCG)(weights, x0, target, lam)
    # In the scaled unknowns z = D (x - x0), D² = diag(WᵀW) + λ: M z = D⁻¹ Wᵀ(target - W x0) with
    # M = D⁻¹(WᵀW + λI)D⁻¹; u = D⁻¹ p is what W sees. Scalars per channel, in float64.
    gamma, uu = cg.start()
    for it in range(iterations):
        qq = cg.product()
        pmp = qq + lam * uu  # pᵀ M p = |W u|² + λ |u|²
        alpha = torch.where(pmp > 0, gamma / pmp.clamp_min(1e-300), torch.zeros_like(pmp))
        gamma_next = cg.descend(alpha)
        if it + 1 < iterations:
            beta = torch.where(gamma > 0, gamma_next / gamma.clamp_min(1e-300), torch.zeros_like(gamma))
            uu = cg.direction(beta)
        gamma = gamma_next
    return cg.result()


class _TorchCG:
    """The solver's vectors as torch tensors (any device, any channel count)."""

    def __init__(self, weights: WitnessWeights, x0: torch.Tensor, target: torch.Tensor, lam: float) -> None:
        self.W, self.x0, self.target, self.lam = weights, x0, target.to(torch.float32), lam
        self.inv_d = (weights.column_sumsq().to(x0.device) + lam).clamp_min(1e-12).rsqrt_()[:, None]

    @staticmethod
    def _sumsq(v: torch.Tensor) -> torch.Tensor:
        return (v.double() ** 2).sum(0).cpu()

    def start(self) -> tuple[torch.Tensor, torch.Tensor]:
        s0, _ = self.W.normal(self.x0, self.target)
        self.r = s0.to(self.x0.device) * self.inv_d
        self.p = self.r.clone()
        self.z = torch.zeros_like(self.x0)
        self.u = self.p * self.inv_d
        return self._sumsq(self.r), self._sumsq(self.u)

    def product(self) -> torch.Tensor:
        self.t, qq = self.W.normal(self.u)
        return qq.cpu()

    def descend(self, alpha: torch.Tensor) -> torch.Tensor:
        a = alpha.to(device=self.x0.device, dtype=torch.float32)
        self.z.add_(self.p * a)
        self.r.sub_(self.t.to(self.x0.device).add_(self.u, alpha=self.lam).mul_(self.inv_d).mul_(a))
        return self._sumsq(self.r)

    def direction(self, beta: torch.Tensor) -> torch.Tensor:
        self.p = self.r + self.p * beta.to(device=self.x0.device, dtype=torch.float32)
        self.u = self.p * self.inv_d
        return self._sumsq(self.u)

    def result(self) -> torch.Tensor:
        return self.x0 + self.z * self.inv_d


class _CompiledCG:
    """The solver's vectors as numpy arrays, stepped by fused numba kernels over splat ranges on
    the weights' threads (RGB only)."""

    def __init__(self, weights: "_BandWeights", x0: torch.Tensor, target: torch.Tensor, lam: float) -> None:
        self.W, self.lam = weights, lam
        self.x0 = x0.detach().contiguous().numpy()
        self.target = target.detach().to(torch.float32).contiguous().numpy()
        n = self.x0.shape[0]
        self.inv_d = 1.0 / np.sqrt(np.maximum(weights.column_sumsq().numpy() + np.float32(lam), np.float32(1e-12)))
        self.acc = np.zeros((weights.n_threads, n, 3), np.float32)
        self.r, self.p, self.u, self.z = (np.empty((n, 3), np.float32) for _ in range(4))
        self.z[:] = 0.0
        self.ranges = [(n * k // weights.n_threads, n * (k + 1) // weights.n_threads) for k in range(weights.n_threads)]

    def _over_splats(self, fn, width: int) -> torch.Tensor:
        """``fn(lo, hi, sums)`` over splat ranges on the threads; the summed ``sums`` [width] float64."""

        def run(rng: tuple[int, int]) -> np.ndarray:
            sums = np.zeros(width, np.float64)
            fn(rng[0], rng[1], sums)
            return sums

        return torch.from_numpy(np.sum(self.W._run(run, self.ranges), axis=0))

    def start(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.W._normal_into(self.x0, self.target, self.acc)
        k = _kernels()
        sums = self._over_splats(lambda lo, hi, s: k.cg_start(self.acc, self.r, self.p, self.u, self.inv_d, lo, hi, s), 6)
        return sums[:3], sums[3:]

    def product(self) -> torch.Tensor:
        return torch.from_numpy(self.W._normal_into(self.u, None, self.acc))

    def descend(self, alpha: torch.Tensor) -> torch.Tensor:
        k, a = _kernels(), alpha.numpy().astype(np.float32)
        return self._over_splats(lambda lo, hi, s: k.cg_descend(self.acc, self.u, self.p, self.z, self.r, self.inv_d,
                                                                np.float32(self.lam), a, lo, hi, s), 3)

    def direction(self, beta: torch.Tensor) -> torch.Tensor:
        k, b = _kernels(), beta.numpy().astype(np.float32)
        return self._over_splats(lambda lo, hi, s: k.cg_direction(self.r, self.p, self.u, self.inv_d, b, lo, hi, s), 3)

    def result(self) -> torch.Tensor:
        return torch.from_numpy(self.x0 + self.z * self.inv_d[:, None])
