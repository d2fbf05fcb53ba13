# SPDX-License-Identifier: GPL-3.0-or-later
"""Level of detail for big splat scenes: a merge hierarchy and the per-frame cut through it.

The hierarchy is built once per splat set (:func:`build_lod`): the splats are sorted along a
Morton (Z-order) curve over their bounding cube, and octree cells of growing size merge them into
coarser parents, level by level, by moment matching (each child weighted by ``opacity · area``,
area = product of its two largest scales):

* mean ``μ = Σ w μ_i / Σ w``; covariance ``Σ = Σ w (Σ_i + (μ_i - μ)(μ_i - μ)ᵀ) / Σ w``, whose
  eigen-decomposition gives the parent's scales and rotation;
* opacity, set per frame where the node is drawn: ``min(1 - Π(1 - o_i), Σ o_i (A_i + b²) / (A + b²))``
  over the splats below it, ``b`` the projection's low-pass radius (``sqrt(EPS2D)`` pixels) at the
  node's depth: never more than the splats stacked, never more coverage than they had, each
  blurred as the rasterizer blurs it, spread over the parent's blurred area;
* colour, SH coefficients and confidence weighted by ``w``; the region of the heaviest child;
* a bounding radius that holds every descendant's 3.33-sigma sphere (what projection keeps).

Octree levels that would merge little (a cell holding one splat) are skipped, so each stored
level has well under half as many nodes as the one below it.

Per frame (:func:`cut`), the hierarchy is walked top down: a node whose bounding sphere lies
outside the view frustum (widened by the projection's own margins) is dropped with everything
below it; a node whose projected size (its largest standard deviation, in pixels at its depth)
is below ``threshold_px`` is drawn itself, in place of its subtree; any other node opens into its
children. Leaves reached are the scene's own splats. The cut is a set of ordinary splats handed
to the renderer. ``threshold_px = 0`` never merges: the cut is then exactly the splats whose
spheres meet the frustum, and the frame is the full render (the tests check it).
"""

from __future__ import annotations

import hashlib
import math
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from .camera import Camera
from .errors import InputError
from .formation import EPS2D
from .sh import view_colors
from .splat_store import release_pages
from .splats import Splats
from .workers import Workers, cpu_workers

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .scratch import Buffers

__all__ = ["LodLevel", "LodTree", "LodCut", "build_lod", "cut", "tree_for", "remember", "fingerprint", "DEFAULT_THRESHOLD_PX", "MIN_SPLATS"]

#: A node smaller than this (largest standard deviation, pixels) is drawn in place of its subtree.
DEFAULT_THRESHOLD_PX = 0.3
#: Sets with fewer splats render without level of detail: a stage reconstructed from a photo (one
#: splat per pixel) seen at a like resolution has no sub-pixel splats to merge, and building the
#: hierarchy (≈ 3 µs per splat) would cost more than the culling saves.
MIN_SPLATS = 2_000_000
#: Projection keeps a splat out to 3.33 sigma (``projection.project``'s ``extend`` cap).
_SIGMA_EXTENT = 3.33
#: Pixels the projected box may pass the 3D sphere's footprint: the low-pass (3.33 · sqrt(EPS2D))
#: plus the box's ceil, rounded up.
_MARGIN_PX = math.ceil(_SIGMA_EXTENT * math.sqrt(EPS2D) + 1.0) + 1
_BITS = 21  # Morton bits per axis (63 in all)
_MERGE_BELOW = 0.5  # a level is stored once it has at most this fraction of the nodes below it
_ROOT_NODES = 64  # stop building at this many nodes
_CHUNK = 1 << 18  # nodes merged per piece (bounds the float64 temporaries)
_FINGERPRINT_SAMPLES = 4096
_ALL_SPLATS_SHARE = 0.5  # a cut that merges nothing and keeps this share of the splats draws them all
_COPY_PIECE = 1 << 18  # rows a worker copies at a time (then gives their mapped pages back)
_SH_PIECE = 1 << 14  # rows whose SH coefficients are read and evaluated at a time (bounds the temporaries)
_EXACT_SHARE = 0.8  # a cut drawing this share of the splat count draws the whole set exactly (copying costs more)


