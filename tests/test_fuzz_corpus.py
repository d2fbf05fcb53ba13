# SPDX-License-Identifier: GPL-3.0-or-later
"""Replay the checked-in fuzz corpus (tests/data/fuzz/): every case is refused quickly with an AnchorStageError."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import anchorstage as a
from anchorstage import AnchorStageError
from anchorstage.export import load_camera_list
from untrusted_support import tiny_scene

CORPUS = Path(__file__).resolve().parent / "data" / "fuzz"
CASES = sorted(p for p in CORPUS.glob("*/*") if p.is_file())


@pytest.fixture(scope="module")
def saved_scene(tmp_path_factory):
    return a.save_scene(tiny_scene(), tmp_path_factory.mktemp("corpus") / "s")


def _readers(case: Path, saved: Path, work: Path):
    kind = case.parent.name
    if kind == "camera":
        return [a.load_camera_json, load_camera_list] if "list" not in case.name else [load_camera_list]
    if kind == "npy":
        return [a.load_depth]
    if kind == "image":
        return [a.load_image, a.load_depth]
    if kind == "exr":
        return [a.read_exr] if "camera" in case.name or "attribute" in case.name else [a.read_exr, a.load_depth,
                                                                                         a.load_image]
    folder = work / "s"
    shutil.copytree(saved, folder)
    shutil.copy(case, folder / ("scene.json" if kind == "scene" else "splats_extra.npz"))
    return [lambda _: a.load_scene(folder)]


def test_the_corpus_is_there():
    kinds = {p.parent.name for p in CASES}
    assert kinds == {"camera", "scene", "npy", "image", "exr", "extra"} and len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_corpus_case_is_refused(case, saved_scene, tmp_path):
    for read in _readers(case, saved_scene, tmp_path):
        t0 = time.perf_counter()
        with pytest.raises(AnchorStageError) as e:
            read(case)
        assert time.perf_counter() - t0 < 3.0, f"{case.name} took too long"
        assert "\n" not in str(e.value)
