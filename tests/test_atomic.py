# SPDX-License-Identifier: GPL-3.0-or-later
"""Atomic outputs get the mode a plain open()/mkdir would give under the user's umask."""

import os
import stat

import pytest

from anchorstage.atomic import atomic_dir, atomic_file


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_files_and_folders_follow_the_umask(tmp_path, umask_027):
    with atomic_file(tmp_path / "frame.exr") as tmp:
        tmp.write_bytes(b"x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(tmp_path / "frame.exr") == _mode(plain) == 0o640
    with atomic_dir(tmp_path / "scene") as tmp:
        (tmp / "scene.json").write_text("{}")
    os.mkdir(tmp_path / "plain_dir")
    assert _mode(tmp_path / "scene") == _mode(tmp_path / "plain_dir") == 0o750


def test_a_wide_umask_gives_group_and_world_read(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "a.png") as tmp:
            tmp.write_bytes(b"x")
        assert _mode(tmp_path / "a.png") == 0o644
    finally:
        os.umask(old)