@dataclass
class LodLevel:
    """The merged nodes of one level (float32 unless said).

    Attributes:
        means: [M, 3] centres, metres, world frame.
        quats: [M, 4] unit rotations, wxyz.
        scales: [M, 3] standard deviations, metres.
        opacities: [M] in [0, 1]: ``1 - Π(1 - o_i)`` over the splats below (the per-frame opacity's cap).
        colors: [M, 3] linear Rec.709.
        confidence: [M] in [0, 1].
        region_ids: [M] int32 region index (-1 none).
        sh_rest: [M, K, 3] SH coefficients of degrees 1.. (the leaves' K), or None.
        radius: [M] metres: a sphere about ``means`` holding every descendant's 3.33-sigma sphere.
        opacity_sum: [M] ``Σ o_i`` over the splats below.
        area_sum: [M] m², ``Σ o_i A_i`` over the splats below (A: product of the two largest scales).
        child_start: [M + 1] int64: node j's children are rows ``child_start[j]:child_start[j + 1]``
            of the level below (for the first level: positions in ``LodTree.leaf_order``).
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    region_ids: np.ndarray
    sh_rest: Optional[np.ndarray]
    radius: np.ndarray
    opacity_sum: np.ndarray
    area_sum: np.ndarray
    child_start: np.ndarray

    def __len__(self) -> int:
        return int(self.means.shape[0])


@dataclass
class LodTree:
    """A splat set's merge hierarchy.

    Attributes:
        n_leaves: number of splats it was built from.
        leaf_order: [N] int64 splat indices in Morton order (the first level's children are ranges of it).
        levels: coarser levels, finest first (``levels[0]``'s children are splats).
        fingerprint: :func:`fingerprint` of the splats it was built from.
    """

    n_leaves: int
    leaf_order: np.ndarray
    levels: list[LodLevel]
    fingerprint: str
    _verified: Optional[weakref.ref] = field(default=None, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        """Merged nodes over all levels."""
        return sum(len(lv) for lv in self.levels)

    def matches(self, splats: Splats) -> bool:
        """Whether this hierarchy was built from these splats (count and a sampled fingerprint)."""
        return self.n_leaves == len(splats) and self.fingerprint == fingerprint(splats)

    def _checked_for(self, splats: Splats) -> bool:
        """:meth:`matches`, remembered for the last splat object that matched (no re-hash per frame)."""
        if self._verified is not None and self._verified() is splats:
            return True
        if not self.matches(splats):
            return False
        self._verified = weakref.ref(splats)
        return True


@dataclass
class LodCut:
    """One frame's cut through a hierarchy.

    Attributes:
        splats: what to render: the reached leaves (in input order), then the merged nodes drawn;
            numpy-backed where the scene's splats are, else tensors.
        leaves: [L] int64 indices of the splats drawn as themselves (ascending; a numpy array for
            numpy-backed splats, else a tensor), or None when
            nothing merged and most splats are in view, or the cut would draw 80 % of the count
            or more: then ``splats`` is the whole set, as given (an exact frame, cheaper than the copy).
        merged: merged nodes drawn in place of their subtrees.
        culled: nodes and splats dropped by the frustum test (each dropped subtree counts once).
    """

    splats: Splats
    leaves: Union["torch.Tensor", np.ndarray, None]
    merged: int
    culled: int


def fingerprint(splats: Splats) -> str:
    """A hash of the splat count and of up to 4096 evenly spaced splats' parameters (cheap on
    memory-mapped splats: it touches only those rows)."""
    import torch

    n = len(splats)
    idx = torch.linspace(0, max(n - 1, 0), min(n, _FINGERPRINT_SAMPLES)).round().long() if n else torch.zeros(0, dtype=torch.long)
    h = hashlib.sha256(str(n).encode())
    for t in (splats.means, splats.quats, splats.scales, splats.opacities, splats.colors, splats.confidence,
              splats.region_ids):
        h.update(np.ascontiguousarray(t[idx.numpy()] if isinstance(t, np.ndarray) else t.detach().cpu()[idx].numpy()).tobytes())
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------------ build
def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between the low 21 bits of each int64 (Morton encoding, one axis)."""
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def _morton(means: np.ndarray) -> np.ndarray:
    """[N] int64 Morton codes of [N, 3] points over their bounding cube (21 bits per axis)."""
    lo = means.min(0).astype(np.float64)
    span = float((means.max(0) - lo).max()) or 1.0
    code = np.zeros(len(means), np.int64)
    for axis in range(3):
        q = np.clip((means[:, axis] - lo[axis]) * ((2**_BITS - 1) / span), 0, 2**_BITS - 1).astype(np.int64)
        code |= _spread_bits(q) << axis
    return code


def _rotmats(quats: np.ndarray) -> np.ndarray:
    """[K, 4] wxyz (any norm) → [K, 3, 3] float64 rotations."""
    q = quats.astype(np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], 1)


