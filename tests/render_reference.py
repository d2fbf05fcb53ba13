# SPDX-License-Identifier: GPL-3.0-or-later
"""A deliberately naive, per-pixel reading of gsplat's classic forward pass (tests only).

Everything here follows gsplat 1.5's CUDA kernels line by line (projection with the clamped
Jacobian, 0.3 px low-pass, opacity-tightened 3.33-sigma box culling, 16x16 tiles, front to
back, alpha = min(ALPHA_MAX, o·exp(-sigma)), skip < 1/255, stop before T <= 1e-4), in float64
and with Python loops, so it shares no code with the vectorized rasterizer it checks.
"""

from __future__ import annotations

import math

import numpy as np


def _rotmat(q):
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def naive_render(means, quats, scales, opacities, features, classes, num_classes, viewmat, K, W, H,
                 near, far, alpha_max=0.99, eps2d=0.3, tile=16):
    """Returns (features [H, W, F] sums, alpha [H, W], ED depth [H, W], class argmax [H, W])."""
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    proj = []
    for i in range(len(means)):
        pc = R @ means[i] + t
        x, y, z = pc
        if z < near or z > far or opacities[i] < 1 / 255:
            continue
        lxp = (W - cx) / fx + 0.3 * 0.5 * W / fx
        lxn = cx / fx + 0.3 * 0.5 * W / fx
        lyp = (H - cy) / fy + 0.3 * 0.5 * H / fy
        lyn = cy / fy + 0.3 * 0.5 * H / fy
        tx = z * min(lxp, max(-lxn, x / z))
        ty = z * min(lyp, max(-lyn, y / z))
        J = np.array([[fx / z, 0, -fx * tx / z ** 2], [0, fy / z, -fy * ty / z ** 2]])
        M = _rotmat(quats[i]) * scales[i][None, :]
        cov = J @ R @ M @ M.T @ R.T @ J.T + eps2d * np.eye(2)
        det = np.linalg.det(cov)
        if det <= 0:
            continue
        ext = min(3.33, math.sqrt(2 * math.log(opacities[i] * 255)))
        rx, ry = math.ceil(ext * math.sqrt(cov[0, 0])), math.ceil(ext * math.sqrt(cov[1, 1]))
        u, v = fx * x / z + cx, fy * y / z + cy
        if u + rx <= 0 or u - rx >= W or v + ry <= 0 or v - ry >= H:
            continue
        inv = np.linalg.inv(cov)
        proj.append((z, i, u, v, inv, rx, ry))
    proj.sort(key=lambda p: (p[0], p[1]))
    F = features.shape[1]
    out = np.zeros((H, W, F))
    alpha = np.zeros((H, W))
    dsum = np.zeros((H, W))
    cls = np.zeros((H, W), dtype=np.int64)
    for py in range(H):
        for px in range(W):
            T = 1.0
            cw = np.zeros(max(num_classes, 1))
            tx_, ty_ = px // tile, py // tile
            for z, i, u, v, inv, rx, ry in proj:
                # tiles touched by the box (gsplat isect_tiles)
                if not (math.floor((u - rx) / tile) <= tx_ < math.ceil((u + rx) / tile)
                        and math.floor((v - ry) / tile) <= ty_ < math.ceil((v + ry) / tile)):
                    continue
                dx, dy = u - (px + 0.5), v - (py + 0.5)
                sigma = 0.5 * (inv[0, 0] * dx * dx + inv[1, 1] * dy * dy) + inv[0, 1] * dx * dy
                a = min(alpha_max, opacities[i] * math.exp(-sigma))
                if sigma < 0 or a < 1 / 255:
                    continue
                nt = T * (1 - a)
                if nt <= 1e-4:
                    break
                w = a * T
                out[py, px] += w * features[i]
                dsum[py, px] += w * z
                if num_classes:
                    cw[classes[i]] += w
                T = nt
            alpha[py, px] = 1 - T
            cw[0] += T
            cls[py, px] = int(np.argmax(cw))
    depth = dsum / np.maximum(alpha, 1e-10)
    return out, alpha, depth, cls
