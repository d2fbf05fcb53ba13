# SPDX-License-Identifier: GPL-3.0-or-later
"""Multilayer OpenEXR for render passes, named the way Blender names its own.

``write_exr`` writes one single-part, ZIP-compressed scanline EXR holding every pass, with
channels ``<Layer>.<Pass>.<Chan>`` as Blender's own multilayer files use. Pass names, channel
ids and half/full float come from the pass registry (:mod:`anchorstage.passes`); ``color`` and
``alpha`` together are ``ViewLayer.Combined.R/G/B/A``, depth is ``ViewLayer.Depth.Z`` (metres,
1e10 = nothing, 32-bit), normals ``ViewLayer.Normal.X/Y/Z`` (world), the custom passes
``ViewLayer.Confidence.X``, ``ViewLayer.Void.X`` and ``ViewLayer.Region.X`` (integer ids as
32-bit float, -1 none).

Blender loads such a file as a ``MULTILAYER`` image whose compositor Image node has one
socket per pass. ``naming="nuke"`` writes the beauty as plain ``R, G, B, A`` (Nuke's rgba)
and every other pass as ``<pass>.<chan>`` (``depth.Z``, ``normal.X`` ...), one Nuke layer
each; ``naming="plain"`` writes a single pass with bare channel names (``R, G, B[, A]`` or
``Y``) for applications that want one pass per file (After Effects).

The camera (camera JSON, see docs/conventions.md) and optional metadata are stored as string
attributes ``anchorstage/camera`` and ``anchorstage/meta`` in the header. Files are written
atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .atomic import atomic_file
from .camera import Camera
from .errors import InputError, OutputError
from .passes import COMBINED, PASSES, REGISTRY, blender_layers, from_blender_name
from .exr_input import read_exr_channels
from .input_files import path_arg
from .safe_json import parse_json

__all__ = ["write_exr", "write_channels", "read_exr", "exr_channel_names", "NAMINGS"]

NAMINGS = ("blender", "nuke", "plain")


def _as_numpy(name: str, x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except (TypeError, ValueError):  # ragged nested lists
        raise InputError(f"write_exr: pass {name!r} must be an array of numbers") from None
    if a.dtype.kind not in "fiub":
        raise InputError(f"write_exr: pass {name!r} must hold numbers (got dtype {a.dtype})")
    if a.ndim not in (2, 3) or a.size == 0:
        raise InputError(f"write_exr: pass {name!r} must be [H, W] or [H, W, C] (got shape {list(a.shape)})")
    return a


def _channel_names(blender: str, chan_ids: str, ours: tuple[str, ...], naming: str, layer: str) -> list[str]:
    """EXR channel names of one Blender pass (``ours``: our passes stored in it, in channel order)."""
    if naming == "blender":
        return [f"{layer}.{blender}.{c}" for c in chan_ids]
    if naming == "nuke":
        return list(chan_ids) if ours[0] == COMBINED[0] else [f"{ours[0]}.{c}" for c in chan_ids]
    if ours[0] == COMBINED[0]:
        return list(chan_ids)
    return list("RGB") if len(chan_ids) == 3 else ["Y"]


def exr_channel_names(pass_name: str, naming: str = "blender", layer: str = "ViewLayer",
                      with_alpha: bool = True) -> list[str]:
    """EXR channel names for one of our passes under a naming scheme (see the module docstring)."""
    names = {pass_name, COMBINED[1]} if pass_name == COMBINED[0] and with_alpha else {pass_name}
    blender, chan_ids, ours = blender_layers(names)[0]
    return _channel_names(blender, chan_ids, ours, naming, layer)


def write_exr(
    path: str | os.PathLike,
    passes: Mapping[str, Any],
    camera: Optional[Camera] = None,
    *,
    layer: str = "ViewLayer",
    naming: str = "blender",
    half_for: Optional[Sequence[str]] = None,
    meta: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write render passes as one multilayer EXR.

    Args:
        path: output ``.exr`` file (its folder is created).
        passes: pass name → [H, W] or [H, W, C] tensor/array, as returned by
            :func:`anchorstage.render` (``color`` [H, W, 3] linear, ``alpha`` [H, W],
            ``depth`` [H, W] metres, ``normal`` [H, W, 3] world, ``confidence``, ``void``
            [H, W], ``region`` [H, W] int). ``color`` and ``alpha`` together form Combined RGBA.
        camera: stored in the header as camera JSON (Blender ``matrix_world``, metres).
        layer: view-layer name for ``naming="blender"``.
        naming: ``"blender"``, ``"nuke"`` or ``"plain"`` (plain: exactly one pass, bare names).
        half_for: passes written as half floats (default: the registry's ``half`` rows); the rest are 32-bit float.
        meta: JSON-ready metadata stored in the header.

    Returns:
        The written path.

    Raises:
        InputError: unknown pass or naming, mismatched sizes, non-finite values.
        OutputError: the folder cannot be written.
    """
    import OpenEXR

    path = path_arg(path, "write_exr: path")
    if not isinstance(passes, Mapping):
        raise InputError(f"write_exr: passes must be a mapping of pass name to array (got {type(passes).__name__})")
    if camera is not None and not isinstance(camera, Camera):
        raise InputError(f"write_exr: camera must be a Camera or None (got {type(camera).__name__})")
    if meta is not None and not isinstance(meta, Mapping):
        raise InputError(f"write_exr: meta must be a mapping or None (got {type(meta).__name__})")
    if half_for is not None and (not isinstance(half_for, (list, tuple, set, frozenset))
                                 or not all(isinstance(h, str) for h in half_for)):
        raise InputError(f"write_exr: half_for must be a list of pass names (got {half_for!r})")
    if not isinstance(naming, str) or naming not in NAMINGS:
        raise InputError(f"write_exr: naming must be one of {', '.join(NAMINGS)} (got {naming!r})")
    if not passes:
        raise InputError("write_exr: no passes to write")
    bad = [k for k in passes if k not in PASSES]
    if bad:
        raise InputError(f"write_exr: unknown pass(es) {', '.join(map(repr, bad))}; valid: {', '.join(PASSES)}")
    if naming == "plain" and not (len(passes) == 1 or set(passes) == set(COMBINED)):
        raise InputError("write_exr: naming 'plain' holds one pass per file (or color + alpha)")
    if not isinstance(layer, str) or not layer or "." in layer:
        raise InputError(f"write_exr: layer name must be non-empty without dots (got {layer!r})")
    arrays = {k: _as_numpy(k, v) for k, v in passes.items()}
    shapes = {k: a.shape[:2] for k, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(f"write_exr: passes differ in size: {shapes}")
    half = {p.name for p in REGISTRY if p.half} if half_for is None else set(half_for)
    channels: dict[str, np.ndarray] = {}
    for blender, chan_ids, ours in blender_layers(arrays):
        planes = []
        for name in ours:
            a = arrays[name]
            planes += [a] if a.ndim == 2 else [a[..., i] for i in range(a.shape[2])]
        names = _channel_names(blender, chan_ids, ours, naming, layer)
        if len(planes) != len(names):
            raise InputError(f"write_exr: pass {ours[0]!r} needs {len(names) - len(ours) + 1} channel(s) "
                             f"(got {len(planes) - len(ours) + 1})")
        dtype = np.float16 if all(n in half for n in ours) else np.float32
        for cname, plane in zip(names, planes):
            plane = np.asarray(plane, dtype=np.float64 if plane.dtype.kind in "iub" else plane.dtype)
            if not np.all(np.isfinite(plane)):
                raise InputError(f"write_exr: pass {ours[0]!r} has non-finite values")
            # OpenEXR writes non-contiguous arrays silently wrong.
            channels[cname] = np.ascontiguousarray(plane.astype(dtype))
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    if naming == "blender":
        header["BlenderMultiChannel"] = "Blender V2.55.1 and newer"
    if naming == "plain":
        header["anchorstage/pass"] = ",".join(arrays)
    if camera is not None:
        header["anchorstage/camera"] = json.dumps(camera.to_json_dict())
    if meta:
        try:
            header["anchorstage/meta"] = json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InputError(f"write_exr: meta must be JSON-serialisable: {e}") from None
    with atomic_file(path, "EXR file") as tmp:
        try:
            OpenEXR.File(header, channels).write(str(tmp))
        except Exception as e:  # OpenEXR raises plain exceptions on I/O errors
            raise OutputError(f"EXR file {str(path)!r} cannot be written: {e}") from None
    return Path(path)


def write_channels(path: Path, channels: Mapping[str, np.ndarray], what: str) -> None:
    """A plain float32 EXR (ZIP, scanlines) of the named [H, W] channels, for the project's own folders
    (scene, conditioning stack, worker answers); frames with Blender's layer names are :func:`write_exr`'s.

    Raises:
        OutputError: the file cannot be written (``what`` names it, with the file name).
    """
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    # OpenEXR writes non-contiguous arrays silently wrong.
    exr = OpenEXR.File(header, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in channels.items()})
    try:
        exr.write(str(path))
    except Exception as e:  # OpenEXR raises plain exceptions on I/O errors (a full disk among them)
        raise OutputError(f"{what} {Path(path).name} cannot be written: {e}") from None