def _merge(src: dict, rows: np.ndarray, starts: np.ndarray) -> dict:
    """Moment-match groups of source nodes into parents (one chunk of groups).

    Args:
        src: the level below: ``means, quats, scales, opacities, colors, confidence, region_ids,
            sh_rest`` (or None) and ``radius`` arrays, indexed by row.
        rows: [K] rows of ``src`` in group order.
        starts: [G] first position in ``rows`` of each group (ascending, starts[0] == 0).
    """
    m = src["means"][rows].astype(np.float64)
    s = src["scales"][rows].astype(np.float64)
    o = src["opacities"][rows].astype(np.float64)
    rot = _rotmats(src["quats"][rows])
    cov = (rot * (s * s)[:, None, :]) @ rot.transpose(0, 2, 1)
    s_sorted = np.sort(s, axis=1)
    area = s_sorted[:, 1] * s_sorted[:, 2]
    w = o * area + 1e-30
    wsum = np.add.reduceat(w, starts)
    counts = np.diff(np.append(starts, len(rows)))

    def wmean(x: np.ndarray) -> np.ndarray:
        return np.add.reduceat(w.reshape(-1, *([1] * (x.ndim - 1))) * x, starts) / wsum.reshape(-1, *([1] * (x.ndim - 1)))

    mu = wmean(m)
    d = m - np.repeat(mu, counts, axis=0)
    pcov = wmean(cov + d[:, :, None] * d[:, None, :])
    evals, evecs = np.linalg.eigh(pcov)
    evecs[np.linalg.det(evecs) < 0, :, 0] *= -1.0  # a proper rotation
    scales = np.sqrt(np.maximum(evals, 1e-24))
    cols = [tuple(np.ascontiguousarray(evecs[:, i, k]) for i in range(3)) for k in range(3)]
    from .rotation import quat_from_axes

    quats = np.stack(quat_from_axes(*cols), axis=1)
    union = 1.0 - np.exp(np.add.reduceat(np.log1p(-np.minimum(o, 1.0 - 1e-7)), starts))
    if "opacity_sum" in src:
        osum = np.add.reduceat(src["opacity_sum"][rows].astype(np.float64), starts)
        asum = np.add.reduceat(src["area_sum"][rows].astype(np.float64), starts)
    else:
        osum, asum = np.add.reduceat(o, starts), np.add.reduceat(o * area, starts)
    # Heaviest child per group: sort by (group, -w), take each group's first.
    group = np.repeat(np.arange(len(starts)), counts)
    heaviest = np.lexsort((-w, group))[starts]
    reach = np.linalg.norm(d, axis=1) + src["radius"][rows].astype(np.float64)
    radius = np.maximum(np.maximum.reduceat(reach, starts), _SIGMA_EXTENT * scales[:, 2])
    out = {
        "means": mu.astype(np.float32), "quats": quats.astype(np.float32), "scales": scales.astype(np.float32),
        "opacities": np.clip(union, 0.0, 1.0).astype(np.float32), "opacity_sum": osum.astype(np.float32),
        "area_sum": asum.astype(np.float32), "colors": wmean(src["colors"][rows].astype(np.float64)).astype(np.float32),
        "confidence": wmean(src["confidence"][rows].astype(np.float64)).astype(np.float32),
        "region_ids": np.asarray(src["region_ids"][rows][heaviest], dtype=np.int32),
        "radius": radius.astype(np.float32),
        "sh_rest": None if src["sh_rest"] is None else wmean(src["sh_rest"][rows].astype(np.float64)).astype(np.float32),
    }
    return out


