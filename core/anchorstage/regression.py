# SPDX-License-Identifier: GPL-3.0-or-later
"""Photo + metric depth → metric 3D Gaussian splats (SHARP-style regression, no network).

The algorithm (see docs/reconstruction.md):

1. Back-project every valid pixel centre with its planar depth (camera frame, OpenCV).
2. Normals from the inverse-depth gradient (exact on planes): central differences where the
   surface is smooth, else the one-sided difference on the side that continues straight, so they
   never reach across a depth edge or around a crease.
3. Depth confidence from the second difference of inverse depth (zero on any plane, large at
   discontinuities and on "flying" pixels between foreground and background), times the
   caller's confidence. Opacity follows the one-sided version: a pixel whose depth continues
   the surface on one side is a true sample and stays opaque (sharp silhouettes), a flying
   pixel is off both sides' surfaces and stays faint, so nothing opaque bridges an edge.
4. Each splat is the pixel's footprint on its tangent plane: the exact Jacobian of the
   ray–plane intersection gives two in-plane axes and scales (stretched by the slant), and
   the third axis — the normal — is thin. Pixels on a colour step get a narrow footprint, so
   the blending order a moved camera sees matters little there.
5. Over the splat budget, 2x2 blocks (then 4x4, ...) of coplanar, confident pixels merge into one
   splat: first the flat, low-texture ones, as far up the levels as they go, then the cheapest of
   the rest; whatever still exceeds the budget is pruned by lowest opacity x confidence.
6. Optionally a second layer behind depth edges: the background surface continues (along its
   own plane) a few pixels behind the foreground, so a small camera move reveals plausible
   background instead of a hole.
7. Optionally (on by default) a colour fit: with the geometry fixed, the splat colours are
   solved so that the render at the photo's own camera reproduces the photo
   (:mod:`anchorstage.colorfit`); the pixel colours are the start and the regulariser's anchor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .camera import Camera
from .colorfit import DEFAULT_ITERATIONS, DEFAULT_TIKHONOV, MIN_WEIGHT, solve_colors, witness_weights
from .depth_io import DEFAULT_FAR_LIMIT_M, mask_invalid_depth
from .device import resolve_device
from .errors import InputError
from .image_io import LoadedImage
from .progress import ProgressFn, report
from .scene import Scene
from .sh import srgb_encode
from .rotation import quat_from_axes
from .splats import Splats

__all__ = ["reconstruct", "default_max_splats", "DEFAULT_SPLATS_PER_PIXEL"]

#: The default budget: about one million splats for a 1920x1080 photo.
DEFAULT_SPLATS_PER_PIXEL = 1_000_000 / (1920 * 1080)

_SIGMA_CELLS = 0.6  # splat std along the surface, in pixel (cell) spans: neighbours overlap, no gaps
_STEP_SIGMA_CELLS = 0.1  # the same for a single pixel on a colour step: little overlap, order-robust
_STEP_SRGB = 0.1  # sRGB-encoded change to a 4-neighbour (any channel) that makes a colour step
_THIN = 0.1  # normal-axis scale relative to the smaller in-plane scale
_MIN_COS = 0.05  # grazing clamp on |cos(normal, ray)|: at most 20x elongation
_EDGE_TAU = 0.03  # relative second difference of inverse depth at which confidence falls to 1/e
_OPACITY_MAX = 0.99
_OPACITY_FLOOR = 0.1  # even a zero-confidence pixel keeps a faint splat: no pinholes on silhouettes
_SKY_EDGE_CONF = 0.5  # confidence factor for pixels bordering masked depth (a discontinuity to infinity)
_MERGE_MIN_CONF = 0.5  # blocks touching a depth edge never merge
_MERGE_MAX_DEV = 0.1  # max off-plane deviation of a block's children, in child footprints
_MERGE_MIN_AGREE = math.cos(math.radians(15.0))  # |mean of unit normals| of a mergeable block
_MAX_LEVELS = 4  # up to 16x16-pixel splats
_FLAT_COST = 1e-3  # merge cost under which a block counts as flat (colour std ≲ 2 % of its mean)
_L2_JUMP = 0.05  # relative depth jump that makes a depth edge for the second layer
_L2_BAND = 0.008  # second-layer band width, fraction of the larger image side
_L2_OPACITY = 0.8
_L2_CONF = 0.3  # inferred geometry: less trustworthy than observed pixels
_L2_MAX_SHARE = 0.25  # at most this share of the budget goes to the second layer

_CHUNK = 1 << 16  # splats per chunk when fitting shapes on the CPU
_NO_DIFF = 1e30  # marks a missing inverse-depth difference

# Channels of the per-cell sums used while merging.
_CNT, _P, _C, _C2, _N, _O, _CF = 0, slice(1, 4), slice(4, 7), slice(7, 10), slice(10, 13), 13, 14


def default_max_splats(width: int, height: int) -> int:
    """The default splat budget for an image: ≈ 1M at 1920x1080, proportional to the pixel count."""
    return max(1, int(round(width * height * DEFAULT_SPLATS_PER_PIXEL)))


# ---------------------------------------------------------------------------- input checks
def _array(x: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(x)
    except (TypeError, ValueError):  # ragged nested lists
        raise InputError(f"{name} must be an array of numbers (got {type(x).__name__})") from None


def _as_image(image: Any) -> np.ndarray:
    if isinstance(image, LoadedImage):
        image = image.rgb_linear
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    a = _array(image, "image")
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"image must be an [H, W, 3] linear RGB array (got shape {list(a.shape)})")
    if a.dtype.kind not in "fiu":
        raise InputError(f"image must hold numbers (got dtype {a.dtype})")
    a = np.ascontiguousarray(a[..., :3], dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise InputError("image has non-finite values (NaN or inf)")
    return a


def _as_map(x: Any, name: str, hw: tuple[int, int]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = _array(x, name)
    if a.dtype.kind not in "fiu":
        raise InputError(f"{name} must hold numbers (got dtype {a.dtype})")
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.shape != hw:
        raise InputError(f"{name} is {a.shape[1] if a.ndim > 1 else '?'}x{a.shape[0] if a.ndim else '?'} "
                         f"(shape {list(a.shape)}) but the image is {hw[1]}x{hw[0]}; "
                         "anchorstage.load_depth(path, expected_hw=(H, W)) resamples a map with the same aspect ratio")
    return a.astype(np.float32)


def _fit_camera(camera: Camera, width: int, height: int, notes: list[str]) -> Camera:
    if not isinstance(camera, Camera):
        raise InputError(f"camera must be an anchorstage.Camera (got {type(camera).__name__})")
    cam, note = camera.fitted_to(width, height)
    if note:
        notes.append(note)
    return cam


# ---------------------------------------------------------------------------- geometry helpers
def _footprint(p: torch.Tensor, n: torch.Tensor, std_px: torch.Tensor, f: float
               ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Each cell's footprint on its tangent plane as a flat 3D Gaussian.

    The two in-plane axes are the principal directions of the Jacobian of the ray–plane
    intersection with respect to the pixel position; the normal is the thin third axis.

    Args:
        p: [3, M] cell centres (rows x, y, z), metres, camera frame (OpenCV).
        n: [3, M] unit normals facing the camera, camera frame.
        std_px: [M] footprint standard deviation in photo pixels (the cell span in pixels times
            its std in cells).
        f: focal length in pixels.

    Returns:
        quaternion: (w, x, y, z) [M] each, local axes → camera frame.
        scales: [M, 3] standard deviations along the local axes, metres (axis 3 = normal).
    """
    inv_z = 1.0 / p[2]
    dx, dy = p[0] * inv_z, p[1] * inv_z  # the ray through the cell centre is (dx, dy, 1)
    nx, ny, nz = n[0], n[1], n[2]
    nd = nx * dx + ny * dy + nz
    lim = _MIN_COS * torch.sqrt(dx * dx + dy * dy + 1.0)
    nd = torch.where(nd.abs() < lim, -lim, nd)  # bound the slant: grazing surfaces would be unbounded
    gx, gy = nx / nd, ny / nd
    # The footprint Jacobian is (z / f) (I - d g^T)[:, :2] per pixel with g = n / (n . d); its 2x2 Gram
    # matrix [[a, b], [b, c]] = I - g d^T - d g^T + |d|^2 g g^T (top-left block).
    d2 = dx * dx + dy * dy + 1.0
    a = 1.0 - 2.0 * gx * dx + d2 * gx * gx
    b = d2 * gx * gy - gx * dy - gy * dx
    c = 1.0 - 2.0 * gy * dy + d2 * gy * gy
    half_tr = 0.5 * (a + c)
    root = torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    lam1 = half_tr + root
    lam2 = (half_tr - root).clamp_min(1e-12 * lam1)
    # Principal direction in pixel space: the better conditioned of two equivalent eigenvector forms.
    use1 = (a - c) <= 0
    ex = torch.where(use1, b, lam1 - c)
    ey = torch.where(use1, lam1 - a, b)
    iso = (ex * ex + ey * ey) <= 1e-12 * lam1 * lam1
    ex = torch.where(iso, 1.0, ex)
    ey = torch.where(iso, 0.0, ey)
    sg = gx * ex + gy * ey
    a1x, a1y, a1z = ex - dx * sg, ey - dy * sg, -sg  # J (ex, ey): the principal axis on the surface
    inv = torch.rsqrt(a1x * a1x + a1y * a1y + a1z * a1z)
    a1x, a1y, a1z = a1x * inv, a1y * inv, a1z * inv
    a2 = (ny * a1z - nz * a1y, nz * a1x - nx * a1z, nx * a1y - ny * a1x)  # n x a1: right-handed frame
    k = p[2] * std_px / f
    s2 = k * lam2.sqrt()
    scales = torch.stack([k * lam1.sqrt(), s2, _THIN * s2], -1)
    return quat_from_axes((a1x, a1y, a1z), a2, (nx, ny, nz)), scales


