# SPDX-License-Identifier: GPL-3.0-or-later
"""Scenes: the reconstructed stage (camera, splats, source image and depth, regions) and its folder.

A scene folder holds::

    scene.json          format_version, camera (camera JSON), image size, metric scale,
                        intrinsics source, regions (metadata), meta
    splats.ply          the splats in the standard 3DGS PLY layout (see anchorstage.splatio.ply)
    splats_extra.npz    what the standard layout cannot carry exactly: confidence [N] float32,
                        region_ids [N] int32, and the activated opacities [N], scales [N, 3] and
                        colours [N, 3] as float32 (the PLY's logit/log/SH encodings round), plus
                        region_splats_<index> [M] int64 for regions with splat indices, and for
                        splats read from a file what that file stored (``stored__*``: see
                        StoredSplats.to_arrays), so writing that format again is bit-exact
    image.exr           the source image, linear Rec.709 RGB, float32
    depth.exr           the depth, planar z in metres, channel Z, float32, inf = masked (sky); channel
                        ``confidence`` [0, 1] the per-pixel depth confidence when known
    regions/<id>.png    one 8-bit mask per region (255 inside)
    lod/                the level-of-detail hierarchy (scenes of anchorstage.lod.MIN_SPLATS splats and
                        more; see anchorstage.splat_store); older scenes without it build it on demand
    splats_mmap/        the working splat arrays as .npy files (scenes of splat_store.MMAP_MIN_SPLATS
                        splats and more): such scenes load memory-mapped, without decoding splats.ply

Everything is written into a temporary sibling folder and renamed into place, so a failure
never leaves a half-written scene.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ._version import __version__
from .atomic import atomic_dir
from .camera import Camera
from .errors import InputError, OutputError
from .exr import write_channels
from .exr_input import read_exr_channels
from .input_files import check_input_file, open_input, path_arg
from .npy_io import ArraySpec, read_npz
from .splatio.ply import read_ply, write_ply
from .region import Region
from .safe_json import load_json
from .schema import SAFE_ID, parse_scene_json
from .splats import Splats, StoredSplats

if TYPE_CHECKING:  # pragma: no cover
    from .lod import LodTree

__all__ = ["Scene", "save_scene", "load_scene", "FORMAT_VERSION", "is_scene_dir", "check_scene_target"]

#: The scene-folder format this version writes and the newest it reads.
FORMAT_VERSION = 1
_INT32_MAX = 2**31 - 1


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
        depth_confidence: [H, W] float32 in [0, 1], how far each witness pixel's depth is trusted
            (what the splats' confidence was made from; 0 where depth is masked), or None when unknown.
        lod: the splats' level-of-detail hierarchy (:mod:`anchorstage.lod`), or None: built when
            a render needs it (big scenes) and saved with the scene.
    """

    camera: Camera
    splats: Splats
    image_linear: np.ndarray
    depth_m: np.ndarray
    regions: list[Region] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    depth_confidence: Optional[np.ndarray] = None
    lod: Optional["LodTree"] = None

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
def _read_exr(path: Path, where: str) -> dict[str, np.ndarray]:
    if not path.exists():
        raise InputError(f"{where}: {path.name} is missing")
    chans = read_exr_channels(path, f"{where}: {path.name}").channels  # headers checked before pixels
    return {n: np.asarray(a, dtype=np.float32) for n, a in chans.items()}


# ---------------------------------------------------------------------------- save
def _check_scene(scene: Scene) -> None:
    if not isinstance(scene, Scene):
        raise InputError(f"save_scene needs a Scene (got {type(scene).__name__})")
    for name, kind in (("camera", Camera), ("splats", Splats), ("image_linear", np.ndarray), ("depth_m", np.ndarray),
                       ("regions", list), ("meta", dict)):
        if not isinstance(getattr(scene, name), kind):
            raise InputError(f"save_scene: scene.{name} must be a {kind.__name__} "
                             f"(got {type(getattr(scene, name)).__name__})")
    h, w = scene.camera.height, scene.camera.width
    if scene.image_linear.shape != (h, w, 3):
        raise InputError(f"scene image is {list(scene.image_linear.shape)} but the camera is {w}x{h}")
    if scene.depth_m.shape != (h, w):
        raise InputError(f"scene depth is {list(scene.depth_m.shape)} but the camera is {w}x{h}")
    seen = set()
    for r in scene.regions:
        if not isinstance(r, Region):
            raise InputError(f"scene regions must be Region objects (got {type(r).__name__})")
        if not isinstance(r.id, str) or not SAFE_ID.fullmatch(r.id):
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


