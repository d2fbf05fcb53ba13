# SPDX-License-Identifier: GPL-3.0-or-later
"""gsplat CUDA backend against the torch CPU oracle (skipped without CUDA and gsplat)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anchorstage import render
from anchorstage.raster_gsplat import available

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not available(), reason="needs a CUDA device and gsplat")]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_cuda_matches_cpu_oracle():
    from bench_render import stage_splats

    sp, ref = stage_splats(200_000)
    cam = ref.with_resolution(640, 360).truck(0.3).orbit((0, 0, 1.2), 6.0, 3.0)
    cpu = render(sp, cam, backend="torch", device="cpu")
    gpu = {k: v.cpu() for k, v in render(sp.to("cuda"), cam, backend="gsplat", device="cuda").items()}
    assert set(cpu) == set(gpu)
    mse = float(((gpu["color"] - cpu["color"]) ** 2).mean())
    assert 10 * np.log10(1.0 / max(mse, 1e-20)) >= 40.0
    hit = (cpu["alpha"] > 0.5) & (gpu["alpha"] > 0.5)
    rel = ((gpu["depth"] - cpu["depth"]).abs() / cpu["depth"])[hit]
    assert float(rel.median()) < 0.005
    assert float((gpu["alpha"] - cpu["alpha"]).abs().mean()) < 1e-2
    assert float((gpu["region"] == cpu["region"]).float().mean()) > 0.99
    assert float((gpu["void"] == cpu["void"]).float().mean()) > 0.99
    cos = (gpu["normal"] * cpu["normal"]).sum(-1)[hit]
    assert float(cos.median()) > 0.999


def test_auto_picks_gsplat_on_cuda():
    from bench_render import stage_splats

    sp, ref = stage_splats(20_000)
    out = render(sp, ref.with_resolution(160, 90), ["color", "depth"], device="cuda")
    assert out["color"].is_cuda and torch.isfinite(out["depth"]).all()


def test_view_dependent_colour_on_cuda_matches_the_cpu():
    from bench_render import stage_splats, with_sh

    sp, ref = stage_splats(100_000)
    sp = with_sh(sp, 3)
    cam = ref.with_resolution(320, 180).truck(0.3).orbit((0, 0, 1.2), 6.0, 3.0)
    cpu = render(sp, cam, ["color"], backend="torch", device="cpu")["color"]
    gpu = render(sp.to("cuda"), cam, ["color"], backend="gsplat", device="cuda")["color"].cpu()
    mse = float(((gpu - cpu) ** 2).mean())
    assert 10 * np.log10(1.0 / max(mse, 1e-20)) >= 40.0
    sp.sh_rest = None  # the SH terms make a visible difference on the GPU too
    flat = render(sp.to("cuda"), cam, ["color"], backend="gsplat", device="cuda")["color"].cpu()
    assert float((flat - gpu).abs().mean()) > 1e-3
