# SPDX-License-Identifier: GPL-3.0-or-later
"""Property-based fuzzing of every splat reader: malformed headers and bodies give an
AnchorStageError (a one-line message), never another exception, a hang or a huge allocation."""

from __future__ import annotations

import gzip
import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anchorstage import AnchorStageError, Splats
from anchorstage.splatio import read_splats, write_splats

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
_DIR = tempfile.mkdtemp(prefix="anchorstage-fuzz-")


def _valid(name: str) -> bytes:
    g = torch.Generator().manual_seed(0)
    n = 5
    sp = Splats(means=torch.randn(n, 3, generator=g), quats=torch.randn(n, 4, generator=g),
                scales=torch.rand(n, 3, generator=g) * 0.1 + 0.01, opacities=torch.rand(n, generator=g) * 0.9 + 0.05,
                colors=torch.rand(n, 3, generator=g), sh_rest=torch.randn(n, 3, 3, generator=g) * 0.1)
    path = os.path.join(_DIR, "valid_" + name)
    write_splats(path, sp)
    return open(path, "rb").read()


SEEDS = {name: _valid(name) for name in ("s.ply", "s.compressed.ply", "s.splat", "s.spz")}


def _ascii_ply() -> bytes:
    return (b"ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 2\n" +
            b"".join(f"property float {k}\n".encode() for k in
                     ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                      "rot_0", "rot_1", "rot_2", "rot_3"]) +
            b"property int object_id\nelement extra 1\nproperty uchar flag\nend_header\n" +
            b"0 0 0 0.1 0.2 0.3 1 -2 -2 -2 1 0 0 0 7\n1 1 1 0 0 0 0 -3 -3 -3 0 1 0 0 8\n5\n")


SEEDS["a.ply"] = _ascii_ply()


def _read(name: str, data: bytes) -> None:
    path = os.path.join(_DIR, name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        read_splats(path)
    except AnchorStageError as e:
        assert str(e) and "\n" not in str(e).strip()


@st.composite
def mutated(draw, data: bytes):
    """Truncations, appended bytes, flipped bytes, spliced runs."""
    kind = draw(st.sampled_from(["truncate", "append", "flip", "splice"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "flip":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        return bytes(b)
    i = draw(st.integers(0, len(data)))
    j = draw(st.integers(i, min(len(data), i + 64)))
    return data[:i] + draw(st.binary(max_size=64)) + data[j:]


@st.composite
def mutated_header(draw, data: bytes):
    """PLY header edits: a line dropped, a word dropped or replaced, a count changed."""
    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    body = data[end:]
    i = draw(st.integers(1, len(lines) - 2))
    words = lines[i].split()
    kind = draw(st.sampled_from(["drop_line", "drop_word", "replace_word", "count", "duplicate"]))
    if kind == "drop_line":
        del lines[i]
    elif kind == "drop_word":
        del words[draw(st.integers(0, len(words) - 1))]
        lines[i] = " ".join(words)
    elif kind == "replace_word":
        words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(
            ["", "list", "float", "uint8", "double", "quux", "-1", "1e3", "vertex", "chunk", "x", "99999999999999"]))
        lines[i] = " ".join(words)
    elif kind == "count":
        for j, line in enumerate(lines):
            if line.startswith("element"):
                w = line.split()
                lines[j] = f"element {w[1]} {draw(st.integers(0, 10 ** 13))}"
                break
    else:
        lines.insert(i, lines[i])
    return ("\n".join(lines) + "\n").encode("ascii") + body


@pytest.mark.parametrize("name", ["s.ply", "a.ply", "s.compressed.ply"])
@FUZZ
@given(data=st.data())
def test_ply_readers_survive_malformed_headers(name, data):
    _read(name, data.draw(mutated_header(SEEDS[name])))


@pytest.mark.parametrize("name", ["s.ply", "a.ply", "s.compressed.ply", "s.splat"])
@FUZZ
@given(data=st.data())
def test_readers_survive_malformed_bodies(name, data):
    _read(name, data.draw(mutated(SEEDS[name])))


@FUZZ
@given(data=st.data())
def test_spz_reader_survives_malformed_streams(data):
    inner = gzip.decompress(SEEDS["s.spz"])
    if data.draw(st.booleans()):
        _read("s.spz", gzip.compress(data.draw(mutated(inner))))  # well-formed gzip, malformed payload
    else:
        _read("s.spz", data.draw(mutated(SEEDS["s.spz"])))  # corrupt gzip


@FUZZ
@given(header=st.binary(max_size=300), ext=st.sampled_from([".ply", ".splat", ".spz", ".compressed.ply"]))
def test_arbitrary_bytes_are_refused_cleanly(header, ext):
    _read("r" + ext, (b"ply\n" if ext.endswith("ply") else b"") + header)


def test_the_seeds_are_valid():
    for name, data in SEEDS.items():
        path = os.path.join(_DIR, "check_" + name)
        with open(path, "wb") as f:
            f.write(data)
        assert len(read_splats(path)) in (2, 5)
        assert np.isfinite(read_splats(path).means.numpy()).all()
