# SPDX-License-Identifier: GPL-3.0-or-later
"""The pass registry: one row per render pass, and everything that consumes passes derives from it.

A row says what a pass is (channels, dtype, background), how the renderer makes it (the per-splat
channels it composites and how the composited sums become the pass) and how it is named outside
(Blender's pass name, channel ids and pass type; half or full float in EXR; how the demo's contact
sheet shows it). ``anchorstage.render``, ``write_exr`` / ``read_exr``, the export presets, the
ANCHORSTAGE render engine's registered passes (and so the compositor's Render Layers sockets), the
scene's view-layer settings and the contact sheet all read this table: adding a pass is adding a row.

Blender stores colour and alpha together as its ``Combined`` RGBA pass: the ``color`` row names
``Combined`` and the ``alpha`` row joins it (:data:`COMBINED`); alone, alpha is written as ``Alpha``.

Importing this module is cheap (no torch): the CLI lists passes in ``--help`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Union

from .arrays import array_module
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .splats import Splats

__all__ = ["PassSpec", "FinishInputs", "REGISTRY", "PASSES", "COMBINED", "BACKGROUND_DEPTH",
           "DEFAULT_VOID_THRESHOLD", "check_passes", "spec", "from_blender_name", "blender_layers", "background_array"]

#: What Blender writes into the Depth pass where no surface is hit.
BACKGROUND_DEPTH = 1e10
#: Alpha below which a pixel counts as void (disocclusion).
DEFAULT_VOID_THRESHOLD = 0.5
#: (colour pass, alpha pass) stored together as Blender's Combined RGBA.
COMBINED = ("color", "alpha")


@dataclass
class FinishInputs:
    """What a pass's ``finish`` reads, for one range of image rows (all on the rendering device:
    numpy arrays on the compiled CPU path, else torch tensors; a finish works on either).

    Attributes:
        alpha: [R, W] float32 accumulated opacity.
        features: [R, W, F] float32 composited sums of the per-splat channels; a pass's own
            channels are ``features[..., slot]`` with ``slot`` from its row.
        depth: [R, W] float32 alpha-normalised expected depth, metres (when a pass needs depth).
        classes: [R, W] int64 index of the dominant class (when a pass needs classes).
        class_ids: [C] int64 region id of each class (class 0 is -1, no region).
        empty: [R, W] bool, nothing contributed (alpha below 0.5 / 255).
        background: [3] float32 linear RGB behind the splats, or None for black.
        void_threshold: alpha below which a pixel is void.
    """

    alpha: "torch.Tensor"
    features: "torch.Tensor"
    depth: Optional["torch.Tensor"]
    classes: Optional["torch.Tensor"]
    class_ids: Optional["torch.Tensor"]
    empty: "torch.Tensor"
    background: Optional["torch.Tensor"]
    void_threshold: float


@dataclass(frozen=True)
class PassSpec:
    """One render pass.

    Attributes:
        name: our name (``render`` output key, CLI ``--passes``), e.g. ``"depth"``.
        channels: 1 ([H, W] pass) or 3 ([H, W, 3] pass).
        dtype: ``"float32"`` or ``"int32"``.
        blender: Blender's pass name (``ViewLayer.<blender>.<chan>`` in EXR, the compositor socket).
        chan_ids: Blender / EXR channel ids, one letter per channel (``"RGB"``, ``"Z"``, ``"XYZ"``, ``"X"``).
        blender_type: ``RenderEngine.register_pass`` type: ``"COLOR"``, ``"VECTOR"`` or ``"VALUE"``.
        background: the value where nothing is hit (every channel).
        half: stored as 16-bit half float in EXR (else 32-bit float).
        view_layer_flag: the view-layer switch of a pass Blender knows itself (``"use_pass_z"``),
            or None for the engine's custom passes (always registered).
        needs: what the rasterizer must deliver: ``"features"``, ``"alpha"``, ``"depth"`` or ``"classes"``.
        splat_channels: the per-splat values composited for this pass:
            ``splat_channels(splats, camera_position) -> [N, channels]`` (``needs == "features"`` only),
            numpy arrays for numpy-backed splats, else tensors.
        finish: ``finish(inputs, slot) -> [R, W] or [R, W, channels]``: the pass for a range of
            rows from the composited sums (``slot``: this pass's slice of ``inputs.features``).
        preview: how the demo's contact sheet shows it (``"srgb"``, ``"depth"``, ``"normal"``,
            ``"unit"``, ``"ids"``), or None to leave it out.
        description: one line for docs and ``--help``.
    """

    name: str
    channels: int
    dtype: str
    blender: str
    chan_ids: str
    blender_type: str
    background: float
    half: bool
    view_layer_flag: Optional[str]
    needs: str
    finish: Callable[[FinishInputs, Optional[slice]], "torch.Tensor"]
    splat_channels: Optional[Callable[["Splats", "torch.Tensor"], "torch.Tensor"]] = None
    preview: Optional[str] = None
    description: str = ""


# ------------------------------------------------------------------------------------ row makers
def _color_channels(splats: "Splats", camera_position: "torch.Tensor") -> "torch.Tensor":
    """[N, 3] view-dependent colour: each splat's SH (degrees 0-3) along the ray from the camera
    centre, clamped at 0 as 3DGS does (:func:`anchorstage.sh.view_colors`)."""
    from .sh import view_colors

    return view_colors(splats.colors, splats.sh_rest, splats.sh_encoding, splats.means, camera_position)


def _color(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    c = x.features[..., slot]
    return c if x.background is None else c + (1.0 - x.alpha)[..., None] * x.background


def _alpha(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    return x.alpha


def _depth(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    return array_module(x.depth).where(x.empty, BACKGROUND_DEPTH, x.depth)


def _normal_channels(splats: "Splats", camera_position: "torch.Tensor") -> "torch.Tensor":
    """[N, 3] world-space unit normals: each splat's thinnest axis, flipped to face the camera."""
    from .rotation import facing_thin_axis

    return facing_thin_axis(splats.quats, splats.scales, splats.means, camera_position)