def _merge_level(src: dict, rows: np.ndarray, starts: np.ndarray) -> dict:
    """:func:`_merge` over all groups, in chunks of about ``_CHUNK`` rows."""
    n_groups = len(starts)
    bounds = np.append(starts, len(rows))
    pieces = []
    g = 0
    while g < n_groups:
        g1 = int(np.searchsorted(bounds, bounds[g] + _CHUNK, side="right")) - 1
        g1 = min(max(g1, g + 1), n_groups)
        r0, r1 = bounds[g], bounds[g1]
        pieces.append(_merge(src, rows[r0:r1], starts[g:g1] - r0))
        g = g1
    return {k: None if pieces[0][k] is None else np.concatenate([p[k] for p in pieces]) for k in pieces[0]}


def build_lod(splats: Splats) -> LodTree:
    """Build the merge hierarchy of a splat set (see the module docstring).

    Args:
        splats: the splats (any device; read on the CPU, in pieces).

    Returns:
        The :class:`LodTree` (numpy arrays in host memory).

    Raises:
        InputError: no splats, or splats with NaN / inf parameters.
    """
    if not isinstance(splats, Splats):
        raise InputError(f"build_lod: splats must be a Splats (got {type(splats).__name__})")
    n = len(splats)
    if n == 0:
        raise InputError("build_lod: no splats to build a hierarchy from")
    splats.ensure_finite()  # memory-mapped splats are checked as they are read: the build reads them all
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small torch steps per chunk: OpenMP barriers cost more than they give on a busy CPU
    try:
        return _build(splats, n)
    finally:
        torch.set_num_threads(threads)


def _build(splats: Splats, n: int) -> LodTree:
    """The body of :func:`build_lod` once inputs are checked."""

    arrays = splats.numpy()
    leaves = {k: getattr(arrays, k) for k in ("means", "quats", "scales", "opacities", "colors", "confidence",
                                                     "region_ids", "sh_rest")}
    leaves["radius"] = (_SIGMA_EXTENT * leaves["scales"].max(axis=1)).astype(np.float32)
    code = _morton(leaves["means"])
    order = np.argsort(code, kind="stable")
    code = code[order]
    src, rows = leaves, order
    levels: list[LodLevel] = []
    shift = 0
    while len(code) > _ROOT_NODES and shift < 3 * _BITS:
        shift += 3
        parent = code >> shift
        starts = np.concatenate([[0], np.flatnonzero(parent[1:] != parent[:-1]) + 1])
        if len(starts) > _MERGE_BELOW * len(code) and shift < 3 * _BITS:
            continue
        merged = _merge_level(src, rows, starts)
        levels.append(LodLevel(**merged, child_start=np.append(starts, len(code)).astype(np.int64)))
        src, rows, code = merged, np.arange(len(starts)), code[starts]
    return LodTree(n_leaves=n, leaf_order=order.astype(np.int64), levels=levels,
                   fingerprint=fingerprint(splats))


