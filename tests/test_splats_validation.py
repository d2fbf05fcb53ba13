# SPDX-License-Identifier: GPL-3.0-or-later
"""Splats refuse non-finite parameters, wrong dtypes and mixed devices with a message saying how many."""

from __future__ import annotations

import pytest
import torch

from anchorstage import InputError, Splats, render
from untrusted_support import tiny_camera, tiny_splats


def _fields(sp: Splats) -> dict[str, torch.Tensor]:
    return {k: getattr(sp, k).clone() for k in ("means", "quats", "scales", "opacities", "colors")}


@pytest.mark.parametrize("field", ["means", "quats", "scales", "opacities", "colors"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_parameters_are_errors_not_black_frames(field, value):
    f = _fields(tiny_splats(50))
    f[field][3] = value
    f[field][7] = value
    with pytest.raises(InputError, match=rf"2 of 50 splats have non-finite parameters \(NaN or inf\) in {field} \(2\)"):
        Splats(**f)


def test_message_counts_splats_and_fields():
    f = _fields(tiny_splats(20))
    f["scales"][0, 1] = float("nan")
    f["opacities"][0] = float("nan")
    f["colors"][5] = float("inf")
    with pytest.raises(InputError, match=r"2 of 20 splats .* in scales \(1\), opacities \(1\), colors \(1\)"):
        Splats(**f)


def test_types_dtypes_and_devices():
    f = _fields(tiny_splats(10))
    with pytest.raises(InputError, match="means must be a torch.Tensor or a numpy array"):
        Splats(**{**f, "means": f["means"].tolist()})
    with pytest.raises(InputError, match="quats must be a numpy array, as means is"):
        Splats(**{**f, "means": f["means"].numpy()})
    with pytest.raises(InputError, match="means must be a torch.Tensor, as means is|quats must be a torch.Tensor, as means is"):
        Splats(**{**f, "quats": f["quats"].numpy()})
    with pytest.raises(InputError, match="opacities must be a floating-point array"):
        Splats(**{**f, "opacities": torch.ones(10, dtype=torch.int64)})
    with pytest.raises(InputError, match="region_ids must be an integer array"):
        Splats(**f, region_ids=torch.zeros(10))
    with pytest.raises(InputError, match=r"quats must have shape \[10, 4\]"):
        Splats(**{**f, "quats": f["quats"][:, :3]})
    if torch.device("meta") is not None:
        with pytest.raises(InputError, match="is on meta but means are on cpu"):
            Splats(**{**f, "colors": f["colors"].to("meta")})


def test_empty_splats_render_an_empty_frame():
    sp = Splats(**{k: v[:0] for k, v in _fields(tiny_splats(4)).items()})
    out = render(sp, tiny_camera(), ["alpha"], device="cpu")
    assert float(out["alpha"].max()) == 0.0