def check_scene_target(path: str | os.PathLike, force: bool = False) -> Path:
    """Check that a scene can be written at ``path`` (before any heavy work is done).

    Raises:
        OutputError: the folder holds another scene (without ``force``), holds other files,
            is a file, or cannot be created.
    """
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
    # The scene is written beside its final place: the nearest existing ancestor must take new folders.
    parent = final.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"scene folder {str(final)!r} cannot be created: {str(parent)!r} is not a writable folder")
    return final


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
    if not isinstance(force, (bool, np.bool_)):
        raise InputError(f"save_scene: force must be True or False (got {force!r})")
    final = check_scene_target(path_arg(path, "save_scene: path"), force)
    sp = scene.splats.to("cpu")
    host = sp.numpy()
    extra: dict[str, np.ndarray] = {
        "confidence": host.confidence.astype(np.float32),
        "region_ids": host.region_ids.astype(np.int32),
        "opacities": host.opacities.astype(np.float32),
        "scales": host.scales.astype(np.float32),
        "colors": host.colors.astype(np.float32),
    }
    if sp.stored is not None:
        extra.update({f"stored__{k}": v for k, v in sp.stored.to_arrays().items()})
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
                   "ply_colors": f"SH DC and f_rest in {sp.sh_encoding} (color_space element and comment); "
                                 "linear in splats_extra.npz", "sh_degree": sp.sh_degree},
        "metric_scale": float(scene.meta.get("metric_scale", 1.0)),
        "intrinsics_source": str(scene.meta.get("intrinsics_source", "unknown")),
        "regions": regions_json,
        "meta": scene.meta,
    }
    from PIL import Image

    from . import lod as lod_mod, splat_store

    tree = None
    if len(sp) >= lod_mod.MIN_SPLATS:
        tree = scene.lod if scene.lod is not None and scene.lod.matches(sp) else lod_mod.build_lod(sp)
        scene.lod = tree
        doc["splats"]["lod"] = splat_store.LOD_DIR
    lazy = len(sp) >= splat_store.MMAP_MIN_SPLATS
    if lazy:
        doc["splats"]["mmap"] = splat_store.MMAP_DIR
    with atomic_dir(final, replace=force, what="scene folder") as tmp:
        if tree is not None:
            splat_store.write_lod(tmp, tree)
        if lazy:
            splat_store.write_splat_arrays(tmp, sp)
        write_ply(tmp / "splats.ply", sp)
        np.savez(tmp / "splats_extra.npz", **extra)
        write_channels(tmp / "image.exr", {c: scene.image_linear[..., i] for i, c in enumerate("RGB")}, "scene file")
        dch = {"Z": scene.depth_m}
        if scene.depth_confidence is not None:
            dch["confidence"] = scene.depth_confidence
        write_channels(tmp / "depth.exr", dch, "scene file")
        if any(r.mask is not None for r in scene.regions):
            (tmp / "regions").mkdir()
        for r in scene.regions:
            if r.mask is not None:
                Image.fromarray(np.asarray(r.mask, dtype=bool).astype(np.uint8) * 255).save(tmp / "regions" / f"{r.id}.png")
        (tmp / "scene.json").write_text(json.dumps(doc, indent=2, allow_nan=False), encoding="utf-8")
    return final


# ---------------------------------------------------------------------------- load
def _exact_or_ply(name: str, ply_value: np.ndarray, extra: Optional[Any], notes: list[str]) -> np.ndarray:
    """The exact float32 array from splats_extra.npz when it agrees with the PLY (else the PLY was edited)."""
    if extra is None or name not in extra:
        return ply_value
    exact = np.asarray(extra[name], dtype=np.float32)
    # The PLY's sRGB DC holds negative linear colours (the colour fit makes some) as 0.
    as_ply = np.maximum(exact, np.float32(0.0)) if name == "colors" else exact
    if exact.shape == ply_value.shape and (np.allclose(exact, ply_value, rtol=1e-4, atol=1e-5)
                                           or np.allclose(as_ply, ply_value, rtol=1e-4, atol=1e-5)):
        return exact
    notes.append(f"splats.ply {name} differ from splats_extra.npz (PLY edited?): using the PLY")
    return ply_value


def _stored(extra: Optional[dict], from_ply: Splats, where: str) -> Optional[StoredSplats]:
    """What the splats' source file stored: from splats_extra.npz when it was saved there (exact, any
    format), else what splats.ply itself carries."""
    arrays = {k[len("stored__"):]: v for k, v in (extra or {}).items() if k.startswith("stored__")}
    if not arrays:
        return from_ply.stored
    stored = StoredSplats.from_arrays(arrays, f"{where}: splats_extra.npz")
    if any(len(c) != len(from_ply) for c in stored.columns.values()):
        return from_ply.stored
    return stored