# ------------------------------------------------------------------------------------------ cut
class _Frustum:
    """A camera's view volume as planes in its own frame, widened so that a sphere it rejects
    can have no pixel in the projection's box (see :func:`cut`)."""

    def __init__(self, camera: Camera) -> None:
        self.cam_from_world = np.asarray(camera.cam_from_world, dtype=np.float64)
        K = camera.K
        fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
        w, h, m = camera.width, camera.height, _MARGIN_PX
        # Side planes x >= a z (left), x <= b z (right), likewise y, at the image box widened by m pixels.
        self.sides = np.array([(-m - cx) / fx, (w + m - cx) / fx, (-m - cy) / fy, (h + m - cy) / fy])
        # Projection's Jacobian clamp (1.3x the half field of view) bounds how far a footprint
        # stretches off axis: sqrt(1 + t²) at the clamp.
        lim = max((w - cx) / fx, cx / fx) + 0.3 * 0.5 * w / fx, max((h - cy) / fy, cy / fy) + 0.3 * 0.5 * h / fy
        self.stretch = math.sqrt(1.0 + max(lim) ** 2)
        self.near, self.far = float(camera.clip_start), float(camera.clip_end)
        self.fx = fx

    def classify(self, lv: LodLevel, cand: np.ndarray, threshold_px: float) -> tuple[np.ndarray, np.ndarray]:
        """Verdicts (culled / drawn / opened) and camera depths of a level's candidate rows."""
        return _kernels().classify(cand, np.asarray(lv.means), np.asarray(lv.radius), np.asarray(lv.scales),
                                   self.cam_from_world, self.sides, self.near, self.far, self.stretch, self.fx,
                                   threshold_px)


def _kernels():
    """The compiled cut kernels (numba is imported and the cache read on first use only)."""
    from . import _lod_kernels

    return _lod_kernels


def _opacity(lv: LodLevel, i: np.ndarray, scales: np.ndarray, z: np.ndarray, fx: float) -> np.ndarray:
    """Merged nodes' opacity for this frame (module docstring): coverage of the blurred splats below."""
    b2 = (np.float32(math.sqrt(EPS2D) / fx) * z) ** 2  # the low-pass radius at the node's depth, squared, m²
    s0, s1, s2 = scales[:, 0], scales[:, 1], scales[:, 2]
    area = np.maximum(np.maximum(s0 * s1, s0 * s2), s1 * s2)  # the two largest scales' product
    cover = (lv.area_sum[i] + lv.opacity_sum[i] * b2) / (area + b2)
    return np.clip(np.minimum(lv.opacities[i], cover), 0.0, 1.0)


def _release_hierarchy(tree: LodTree) -> None:
    """Give back the pages a frame read of a memory-mapped hierarchy (they stay in the page cache)."""
    for lv in tree.levels:
        for a in vars(lv).values():
            if a is not None:
                release_pages(a)
    release_pages(tree.leaf_order)


def cut(tree: LodTree, splats: Splats, camera: Camera, threshold_px: float = DEFAULT_THRESHOLD_PX, *,
        buffers: Optional["Buffers"] = None, bake_view_colors: bool = False) -> LodCut:
    """The splats to draw for one camera: the hierarchy's cut at ``threshold_px``, frustum-culled.

    Args:
        tree: the hierarchy built from ``splats``.
        splats: the scene's splats (on the CPU; memory-mapped ones are read only where reached).
        camera: the camera (OpenCV frame, metres; its clip range culls too).
        threshold_px: merged nodes whose largest standard deviation projects below this many
            pixels are drawn in place of their subtrees; 0 draws every splat in the frustum.
        buffers: a frame's reusable buffers (:class:`anchorstage.scratch.Buffers`) to copy the cut
            into, for a caller that is done with the cut when that frame ends; None: new memory.
        bake_view_colors: evaluate SH colours along this camera's rays as they are copied and leave
            the coefficients out (for a caller that draws the cut from this camera only, as the
            renderer does: its colour pass is then the same, for a fraction of the memory).

    Returns:
        The :class:`LodCut`.

    Raises:
        InputError: a hierarchy built for another splat count, a negative threshold, splats off the
        CPU, NaN / inf in what the cut draws.
    """
    if not isinstance(tree, LodTree):
        raise InputError(f"level of detail: expected a LodTree (got {type(tree).__name__})")
    if tree.n_leaves != len(splats):
        raise InputError(f"level of detail: the hierarchy was built for {tree.n_leaves:,} splats, "
                         f"the scene has {len(splats):,}; rebuild it (anchorstage.lod.build_lod)")
    if isinstance(threshold_px, bool) or not isinstance(threshold_px, (int, float)) or not math.isfinite(threshold_px) \
            or threshold_px < 0:
        raise InputError(f"level of detail: threshold must be a number of pixels >= 0 (got {threshold_px!r})")
    if splats.device.type != "cpu":
        raise InputError("level of detail: the splats must be on the CPU (the cut is made there)")
    with cpu_workers("cpu") as workers:
        return _cut(tree, splats, camera, float(threshold_px), workers, buffers, bool(bake_view_colors))


