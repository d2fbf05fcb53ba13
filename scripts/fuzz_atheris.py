# SPDX-License-Identifier: GPL-3.0-or-later
"""Coverage-guided fuzzing of AnchorStage's readers with atheris (libFuzzer for Python).

Optional and not part of the test suite (the suite fuzzes with hypothesis): run it when a reader
changes, for minutes or hours. Any exception other than AnchorStageError is a crash: libFuzzer
writes the input to ``crash-<hash>`` in the current folder; add it to ``tests/data/fuzz/`` once fixed.

    pip install atheris
    mkdir -p /tmp/corpus/camera && cp tests/data/fuzz/camera/* /tmp/corpus/camera/   # seeds (libFuzzer adds to it)
    PYTHONPATH=core python scripts/fuzz_atheris.py camera -max_total_time=300 /tmp/corpus/camera

Targets: ``camera`` (camera JSON and camera lists), ``scene`` (scene.json of a small scene folder),
``extra`` (splats_extra.npz of that folder), ``npy`` and ``png`` (depth maps), ``image`` (photos:
PNG/JPEG/TIFF/WebP by content), ``exr`` (read_exr, load_depth, load_image). Arguments after the
target go to libFuzzer (``-help=1`` lists them); a folder argument seeds and grows the corpus.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

TARGETS = ("camera", "scene", "extra", "npy", "png", "image", "exr")


def _make_target(name: str, work: Path) -> Callable[[bytes], None]:
    import anchorstage as a
    from anchorstage import AnchorStageError
    from anchorstage.export import load_camera_list

    suffix = {"camera": ".json", "npy": ".npy", "png": ".png", "image": ".img", "exr": ".exr"}.get(name, "")
    path = work / f"input{suffix}"
    readers: list[Callable[[], object]]
    if name in ("scene", "extra"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from untrusted_support import tiny_scene

        folder = a.save_scene(tiny_scene(), work / "s")
        path = folder / ("scene.json" if name == "scene" else "splats_extra.npz")
        readers = [lambda: a.load_scene(folder)]
    elif name == "camera":
        readers = [lambda: a.load_camera_json(path), lambda: load_camera_list(path)]
    elif name in ("npy", "png"):
        readers = [lambda: a.load_depth(path)]
    elif name == "image":
        readers = [lambda: a.load_image(path)]
    else:
        readers = [lambda: a.read_exr(path), lambda: a.load_depth(path), lambda: a.load_image(path)]

    def target(data: bytes) -> None:
        path.write_bytes(data)
        for read in readers:
            try:
                read()
            except AnchorStageError:
                pass

    return target


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz_atheris.py {{{','.join(TARGETS)}}} [libFuzzer options] [corpus folder]")
    import atheris

    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=["anchorstage"]):
        import anchorstage  # noqa: F401
    with tempfile.TemporaryDirectory(prefix="anchorstage-fuzz-") as d:
        atheris.Setup(sys.argv, _make_target(name, Path(d)))
        atheris.Fuzz()


if __name__ == "__main__":
    main()
