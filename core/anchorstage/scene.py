# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenes: the reconstructed stage (camera, splats, source image and depth, regions) and its folder.

A scene folder holds::

    scene.json          format_version, camera (camera JSON), image size, metric scale,
                        intrinsics source, regions (metadata), meta
    splats.ply          the splats in the standard 3DGS PLY layout (see anchorstage.ply)
    splats_extra.npz    what the standard layout cannot carry exactly: confidence [N] float32,
                        region_ids [N] int32, and the activated opacities [N], scales [N, 3] and
                        colours [N, 3] as float32 (the PLY's logit/log/SH encodings round), plus
                        region_splats_<index> [M] int64 for regions with splat indices
    image.exr           the source image, linear Rec.709 RGB, float32
    depth.exr           the depth, planar z in metres, channel Z, float32, inf = masked (sky)
    regions/<id>.png    one 8-bit mask per region (255 inside)

Everything is written into a temporary sibling folder and renamed into place, so a failure
never leaves a half-written scene.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ._version import __version__
from .atomic import atomic_dir
from .camera import Camera
from .errors import InputError, OutputError
from .ply import read_ply, write_ply
from .region import Region
from .splats import Splats

__all__ = ["Scene", "save_scene", "load_scene", "FORMAT_VERSION", "is_scene_dir"]

#: The scene-folder format this version writes and the newest it reads.
FORMAT_VERSION = 1
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass
class Scene:
    """A reconstructed stage.

    Attributes:
        camera: the reference (photo) camera; world frame Z up, metres.
        splats: the Gaussian splats (world frame, metres).
        image_linear: [H, W, 3] float32 linear Rec.709 source image.
        depth_m: [H, W] float32 planar z in metres, inf where masked (sky).
        regions: scene regions (filled by segmentation).
        meta: JSON-ready facts: ``metric_scale``, ``intrinsics_source``, ``depth_source``, ...
    """

    camera: Camera
    splats: Splats
    image_linear: np.ndarray
    depth_m: np.ndarray
    regions: list[Region] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.image_linear.shape[1])

    @property
    def height(self) -> int:
        return int(self.image_linear.shape[0])


