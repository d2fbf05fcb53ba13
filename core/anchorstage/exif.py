# SPDX-License-Identifier: GPL-3.0-or-later
"""Camera intrinsics from a photo's EXIF.

The rule, in order of trust (the first that applies wins; ``Intrinsics.source`` says which):

1. ``"exif-35mm"``: ``FocalLengthIn35mmFilm`` is present. It fixes the field of view directly.
   The sensor size is derived from it using the diagonal convention (the same one as
   :attr:`anchorstage.Camera.focal_35mm_equiv`): ``sensor_diag = 43.27 mm * f / f35``.
   With ``FocalLength`` too, ``lens_mm`` is the real focal length; without it, ``lens_mm`` is
   the 35 mm-equivalent focal and the sensor is the matching full-frame-equivalent one.
2. ``"exif-focal-plane"``: ``FocalLength`` plus ``FocalPlaneXResolution`` (and
   ``FocalPlaneResolutionUnit``): the sensor width is the captured pixel width divided by the
   focal-plane resolution. Ignored when it gives an implausible sensor (outside 1–80 mm).
3. ``"exif-focal+sensor"``: ``FocalLength`` plus a sensor width looked up from ``Make``/``Model``
   in :data:`SENSOR_WIDTH_MM_BY_MODEL`.
4. ``"default"``: nothing usable; a 50 mm-equivalent lens (:data:`DEFAULT_FOCAL_35MM`, about
   40° horizontal field of view on a 3:2 photo) is assumed and a note says so.

``sensor_width_mm`` is always the sensor's *long* side, matching Blender's ``AUTO`` sensor fit,
which measures the larger image dimension against ``sensor_width``; that is why the EXIF
orientation (already applied to the pixels by :func:`anchorstage.image_io.load_image`) never
changes the intrinsics. Corrupt or nonsensical tag values are skipped with a note, never raised.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .camera import Camera, look_at
from .errors import InputError
from .image_io import LoadedImage

__all__ = [
    "Intrinsics",
    "read_intrinsics",
    "intrinsics_from_exif",
    "DEFAULT_FOCAL_35MM",
    "FULL_FRAME_DIAGONAL_MM",
    "SENSOR_WIDTH_MM_BY_MODEL",
    "DEFAULT_WORLD_FROM_CAM",
]

#: 35 mm-equivalent focal length assumed when EXIF says nothing usable (millimetres).
DEFAULT_FOCAL_35MM = 50.0

#: Diagonal of a 36 x 24 mm frame, the reference of "35 mm-equivalent" focal lengths.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)

#: Pose given to a photo's camera: at the world origin, looking down +Y, Z up (Blender world).
DEFAULT_WORLD_FROM_CAM = look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0))

#: Sensor long-side widths (mm) for common bodies, matched on "make model" prefixes
#: (lower case). Only used when EXIF has a focal length but neither a 35 mm equivalent nor a
#: usable focal-plane resolution.
SENSOR_WIDTH_MM_BY_MODEL: dict[str, float] = {
    "canon canon eos 5d": 36.0,
    "canon canon eos r5": 36.0,
    "canon canon eos r6": 35.9,
    "canon canon eos 6d": 35.8,
    "canon canon eos 7d": 22.3,
    "canon canon eos 80d": 22.5,
    "canon canon eos 90d": 22.3,
    "nikon corporation nikon d8": 35.9,
    "nikon corporation nikon d7": 23.5,
    "nikon corporation nikon z 6": 35.9,
    "nikon corporation nikon z 7": 35.9,
    "sony ilce-7": 35.6,
    "sony ilce-6": 23.5,
    "fujifilm x-t": 23.5,
    "fujifilm x100": 23.6,
    "fujifilm gfx": 43.8,
    "olympus corporation e-m": 17.3,
    "om digital solutions om-": 17.3,
    "panasonic dc-gh": 17.3,
    "panasonic dc-s": 35.6,
    "leica camera ag leica q": 36.0,
    "gopro hero": 6.17,
}

_MIN_SENSOR_MM, _MAX_SENSOR_MM = 1.0, 80.0
_MIN_FOCAL_MM, _MAX_FOCAL_MM = 0.5, 2000.0
# FocalPlaneResolutionUnit: 2 = inch, 3 = centimetre, 4 = millimetre (1 = none, read as inch per EXIF 2.3).
_UNIT_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}


@dataclass
class Intrinsics:
    """Camera intrinsics of a photo, in Blender's terms.

    Attributes:
        lens_mm: focal length in millimetres.
        sensor_width_mm: sensor long side in millimetres (Blender ``sensor_width`` with AUTO fit).
        focal_35mm: 35 mm-equivalent focal length (diagonal convention), millimetres.
        source: which rule produced the values (see the module docstring).
        make: EXIF ``Make`` (stripped), or None.
        model: EXIF ``Model`` (stripped), or None.
        orientation: EXIF ``Orientation`` (1–8; already applied to the pixels), or None.
        notes: human-readable notes (skipped tags, fallbacks).
    """

    lens_mm: float
    sensor_width_mm: float
    focal_35mm: float
    source: str
    make: Optional[str] = None
    model: Optional[str] = None
    orientation: Optional[int] = None
    notes: list[str] = field(default_factory=list)

    def camera(self, width: int, height: int) -> Camera:
        """The photo's camera at ``width`` x ``height`` pixels, posed at the origin looking down +Y."""
        return Camera(width=width, height=height, lens_mm=self.lens_mm, sensor_width_mm=self.sensor_width_mm,
                      sensor_fit="AUTO", world_from_cam=DEFAULT_WORLD_FROM_CAM)

    def fov_x_deg(self, width: int, height: int) -> float:
        """Horizontal field of view in degrees for a ``width`` x ``height`` image."""
        return self.camera(width, height).fov_deg[0]

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready record (stored in ``scene.json`` so the source of the intrinsics is visible)."""
        return {"lens_mm": self.lens_mm, "sensor_width_mm": self.sensor_width_mm, "focal_35mm": self.focal_35mm,
                "source": self.source, "make": self.make, "model": self.model,
                "orientation": self.orientation, "notes": list(self.notes)}


def _number(tags: Mapping[str, Any], name: str, notes: list[str]) -> Optional[float]:
    """A positive finite EXIF number, or None (with a note when present but unusable)."""
    if name not in tags:
        return None
    raw = tags[name]
    try:
        if isinstance(raw, tuple) and len(raw) == 2:  # (numerator, denominator) from some writers
            v = float(raw[0]) / float(raw[1])
        else:
            v = float(raw)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        notes.append(f"EXIF {name}={raw!r} is not a number; ignored")
        return None
    if not math.isfinite(v) or v <= 0:
        # 0 is EXIF's "unknown" for FocalLengthIn35mmFilm: not worth a note.
        if not (v == 0 and name == "FocalLengthIn35mmFilm"):
            notes.append(f"EXIF {name}={raw!r} is not a positive number; ignored")
        return None
    return v


def _text(tags: Mapping[str, Any], name: str) -> Optional[str]:
    raw = tags.get(name)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    s = str(raw).replace("\x00", "").strip()
    return s or None


def _diag_to_long_side(diag_mm: float, width: int, height: int) -> float:
    return diag_mm * max(width, height) / math.hypot(width, height)


def intrinsics_from_exif(tags: Mapping[str, Any], width: int, height: int) -> Intrinsics:
    """Intrinsics from EXIF tags of an upright ``width`` x ``height`` image (pure function).

    Args:
        tags: EXIF tags by name (base IFD and Exif sub-IFD merged), as in ``LoadedImage.exif``.
        width: upright image width in pixels.
        height: upright image height in pixels.

    Returns:
        The intrinsics and the rule that produced them.
    """
    if width <= 0 or height <= 0:
        raise InputError(f"image size must be positive to read intrinsics (got {width}x{height})")
    notes: list[str] = []
    make, model = _text(tags, "Make"), _text(tags, "Model")
    orientation: Optional[int] = None
    try:
        o = int(tags["Orientation"]) if "Orientation" in tags else None
        orientation = o if o is not None and 1 <= o <= 8 else None
        if o is not None and orientation is None:
            notes.append(f"EXIF Orientation={o} is outside 1-8; ignored")
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        notes.append(f"EXIF Orientation={tags.get('Orientation')!r} is not an integer; ignored")

    focal = _number(tags, "FocalLength", notes)
    if focal is not None and not (_MIN_FOCAL_MM <= focal <= _MAX_FOCAL_MM):
        notes.append(f"EXIF FocalLength={focal:g} mm is implausible; ignored")
        focal = None
    f35 = _number(tags, "FocalLengthIn35mmFilm", notes)
    if f35 is not None and not (_MIN_FOCAL_MM <= f35 <= _MAX_FOCAL_MM):
        notes.append(f"EXIF FocalLengthIn35mmFilm={f35:g} mm is implausible; ignored")
        f35 = None
    aspect_long = max(width, height) / math.hypot(width, height)

    def done(lens: float, sensor: float, source: str) -> Intrinsics:
        eq = lens / sensor * FULL_FRAME_DIAGONAL_MM * aspect_long
        return Intrinsics(lens_mm=float(lens), sensor_width_mm=float(sensor), focal_35mm=float(eq), source=source,
                          make=make, model=model, orientation=orientation, notes=notes)

    if f35 is not None:
        if focal is not None:
            sensor = _diag_to_long_side(FULL_FRAME_DIAGONAL_MM * focal / f35, width, height)
            if _MIN_SENSOR_MM <= sensor <= _MAX_SENSOR_MM:
                return done(focal, sensor, "exif-35mm")
            notes.append(f"FocalLength/FocalLengthIn35mmFilm imply a {sensor:.3g} mm sensor; using the 35 mm value alone")
        return done(f35, _diag_to_long_side(FULL_FRAME_DIAGONAL_MM, width, height), "exif-35mm")

    if focal is not None:
        sensor = _focal_plane_sensor_mm(tags, width, height, orientation, notes)
        if sensor is not None:
            return done(focal, sensor, "exif-focal-plane")
        key = f"{make or ''} {model or ''}".lower().strip()
        for prefix, table_sensor in SENSOR_WIDTH_MM_BY_MODEL.items():
            if key.startswith(prefix):
                notes.append(f"sensor width {table_sensor:g} mm from the table entry for {prefix!r}")
                return done(focal, table_sensor, "exif-focal+sensor")
        notes.append(f"EXIF FocalLength={focal:g} mm but no sensor size (no 35 mm equivalent, focal-plane "
                     f"resolution or known camera model); using the default")

    notes.append(f"no usable EXIF focal length; assuming a {DEFAULT_FOCAL_35MM:g} mm-equivalent lens")
    return done(DEFAULT_FOCAL_35MM, _diag_to_long_side(FULL_FRAME_DIAGONAL_MM, width, height), "default")


def _focal_plane_sensor_mm(tags: Mapping[str, Any], width: int, height: int, orientation: Optional[int],
                           notes: list[str]) -> Optional[float]:
    """Sensor long side from FocalPlaneX/YResolution, or None."""
    xres = _number(tags, "FocalPlaneXResolution", notes)
    if xres is None:
        return None
    yres = _number(tags, "FocalPlaneYResolution", notes) or xres
    try:
        unit_code = int(tags.get("FocalPlaneResolutionUnit", 2))
    except (TypeError, ValueError, OverflowError):
        unit_code = -1
    if unit_code not in _UNIT_MM:
        notes.append(f"EXIF FocalPlaneResolutionUnit={tags.get('FocalPlaneResolutionUnit')!r} is unknown; "
                     "focal-plane resolution ignored")
        return None
    unit = _UNIT_MM[unit_code]
    # The resolution refers to the captured (sensor-oriented) pixel grid: undo a 90° orientation,
    # and prefer the recorded capture size over the (possibly resized) stored one.
    cap_w, cap_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    px_w = _number(tags, "ExifImageWidth", []) or cap_w
    px_h = _number(tags, "ExifImageHeight", []) or cap_h
    sensor = max(px_w / xres * unit, px_h / yres * unit)
    if not (_MIN_SENSOR_MM <= sensor <= _MAX_SENSOR_MM):
        notes.append(f"EXIF focal-plane resolution implies a {sensor:.3g} mm sensor; ignored")
        return None
    return sensor


def read_intrinsics(image: LoadedImage) -> Intrinsics:
    """Intrinsics of a loaded photo from its EXIF (see the module docstring for the rule).

    Args:
        image: a photo from :func:`anchorstage.load_image` (pixels already upright).

    Returns:
        Intrinsics; ``.camera(image.width, image.height)`` gives the photo's camera.
    """
    intr = intrinsics_from_exif(image.exif or {}, image.width, image.height)
    if not image.exif and _has_raw_exif(image.path):
        intr.notes.insert(0, f"image {image.path!r}: EXIF block present but unreadable (corrupt); ignored")
    return intr


def _has_raw_exif(path: str) -> bool:
    """Whether the file carries an EXIF block at all (to tell "corrupt" from "absent")."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # lazy: reads the header only
            return bool(im.info.get("exif"))
    except Exception:  # not a Pillow-readable file (e.g. EXR): it has no EXIF to speak of
        return False