def _cut(tree: LodTree, splats: Splats, camera: Camera, threshold_px: float, workers: Workers,
         buffers: Optional["Buffers"], bake: bool) -> LodCut:
    """The body of :func:`cut` once inputs are checked."""
    kern = _kernels()
    fr = _Frustum(camera)
    parts: list[tuple[LodLevel, np.ndarray, np.ndarray]] = []
    culled = 0
    n = len(splats)
    cand = np.arange(len(tree.levels[-1]), dtype=np.int64) if tree.levels else None
    for depth, lv in enumerate(reversed(tree.levels)):
        verdict, z = fr.classify(lv, cand, threshold_px)
        culled += int(np.count_nonzero(verdict == kern.CULLED))
        drawn = verdict == kern.DRAWN
        parts.append((lv, cand[drawn], z[drawn]))
        opened = cand[verdict == kern.OPENED]
        if depth < len(tree.levels) - 1:
            cand = kern.children(opened, lv.child_start)
        else:
            cand = opened  # first-level nodes: their children are ranges of leaf_order
    merged = sum(len(idx) for _, idx, _ in parts)
    reached = n if cand is None else int(np.sum(tree.levels[0].child_start[cand + 1] - tree.levels[0].child_start[cand]))
    if (merged == 0 and reached >= _ALL_SPLATS_SHARE * n) or reached + merged >= _EXACT_SHARE * n:
        # Nothing merged and most splats in view, or a cut about as big as the set: the set as it
        # is renders the same or exactly (projection culls the rest), without copying it.
        _release_hierarchy(tree)
        splats.ensure_finite()
        return LodCut(splats=splats, leaves=None, merged=0, culled=culled)
    if cand is None:
        leaves = np.arange(n, dtype=np.int64)
    else:
        try:
            # Input order (a cut at threshold 0 renders exactly like the whole set), read front to
            # back of the arrays; leaves are culled by projection itself.
            leaves = kern.leaves_under(cand, tree.levels[0].child_start, np.asarray(tree.leaf_order), n)
        except IndexError:
            raise InputError(f"level of detail: the hierarchy's leaf order holds indices outside [0, {n:,})") from None
    _release_hierarchy(tree)  # what the walk read; the copy maps again only the drawn nodes' rows
    m = len(leaves) + merged
    host = splats.numpy()  # views of tensors: the cut is copied on numpy, and given back as the splats came
    bake = bake and splats.sh_rest is not None
    src = {k: t for k, t in host._tensors().items() if t is not None and not (bake and k == "sh_rest")}
    out = {k: np.empty((m, *t.shape[1:]), t.dtype) if buffers is None
           else buffers.empty(f"lod.cut.{k}", (m, *t.shape[1:]), t.dtype) for k, t in src.items()}
    # Fields as [rows, channels] arrays (views): leaves gathered straight into place, merged nodes after them.
    flat = {k: (t.reshape(len(t), -1), out[k].reshape(m, -1)) for k, t in src.items()}
    sh_leaves = host.sh_rest.reshape(n, -1) if bake else None
    eye = np.asarray(camera.position, np.float32)  # as the renderer's colour pass reads it

    def gather(piece: tuple[np.ndarray, Optional[dict], int]) -> bool:
        rows, fields, at = piece  # rows ascend; fields: a merged level's arrays (None: the leaves')
        span = (int(rows[0]), int(rows[-1]) + 1)
        ok = True
        for k, (a, b) in flat.items():
            src_k = fields[k] if fields is not None else a
            ok &= kern.gather_rows(src_k, rows, b[at:at + len(rows)])
            release_pages(src_k, span)  # a mapped scene's (or hierarchy's) pages of these rows, copied: given back
        if bake:  # SH read a small piece at a time and evaluated into the colours
            sh = fields["sh_rest"] if fields is not None else sh_leaves
            for p0 in range(0, len(rows), _SH_PIECE):
                r = rows[p0:p0 + _SH_PIECE]
                coeffs = np.empty((len(r), sh.shape[1]), np.float32)
                ok &= kern.gather_rows(sh, r, coeffs)
                sl = slice(at + p0, at + p0 + len(r))
                out["colors"][sl] = view_colors(out["colors"][sl], coeffs.reshape(len(r), -1, 3), splats.sh_encoding,
                                                out["means"][sl], eye)
            release_pages(sh, span)
        return ok

    # Pieces of at most _COPY_PIECE rows, merged levels' too (a level in one piece was a
    # one-thread tail of the copy).
    pieces = [(leaves[r0:r1], None, r0) for r0, r1 in workers.chunks(len(leaves), _COPY_PIECE)]
    at = len(leaves)
    keys = (*flat, "sh_rest") if bake else tuple(flat)
    for lv, idx, _ in parts:
        fields = {k: np.asarray(getattr(lv, k)).reshape(len(lv), -1) for k in keys}
        pieces += [(idx[r0:r1], fields, at + r0) for r0, r1 in workers.chunks(len(idx), _COPY_PIECE)]
        at += len(idx)
    finite = all(workers.map(gather, pieces))
    if not finite and bake:  # copied again as it is, for the message naming the fields
        return _cut(tree, splats, camera, threshold_px, workers, None, False)
    at = len(leaves)
    for lv, idx, z in parts:  # this frame's opacity of the merged nodes
        if len(idx):
            sl = slice(at, at + len(idx))
            out["opacities"][sl] = _opacity(lv, idx, out["scales"][sl], z, fr.fx)
            at += len(idx)
    _release_hierarchy(tree)
    cut_splats = Splats(**out, sh_encoding=splats.sh_encoding, check_finite=False)
    # What the cut draws was checked as it was copied; a NaN / inf found is reported as construction would.
    cut_splats.check_rows_finite(m if finite else 0)
    if splats.numpy_backed:
        return LodCut(splats=cut_splats, leaves=leaves, merged=merged, culled=culled)
    import torch

    return LodCut(splats=cut_splats.to("cpu"), leaves=torch.from_numpy(leaves), merged=merged, culled=culled)


