# SPDX-License-Identifier: GPL-3.0-or-later
"""Building remote jobs and reading their answers (the client side of :mod:`anchorstage.remote.handler`).

A client (the Blender add-on, a script) turns a core object into a job ``input`` here, sends it with any
HTTP client (the add-on's is ``urllib`` only), and reads the answer's files back through the validated
readers into a folder of its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..errors import InputError
from .payload import check_name, decode_folder, encode_folder

if TYPE_CHECKING:  # pragma: no cover
    from ..conditioning import Conditioning

__all__ = ["generate_job", "save_answer", "read_generation"]


def generate_job(cond: "Conditioning", settings: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The ``input`` of a ``generate`` job: the conditioning folder's files and the sampling knobs.

    Args:
        cond: the conditioning stack.
        settings: any of :data:`anchorstage.generation.REQUEST_KNOBS` (steps, guidance_scale, ...).
    """
    from ..conditioning import save_conditioning

    with tempfile.TemporaryDirectory(prefix="anchorstage-send-") as tmp:
        folder = save_conditioning(cond, Path(tmp) / "conditioning")
        job: dict[str, Any] = {"task": "generate", "conditioning": encode_folder(folder)}
    if settings:
        job["settings"] = dict(settings)
    return job


def save_answer(output: Mapping[str, Any], out_dir: str | os.PathLike, *, expected: Optional[tuple[str, ...]] = None) -> Path:
    """Write a job answer's ``files`` into ``out_dir`` (a new or empty folder; names checked).

    Raises:
        InputError: a malformed answer, an unsafe or unexpected file name.
    """
    if not isinstance(output, Mapping) or not isinstance(output.get("files"), Mapping):
        raise InputError("remote answer holds no files")
    for name in output["files"]:
        check_name(name, "remote answer", expected)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"remote answer: folder {str(out)!r} is not empty")
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    return decode_folder({"files": output["files"]}, out, "remote answer", required=expected or ())


def _settings_from_record(doc: Any) -> Any:
    """The :class:`~anchorstage.generation.GenerationSettings` a worker reports in generation.json."""
    from ..diffusion import MemorySettings, ModelSet
    from ..generation import GenerationSettings

    try:
        st = doc["settings"]
        m = st["models"]
        models = ModelSet(**{k: str(m.get(k) or "") for k in ("family", "model", "controlnet_depth", "controlnet_normal",
                                                               "ip_adapter", "ip_adapter_weight", "image_encoder")})
        return GenerationSettings(models=models, steps=int(st["steps"]), guidance_scale=float(st["guidance_scale"]),
                                  controlnet_scale=tuple(float(v) for v in st["controlnet_scale"]),
                                  ip_adapter_scale=float(st["ip_adapter_scale"]), max_side=int(st["max_side"]),
                                  memory=MemorySettings(**{k: str(v) for k, v in st["memory"].items()}))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"remote answer: generation.json does not describe its settings ({type(e).__name__}: {e})") from None


def read_generation(output: Mapping[str, Any], out_dir: str | os.PathLike, conditioning: "Conditioning") -> Any:
    """A ``generate`` answer written into ``out_dir`` and read back through the validated readers.

    Args:
        output: the job's output.
        out_dir: a new or empty folder for its files.
        conditioning: the conditioning the job was sent.

    Returns:
        The :class:`~anchorstage.generation.Generation` (the worker's notes, timing and settings).

    Raises:
        InputError: a malformed answer, or one that breaks the promise (a locked or unmasked pixel
            differs from the conditioning's image).
    """
    import numpy as np

    from ..exr import read_exr
    from ..generation import GENERATION_FILES, Generation
    from ..image_io import open_pillow_image
    from ..input_files import open_input
    from ..safe_json import load_json

    folder = save_answer(output, out_dir, expected=GENERATION_FILES)
    exr = read_exr(folder / "generated.exr")
    if "color" not in exr or exr["color"].shape != conditioning.image.shape:
        raise InputError("remote answer: generated.exr holds no Combined colour of the conditioning's size")
    f, _ = open_input(folder / "generated_mask.png", "remote answer generated_mask.png")
    with f, open_pillow_image(f, "remote answer generated_mask.png") as im:
        generated = np.asarray(im.convert("L")) > 127
    if generated.shape != conditioning.mask.shape:
        raise InputError("remote answer: generated_mask.png is not the conditioning's size")
    image = np.ascontiguousarray(exr["color"], dtype=np.float32)
    keep = conditioning.locked | ~generated
    if not np.array_equal(image[keep], conditioning.image[keep]):
        raise InputError("remote answer: the worker changed locked or unmasked pixels; refusing its frame")
    doc = load_json(folder / "generation.json", "remote answer generation.json")
    summary = output.get("summary") if isinstance(output.get("summary"), Mapping) else {}
    return Generation(image=image, generated=generated, conditioning=conditioning, settings=_settings_from_record(doc),
                      notes=[str(n) for n in (output.get("notes") or [])],
                      step_s=float(summary.get("step_s", 0.0) or 0.0), steps_run=int(summary.get("steps_run", 0) or 0))