def _normal(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    n = x.features[..., slot]
    xp = array_module(n)
    norm = xp.sqrt((n * n).sum(-1)[..., None])
    return xp.where(x.empty[..., None], 0.0, n / xp.where(norm < 1e-12, 1e-12, norm))


def _confidence_channels(splats: "Splats", camera_position: "torch.Tensor") -> "torch.Tensor":
    return splats.confidence[:, None]


def _confidence(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    return x.features[..., slot.start]


def _region(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    return x.class_ids[x.classes]


def _void(x: FinishInputs, slot: Optional[slice]) -> "torch.Tensor":
    return x.alpha < x.void_threshold


REGISTRY: tuple[PassSpec, ...] = (
    PassSpec("color", 3, "float32", "Combined", "RGB", "COLOR", 0.0, True, None, "features", _color,
             _color_channels, "srgb",
             "linear Rec.709 RGB: sum of w·colour + (1 - alpha)·background (premultiplied on black); "
             "colour is each splat's SH evaluated along the camera ray"),
    PassSpec("alpha", 1, "float32", "Alpha", "X", "VALUE", 0.0, True, None, "alpha", _alpha, None, None,
             "accumulated opacity, 1 - final transmittance"),
    PassSpec("depth", 1, "float32", "Depth", "Z", "VALUE", BACKGROUND_DEPTH, False, "use_pass_z", "depth", _depth,
             None, "depth", "metres, z along the view axis (Blender's Depth pass); 1e10 where nothing is hit"),
    PassSpec("normal", 3, "float32", "Normal", "XYZ", "VECTOR", 0.0, True, "use_pass_normal", "features", _normal,
             _normal_channels, "normal", "unit world-space normal, each splat's thinnest axis facing the camera"),
    PassSpec("confidence", 1, "float32", "Confidence", "X", "VALUE", 0.0, True, None, "features", _confidence,
             _confidence_channels, "unit", "per-splat depth confidence composited like colour (0 in voids)"),
    PassSpec("region", 1, "int32", "Region", "X", "VALUE", -1.0, False, None, "classes", _region, None, "ids",
             "region id of the dominant region's weight (-1: background or unassigned), never blended"),
    PassSpec("void", 1, "float32", "Void", "X", "VALUE", 1.0, True, None, "alpha", _void, None, "unit",
             "1 where the photo (the witness) never saw the pixel: disocclusions and out of frame, never the sky "
             "it saw (a stage's renders compute it from the witness; bare splats: alpha < void_threshold)"),
)

#: Pass names in registry order.
PASSES: tuple[str, ...] = tuple(p.name for p in REGISTRY)
_BY_NAME = {p.name: p for p in REGISTRY}
_BY_BLENDER = {p.blender.lower(): p.name for p in REGISTRY}


def spec(name: str) -> PassSpec:
    """The registry row of a pass.

    Raises:
        InputError: no such pass.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown pass {name!r}; valid passes: {', '.join(PASSES)}") from None


def from_blender_name(blender: str) -> Optional[str]:
    """Our pass name for a Blender pass name (``"Depth"`` → ``"depth"``), or None."""
    return _BY_BLENDER.get(str(blender).lower())


def check_passes(passes: Union[Iterable[str], str], what: str = "render") -> tuple[str, ...]:
    """Pass names from a list or a comma-separated string, in the order given, without repeats.

    Raises:
        InputError: an unknown pass, or none at all.
    """
    if isinstance(passes, str):
        passes = [p.strip() for p in passes.split(",") if p.strip()]
    if not isinstance(passes, (list, tuple)) or not all(isinstance(p, str) for p in passes):
        raise InputError(f"{what}: passes must be a list of pass names or a comma-separated string (got {passes!r})")
    out = tuple(dict.fromkeys(passes))
    bad = [p for p in out if p not in _BY_NAME]
    if bad:
        raise InputError(f"{what}: unknown pass(es) {', '.join(map(repr, bad))}; valid passes: {', '.join(PASSES)}")
    if not out:
        raise InputError(f"{what}: no passes asked for; valid passes: {', '.join(PASSES)}")
    return out


def blender_layers(names: Iterable[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """How a set of passes is laid out as Blender passes.

    Returns:
        (Blender pass name, channel ids, our passes in channel order) per Blender pass, in
        registry order; ``color`` and ``alpha`` together become ``("Combined", "RGBA", ("color", "alpha"))``.
    """
    names = set(names)
    combined = set(COMBINED) <= names
    out = []
    for p in REGISTRY:
        if p.name not in names or (combined and p.name == COMBINED[1]):
            continue
        if combined and p.name == COMBINED[0]:
            out.append((p.blender, p.chan_ids + "A", COMBINED))
        else:
            out.append((p.blender, p.chan_ids, (p.name,)))
    return out


def background_array(name: str, height: int, width: int) -> Any:
    """A numpy image of a pass's background value ([H, W] or [H, W, C], the pass's dtype)."""
    import numpy as np

    p = spec(name)
    shape = (height, width) if p.channels == 1 else (height, width, p.channels)
    return np.full(shape, p.background, dtype=p.dtype)
