# SPDX-License-Identifier: GPL-3.0-or-later
"""The conditioning stack of a generation: one typed object, saved as a folder.

A :class:`Conditioning` holds everything a generative model is conditioned on for one frame: the
refreshed witness (the picture to keep), the proxy's metric depth and normals, the mask of what to
generate (the void), the locked pixels (never generated), the camera, the prompts, the seed and the
strength, and the reference photo (for an IP-Adapter). :func:`conditioning_from_refresh` builds it
from a witness refresh; the CLI, the Blender node and the remote worker exchange it as a folder:

=====================  =========================================================================
file                   content
=====================  =========================================================================
``conditioning.json``  format and version, size, prompts, seed, strength, metadata
``image.exr``          the refreshed witness, linear Rec.709, float32 ``R G B``
``depth.exr``          planar depth in metres along the camera's z, float32 ``Z`` (inf: sky / unknown)
``normal.exr``         unit normals in the camera frame (OpenCV: x right, y down, z forward), float32
                       ``X Y Z``, facing the camera
``mask.png``           8-bit, white = generate (the void)
``locked.png``         8-bit, white = locked (kept bit-exact)
``camera.json``        the camera (docs/conventions.md)
``reference.exr``      optional: the reference photo, linear float32 ``R G B``
=====================  =========================================================================

Everything is lossless, so a conditioning read back from its folder is bit-identical to the one
saved (a remote worker therefore generates exactly what a local run does). The folder is read
through the validated readers (:mod:`anchorstage.safe_json`, :mod:`anchorstage.exr_input`, the
camera and image readers): file names are fixed (nothing in ``conditioning.json`` names a path),
sizes are checked before pixels are read, and every value is checked again by the object itself.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .camera import Camera
from .diffusion import DEFAULT_NEGATIVE_PROMPT
from .errors import InputError, OutputError
from .exr import write_channels

if TYPE_CHECKING:  # pragma: no cover
    from .scene import Scene
    from .witness import Refresh

__all__ = ["Conditioning", "conditioning_from_refresh", "save_conditioning", "load_conditioning", "is_conditioning_dir",
           "CONDITIONING_FILES", "FORMAT", "FORMAT_VERSION", "MAX_PROMPT_CHARS", "REFERENCE_MAX_SIDE"]

FORMAT = "anchorstage-conditioning"
FORMAT_VERSION = 1
#: Longest prompt kept (characters); CLIP reads 77 tokens anyway.
MAX_PROMPT_CHARS = 4096
#: The reference photo is stored at most this large on its long side (IP-Adapters see 224 px).
REFERENCE_MAX_SIDE = 1024
#: The files of a conditioning folder (``reference.exr`` is optional).
CONDITIONING_FILES = ("conditioning.json", "image.exr", "depth.exr", "normal.exr", "mask.png", "locked.png",
                      "camera.json", "reference.exr")
_MAX_SEED = 2 ** 63 - 1


@dataclass
class Conditioning:
    """What one generated frame is conditioned on (see the module docstring).

    Attributes:
        image: [H, W, 3] float32 linear Rec.709: the refreshed witness (kept outside ``mask``).
        depth_m: [H, W] float32 planar depth in metres along the camera's z (inf: sky or unknown).
        normal_cam: [H, W, 3] float32 unit normals in the camera frame (OpenCV), facing the camera.
        mask: [H, W] bool: pixels to generate (the void map).
        locked: [H, W] bool: locked pixels; never generated, bit-identical to ``image`` in the result.
        camera: the frame's camera (OpenCV frame, metres; its resolution is W x H).
        style_prompt: the text prompt.
        negative_prompt: what to avoid.
        seed: random seed, an integer in [0, 2**63).
        strength: how far the masked area is re-noised, in (0, 1] (1: generate from scratch).
        reference: [h, w, 3] float32 linear reference photo for an IP-Adapter, or None.
        meta: JSON-ready facts (source scene, locked region ids, confidence, ...).
    """

    image: np.ndarray
    depth_m: np.ndarray
    normal_cam: np.ndarray
    mask: np.ndarray
    locked: np.ndarray
    camera: Camera
    style_prompt: str = ""
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    seed: int = 0
    strength: float = 1.0
    reference: Optional[np.ndarray] = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from .limits import check_count

        if not isinstance(self.camera, Camera):
            raise InputError(f"conditioning: camera must be an anchorstage.Camera (got {type(self.camera).__name__})")
        w, h = self.camera.resolution
        check_count("image_pixels", w * h, f"conditioning ({w}x{h})")
        self.image = _float_array("image", self.image, (h, w, 3))
        if not np.all(np.isfinite(self.image)):
            raise InputError("conditioning: image has non-finite values")
        self.depth_m = _float_array("depth_m", self.depth_m, (h, w))
        if np.isnan(self.depth_m).any() or (self.depth_m <= 0).any() or np.isneginf(self.depth_m).any():
            raise InputError("conditioning: depth_m must be > 0 metres or +inf (sky) everywhere")
        self.normal_cam = _float_array("normal_cam", self.normal_cam, (h, w, 3))
        if not np.all(np.isfinite(self.normal_cam)):
            raise InputError("conditioning: normal_cam has non-finite values")
        self.mask = _bool_array("mask", self.mask, (h, w))
        self.locked = _bool_array("locked", self.locked, (h, w))
        for name in ("style_prompt", "negative_prompt"):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise InputError(f"conditioning: {name} must be a string (got {type(v).__name__})")
            if len(v) > MAX_PROMPT_CHARS:
                raise InputError(f"conditioning: {name} is {len(v):,} characters; at most {MAX_PROMPT_CHARS:,}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or not 0 <= int(self.seed) <= _MAX_SEED:
            raise InputError(f"conditioning: seed must be an integer in [0, 2**63) (got {self.seed!r})")
        self.seed = int(self.seed)
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float, np.floating)) \
                or not math.isfinite(float(self.strength)) or not 0.0 < float(self.strength) <= 1.0:
            raise InputError(f"conditioning: strength must be a number in (0, 1] (got {self.strength!r})")
        self.strength = float(self.strength)
        if self.reference is not None:
            ref = np.asarray(self.reference)
            if ref.ndim != 3 or ref.shape[2] != 3 or ref.shape[0] < 1 or ref.shape[1] < 1:
                raise InputError(f"conditioning: reference must be [h, w, 3] (got {list(ref.shape)})")
            check_count("image_pixels", ref.shape[0] * ref.shape[1], "conditioning reference")
            self.reference = _float_array("reference", ref, ref.shape)
            if not np.all(np.isfinite(self.reference)):
                raise InputError("conditioning: reference has non-finite values")
        if not isinstance(self.meta, dict):
            raise InputError(f"conditioning: meta must be a dict (got {type(self.meta).__name__})")
        try:
            json.dumps(self.meta, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InputError(f"conditioning: meta must be JSON-serialisable: {e}") from None

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    def header(self) -> dict[str, Any]:
        """The JSON of ``conditioning.json``."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "size": [self.width, self.height],
                "style_prompt": self.style_prompt, "negative_prompt": self.negative_prompt, "seed": self.seed,
                "strength": self.strength, "reference": self.reference is not None,
                "mask_px": int(self.mask.sum()), "locked_px": int(self.locked.sum()), "meta": self.meta}