# ------------------------------------------------------------------------------------------ per source
_BUILT: dict[int, tuple["weakref.ref", LodTree]] = {}


def tree_for(source) -> Optional[LodTree]:
    """The hierarchy to render a scene or bare splats with, or None below :data:`MIN_SPLATS`.

    A scene's own (``Scene.lod``, loaded from its folder) is used when it was built from the
    scene's splats; otherwise one is built and kept: on the scene, or for bare splats as long as
    they live.

    Args:
        source: a :class:`~anchorstage.scene.Scene` or :class:`~anchorstage.splats.Splats`.
    """
    splats = getattr(source, "splats", source)
    if not isinstance(splats, Splats) or len(splats) < MIN_SPLATS or splats.device.type != "cpu":
        return None
    held = _BUILT.get(id(splats))
    tree = getattr(source, "lod", None)
    if tree is None or not tree._checked_for(splats):
        tree = held[1] if held is not None and held[0]() is splats else build_lod(splats)
    if held is None or held[0]() is not splats:
        remember(splats, tree)
    if hasattr(source, "lod"):
        source.lod = tree
    tree._checked_for(splats)
    return tree


def remember(splats: Splats, tree: LodTree) -> None:
    """Keep ``tree`` for this splat object (as long as it lives), so a render of the bare splats (a
    scene's witness statistics, say) uses it instead of building another."""
    key = id(splats)
    _BUILT[key] = (weakref.ref(splats, lambda _ref, k=key: _BUILT.pop(k, None)), tree)
