# SPDX-License-Identifier: GPL-3.0-or-later
"""An empty option value on the command line is an error (exit 2, one line), never "not given"."""

from __future__ import annotations

import pytest

from anchorstage.cli import main


@pytest.mark.parametrize("argv, option", [
    (["export", "stage", "--cameras", "cams.json", "--out", "comp", "--frames", ""], "--frames"),
    (["camera", "shot.json", "--out", ""], "--out"),
    (["camera", " "], "camera_json"),
    (["render", "stage", "--camera", "", "--out", "f.exr"], "--camera"),
    (["reconstruct", "photo.png", "--out", "stage", "--depth", ""], "--depth"),
    (["reconstruct", "photo.png", "--out", "stage", "--depth-model", "  "], "--depth-model"),
])
def test_empty_values_are_refused_before_any_work(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"error: {option} must not be empty") and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