def _float_array(name: str, a: Any, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise InputError(f"conditioning: {name} must be a numpy array (got {type(a).__name__})")
    if a.shape != tuple(shape):
        raise InputError(f"conditioning: {name} is {list(a.shape)}, expected {list(shape)} (the camera's size)")
    if a.dtype.kind != "f":
        raise InputError(f"conditioning: {name} must hold floats (got {a.dtype})")
    return np.ascontiguousarray(a, dtype=np.float32)


def _bool_array(name: str, a: Any, shape: tuple[int, int]) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise InputError(f"conditioning: {name} must be a numpy array (got {type(a).__name__})")
    if a.shape != shape:
        raise InputError(f"conditioning: {name} is {list(a.shape)}, expected {list(shape)} (the camera's size)")
    if a.dtype != bool:
        raise InputError(f"conditioning: {name} must be a bool array (got {a.dtype})")
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------------------------------------- from a refresh
def _reference(scene: "Scene", max_side: int) -> np.ndarray:
    """The scene's photo, at most ``max_side`` on its long side (area average)."""
    img = np.asarray(scene.image_linear, np.float32)
    h, w = img.shape[:2]
    f = int(math.ceil(max(h, w) / max_side))
    if f <= 1:
        return img.copy()
    hh, ww = h // f * f, w // f * f
    return img[:hh, :ww].reshape(hh // f, f, ww // f, f, 3).mean(axis=(1, 3)).astype(np.float32)


def conditioning_from_refresh(refresh: "Refresh", scene: Optional["Scene"] = None, *, style_prompt: str = "",
                              negative_prompt: str = DEFAULT_NEGATIVE_PROMPT, seed: int = 0, strength: float = 1.0,
                              reference: bool = True) -> Conditioning:
    """The conditioning of a refreshed frame.

    Args:
        refresh: a :class:`~anchorstage.witness.Refresh` (:func:`anchorstage.refresh`).
        scene: the stage it was refreshed from; gives the reference photo (at most
            :data:`REFERENCE_MAX_SIDE` on its long side) and the scene's facts in ``meta``.
        style_prompt, negative_prompt, seed, strength: see :class:`Conditioning`.
        reference: include the scene's photo as the reference (needs ``scene``).

    Returns:
        A :class:`Conditioning`: ``image`` the refreshed witness, ``depth_m`` what each pixel shows
        (in the void: the background the fill continued), ``normal_cam`` that depth's normals,
        ``mask`` the void less the locks, ``locked`` the locks.
    """
    from .diffusion import normals_from_depth
    from .witness import Refresh

    if not isinstance(refresh, Refresh):
        raise InputError(f"conditioning: refresh must be an anchorstage.Refresh (got {type(refresh).__name__})")
    depth = refresh.proxy_depth_m
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf).astype(np.float32)
    meta: dict[str, Any] = {"locked_regions": list(refresh.locked_regions), "inpaint": refresh.inpaint,
                            "confidence": round(float(refresh.confidence.value), 6),
                            "confidence_level": refresh.confidence.level}
    if scene is not None and isinstance(scene.meta, dict) and scene.meta.get("source_image"):
        meta["source_image"] = str(scene.meta["source_image"])
    return Conditioning(image=np.asarray(refresh.witness, np.float32), depth_m=depth,
                        normal_cam=normals_from_depth(depth, refresh.camera), mask=refresh.void & ~refresh.locks,
                        locked=refresh.locks.copy(), camera=refresh.camera, style_prompt=style_prompt,
                        negative_prompt=negative_prompt, seed=seed, strength=strength,
                        reference=_reference(scene, REFERENCE_MAX_SIDE) if (reference and scene is not None) else None,
                        meta=meta)


# ---------------------------------------------------------------------------------------------- folder
def is_conditioning_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a ``conditioning.json``."""
    return (Path(path) / "conditioning.json").is_file()


def save_conditioning(cond: Conditioning, path: str | os.PathLike) -> Path:
    """Write a conditioning folder atomically (a folder that holds one is replaced).

    Returns:
        The folder.

    Raises:
        OutputError: the folder holds something else, or cannot be written.
        InputError: ``cond`` is not a Conditioning.
    """
    from PIL import Image

    from .atomic import atomic_dir
    from .camera import save_camera_json
    from .input_files import path_arg

    if not isinstance(cond, Conditioning):
        raise InputError(f"save_conditioning needs a Conditioning (got {type(cond).__name__})")
    final = path_arg(path, "save_conditioning: path")
    if final.is_dir() and any(final.iterdir()) and not is_conditioning_dir(final):
        raise OutputError(f"conditioning folder {str(final)!r} is not empty and holds no conditioning; refusing to "
                          "write into it (choose another folder)")
    with atomic_dir(final, replace=True, what="conditioning folder") as tmp:
        write_channels(tmp / "image.exr", {c: cond.image[..., i] for i, c in enumerate("RGB")}, "conditioning file")
        write_channels(tmp / "depth.exr", {"Z": cond.depth_m}, "conditioning file")
        write_channels(tmp / "normal.exr", {c: cond.normal_cam[..., i] for i, c in enumerate("XYZ")}, "conditioning file")
        if cond.reference is not None:
            write_channels(tmp / "reference.exr", {c: cond.reference[..., i] for i, c in enumerate("RGB")}, "conditioning file")
        for name, m in (("mask.png", cond.mask), ("locked.png", cond.locked)):
            Image.fromarray(m.astype(np.uint8) * 255).save(tmp / name, format="PNG")
        save_camera_json(tmp / "camera.json", cond.camera)
        (tmp / "conditioning.json").write_text(json.dumps(cond.header(), indent=2), encoding="utf-8")
    return final


def _read_planes(folder: Path, name: str, chans: str, size: tuple[int, int], where: str) -> np.ndarray:
    from .exr_input import read_exr_channels

    p = folder / name
    if not p.exists():
        raise InputError(f"{where}: {name} is missing")
    got = read_exr_channels(p, f"{where}: {name}").channels  # headers checked before pixels
    missing = [c for c in chans if c not in got]
    if missing:
        raise InputError(f"{where}: {name} lacks channel(s) {', '.join(missing)} (has {', '.join(sorted(got))})")
    planes = [np.asarray(got[c]) for c in chans]
    if size and planes[0].shape != (size[1], size[0]):
        raise InputError(f"{where}: {name} is {planes[0].shape[1]}x{planes[0].shape[0]}, the conditioning is "
                         f"{size[0]}x{size[1]}")
    if any(pl.dtype != np.float32 for pl in planes):
        raise InputError(f"{where}: {name} must hold 32-bit float channels (a lossless conditioning)")
    return planes[0] if len(planes) == 1 else np.stack(planes, -1)


def _read_mask(folder: Path, name: str, size: tuple[int, int], where: str) -> np.ndarray:
    from .image_io import open_pillow_image
    from .input_files import open_input

    p = folder / name
    what = f"{where}: {name}"
    if not p.exists():
        raise InputError(f"{what} is missing")
    f, _ = open_input(p, what)
    try:
        with f, open_pillow_image(f, what) as im:
            if im.size != size:
                raise InputError(f"{what} is {im.size[0]}x{im.size[1]}, the conditioning is {size[0]}x{size[1]}")
            return np.asarray(im.convert("L")) > 127
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{what} cannot be read: {e}") from None


def load_conditioning(path: str | os.PathLike) -> Conditioning:
    """Read a conditioning folder written by :func:`save_conditioning`.

    Raises:
        InputError: not a folder, a missing or malformed file, a newer format version, sizes that do
            not agree, values out of range (every reader checks before it allocates).
    """
    from . import safe_json as jf
    from .camera import load_camera_json
    from .input_files import path_arg
    from .limits import check_count

    folder = path_arg(path, "conditioning folder")
    where = f"conditioning folder {str(folder)!r}"
    if not folder.is_dir():
        raise InputError(f"{where} is not a folder")
    if not (folder / "conditioning.json").exists():
        raise InputError(f"{where} holds no conditioning.json")
    doc = jf.load_json(folder / "conditioning.json", f"{where}: conditioning.json")
    src = f"{where}: conditioning.json"
    if not isinstance(doc, dict):
        raise InputError(f"{src} must hold a JSON object")
    if jf.string(doc, "format", src) != FORMAT:
        raise InputError(f"{src}: format must be {FORMAT!r}")
    version = jf.integer(doc, "format_version", src, minimum=1)
    if version > FORMAT_VERSION:
        raise InputError(f"{src}: format_version {version} is newer than this AnchorStage reads ({FORMAT_VERSION}); "
                         "upgrade AnchorStage")
    size = jf.array(doc, "size", src, length=2)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise InputError(f"{src}: size must be [width, height], two positive integers (got {size!r})")
    w, h = size
    check_count("image_pixels", w * h, f"{src} size {w}x{h}")
    camera = load_camera_json(folder / "camera.json") if (folder / "camera.json").exists() else None
    if camera is None:
        raise InputError(f"{where}: camera.json is missing")
    if camera.resolution != (w, h):
        raise InputError(f"{where}: camera.json is {camera.width}x{camera.height}, the conditioning is {w}x{h}")
    meta = jf.mapping(doc, "meta", src, default={})
    has_ref = jf.boolean(doc, "reference", src, default=False)
    return Conditioning(
        image=_read_planes(folder, "image.exr", "RGB", (w, h), where),
        depth_m=_read_planes(folder, "depth.exr", "Z", (w, h), where),
        normal_cam=_read_planes(folder, "normal.exr", "XYZ", (w, h), where),
        mask=_read_mask(folder, "mask.png", (w, h), where),
        locked=_read_mask(folder, "locked.png", (w, h), where),
        camera=camera,
        style_prompt=jf.string(doc, "style_prompt", src, default=""),
        negative_prompt=jf.string(doc, "negative_prompt", src, default=DEFAULT_NEGATIVE_PROMPT),
        seed=jf.integer(doc, "seed", src, default=0, minimum=0),
        strength=jf.number(doc, "strength", src, default=1.0, minimum=0.0, maximum=1.0, exclusive_minimum=True),
        reference=_read_planes(folder, "reference.exr", "RGB", (), where) if has_ref else None,
        meta=dict(meta))
