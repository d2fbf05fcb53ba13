# SPDX-License-Identifier: GPL-3.0-or-later
"""The committed product capture (sample/product) is what scripts/make_product_sample.py renders with
Cycles: same cameras, same exact depth, same RGBA pixels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample" / "product"


def test_sample_capture_is_reproduced_by_its_script(tmp_path):
    pytest.importorskip("bpy")
    out = tmp_path / "product"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "make_product_sample.py"), "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    assert [v["azimuth_deg"] for v in manifest["views"]] == [45.0 * k for k in range(8)]
    for v in manifest["views"]:
        name = v["name"]
        new_cam, old_cam = (json.loads((d / f"{name}_camera.json").read_text()) for d in (out, SAMPLE))
        np.testing.assert_allclose(new_cam.pop("matrix_world"), old_cam.pop("matrix_world"), atol=1e-7)
        assert new_cam == old_cam
        np.testing.assert_array_equal(np.load(out / f"{name}_depth.npy"), np.load(SAMPLE / f"{name}_depth.npy"))
        new, old = (np.asarray(Image.open(d / f"{name}.png")).astype(int) for d in (out, SAMPLE))
        assert new.shape == old.shape == (192, 192, 4)
        np.testing.assert_array_equal(new[..., 3], old[..., 3])
        assert np.abs(new - old).max() <= 2, name
