# SPDX-License-Identifier: GPL-3.0-or-later
"""The schema of ``scene.json``: every field checked for type, range and finiteness before use.

:func:`parse_scene_json` turns a parsed ``scene.json`` (from :func:`anchorstage.safe_json.load_json`)
into a :class:`SceneDocument` or raises :class:`InputError` naming the field, e.g.
``scene folder 'stage': scene.json regions[2].plane[1] must be a number (got '0' (a string))``.

=====================  ==========================================================================
field                  rule
=====================  ==========================================================================
``format_version``     integer; newer than this AnchorStage reads → refused ("upgrade"); < 1 refused
``camera``             the camera JSON of docs/conventions.md (:meth:`Camera.from_json_dict`)
``image``              object: ``file`` (path in the folder, default ``image.exr``), optional
                       ``width`` / ``height`` integers equal to the camera's resolution
``depth``              object: ``file`` (default ``depth.exr``), ``channel`` string (default ``Z``)
``splats``             object: ``file`` (default ``splats.ply``), ``extra`` (default
                       ``splats_extra.npz``), optional ``count`` integer ≥ 0 within the splat limit
``metric_scale``       number > 0 (default 1)
``intrinsics_source``  string (default ``"unknown"``)
``regions``            list of objects: ``index`` integer in [0, 2^31), ``id`` of letters, digits,
                       ``_ - .``, ``label`` one of sky/ground/facade/object, ``plane`` null or four
                       numbers, ``locked`` true/false, optional ``mask`` path in the folder,
                       ``extra`` object; ids and indices unique
``meta``               object (default ``{}``)
=====================  ==========================================================================

Numbers are JSON numbers: ``true`` and ``"1.0"`` are not numbers. Every path is relative to the
scene folder and must stay inside it once ``..`` and symlinks are resolved. Fields not listed are
ignored, so a file written by a newer AnchorStage of the same format version still opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import safe_json as jf
from .camera import Camera
from .errors import InputError
from .input_files import inside_folder
from .limits import limit
from .region import REGION_LABELS, Region

__all__ = ["SceneDocument", "RegionEntry", "parse_scene_json", "SAFE_ID"]

#: Region ids become file names (``regions/<id>.png``): letters, digits, ``_``, ``-`` and ``.``.
SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_REGIONS = 65536
_INT32_MAX = 2**31 - 1


@dataclass
class RegionEntry:
    """One validated ``regions[i]`` entry.

    Attributes:
        region: the region (mask and splat indices not loaded yet).
        mask_path: the resolved mask file inside the scene folder, or None.
    """

    region: Region
    mask_path: Optional[Path]


@dataclass
class SceneDocument:
    """A validated ``scene.json``; paths are resolved inside the scene folder.

    Attributes:
        format_version: the scene format version.
        camera: the reference camera.
        image_file / depth_file / splats_file / extra_file: resolved paths in the folder.
        depth_channel: the EXR channel holding depth (metres).
        splat_count: the count scene.json declares, or None.
        metric_scale: metres per scene unit (> 0).
        intrinsics_source: where the intrinsics came from.
        regions: the region entries, in file order.
        meta: the free-form ``meta`` object.
    """

    format_version: int
    camera: Camera
    image_file: Path
    depth_file: Path
    depth_channel: str
    splats_file: Path
    extra_file: Path
    splat_count: Optional[int]
    metric_scale: float
    intrinsics_source: str
    regions: list[RegionEntry] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def _version(doc: dict[str, Any], where: str, newest: int, reader: str) -> int:
    if "format_version" not in doc:
        raise InputError(f"{where}: scene.json has no integer format_version")
    version = jf.integer(doc, "format_version", f"{where}: scene.json")
    if version > newest:
        raise InputError(f"{where} was written by a newer AnchorStage (scene format_version {version}; this version "
                         f"{reader} reads up to {newest}): upgrade AnchorStage to open it")
    if version < 1:
        raise InputError(f"{where}: unknown scene format_version {version}")
    return version


def _region(d: Any, i: int, folder: Path, where: str) -> RegionEntry:
    at = f"{where}: scene.json regions[{i}]"
    if not isinstance(d, dict):
        raise InputError(f"{at} must be an object (got {jf.describe(d)})")
    index = jf.integer(d, "index", at, minimum=0, maximum=_INT32_MAX)
    rid = jf.string(d, "id", at, pattern=SAFE_ID, max_length=200)
    label = jf.string(d, "label", at, choices=REGION_LABELS)
    plane = d.get("plane")
    if plane is not None:
        values = jf.array(d, "plane", at, length=4)
        plane = tuple(jf.as_number(v, f"plane[{k}]", at) for k, v in enumerate(values))
    locked = jf.boolean(d, "locked", at, default=False)
    for k in ("pixel_count", "splat_count"):
        jf.integer(d, k, at, default=None, minimum=0)
    extra = jf.mapping(d, "extra", at, default={})
    mask = d.get("mask")
    mask_path = None if mask is None else inside_folder(folder, mask, f"{at}.mask")
    try:
        region = Region(index=index, id=rid, label=label, plane=plane, locked=locked, extra=dict(extra))
    except InputError as e:
        raise InputError(f"{at}: {e}") from None
    return RegionEntry(region, mask_path)


def _file(section: dict[str, Any], key: str, default: str, folder: Path, at: str) -> Path:
    rel = jf.string(section, key, at, default=default, max_length=1024)
    return inside_folder(folder, rel, f"{at}.{key}")


def parse_scene_json(doc: Any, folder: Path, where: str, *, newest: int, reader: str) -> SceneDocument:
    """Validate a parsed ``scene.json`` field by field (see the module table).

    Args:
        doc: the parsed JSON.
        folder: the scene folder (paths are resolved inside it).
        where: how messages name the folder, e.g. ``"scene folder 'stage'"``.
        newest: the newest ``format_version`` this AnchorStage reads.
        reader: this AnchorStage's version, for the "newer version" message.

    Raises:
        InputError: the first field that is missing, of the wrong type, out of range, or a
            path leading outside ``folder``.
    """
    at = f"{where}: scene.json"
    if not isinstance(doc, dict):
        raise InputError(f"{at} must hold a JSON object (got {jf.describe(doc)})")
    version = _version(doc, where, newest, reader)
    for key in ("camera", "splats", "image", "depth"):
        if key not in doc:
            raise InputError(f"{at} lacks {key!r}")
    camera = Camera.from_json_dict(jf.mapping(doc, "camera", at), source=f"{where} camera")
    image = jf.mapping(doc, "image", at)
    for key, want in (("width", camera.width), ("height", camera.height)):
        got = jf.integer(image, key, f"{at} image", default=None, minimum=1)
        if got is not None and got != want:
            raise InputError(f"{at} image.{key} is {got} but the camera's is {want}")
    depth = jf.mapping(doc, "depth", at)
    splats = jf.mapping(doc, "splats", at)
    count = jf.integer(splats, "count", f"{at} splats", default=None, minimum=0, maximum=limit("splats"))
    regions = jf.array(doc, "regions", at, default=[], max_length=_MAX_REGIONS)
    entries = [_region(d, i, folder, where) for i, d in enumerate(regions)]
    for attr in ("id", "index"):
        seen: set[Any] = set()
        for e in entries:
            v = getattr(e.region, attr)
            if v in seen:
                raise InputError(f"{at} regions: {attr} {v!r} appears twice")
            seen.add(v)
    return SceneDocument(
        format_version=version,
        camera=camera,
        image_file=_file(image, "file", "image.exr", folder, f"{at} image"),
        depth_file=_file(depth, "file", "depth.exr", folder, f"{at} depth"),
        depth_channel=jf.string(depth, "channel", f"{at} depth", default="Z", max_length=255),
        splats_file=_file(splats, "file", "splats.ply", folder, f"{at} splats"),
        extra_file=_file(splats, "extra", "splats_extra.npz", folder, f"{at} splats"),
        splat_count=count,
        metric_scale=jf.number(doc, "metric_scale", at, default=1.0, minimum=0.0, exclusive_minimum=True),
        intrinsics_source=jf.string(doc, "intrinsics_source", at, default="unknown"),
        regions=entries,
        meta=dict(jf.mapping(doc, "meta", at, default={})),
    )