def is_scene_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a ``scene.json``."""
    return (Path(path) / "scene.json").is_file()


# ---------------------------------------------------------------------------- EXR helpers
def _write_exr(path: Path, channels: dict[str, np.ndarray]) -> None:
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in channels.items()}).write(str(path))


def _read_exr(path: Path, where: str) -> dict[str, np.ndarray]:
    import OpenEXR

    if not path.is_file():
        raise InputError(f"{where}: {path.name} is missing")
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            return {n: np.array(c.pixels, dtype=np.float32) for n, c in f.parts[0].channels.items()}
    except Exception as e:  # OpenEXR raises plain exceptions for corrupt files
        raise InputError(f"{where}: {path.name} cannot be read: {e}") from None


# ---------------------------------------------------------------------------- save
def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise InputError(f"save_scene needs a Scene (got {type(scene).__name__})")
    h, w = scene.camera.height, scene.camera.width
    if scene.image_linear.shape != (h, w, 3):
        raise InputError(f"scene image is {list(scene.image_linear.shape)} but the camera is {w}x{h}")
    if scene.depth_m.shape != (h, w):
        raise InputError(f"scene depth is {list(scene.depth_m.shape)} but the camera is {w}x{h}")
    seen = set()
    for r in scene.regions:
        if not _SAFE_ID.match(r.id):
            raise InputError(f"region id {r.id!r} must use only letters, digits, '_', '-' and '.'")
        if r.id in seen:
            raise InputError(f"region id {r.id!r} appears twice")
        seen.add(r.id)
        if r.mask is not None and np.asarray(r.mask).shape != (h, w):
            raise InputError(f"region {r.id!r}: mask is {list(np.asarray(r.mask).shape)}, the image is {w}x{h}")
    try:
        json.dumps(scene.meta, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"scene meta must be JSON-serialisable: {e}") from None


def save_scene(scene: Scene, path: str | os.PathLike, force: bool = False) -> Path:
    """Write a scene folder atomically.

    Args:
        scene: the scene.
        path: the folder; created if absent.
        force: replace a folder that already holds a scene.

    Returns:
        The folder's path.

    Raises:
        OutputError: the folder holds another scene (without ``force``), holds other files,
            or cannot be written.
        InputError: the scene is inconsistent (shapes, region ids, non-JSON meta).
    """
    _check_scene(scene)
    final = Path(path)
    if final.exists():
        if not final.is_dir():
            raise OutputError(f"scene folder {str(final)!r} exists and is not a folder")
        if any(final.iterdir()):
            if not is_scene_dir(final):
                raise OutputError(f"scene folder {str(final)!r} is not empty and holds no AnchorStage scene; "
                                  "refusing to write into it (choose another folder)")
            if not force:
                raise OutputError(f"scene folder {str(final)!r} already holds a scene; use --force (force=True) to replace it")
    sp = scene.splats.to("cpu")
    extra: dict[str, np.ndarray] = {
        "confidence": sp.confidence.numpy().astype(np.float32),
        "region_ids": sp.region_ids.numpy().astype(np.int32),
        "opacities": sp.opacities.numpy().astype(np.float32),
        "scales": sp.scales.numpy().astype(np.float32),
        "colors": sp.colors.numpy().astype(np.float32),
    }
    regions_json = []
    for r in scene.regions:
        d = r.to_json_dict()
        if r.mask is not None:
            d["mask"] = f"regions/{r.id}.png"
        if r.splat_indices is not None:
            extra[f"region_splats_{r.index}"] = np.asarray(r.splat_indices, dtype=np.int64)
        regions_json.append(d)
    doc = {
        "format_version": FORMAT_VERSION,
        "generator": f"AnchorStage {__version__}",
        "camera": scene.camera.to_json_dict(),
        "image": {"file": "image.exr", "width": scene.width, "height": scene.height, "color": "linear Rec.709"},
        "depth": {"file": "depth.exr", "channel": "Z", "units": "metres", "kind": "planar z", "masked": "inf"},
        "splats": {"file": "splats.ply", "extra": "splats_extra.npz", "count": len(sp),
                   "ply_colors": "sRGB-encoded SH DC (header comment color_space sRGB); linear in splats_extra.npz"},
        "metric_scale": float(scene.meta.get("metric_scale", 1.0)),
        "intrinsics_source": str(scene.meta.get("intrinsics_source", "unknown")),
        "regions": regions_json,
        "meta": scene.meta,
    }
    from PIL import Image

    with atomic_dir(final, replace=force, what="scene folder") as tmp:
        write_ply(tmp / "splats.ply", sp)
        np.savez(tmp / "splats_extra.npz", **extra)
        _write_exr(tmp / "image.exr", {c: scene.image_linear[..., i] for i, c in enumerate("RGB")})
        _write_exr(tmp / "depth.exr", {"Z": scene.depth_m})
        if any(r.mask is not None for r in scene.regions):
            (tmp / "regions").mkdir()
        for r in scene.regions:
            if r.mask is not None:
                Image.fromarray(np.asarray(r.mask, dtype=bool).astype(np.uint8) * 255).save(tmp / "regions" / f"{r.id}.png")
        (tmp / "scene.json").write_text(json.dumps(doc, indent=2, allow_nan=False), encoding="utf-8")
    return final


# ---------------------------------------------------------------------------- load
def _exact_or_ply(name: str, ply_value: torch.Tensor, extra: Optional[Any], notes: list[str]) -> torch.Tensor:
    """The exact float32 array from splats_extra.npz when it agrees with the PLY (else the PLY was edited)."""
    if extra is None or name not in extra:
        return ply_value
    exact = torch.from_numpy(np.asarray(extra[name], dtype=np.float32))
    # The PLY's sRGB DC holds negative linear colours (the colour fit makes some) as 0.
    as_ply = exact.clamp_min(0.0) if name == "colors" else exact
    if exact.shape == ply_value.shape and (torch.allclose(exact, ply_value, rtol=1e-4, atol=1e-5)
                                           or torch.allclose(as_ply, ply_value, rtol=1e-4, atol=1e-5)):
        return exact
    notes.append(f"splats.ply {name} differ from splats_extra.npz (PLY edited?): using the PLY")
    return ply_value


def load_scene(path: str | os.PathLike) -> Scene:
    """Read a scene folder written by :func:`save_scene`.

    Raises:
        InputError: not a scene folder, a newer format version, or missing/corrupt files.
    """
    p = Path(path)
    where = f"scene folder {str(p)!r}"
    if not p.is_dir():
        raise InputError(f"{where} does not exist" if not p.exists() else f"{where} is not a folder")
    if not is_scene_dir(p):
        raise InputError(f"{where} is not an AnchorStage scene (no scene.json)")
    try:
        doc = json.loads((p / "scene.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{where}: scene.json cannot be read: {e}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{where}: scene.json must hold a JSON object")
    version = doc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"{where}: scene.json has no integer format_version")
    if version > FORMAT_VERSION:
        raise InputError(f"{where} was written by a newer AnchorStage (scene format_version {version}; this version "
                         f"{__version__} reads up to {FORMAT_VERSION}): upgrade AnchorStage to open it")
    if version < 1:
        raise InputError(f"{where}: unknown scene format_version {version}")
    for key in ("camera", "splats", "image", "depth"):
        if key not in doc:
            raise InputError(f"{where}: scene.json lacks {key!r}")
    camera = Camera.from_json_dict(doc["camera"], source=f"{where} camera")
    notes: list[str] = []
    splats = read_ply(p / doc["splats"].get("file", "splats.ply"))
    extra = None
    extra_path = p / doc["splats"].get("extra", "splats_extra.npz")
    if extra_path.is_file():
        try:
            with np.load(extra_path, allow_pickle=False) as z:
                extra = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise InputError(f"{where}: {extra_path.name} cannot be read: {e}") from None
        if len(extra.get("confidence", [])) != len(splats):
            notes.append(f"{extra_path.name} has another splat count than splats.ply: ignored")
            extra = None
    elif len(splats):
        notes.append(f"{extra_path.name} missing: confidence and region ids default")
    splats = Splats(
        means=splats.means, quats=splats.quats,
        scales=_exact_or_ply("scales", splats.scales, extra, notes),
        opacities=_exact_or_ply("opacities", splats.opacities, extra, notes),
        colors=_exact_or_ply("colors", splats.colors, extra, notes),
        confidence=torch.from_numpy(np.asarray(extra["confidence"], dtype=np.float32)) if extra else None,
        region_ids=torch.from_numpy(np.asarray(extra["region_ids"], dtype=np.int32)) if extra else None,
    )
    img = _read_exr(p / doc["image"].get("file", "image.exr"), where)
    if not all(c in img for c in "RGB"):
        raise InputError(f"{where}: image.exr lacks R, G, B channels")
    image = np.stack([img[c] for c in "RGB"], axis=-1)
    dch = _read_exr(p / doc["depth"].get("file", "depth.exr"), where)
    depth = dch.get(doc["depth"].get("channel", "Z"))
    if depth is None:
        raise InputError(f"{where}: depth.exr lacks channel {doc['depth'].get('channel', 'Z')!r}")
    if image.shape[:2] != (camera.height, camera.width) or depth.shape != (camera.height, camera.width):
        raise InputError(f"{where}: image/depth size does not match the camera ({camera.width}x{camera.height})")

    from PIL import Image

    regions = []
    for d in doc.get("regions", []):
        r = Region.from_json_dict(d)
        if d.get("mask"):
            mp = p / d["mask"]
            if not mp.is_file():
                raise InputError(f"{where}: region mask {d['mask']} is missing")
            with Image.open(mp) as im:
                r.mask = np.asarray(im) > 127
        key = f"region_splats_{r.index}"
        if extra is not None and key in extra:
            r.splat_indices = np.asarray(extra[key], dtype=np.int64)
        regions.append(r)
    meta = dict(doc.get("meta", {}))
    if notes:
        meta["load_notes"] = notes
    if not math.isfinite(float(doc.get("metric_scale", 1.0))):
        raise InputError(f"{where}: metric_scale must be finite")
    return Scene(camera=camera, splats=splats, image_linear=image, depth_m=depth, regions=regions, meta=meta)
