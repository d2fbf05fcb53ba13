# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage fidelity``: masked metrics, generated-vs-reference reports with a tiny CLIP loaded through
from_pretrained, and the acceptance of issue 14 on the bundled Cycles product capture: leave-one-out renders
of the fused scene reach 28 dB masked PSNR at every held-out angle and beat the frontal single-image
baseline at every other angle."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anchorstage.cli import main
from anchorstage.fidelity import REPORT_FILES, masked_psnr, masked_ssim
from anchorstage.image_io import srgb_to_linear
from tiny_clip import tiny_clip

SAMPLE = Path(__file__).resolve().parents[1] / "sample" / "product"


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_masked_metrics():
    rng = np.random.default_rng(0)
    ref = srgb_to_linear(rng.uniform(0.2, 0.8, (40, 50, 3)).astype(np.float32))
    mask = np.zeros((40, 50), bool)
    mask[10:30, 10:40] = True
    assert masked_psnr(ref, ref, mask) == math.inf and masked_ssim(ref, ref, mask) == pytest.approx(1.0)
    from anchorstage.image_io import linear_to_srgb

    test = ref.copy()
    test[mask] = srgb_to_linear(np.clip(linear_to_srgb(ref[mask]) + 0.1, 0, 1))
    test[~mask] = 0  # outside the mask does not count
    expected = 10 * math.log10(1 / np.mean((np.clip(linear_to_srgb(ref[mask]) + 0.1, 0, 1) - linear_to_srgb(ref[mask])) ** 2))
    assert masked_psnr(test, ref, mask) == pytest.approx(expected, abs=1e-3)
    assert masked_ssim(test, ref, mask) < 1.0


def _frames(tmp_path: Path):
    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for name in ("az000", "az090"):
        shutil.copy(SAMPLE / f"{name}.png", ref / f"{name}.png")  # RGBA: its alpha is the mask
        im = np.asarray(Image.open(SAMPLE / f"{name}.png").convert("RGB")).astype(np.int16)
        noisy = np.clip(im + np.random.default_rng(1).integers(-6, 7, im.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(gen / f"{name}.png")
    return gen, ref


def test_compare_folders_report_with_tiny_clip(clip_dir, tmp_path, capsys):
    gen, ref = _frames(tmp_path)
    out = tmp_path / "report"
    assert main(["fidelity", str(gen), str(ref), "--out", str(out), "--identity-model", str(clip_dir),
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    rep = json.loads((out / "fidelity.json").read_text())
    assert [a["view"] for a in rep["angles"]] == ["az000", "az090"]
    for a in rep["angles"]:
        assert 30 < a["psnr_db"] < 45 and 0.5 < a["ssim"] < 1 and 0.9 < a["identity"] <= 1.0 and a["lpips"] is None
    assert rep["lpips"].startswith("unavailable") and rep["identity"] == "available"
    md = (out / "fidelity.md").read_text()
    assert "| az090 |" in md and "contact_sheet.png" in md
    for png in ("contact_sheet.png", "per_angle.png"):
        with Image.open(out / png) as im:
            assert im.size[0] > 100 and im.size[1] > 100
    # masks from a folder instead of the alpha: a mask covering the whole frame lowers nothing to NaN
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("az000", "az090"):
        Image.new("L", (192, 192), 255).save(masks / f"{name}_mask.png")
    assert main(["fidelity", str(gen), str(ref), "--masks", str(masks), "--out", str(tmp_path / "r2"),
                 "--identity-model", "nobody/no-such-clip"]) == 0
    rep2 = json.loads((tmp_path / "r2" / "fidelity.json").read_text())
    assert rep2["identity"].startswith("unavailable") and rep2["angles"][0]["identity"] is None
    assert "identity column unavailable" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("size", "generated frame 'az090.png' is 96x96 but its reference is 192x192"),
    ("names", "share no frame names"),
    ("empty", "has no images"),
    ("neither", "give GENERATED_DIR and REFERENCE_DIR, or --leave-one-out CAPTURE_DIR"),
    ("both", "not both"),
    ("mask", "has no mask for frame 'az000'"),
])
def test_bad_fidelity_inputs_give_one_line_errors(tmp_path, capsys, case, message):
    gen, ref = _frames(tmp_path)
    args = [str(gen), str(ref)]
    if case == "size":
        Image.open(gen / "az090.png").resize((96, 96)).save(gen / "az090.png")
    elif case == "names":
        for p in gen.iterdir():
            p.rename(gen / f"x_{p.name}")
    elif case == "empty":
        for p in gen.iterdir():
            p.unlink()
    elif case == "neither":
        args = [str(gen)]
    elif case == "both":
        args += ["--leave-one-out", str(SAMPLE)]
    elif case == "mask":
        (tmp_path / "masks").mkdir()
        args += ["--masks", str(tmp_path / "masks")]
    assert main(["fidelity", *args, "--out", str(tmp_path / "report"), "--identity-model", "nobody/none"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "report").exists()


def test_leave_one_out_on_the_cycles_product_capture(clip_dir, tmp_path, capsys):
    """The acceptance: one command, four outputs, 28 dB everywhere, the baseline beaten off the frontal view."""
    out = tmp_path / "loo"
    assert main(["fidelity", "--leave-one-out", str(SAMPLE), "--out", str(out), "--identity-model", str(clip_dir),
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    rep = json.loads((out / "fidelity.json").read_text())
    angles = {a["view"]: a for a in rep["angles"]}
    assert rep["frontal_view"] == "az000" and len(angles) == 8
    assert [a["azimuth_deg"] for a in rep["angles"]] == pytest.approx([0, 45, 90, 135, 180, 225, 270, 315], abs=0.5)
    for name, a in angles.items():
        assert a["psnr_db"] >= 28.0, (name, a)
        assert a["identity"] is not None and a["baseline"]["identity"] is not None
        if name != "az000":
            assert a["psnr_db"] > a["baseline"]["psnr_db"] and a["ssim"] > a["baseline"]["ssim"], (name, a)
    assert rep["summary"]["reaches_target_everywhere"] and rep["summary"]["beats_baseline_off_frontal"]
    line = capsys.readouterr().out.splitlines()[0]
    assert "target 28 dB everywhere: yes" in line and "baseline off the frontal view: yes" in line


def test_leave_one_out_needs_three_views(tmp_path, capsys):
    cap = tmp_path / "cap"
    cap.mkdir()
    for name in ("az000", "az180"):
        for f in SAMPLE.glob(f"{name}*"):
            shutil.copy(f, cap)
    assert main(["fidelity", "--leave-one-out", str(cap), "--out", str(tmp_path / "r")]) == 2
    assert "at least 3 views (got 2)" in capsys.readouterr().err


def test_measure_fidelity_refuses_a_capture_with_generated_frames(tmp_path):
    from anchorstage import InputError
    from anchorstage.stages import measure_fidelity

    gen, _ = _frames(tmp_path)
    with pytest.raises(InputError, match="not both"):
        measure_fidelity(gen, leave_one_out=SAMPLE)
