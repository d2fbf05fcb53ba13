# SPDX-License-Identifier: GPL-3.0-or-later
"""Resumable farm chunks in Blender: render frames A..B so that each frame file is complete or absent.

Blender's own animation render (``-a``) writes every frame straight to its final name: a Blender
killed while writing leaves a truncated EXR there, and with *Overwrite* off a re-run would keep it.
:func:`render_chunk` renders frame by frame with the scene's engine and output settings into a
hidden temporary name beside the final one, renames the finished file into place, and skips frames
whose final file exists (only a rename ever creates one). Temporary files of a killed run are
removed when the chunk runs again. The batch entry (``batch.py --skip-existing``) calls it; farm jobs
(``anchorstage farm openjd``, the Flamenco job type) run that batch entry through :func:`main`, which
then ends Blender with the batch's exit status (:func:`exit_process`). See docs/farm.md.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

import bpy

__all__ = ["render_chunk", "partial_prefix", "main", "exit_process"]


def partial_prefix(final: str) -> str:
    """The temporary name (without Blender's extension) a frame is written under before its rename."""
    folder, name = os.path.split(final)
    stem = os.path.splitext(name)[0]
    return os.path.join(folder, f".{stem}.partial")


def _clean_leftovers(final: str) -> None:
    for p in glob.glob(glob.escape(partial_prefix(final)) + "*"):
        try:
            os.remove(p)
        except OSError:
            pass


def render_chunk(scene: "bpy.types.Scene", first: int, last: int) -> tuple[list[str], list[int]]:
    """Render frames ``first``..``last`` of ``scene`` to ``scene.render.filepath`` (a ``####`` pattern),
    each frame complete-or-absent, keeping frames already on disk.

    Returns:
        (the files written, the frames skipped because their file already existed).

    Raises:
        RuntimeError: Blender's render operator failed, or wrote no file (nothing renamed into place).
    """
    render = scene.render
    pattern, frame_was = render.filepath, scene.frame_current
    written, skipped = [], []
    try:
        for f in range(first, last + 1):
            final = render.frame_path(frame=f)
            _clean_leftovers(final)
            if os.path.isfile(final):
                skipped.append(f)
                continue
            tmp_base = partial_prefix(final) + f"-{os.getpid()}"
            scene.frame_set(f)
            render.filepath = tmp_base  # no '#': a still is written to exactly this name + extension
            try:
                result = bpy.ops.render.render(write_still=True)
                tmp = tmp_base + render.file_extension if render.use_file_extension else tmp_base
                if result != {"FINISHED"} or not os.path.isfile(tmp):
                    raise RuntimeError(f"frame {f} was not written ({result})")
                os.replace(tmp, final)
            finally:
                render.filepath = pattern
                _clean_leftovers(final)
            written.append(final)
    finally:
        render.filepath = pattern
        scene.frame_set(frame_was)
    return written, skipped


def exit_process(code: int) -> None:
    """End Blender (or the ``bpy`` module's Python) with ``code`` after a farm chunk.

    Blender 4.2 can crash while it shuts down after an AnchorStage node tree was in the scene's
    depsgraph: it unregisters the add-on's node types, then frees the depsgraph's copy of the tree
    through their stale callbacks (fixed by 4.5). The frames are written by then, but a farm would see
    the chunk fail. Before 4.5 the process therefore ends at once, after flushing its output and
    removing Blender's session temporary folder (what the normal shutdown would have removed).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if bpy.app.version < (4, 5, 0):
        tmp = bpy.app.tempdir
        if tmp and os.path.basename(os.path.normpath(tmp)).startswith("blender_"):
            shutil.rmtree(tmp, ignore_errors=True)
        os._exit(code)
    sys.exit(code)


def main(argv: list[str]) -> None:
    """A farm chunk: the batch entry with ``argv`` (``--frames A-B --out DIR --skip-existing ...``),
    then the process ends with its exit status (0 done, 2 bad input, 1 internal error)."""
    from .batch import main as batch_main

    exit_process(batch_main(argv))