def _one_sided(w: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """Derivative of inverse depth along image axis ``dim`` (0 rows, 1 columns), per pixel.

    Where the forward and backward differences agree (a smooth surface) it takes their mean;
    otherwise the one whose side continues in a straight line (smaller change to the next
    difference), so it never reaches across a depth edge or around a crease; 0 where neither
    neighbour is valid. Inverse depth is affine on a plane, so on planes the difference is the
    exact derivative.

    Args:
        w: [H, W] inverse depth, 1/metres (0 where invalid).
        valid: [H, W] bool.

    Returns:
        [H, W] derivative, 1/metres per pixel.
    """
    hi, lo = [slice(None)] * 2, [slice(None)] * 2
    hi[dim], lo[dim] = slice(1, None), slice(None, -1)
    hi_t, lo_t = tuple(hi), tuple(lo)
    pair = valid[hi_t] & valid[lo_t]
    # A huge finite sentinel (not inf) marks missing differences: no NaNs, no finiteness tests.
    diff = torch.where(pair, w[hi_t] - w[lo_t], _NO_DIFF)
    pad = (2, 2) if dim == 1 else (0, 0, 2, 2)
    dp = F.pad(diff, pad, value=_NO_DIFF)
    okp = F.pad(pair, pad, value=False)
    n = w.shape[dim]
    fwd, bwd = dp.narrow(dim, 2, n), dp.narrow(dim, 1, n)  # dp index i + k holds diff[i + k - 2]
    f_ok, b_ok = okp.narrow(dim, 2, n), okp.narrow(dim, 1, n)
    s_f = (dp.narrow(dim, 3, n) - fwd).abs()
    s_b = (bwd - dp.narrow(dim, 0, n)).abs()
    use_f = f_ok & (~b_ok | (s_f <= s_b))
    one_sided = torch.where(use_f, fwd, torch.where(b_ok, bwd, 0.0))
    # Where both sides agree the surface is smooth: the central difference is second-order accurate.
    smooth = f_ok & b_ok & ((fwd - bwd).abs() <= 0.05 * (fwd.abs() + bwd.abs()))
    return torch.where(smooth, 0.5 * (fwd + bwd), one_sided)


def _second_diff(w: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """[H, W] |w(-1) + w(+1) - 2 w| / w along ``dim`` where all three are valid, else 0.

    The first and last row (column) use the one-sided second difference, so a border pixel
    whose only neighbour lies across a depth edge is still flagged.
    """
    n = w.shape[dim]
    if n < 3:
        return torch.zeros_like(w)
    ok = valid.narrow(dim, 0, n - 2) & valid.narrow(dim, 1, n - 2) & valid.narrow(dim, 2, n - 2)
    sd = w.narrow(dim, 0, n - 2) + w.narrow(dim, 2, n - 2) - 2 * w.narrow(dim, 1, n - 2)
    sd = torch.where(ok, sd.abs(), 0.0)  # second difference centred on 1..n-2
    e = torch.cat([sd.narrow(dim, 0, 1), sd, sd.narrow(dim, n - 3, 1)], dim)
    return e / w.clamp_min(1e-30)


def _one_sided_second_diff(w: torch.Tensor, valid: torch.Tensor, dim: int) -> torch.Tensor:
    """[H, W] the smallest of the second differences of ``w`` centred on a pixel and on its two
    neighbours along ``dim`` (each over three valid pixels), relative to ``w``; 0 where none exists.

    A pixel on a depth edge whose depth continues one side's surface (a true sample of it) scores
    ~0 from that side; a "flying" pixel between two surfaces is off both sides' lines and scores high.
    """
    n = w.shape[dim]
    if n < 3:
        return torch.zeros_like(w)
    ok = valid.narrow(dim, 0, n - 2) & valid.narrow(dim, 1, n - 2) & valid.narrow(dim, 2, n - 2)
    sd = w.narrow(dim, 0, n - 2) + w.narrow(dim, 2, n - 2) - 2 * w.narrow(dim, 1, n - 2)
    sd = torch.where(ok, sd.abs(), math.inf)  # centred on 1..n-2
    pad = (2, 2) if dim == 1 else (0, 0, 2, 2)
    sp = F.pad(sd, pad, value=math.inf)  # sp index i + 1 holds the difference centred on i
    best = torch.minimum(torch.minimum(sp.narrow(dim, 0, n), sp.narrow(dim, 1, n)), sp.narrow(dim, 2, n))
    best = torch.where(torch.isinf(best), 0.0, best)
    return best / w.clamp_min(1e-30)


@dataclass
class _Pixels:
    """Per-pixel maps, all [H, W] (camera frame, OpenCV; metres).

    ``xs`` [W] and ``ys`` [H] are the normalised image coordinates (u - cx) / f, (v - cy) / f of
    the pixel centres, so a pixel's point is z * (xs, ys, 1).
    """

    z: torch.Tensor
    valid: torch.Tensor
    n: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # 3 x [H, W] unit normal components, facing the camera
    conf: torch.Tensor
    solid: torch.Tensor  # [H, W] in [0, 1]: the depth is a true sample of some surface (sets opacity)
    xs: torch.Tensor
    ys: torch.Tensor


def _pixel_geometry(depth: torch.Tensor, camera: Camera) -> _Pixels:
    """Per-pixel depth, normals and depth confidence from a [H, W] depth map (inf where invalid)."""
    h, w = depth.shape
    dev = depth.device
    f = camera.focal_px
    valid = torch.isfinite(depth)
    xs, ys = (torch.from_numpy(a).to(dev, torch.float32) for a in camera.pixel_rays())
    inv = torch.where(valid, 1.0 / depth, 0.0)
    # With P = z (x, y, 1) and w = 1/z: dP/du x dP/dv ∝ (w_u, w_v, w/f - w_u x - w_v y) / w^2, which
    # points away from the camera; negated to face it.
    wu = _one_sided(inv, valid, 1)
    wv = _one_sided(inv, valid, 0)
    nz = wu * xs[None, :] + wv * ys[:, None] - inv / f
    inv_len = torch.where(valid, torch.rsqrt(wu * wu + wv * wv + nz * nz), 0.0)
    n = (wu * -inv_len, wv * -inv_len, torch.where(valid, nz * inv_len, -1.0))
    # Inverse depth is affine in (u, v) on any plane: its second difference flags depth edges.
    e = torch.maximum(_second_diff(inv, valid, 0), _second_diff(inv, valid, 1))
    conf = torch.exp(-((e / _EDGE_TAU) ** 2))
    # Pixels next to masked depth sit on a discontinuity to infinity.
    vpad = F.pad(valid, (1, 1, 1, 1), value=True)
    border = ~(vpad[:-2, 1:-1] & vpad[2:, 1:-1] & vpad[1:-1, :-2] & vpad[1:-1, 2:])
    conf = torch.where(valid, torch.where(border, conf * _SKY_EDGE_CONF, conf), 0.0)
    e1 = torch.maximum(_one_sided_second_diff(inv, valid, 0), _one_sided_second_diff(inv, valid, 1))
    solid = torch.exp(-((e1 / _EDGE_TAU) ** 2))
    solid = torch.where(valid, torch.where(border, solid * _SKY_EDGE_CONF, solid), 0.0)
    return _Pixels(z=torch.where(valid, depth, 0.0), valid=valid, n=n, conf=conf, solid=solid, xs=xs, ys=ys)


def _colour_steps(rgb: torch.Tensor) -> torch.Tensor:
    """[H, W] bool: pixels on a colour step (a 4-neighbour differs by more than ``_STEP_SRGB``
    in some sRGB-encoded channel).

    Overlapping splats blend in depth order, which a moved camera changes; where neighbours
    differ strongly the colour fit's compensation of the photo's order shows as seams, so those
    pixels get small footprints (the renderer's low-pass still closes the gaps).

    Args:
        rgb: [H, W, 3] linear colours.
    """
    g = srgb_encode(rgb.clamp(0.0, 1.0))
    step = torch.zeros(rgb.shape[:2], dtype=torch.bool, device=rgb.device)
    dx = (g[:, 1:] - g[:, :-1]).abs().amax(-1) > _STEP_SRGB
    dy = (g[1:] - g[:-1]).abs().amax(-1) > _STEP_SRGB
    step[:, 1:] |= dx
    step[:, :-1] |= dx
    step[1:] |= dy
    step[:-1] |= dy
    return step


# ---------------------------------------------------------------------------- second layer
_DIRS = ((0, -1), (0, 1), (-1, 0), (1, 0))  # (dy, dx): left, right, up, down


def _second_layer(px: _Pixels, rgb: torch.Tensor, band: int) -> dict[str, torch.Tensor]:
    """Splat records continuing the background surface behind foreground depth edges.

    A background pixel at a depth edge seeds; walking from it towards its nearest-depth
    neighbour, up to ``band`` foreground pixels each get a splat where their ray meets the
    seed's tangent plane (or at the seed's depth when the ray runs along that plane).

    Args:
        px: per-pixel maps.
        rgb: [H, W, 3] linear colours.
        band: how many pixels the background continues behind the foreground.

    Returns:
        records: ``p`` [3, M] metres camera frame, ``n`` [3, M], ``c`` [M, 3], ``o`` [M], ``conf`` [M].
    """
    z, valid = px.z, px.valid
    h, w = z.shape
    dev = z.device
    padded = F.pad(torch.where(valid, z, math.inf), (1, 1, 1, 1), value=math.inf)
    shifted = [padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _DIRS]
    zmin = torch.minimum(torch.minimum(shifted[0], shifted[1]), torch.minimum(shifted[2], shifted[3]))
    seed = valid & (px.conf < _MERGE_MIN_CONF) & (zmin < z * (1 - _L2_JUMP))
    sidx = seed.view(-1).nonzero()[:, 0]
    sy, sx = sidx // w, sidx % w
    # Walk towards the nearest-depth 4-neighbour (the foreground side of the edge).
    near = torch.stack([padded.view(-1)[(sy + 1 + dy) * (w + 2) + sx + 1 + dx] for dy, dx in _DIRS], 1).argmin(1)
    dirs = torch.tensor(_DIRS, device=dev)[near]  # [S, 2]
    steps = torch.arange(1, band + 1, device=dev)
    ty = sy[:, None] + dirs[:, :1] * steps  # [S, band]
    tx = sx[:, None] + dirs[:, 1:] * steps
    inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
    tidx = ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)
    zs = z.view(-1)[sidx]
    ok = inside & valid.view(-1)[tidx] & (z.view(-1)[tidx] < zs[:, None] * (1 - _L2_JUMP))
    ok = ok.cumprod(1).bool()  # stop at the first pixel that is not in front
    sel_s, sel_j = ok.nonzero(as_tuple=True)
    t_all = tidx[sel_s, sel_j]
    # A pixel reached from several seeds gets one splat, from the first of them.
    order = torch.arange(t_all.numel(), device=dev)
    first = torch.full((h * w,), t_all.numel(), dtype=torch.long, device=dev).scatter_reduce_(0, t_all, order, "amin")
    keep = first[t_all] == order
    t_idx, s_idx = t_all[keep], sidx[sel_s[keep]]
    zs = z.view(-1)[s_idx]
    n_s = torch.stack([c.view(-1)[s_idx] for c in px.n])
    xs_s, ys_s = px.xs[s_idx % w], px.ys[s_idx // w]
    rx, ry = px.xs[t_idx % w], px.ys[t_idx // w]
    nd = n_s[0] * rx + n_s[1] * ry + n_s[2]
    t = zs * (n_s[0] * xs_s + n_s[1] * ys_s + n_s[2]) / torch.where(nd.abs() < 1e-6, -1e-6, nd)
    zq = z.view(-1)[t_idx]
    plane_ok = (nd < -_MIN_COS * torch.sqrt(rx * rx + ry * ry + 1.0)) & (t > zq * (1 + _L2_JUMP)) & (t < 2 * zs)
    t = torch.where(plane_ok, t, zs)
    return {"p": torch.stack([rx * t, ry * t, t]), "n": n_s, "c": rgb.view(-1, 3)[s_idx],
            "o": torch.full_like(t, _L2_OPACITY), "conf": torch.full_like(t, _L2_CONF)}


_SOA = ("p", "n")  # record fields stored [3, M]; the others are [M] or [M, 3]


def _take(rec: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    """The records selected by ``index``."""
    return {k: v[:, index] if k in _SOA else v[index] for k, v in rec.items()}


# ---------------------------------------------------------------------------- merging
def _quads(x: torch.Tensor) -> list[torch.Tensor]:
    """The four 2x2 children of each parent cell (odd trailing row/column left out)."""
    h2, w2 = x.shape[0] // 2, x.shape[1] // 2
    return [x[i:2 * h2:2, j:2 * w2:2] for i in (0, 1) for j in (0, 1)]


@dataclass
class _Level:
    """One merge level: cells of 2^L x 2^L pixels, each the merge of a 2x2 block of the level below.

    ``sums``, ``cost`` and ``ok`` hold for every cell position, whether merged or not; ``whole``
    marks the cells actually emitted as splats at this level.
    """

    sums: torch.Tensor  # [h, w, 15] per-cell sums: count, points, colours, squared colours, normals, opacity, conf
    cmin: torch.Tensor  # [h, w] lowest pixel confidence inside the cell
    cost: torch.Tensor  # [h, w] merge cost: relative colour variance + normal disagreement + 0.1 x twist
    ok: torch.Tensor  # [h, w] bool: the block may merge (valid, confident, coplanar, normals agree)
    whole: torch.Tensor  # [h, w] bool: merged and emitted at this level


def _level_from_cells(child: _Level, span: int, f: float) -> _Level:
    """The next level up from a level of ``span``-pixel cells."""
    sq, cq = _quads(child.sums), _quads(child.cmin)
    parent = sq[0] + sq[1] + sq[2] + sq[3]
    cnt = parent[..., _CNT].clamp_min(1.0)
    pm = parent[..., _P] / cnt[..., None]
    nsum = parent[..., _N]
    nlen = nsum.norm(dim=-1)
    nbar = nsum / nlen.clamp_min(1e-30)[..., None]
    dev = torch.stack([((sc[..., _P] / sc[..., _CNT].clamp_min(1.0)[..., None] - pm) * nbar).sum(-1).abs() for sc in sq], -1).amax(-1)
    dev_rel = dev / (span * pm[..., 2].clamp_min(1e-30) / f)
    agree = nlen / cnt
    texture = _window_texture(parent[..., _CNT], parent[..., _C], parent[..., _C2])
    pmin = torch.minimum(torch.minimum(cq[0], cq[1]), torch.minimum(cq[2], cq[3]))
    ok = (pmin >= _MERGE_MIN_CONF) & (dev_rel < _MERGE_MAX_DEV) & (agree > _MERGE_MIN_AGREE)
    return _Level(parent, pmin, texture + (1.0 - agree) + 0.1 * dev_rel, ok, torch.zeros_like(ok))


def _window_texture(cnt: torch.Tensor, csum: torch.Tensor, c2sum: torch.Tensor) -> torch.Tensor:
    """Texture cost of merging each block: relative colour variance over the block and the ring of
    blocks around it.

    A merged splat (std 0.6 of its span) blends into its neighbours about a block's width beyond
    its own block, so a block merges cheaply only where its surroundings are flat too: the colour
    fit cannot undo a big splat painted over fine texture next to it.

    Args:
        cnt: [h, w] valid pixels per block.
        csum: [h, w, 3] sums of their linear colours.
        c2sum: [h, w, 3] sums of their squares.

    Returns:
        [h, w] summed channel variance / (squared mean + 1e-4) over each 3x3 window of blocks.
    """
    x = torch.cat([cnt[..., None], csum, c2sum], -1).permute(2, 0, 1)[None]
    # Window means of the sums (zero padding adds nothing); ratios of them are ratios of sums.
    m = F.avg_pool2d(x, 3, stride=1, padding=1)[0]
    n = m[0].clamp_min(1e-30)
    cm = m[1:4] / n
    var = (m[4:7] / n - cm * cm).clamp_min(0.0).sum(0)
    return var / (cm.mean(0) ** 2 + 1e-4)


def _merge(child_whole: torch.Tensor, parent: _Level, need: int, max_cost: float) -> int:
    """Merge up to ``need`` of the cheapest eligible blocks (cost ≤ ``max_cost``) whose four children are whole.

    Updates ``parent.whole`` and clears the merged children in ``child_whole`` (in place).
    """
    wq = _quads(child_whole)
    eligible = parent.ok & wq[0] & wq[1] & wq[2] & wq[3]
    if math.isfinite(max_cost):
        eligible &= parent.cost <= max_cost
    chosen = _choose(eligible, parent.cost, need)
    parent.whole |= chosen
    for q in wq:
        q &= ~chosen
    return int(chosen.sum())


def _level_from_pixels(px: _Pixels, rgb: torch.Tensor, opacity: torch.Tensor, f: float) -> _Level:
    """The first merge level, straight from the pixel maps: 2x2 pixel blocks.

    Args:
        px: per-pixel maps.
        rgb: [H, W, 3] linear colours.
        opacity: [H, W] per-pixel opacity.
        f: focal length in pixels.
    """
    zq, vq, cq = _quads(px.z), _quads(px.valid), _quads(px.conf)
    h2, w2 = zq[0].shape
    xq = [px.xs[j:2 * w2:2][None, :] for i in (0, 1) for j in (0, 1)]
    yq = [px.ys[i:2 * h2:2][:, None] for i in (0, 1) for j in (0, 1)]
    nq = [_quads(c) for c in px.n]  # per component, 4 quads each
    rq, oq = _quads(rgb), _quads(opacity)
    inv = [1.0 / q.clamp_min(1e-30) for q in zq]
    # Inverse depth is affine on a plane, so its 2x2 "twist" is zero there; ~4x a child's off-plane offset.
    twist = (inv[0] + inv[3] - inv[1] - inv[2]).abs() / (0.25 * (inv[0] + inv[1] + inv[2] + inv[3]))
    dev_rel = twist * (f / 4.0)
    nsum = [q[0] + q[1] + q[2] + q[3] for q in nq]
    agree = torch.sqrt(nsum[0] * nsum[0] + nsum[1] * nsum[1] + nsum[2] * nsum[2]) / 4.0
    # Colour sums over the block's valid pixels (only fully valid blocks merge; the others' sums
    # count in their neighbours' texture windows).
    vw = [q[..., None].to(rgb.dtype) for q in vq]
    csum = rq[0] * vw[0] + rq[1] * vw[1] + rq[2] * vw[2] + rq[3] * vw[3]
    c2sum = rq[0] * rq[0] * vw[0] + rq[1] * rq[1] * vw[1] + rq[2] * rq[2] * vw[2] + rq[3] * rq[3] * vw[3]
    count = (vw[0] + vw[1] + vw[2] + vw[3])[..., 0]
    texture = _window_texture(count, csum, c2sum)
    pmin = torch.minimum(torch.minimum(cq[0], cq[1]), torch.minimum(cq[2], cq[3]))
    ok = vq[0] & vq[1] & vq[2] & vq[3] & (pmin >= _MERGE_MIN_CONF) & (dev_rel < _MERGE_MAX_DEV) & (agree > _MERGE_MIN_AGREE)
    zsum = zq[0] + zq[1] + zq[2] + zq[3]
    sums = torch.cat([
        count[..., None],
        torch.stack([sum(zq[k] * xq[k] for k in range(4)), sum(zq[k] * yq[k] for k in range(4)), zsum], -1),
        csum, c2sum, torch.stack(nsum, -1),
        (oq[0] + oq[1] + oq[2] + oq[3])[..., None],
        (cq[0] + cq[1] + cq[2] + cq[3])[..., None],
    ], -1)
    return _Level(sums, pmin, texture + (1.0 - agree) + 0.1 * dev_rel, ok, torch.zeros_like(ok))


def _choose(eligible: torch.Tensor, cost: torch.Tensor, need: int) -> torch.Tensor:
    """Exactly ``min(need, eligible)`` cheapest eligible cells (ties broken in raster order)."""
    n_el = int(eligible.sum())
    if n_el <= need:
        return eligible
    thr = cost[eligible].kthvalue(max(need, 1)).values
    chosen = eligible & (cost < thr)
    ties = (eligible & (cost == thr)).view(-1)
    ties &= ties.cumsum(0) <= need - int(chosen.sum())
    return chosen | ties.view_as(chosen)


def _records_from_pixels(px: _Pixels, rgb: torch.Tensor, opacity: torch.Tensor, mask: torch.Tensor,
                         std_px: torch.Tensor) -> dict[str, torch.Tensor]:
    h, w = mask.shape
    idx = mask.view(-1).nonzero()[:, 0]
    z = px.z.view(-1)[idx]
    return {"p": torch.stack([z * px.xs[idx % w], z * px.ys[idx // w], z]), "n": torch.stack([c.view(-1)[idx] for c in px.n]),
            "c": rgb.view(-1, 3)[idx], "o": opacity.view(-1)[idx], "conf": px.conf.view(-1)[idx],
            "std": std_px.view(-1)[idx]}


def _records_from_cells(s: torch.Tensor, whole: torch.Tensor, span: int) -> dict[str, torch.Tensor]:
    sel = s.view(-1, s.shape[-1]).index_select(0, whole.view(-1).nonzero()[:, 0])
    cnt = sel[:, _CNT:_CNT + 1]
    return {"p": (sel[:, _P] / cnt).T.contiguous(), "n": F.normalize(sel[:, _N], dim=-1).T.contiguous(), "c": sel[:, _C] / cnt,
            "o": sel[:, _O] / cnt[:, 0], "conf": sel[:, _CF] / cnt[:, 0],
            "std": torch.full((sel.shape[0],), _SIGMA_CELLS * span, device=s.device)}


# ---------------------------------------------------------------------------- colour fit
def _fit_colors(sp: Splats, cam: Camera, rgb: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """Colours with which the render at the photo's camera reproduces the photo (valid pixels).

    Args:
        sp: the splats in the camera frame (OpenCV, metres).
        cam: the photo's camera.
        rgb: [H, W, 3] float32 linear photo.
        valid: [H, W] bool pixels with depth (sky and masked pixels are left out of the fit).

    Returns:
        [N, 3] float32 fitted linear colours (may leave [0, 1]) and a summary for ``Scene.meta``.
    """
    dev = sp.device
    # The splats are in the camera frame: the witness camera is the identity pose.
    weights = witness_weights(sp.means, sp.quats, sp.scales, sp.opacities, torch.eye(4, device=dev),
                              torch.as_tensor(cam.K, dtype=torch.float32, device=dev), cam.width, cam.height,
                              near=cam.clip_start, far=cam.clip_end, pixel_ok=valid, min_weight=MIN_WEIGHT)
    colors = solve_colors(weights, sp.colors, rgb.reshape(-1, 3), iterations=DEFAULT_ITERATIONS,
                          tikhonov=DEFAULT_TIKHONOV)
    return colors.contiguous(), {"iterations": DEFAULT_ITERATIONS, "tikhonov": DEFAULT_TIKHONOV,
                                 "min_weight": MIN_WEIGHT}


# ---------------------------------------------------------------------------- entry point
@torch.no_grad()
def reconstruct(
    image: Any,
    depth_m: Any,
    camera: Camera,
    *,
    max_splats: Optional[int] = None,
    confidence: Any = None,
    far_limit_m: float = DEFAULT_FAR_LIMIT_M,
    second_layer: bool = True,
    fit_colors: bool = True,
    device: str | torch.device = "auto",
    progress: Optional[ProgressFn] = None,
    meta: Optional[Mapping[str, Any]] = None,
) -> Scene:
    """Regress metric 3D Gaussian splats from a photo and its metric depth.

    Args:
        image: [H, W, 3] float32 linear Rec.709 RGB (numpy, torch, or a :class:`LoadedImage`).
        depth_m: [H, W] planar z along the camera axis, metres. NaN, ±inf, ≤ 0 and values beyond
            ``far_limit_m`` are sky: masked and never splatted.
        camera: the photo's camera (intrinsics + pose; world frame Z up, metres). A camera of
            another resolution with the same aspect ratio is scaled to the image.
        max_splats: splat budget; default ≈ 1M for a 1920x1080 photo (proportional to pixels).
        confidence: optional [H, W] per-pixel depth confidence in [0, 1] (e.g. from the depth
            model); multiplies the geometric confidence.
        far_limit_m: depths beyond this are sky.
        second_layer: add background splats behind foreground depth edges.
        fit_colors: fit the colours so the render at ``camera`` reproduces the photo (the
            geometry is the same either way); off, each splat has its pixel's (or cell's mean) colour.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.
        meta: extra entries for ``Scene.meta`` (e.g. ``intrinsics_source``, ``depth_source``).

    Returns:
        A :class:`Scene` whose splats live on ``device``: means [N, 3] metres world frame,
        quats [N, 4] wxyz, scales [N, 3] metres, opacities [N], colors [N, 3] linear RGB,
        confidence [N].

    Raises:
        InputError: wrong shapes, non-finite image, no valid depth, bad budget or camera.
    """
    notes: list[str] = []
    rgb_np = _as_image(image)
    h, w = rgb_np.shape[:2]
    cam = _fit_camera(camera, w, h, notes)
    try:
        far = float(far_limit_m)
    except (TypeError, ValueError):
        raise InputError(f"far_limit_m must be a number (got {far_limit_m!r})") from None
    if not math.isfinite(far) or far <= 0:
        raise InputError(f"far_limit_m must be a positive finite number of metres (got {far_limit_m!r})")
    depth_np, n_bad = mask_invalid_depth(_as_map(depth_m, "depth", (h, w)), far)
    if n_bad == depth_np.size:
        raise InputError(f"depth has no valid pixels: every value is NaN, inf, ≤ 0 or beyond {far:g} m")
    conf_np = None
    if confidence is not None:
        conf_np = _as_map(confidence, "confidence", (h, w))
        if not np.all(np.isfinite(conf_np)):
            raise InputError("confidence has non-finite values")
        conf_np = np.clip(conf_np, 0.0, 1.0)
    if not isinstance(second_layer, (bool, np.bool_)):
        raise InputError(f"second_layer must be True or False (got {second_layer!r})")
    budget = default_max_splats(w, h) if max_splats is None else max_splats
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"max_splats must be a positive integer (got {max_splats!r})")
    budget = int(budget)
    if not isinstance(fit_colors, (bool, np.bool_)):
        raise InputError(f"fit_colors must be True or False (got {fit_colors!r})")
    dev = resolve_device(device)

    report(progress, 0.05, "back-projecting depth")
    depth = torch.from_numpy(depth_np).to(dev)
    rgb = torch.from_numpy(rgb_np).to(dev)
    px = _pixel_geometry(depth, cam)
    if conf_np is not None:
        px.conf = px.conf * torch.from_numpy(conf_np).to(dev)
        px.solid = px.solid * torch.from_numpy(conf_np).to(dev)
    depth_conf = px.conf.cpu().numpy().astype(np.float32)
    opacity = _OPACITY_MAX * (_OPACITY_FLOOR + (1 - _OPACITY_FLOOR) * px.solid)
    f = cam.focal_px

    report(progress, 0.3, "second layer" if second_layer else "merging")
    layer2: Optional[dict[str, torch.Tensor]] = None
    if second_layer:
        layer2 = _second_layer(px, rgb, max(2, int(round(_L2_BAND * max(h, w)))))
        m2, cap = layer2["o"].shape[0], int(budget * _L2_MAX_SHARE)
        if m2 > cap:  # keep an even spread of the band
            layer2 = _take(layer2, torch.linspace(0, m2 - 1, cap, device=dev).round().long())
        layer2["std"] = torch.full((layer2["o"].shape[0],), _SIGMA_CELLS, device=dev)
    budget1 = budget - (layer2["o"].shape[0] if layer2 else 0)

    count = int(px.valid.sum())
    alone = px.valid.clone()  # pixels emitted on their own
    levels: list[_Level] = []
    merged_per_level: list[int] = []
    # Flat, low-texture cells merge first, as far up as they go; then the cheapest of the rest.
    for phase, max_cost in enumerate((_FLAT_COST, math.inf)):
        for lv in range(1, _MAX_LEVELS + 1):
            if count <= budget1:
                break
            if len(levels) < lv:
                below = alone if lv == 1 else levels[-1].whole
                if min(below.shape) < 2:
                    break
                levels.append(_level_from_pixels(px, rgb, opacity, f) if lv == 1
                              else _level_from_cells(levels[-1], 2 ** (lv - 1), f))
                merged_per_level.append(0)
            done = _merge(alone if lv == 1 else levels[lv - 2].whole, levels[lv - 1],
                          math.ceil((count - budget1) / 3), max_cost)
            merged_per_level[lv - 1] += done
            count -= 3 * done
            report(progress, 0.3 + 0.3 * (phase * _MAX_LEVELS + lv) / (2 * _MAX_LEVELS), f"merging level {lv}")

    report(progress, 0.6, "fitting splat shapes")
    std_px = torch.where(_colour_steps(rgb), _STEP_SIGMA_CELLS, _SIGMA_CELLS)
    parts = [_records_from_pixels(px, rgb, opacity, alone, std_px)]
    parts += [_records_from_cells(lev.sums, lev.whole, 2 ** (lv + 1)) for lv, lev in enumerate(levels)]
    per_level = [int(p["o"].shape[0]) for p in parts]
    if layer2 is not None:
        parts.append(layer2)
    rec = {k: torch.cat([p[k] for p in parts], dim=1 if k in _SOA else 0) for k in parts[0]}
    valid = px.valid
    del levels, parts, px
    pruned = 0
    if rec["o"].shape[0] > budget:  # nothing left to merge: drop the faintest, least trusted splats
        pruned = rec["o"].shape[0] - budget
        rec = _take(rec, torch.topk(rec["o"] * rec["conf"], budget).indices.sort().values)

    n_out = rec["o"].shape[0]
    quats = torch.empty(n_out, 4, device=dev)
    scales = torch.empty(n_out, 3, device=dev)
    # In cache-sized chunks: ~100 element-wise steps on a chunk stay in cache instead of streaming memory.
    chunk = max(1, n_out) if dev.type == "cuda" else _CHUNK
    for i in range(0, n_out, chunk):
        j = min(i + chunk, n_out)
        q_cam, scales[i:j] = _footprint(rec["p"][:, i:j], rec["n"][:, i:j], rec["std"][i:j], f)
        quats[i:j] = torch.stack(q_cam, -1)
    in_camera = Splats(means=rec["p"].T, quats=quats, scales=scales,
                       opacities=rec["o"].clamp(1e-4, _OPACITY_MAX).contiguous(), colors=rec["c"].contiguous(),
                       confidence=rec["conf"].clamp(0.0, 1.0).contiguous())
    del rec  # the fit's pairs need the room
    fit_info = None
    if fit_colors and n_out:
        report(progress, 0.75, "fitting colours to the photo")
        in_camera.colors, fit_info = _fit_colors(in_camera, cam, rgb, valid)
    splats = in_camera.transformed(cam.world_from_cam)
    report(progress, 1.0, f"{len(splats)} splats")

    info: dict[str, Any] = {
        "metric_scale": 1.0,
        "intrinsics_source": "camera",
        "depth_source": "array",
        "far_limit_m": far,
        "max_splats": budget,
        "splat_count": len(splats),
        "splats_per_level": per_level,
        "merges_per_level": merged_per_level,
        "second_layer_splats": int(layer2["o"].shape[0]) if layer2 is not None else 0,
        "pruned_splats": pruned,
        "color_fit": fit_info,
        "masked_depth_pixels": n_bad,
        "notes": notes,
    }
    extra = dict(meta or {})
    info["notes"] = list(extra.pop("notes", [])) + notes
    info.update(extra)
    return Scene(camera=cam, splats=splats, image_linear=rgb_np, depth_m=depth_np, regions=[], meta=info,
                 depth_confidence=depth_conf)