def _extra_specs(n: int) -> tuple[dict[str, ArraySpec], dict[str, ArraySpec]]:
    """What splats_extra.npz may hold for ``n`` splats (lengths checked against the PLY after reading)."""
    cap = max(n, 1)
    return ({"confidence": ArraySpec("f", (None,), max_count=cap),
             "region_ids": ArraySpec("iu", (None,), max_count=cap),
             "opacities": ArraySpec("f", (None,), required=False, max_count=cap),
             "scales": ArraySpec("f", (None, 3), required=False, max_count=3 * cap),
             "colors": ArraySpec("f", (None, 3), required=False, max_count=3 * cap)},
            {"region_splats_": ArraySpec("iu", (None,), required=False, max_count=cap),
             # what the splats' source file stored (splats.StoredSplats.to_arrays): any shape, plain data
             "stored__": ArraySpec("fiubUV", None, required=False, max_count=256 * cap)})


def _read_extra(path: Path, n: int, where: str, notes: list[str]) -> Optional[dict[str, np.ndarray]]:
    """splats_extra.npz checked member by member (no pickles, dtypes, shapes, value ranges), or None."""
    specs, families = _extra_specs(n)
    extra, unknown = read_npz(path, f"{where}: {path.name}", specs, families)
    if unknown:
        notes.append(f"{path.name} holds arrays this version does not know ({', '.join(sorted(unknown))}): ignored")
    lengths = {k: len(v) for k, v in extra.items() if k in specs}
    if any(v != n for v in lengths.values()):
        notes.append(f"{path.name} has another splat count than splats.ply ({lengths} vs {n}): ignored")
        return None
    ids = extra["region_ids"]
    if ids.size and (ids.min() < -1 or ids.max() > _INT32_MAX):
        raise InputError(f"{where}: {path.name} region_ids must be -1 (none) or a region index")
    for k, v in extra.items():
        if k.startswith("region_splats_") and v.size and (v.min() < 0 or v.max() >= n):
            raise InputError(f"{where}: {path.name} {k} holds splat indices outside [0, {n})")
    return extra


def _read_mask(path: Path, folder: Path, region_id: str, size: tuple[int, int], where: str) -> np.ndarray:
    """[H, W] bool mask (pixels > 127) of a region; its size must be the scene's (width, height)."""
    from .image_io import open_pillow_image

    what = f"{where}: region {region_id!r} mask"
    if not path.exists():
        raise InputError(f"{where}: region mask {path.relative_to(folder.resolve()).as_posix()} is missing")
    f, _ = open_input(path, what)
    try:
        with f, open_pillow_image(f, f"{what} {str(path)!r}") as im:
            if im.size != size:
                raise InputError(f"{what} is {im.size[0]}x{im.size[1]} but the scene is {size[0]}x{size[1]}")
            return np.asarray(im.convert("L")) > 127
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise InputError(f"{what} cannot be read: {e}") from None