def _header_str(header: Mapping[str, Any], key: str, where: str = "EXR file") -> Optional[str]:
    v = header.get(key)
    if v is None:
        return None
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if not isinstance(v, str):  # e.g. an attribute whose type name is corrupt (OpenEXR's opaque attribute)
        raise InputError(f"{where}: header attribute {key!r} must be a string (got {type(v).__name__})")
    return v


def read_exr(path: str | os.PathLike) -> dict[str, Any]:
    """Read an EXR written by :func:`write_exr` (or a Blender multilayer render).

    Args:
        path: the ``.exr`` file.

    Returns:
        Our pass names → float32 numpy arrays (``color`` [H, W, 3], ``alpha``, ``depth``,
        ``normal`` [H, W, 3], ``confidence``, ``void`` [H, W], ``region`` [H, W] int32);
        channels that map to no pass are kept under their EXR names. Also ``camera``
        (:class:`Camera`) and ``meta`` (dict) when the header holds them.

    Raises:
        InputError: missing or unreadable file, a header over the limits (docs/limits.md), or
            a malformed camera / metadata attribute.
    """
    p = path_arg(path, "read_exr: path")
    exr = read_exr_channels(p, "EXR file")  # headers checked against the limits before pixels are read
    header, raw = exr.header, exr.channels

    plain_pass = _header_str(header, "anchorstage/pass", f"EXR file {str(p)!r}")
    groups: dict[str, dict[str, np.ndarray]] = {}
    for name, a in raw.items():
        parts = name.split(".")
        chan = parts[-1]
        if len(parts) >= 2:
            pas = from_blender_name(parts[-2]) or parts[-2].lower()
        elif plain_pass and "," not in plain_pass and chan in ("Y", "R", "G", "B"):
            pas = plain_pass
        elif chan in ("R", "G", "B", "A"):
            pas = "color"
        elif chan == "Z":
            pas = "depth"
        else:
            pas = name
        groups.setdefault(pas, {})[chan] = a.astype(np.float32)

    out: dict[str, Any] = {}
    for pas, chans in groups.items():
        if pas in ("color", "normal") and all(c in chans for c in "RGB"):
            out[pas] = np.stack([chans[c] for c in "RGB"], axis=-1)
            if pas == "color" and "A" in chans:
                out["alpha"] = chans["A"]
        elif pas == "normal" and all(c in chans for c in "XYZ"):
            out[pas] = np.stack([chans[c] for c in "XYZ"], axis=-1)
        elif len(chans) == 1:
            out[pas] = next(iter(chans.values()))
        else:
            out.update({f"{pas}.{c}": v for c, v in chans.items()})
    if "region" in out:
        out["region"] = np.rint(out["region"]).astype(np.int32)
    cam = _header_str(header, "anchorstage/camera", f"EXR file {str(p)!r}")
    if cam:
        where = f"EXR file {str(p)!r} camera"
        out["camera"] = Camera.from_json_dict(parse_json(cam, where), source=where)
    meta = _header_str(header, "anchorstage/meta", f"EXR file {str(p)!r}")
    if meta:
        out["meta"] = parse_json(meta, f"EXR file {str(p)!r} metadata")
        if not isinstance(out["meta"], dict):
            raise InputError(f"EXR file {str(p)!r} metadata must be a JSON object")
    return out