def load_scene(path: str | os.PathLike, *, mmap: bool = True, numpy: bool = False) -> Scene:
    """Read a scene folder written by :func:`save_scene`.

    A big scene (``splats_mmap/`` present, see :mod:`anchorstage.splat_store`) opens memory-mapped:
    only headers are read, and renders read the rows they touch (``mmap=False`` decodes
    splats.ply instead, as for smaller scenes). Its saved level-of-detail hierarchy (``lod/``) is
    attached when it was built from these splats.

    Every field of ``scene.json`` is validated (:mod:`anchorstage.schema`), every path it holds
    must stay inside the folder, and every file is checked against docs/limits.md before it is read.

    ``numpy=True`` gives numpy-backed splats (:attr:`Splats.numpy_backed`): a frame of them on the
    compiled CPU path, and the whole load, never import torch (the CLI's one-frame render).

    Raises:
        InputError: not a scene folder, a newer format version, a malformed scene.json, a path
            leading outside the folder, or missing/corrupt/mismatched files.
    """
    p = path_arg(path, "load_scene: path")
    for name, flag in (("mmap", mmap), ("numpy", numpy)):
        if not isinstance(flag, (bool, np.bool_)):
            raise InputError(f"load_scene: {name} must be True or False (got {flag!r})")
    where = f"scene folder {str(p)!r}"
    if not p.is_dir():
        raise InputError(f"{where} does not exist" if not p.exists() else f"{where} is not a folder")
    if not is_scene_dir(p):
        raise InputError(f"{where} is not an AnchorStage scene (no scene.json)")
    raw = load_json(p / "scene.json", "scene file", where=f"{where}: scene.json")
    sd = parse_scene_json(raw, p, where, newest=FORMAT_VERSION, reader=__version__)
    camera = sd.camera
    notes: list[str] = []
    from . import splat_store

    count = sd.splat_count
    if mmap and count is not None and count >= splat_store.MMAP_MIN_SPLATS and (p / splat_store.MMAP_DIR).is_dir():
        splats = splat_store.open_splat_arrays(p, count, where)
        extra = _read_mmap_extra(sd.extra_file, count, where) if sd.extra_file.exists() else None
        splats.stored = _stored(extra, splats, where)
    else:
        splats, extra = _read_splats(sd, where, notes)
    if not numpy:
        splats = splats.to("cpu")
    tree = None
    if (p / splat_store.LOD_DIR).is_dir():
        tree = splat_store.open_lod(p, len(splats), where)
        if tree is None or not tree._checked_for(splats):
            notes.append(f"{splat_store.LOD_DIR}/ was built for other splats: rebuilt when a render needs it")
            tree = None
        else:
            from .lod import remember

            remember(splats, tree)
    img = _read_exr(sd.image_file, where)
    if not all(c in img for c in "RGB"):
        raise InputError(f"{where}: {sd.image_file.name} lacks R, G, B channels")
    image = np.stack([img[c] for c in "RGB"], axis=-1)
    dch = _read_exr(sd.depth_file, where)
    depth = dch.get(sd.depth_channel)
    if depth is None:
        raise InputError(f"{where}: {sd.depth_file.name} lacks channel {sd.depth_channel!r}")
    if image.shape[:2] != (camera.height, camera.width) or depth.shape != (camera.height, camera.width):
        raise InputError(f"{where}: image/depth size does not match the camera ({camera.width}x{camera.height})")

    regions = []
    for entry in sd.regions:
        r = entry.region
        if entry.mask_path is not None:
            r.mask = _read_mask(entry.mask_path, p, r.id, (camera.width, camera.height), where)
        key = f"region_splats_{r.index}"
        if extra is not None and key in extra:
            r.splat_indices = np.asarray(extra[key], dtype=np.int64)
        regions.append(r)
    meta = dict(sd.meta)
    if notes:
        meta["load_notes"] = notes
    dconf = dch.get("confidence")
    if dconf is not None and (dconf.shape != depth.shape or not np.all(np.isfinite(dconf))):
        raise InputError(f"{where}: {sd.depth_file.name} channel 'confidence' must be finite and the depth's size")
    return Scene(camera=camera, splats=splats, image_linear=image, depth_m=depth, regions=regions, meta=meta,
                 depth_confidence=None if dconf is None else np.clip(dconf, 0.0, 1.0), lod=tree)


def _read_splats(sd, where: str, notes: list[str]) -> tuple[Splats, Optional[dict[str, np.ndarray]]]:
    """The splats decoded from splats.ply with splats_extra.npz's exact values, and that archive's arrays."""
    if not sd.splats_file.exists():
        raise InputError(f"{where}: {sd.splats_file.name} is missing")
    splats = read_ply(check_input_file(sd.splats_file, f"{where}: splats file"), numpy=True)
    extra = None
    if sd.extra_file.exists():
        extra = _read_extra(sd.extra_file, len(splats), where, notes)
    elif len(splats):
        notes.append(f"{sd.extra_file.name} missing: confidence and region ids default")
    splats = Splats(
        means=splats.means, quats=splats.quats,
        scales=_exact_or_ply("scales", splats.scales, extra, notes),
        opacities=_exact_or_ply("opacities", splats.opacities, extra, notes),
        colors=_exact_or_ply("colors", splats.colors, extra, notes),
        confidence=np.asarray(extra["confidence"], dtype=np.float32) if extra else None,
        region_ids=np.asarray(extra["region_ids"], dtype=np.int32) if extra else None,
        sh_rest=splats.sh_rest, sh_encoding=splats.sh_encoding, stored=_stored(extra, splats, where),
    )
    return splats, extra


def _read_mmap_extra(path: Path, n: int, where: str) -> dict[str, np.ndarray]:
    """The region splat indices and the source file's stored columns of splats_extra.npz (a
    memory-mapped scene takes its per-splat values from splats_mmap/ and reads nothing else there)."""
    _, families = _extra_specs(n)
    extra, _ = read_npz(path, f"{where}: {path.name}", {}, families)
    for k, v in extra.items():
        if k.startswith("region_splats_") and v.size and (v.min() < 0 or v.max() >= n):
            raise InputError(f"{where}: {path.name} {k} holds splat indices outside [0, {n})")
    return extra
