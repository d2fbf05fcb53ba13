# SPDX-License-Identifier: GPL-3.0-or-later
"""The stage layer: the one place each stage of the pipeline is run.

Every front end is a thin caller of these functions: the CLI subcommands, the add-on's node
``compute`` methods, the demo and the headless batch (through the node tree). So the same photo
gets the same camera, depth and splats whichever way it comes in.

=================  ==========================================  ===============================
stage              function                                    result (socket payload)
=================  ==========================================  ===============================
photo + camera     :func:`load_photo`                          :class:`Photo`
metric depth       :func:`metric_depth`                        :class:`~anchorstage.depth.DepthEstimate`
reconstruct        :func:`build_stage`                         :class:`~anchorstage.scene.Scene`
segment            :func:`segment_stage`                       :class:`~anchorstage.scene.Scene`
open a source      :func:`open_source`                         ``Scene`` or ``Splats``
render             :func:`render_frame`                        :class:`Frame`
witness refresh    :func:`refresh`                             :class:`~anchorstage.witness.Refresh`
conditioning       :func:`condition`                           :class:`~anchorstage.conditioning.Conditioning`
generation         :func:`generate`                            :class:`~anchorstage.generation.Generation`
product package    :func:`package_product`                     manifest (``dict``)
capture fusion     :func:`fuse_capture`                        :class:`~anchorstage.scene.Scene`
fidelity           :func:`measure_fidelity`                    :class:`~anchorstage.fidelity.FidelityReport`
export             :func:`anchorstage.export.export_frames`    per-frame metadata
camera paths       :func:`anchorstage.camera.camera_path`      cameras
turntable          :func:`turntable_cameras`                   cameras about the product's centre
turntable package  :func:`export_turntable`                    the record (+ a package per angle)
video              :func:`render_video`                        :class:`~anchorstage.video.ClipResult`
=================  ==========================================  ===============================

The camera rule (one rule, here): an explicit camera (a camera JSON, a :class:`Camera`, or a
lens in millimetres) wins; else the photo's EXIF (:mod:`anchorstage.exif`); else a default
50 mm-equivalent lens, which is marked *guessed*: a depth model that estimates the field of
view (Depth Pro) then sets the focal length when the stage is built, and a depth model that
needs the focal length gets none rather than the guess.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .camera import Camera, load_camera_json, look_at
from .errors import InputError
from .progress import ProgressFn, scaled

if TYPE_CHECKING:  # pragma: no cover
    from .depth import DepthEstimate
    from .image_io import LoadedImage
    from .scene import Scene
    from .splats import Splats
    from .witness import Refresh
    from .conditioning import Conditioning
    from .generation import Generation, GenerationSettings
    from .fidelity import FidelityReport
    from .temporal import SmoothingSettings
    from .video import ClipResult

__all__ = ["Photo", "Frame", "load_photo", "with_camera", "metric_depth", "depth_from_file", "stage_camera", "build_stage",
           "segment_stage", "open_source", "render_frame", "camera_from_fov", "refresh", "condition", "generate",
           "package_product", "fuse_capture", "measure_fidelity", "product_centre", "turntable_cameras",
           "export_turntable", "render_video",
           "VIDEO_FRAMES"]


@dataclass
class Photo:
    """A photo and the camera the photo-camera rule gave it.

    Attributes:
        image: the decoded photo (linear Rec.709, EXIF applied).
        camera: its camera, at the photo's resolution (world frame Z up, metres).
        camera_source: where the camera came from (``"camera file"``, ``"lens"``, ``"exif-35mm"``, ...).
        guessed: no usable focal length was known (the default lens is assumed).
        intrinsics: the EXIF record when the camera came from EXIF (JSON-ready), else None.
        notes: human-readable notes (scaling, EXIF fallbacks, ...).
    """

    image: "LoadedImage"
    camera: Camera
    camera_source: str
    guessed: bool = False
    intrinsics: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


@dataclass
class Frame:
    """Rendered passes and the camera they were rendered from.

    Attributes:
        passes: pass name → numpy array on the CPU ([H, W] or [H, W, 3], see :mod:`anchorstage.passes`).
        camera: the camera.
    """

    passes: dict[str, np.ndarray]
    camera: Camera


# ---------------------------------------------------------------------------------------------- photo
def load_photo(image: Union[str, os.PathLike, "LoadedImage"], *, camera: Union[Camera, str, os.PathLike, None] = None,
               lens_mm: Optional[float] = None, sensor_mm: Optional[float] = None) -> Photo:
    """Load a photo and decide its camera (the camera rule of the module docstring).

    Args:
        image: a photo path or an already loaded :class:`~anchorstage.image_io.LoadedImage`.
        camera: a :class:`Camera` or a camera JSON path; a camera of another resolution with the
            photo's aspect ratio is scaled to it.
        lens_mm: focal length in millimetres (instead of ``camera``).
        sensor_mm: sensor width in millimetres with ``lens_mm`` (default 36).

    Returns:
        The :class:`Photo`.

    Raises:
        InputError: unreadable photo or camera file, both a camera and a lens, a bad lens or
            sensor, a camera of another aspect ratio.
    """
    from .image_io import LoadedImage, load_image

    img = image if isinstance(image, LoadedImage) else load_image(image)
    notes = list(img.notes)
    w, h = img.width, img.height
    if camera is not None and (lens_mm is not None or sensor_mm is not None):
        raise InputError("give either a camera or a lens (lens_mm / sensor_mm), not both")
    if sensor_mm is not None and lens_mm is None:
        raise InputError("a sensor width needs a lens (lens_mm) as well")
    if camera is not None:
        source = "camera"
        if not isinstance(camera, Camera):
            source = "camera file"
            camera = load_camera_json(camera)
        cam, note = camera.fitted_to(w, h, source)
        notes += [note] if note else []
        return Photo(img, cam, source, notes=notes)
    if lens_mm is not None:
        lens = _positive("lens_mm", lens_mm)
        sensor = 36.0 if sensor_mm is None else _positive("sensor_mm", sensor_mm)
        cam = Camera(width=w, height=h, lens_mm=lens, sensor_width_mm=sensor,
                     world_from_cam=look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0)))
        return Photo(img, cam, f"lens {lens:g} mm on a {sensor:g} mm sensor", notes=notes)
    from .exif import read_intrinsics

    intr = read_intrinsics(img)
    return Photo(img, intr.camera(w, h), intr.source, guessed=intr.source == "default",
                 intrinsics=intr.to_json_dict(), notes=notes + list(intr.notes))


def with_camera(photo: Photo, camera: Camera, source: str = "camera") -> Photo:
    """``photo`` with an explicit camera instead of its own (scaled to the photo if needed)."""
    if not isinstance(camera, Camera):
        raise InputError(f"{source} must be an anchorstage.Camera (got {type(camera).__name__})")
    cam, note = camera.fitted_to(photo.width, photo.height, source)
    return Photo(photo.image, cam, source, notes=list(photo.notes) + ([note] if note else []))


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number of millimetres (got {value!r})")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number of millimetres (got {value!r})") from None
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"{name} must be > 0 millimetres (got {value!r})")
    return v


# ---------------------------------------------------------------------------------------------- depth
def depth_from_file(path: Union[str, os.PathLike], photo: Photo, *, far_limit_m: Optional[float] = None) -> "DepthEstimate":
    """A user depth map as a :class:`~anchorstage.depth.DepthEstimate` (confidence 1 where valid).

    Raises:
        InputError: unreadable map, wrong aspect ratio, no valid pixel.
    """
    from .depth import DepthEstimate
    from .depth_io import DEFAULT_FAR_LIMIT_M, load_depth

    far = DEFAULT_FAR_LIMIT_M if far_limit_m is None else far_limit_m
    depth, notes = load_depth(path, expected_hw=(photo.height, photo.width), far_limit_m=far)
    return DepthEstimate(depth_m=depth, confidence=np.isfinite(depth).astype(np.float32), fov_x_deg=None,
                         model=f"file {Path(path).name}", notes=notes)


def metric_depth(photo: Photo, *, depth_file: Union[str, os.PathLike, None] = None, model: Optional[str] = None,
                 far_limit_m: Optional[float] = None, device: str = "auto",
                 progress: Optional[ProgressFn] = None) -> "DepthEstimate":
    """Metric depth for a photo: a user depth map, or a depth model.

    Args:
        photo: from :func:`load_photo`.
        depth_file: a depth map (``.npy`` / ``.exr`` metres, 16-bit ``.png`` millimetres).
        model: depth model hub id, alias or folder (default: the documented default model).
        far_limit_m: depths beyond this are sky (depth maps only; models have their own range).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        A DepthEstimate: depth_m [H, W] float32 metres (inf = sky), confidence [H, W] in [0, 1],
        and the model's field of view when it estimates one.

    Raises:
        InputError: both a file and a model, bad file. MissingDependencyError: no model weights.
    """
    if depth_file is not None and model is not None:
        raise InputError("give either a depth file or a depth model, not both")
    if depth_file is not None:
        return depth_from_file(depth_file, photo, far_limit_m=far_limit_m)
    from .depth import DEFAULT_DEPTH_MODEL, estimate_depth

    # A guessed lens would mislead a model's metric scale; Depth Pro estimates its own field of view.
    return estimate_depth(photo.image, None if photo.guessed else photo.camera, model=model or DEFAULT_DEPTH_MODEL,
                          device=device, progress=progress)


# ---------------------------------------------------------------------------------------------- reconstruct
def camera_from_fov(camera: Camera, fov_x_deg: float) -> Camera:
    """``camera`` with the focal length that gives a horizontal field of view of ``fov_x_deg``."""
    if not 0.0 < fov_x_deg < 180.0:
        raise InputError(f"depth model returned an impossible field of view ({fov_x_deg:g} degrees)")
    f_px = camera.width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    K = np.array([[f_px, 0.0, camera.width / 2.0], [0.0, f_px, camera.height / 2.0], [0.0, 0.0, 1.0]])
    return Camera.from_K(K, camera.width, camera.height, camera.world_from_cam, camera.sensor_width_mm)


def stage_camera(photo: Photo, depth: "DepthEstimate") -> tuple[Camera, str]:
    """The camera a stage is built with, and where it came from: the photo's camera, or, when its
    lens was guessed, the field of view the depth model estimated."""
    if photo.guessed and depth.fov_x_deg is not None:
        return camera_from_fov(photo.camera, depth.fov_x_deg), f"field of view estimated by {depth.model}"
    return photo.camera, photo.camera_source


def build_stage(photo: Photo, depth: "DepthEstimate", *, max_splats: Optional[int] = None,
                second_layer: bool = True, fit_colors: bool = True, far_limit_m: Optional[float] = None,
                regions: bool = True,
                max_regions: int = 10, device: str = "auto", progress: Optional[ProgressFn] = None) -> "Scene":
    """Reconstruct a metric splat stage from a photo and its depth (and segment it into regions).

    Args:
        photo: from :func:`load_photo`.
        depth: from :func:`metric_depth`.
        max_splats: splat budget (default ≈ 1M for a 1080p photo).
        second_layer: add background splats behind depth edges.
        fit_colors: fit the splat colours so the photo's own view reproduces the photo (see
            docs/reconstruction.md); False keeps each splat's pixel colour.
        far_limit_m: depth beyond this many metres is sky.
        regions: also segment into sky / ground / facade / object regions.
        max_regions: at most this many regions.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        The :class:`~anchorstage.scene.Scene`; ``meta`` records the sources of the camera and depth.
    """
    from .depth_io import DEFAULT_FAR_LIMIT_M
    from .regression import reconstruct

    camera, source = stage_camera(photo, depth)
    meta: dict[str, Any] = {"source_image": Path(photo.image.path).name, "intrinsics_source": source,
                            "depth_source": depth.model if depth.model.startswith("file ") else f"model {depth.model}",
                            "notes": list(photo.notes) + list(depth.notes)}
    if photo.intrinsics is not None:
        meta["intrinsics"] = photo.intrinsics
    far = DEFAULT_FAR_LIMIT_M if far_limit_m is None else far_limit_m
    scene = reconstruct(photo.image, depth.depth_m, camera, max_splats=max_splats, confidence=depth.confidence,
                        far_limit_m=far, second_layer=second_layer, fit_colors=fit_colors, device=device,
                        progress=scaled(progress, 0.0, 0.8 if regions else 1.0), meta=meta)
    if regions:
        scene = segment_stage(scene, max_regions=max_regions, progress=scaled(progress, 0.8, 1.0))
    return scene


def segment_stage(scene: "Scene", *, max_regions: int = 10, progress: Optional[ProgressFn] = None) -> "Scene":
    """A copy of ``scene`` segmented into regions (its splats labelled); ``scene`` is left as it was."""
    from .segmentation import segment

    out = replace(scene, splats=replace(scene.splats), regions=[])
    segment(out, max_regions=max_regions, progress=progress)
    return out


# ---------------------------------------------------------------------------------------------- render
def open_source(path: Union[str, os.PathLike], *, numpy: bool = False) -> Union["Scene", "Splats"]:
    """What a render can start from: a scene folder (a :class:`~anchorstage.scene.Scene`) or a splat
    file (``.ply``, ``.compressed.ply``, ``.splat``, ``.spz``: :class:`~anchorstage.splats.Splats`
    placed in the Z-up world as the Blender import places them; SHARP files from their camera frame).

    ``numpy=True`` opens numpy-backed splats where it can (scene folders, plain PLY files): a frame
    of them on the CPU never loads torch (:func:`render_frame`).

    Raises:
        InputError: neither a scene folder nor a readable splat file.
    """
    if os.path.isdir(path):
        from .scene import load_scene

        return load_scene(path, numpy=numpy)
    from .splatio import read_splats
    from .splatio.sharp import placed

    return placed(read_splats(path, numpy=numpy), path)


def render_frame(source: Union["Scene", "Splats"], camera: Camera, passes: Union[Sequence[str], str, None] = None, *,
                 backend: str = "auto", device: str = "auto", void_threshold: Optional[float] = None,
                 lod: bool = True, lod_threshold_px: Optional[float] = None) -> Frame:
    """Render a scene (or bare splats) from a camera into passes on the CPU side.

    Args:
        source: a :class:`~anchorstage.scene.Scene` or :class:`~anchorstage.splats.Splats`.
        camera: the camera (OpenCV frame, metres).
        passes: pass names (default: every pass of the registry).
        backend: ``"auto"``, ``"torch"`` or ``"gsplat"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        void_threshold: for bare splats, alpha below which a pixel is void (default 0.5); a scene's
            Void pass marks what its witness never saw (:mod:`anchorstage.witness`).
        lod: render big sets (:data:`anchorstage.lod.MIN_SPLATS` splats and more) through their
            level-of-detail hierarchy (the scene's own, else built once and kept); False renders
            every splat exactly.
        lod_threshold_px: the hierarchy's cut (default :data:`anchorstage.lod.DEFAULT_THRESHOLD_PX`).

    Returns:
        A :class:`Frame` with numpy passes (on the CPU, numpy-backed splats below the level-of-detail
        size render without loading torch).
    """
    from .passes import DEFAULT_VOID_THRESHOLD, PASSES
    from .renderer import render_host

    if not isinstance(lod, (bool, np.bool_)):
        raise InputError(f"render: lod must be True or False (got {lod!r})")
    splats = getattr(source, "splats", source)
    tree = None
    if lod:
        from .lod import tree_for

        tree = tree_for(source)
    frame = Frame(render_host(splats, camera, PASSES if passes is None else passes, backend=backend, device=device,
                              void_threshold=DEFAULT_VOID_THRESHOLD if void_threshold is None else void_threshold,
                              lod=tree, lod_threshold_px=lod_threshold_px), camera)
    if "void" in frame.passes and getattr(source, "depth_m", None) is not None:
        from .witness import void_pass

        frame.passes["void"] = void_pass(source, camera, backend=backend, device=device)
    return frame


# ---------------------------------------------------------------------------------------------- refresh
def refresh(scene: "Scene", camera: Camera, *, locks: Sequence[str] = (), inpaint: str = "classical",
            update_scene: bool = False, diffusion: Optional[Any] = None, feather_px: Optional[int] = None,
            backend: str = "auto", device: str = "auto", progress: Optional[ProgressFn] = None) -> "Refresh":
    """Refresh the witness for a camera: warp it through the metric proxy, lock, inpaint, assess.

    Args:
        scene: the stage (:class:`~anchorstage.scene.Scene` with its photo, depth, regions, splats).
        camera: the target camera (OpenCV frame, metres).
        locks: region ids or labels to lock (besides the regions the scene already locks); their
            pixels stay bit-identical to the warp.
        inpaint: ``"classical"`` (no weights) or ``"diffusion"`` (diffusers ControlNet inpainting).
        update_scene: append the filled pixels as splats (and the locks) to a copy of the scene,
            returned as ``Refresh.scene``, so the next refresh sees them.
        diffusion: :class:`~anchorstage.inpaint_diffusion.DiffusionSettings` (model ids or folders,
            steps, prompt, seed ...) for ``inpaint="diffusion"``.
        feather_px: width of the seam feather in pixels (default :data:`anchorstage.witness.FEATHER_PX`).
        backend: render backend. device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        The :class:`~anchorstage.witness.Refresh`: refreshed witness [H, W, 3] linear, void, locks,
        confidence (number, map), the scene after the step.

    Raises:
        InputError: bad camera, unknown lock, unknown method. MissingDependencyError: diffusion weights
        or diffusers missing.
    """
    from . import witness as wit
    from .confidence import from_warp
    from .progress import report

    if inpaint not in wit.INPAINT_METHODS:
        raise InputError(f"refresh: inpaint must be one of {', '.join(wit.INPAINT_METHODS)} (got {inpaint!r})")
    locked = wit.resolve_locks(scene, locks)
    settings = None
    if inpaint == "diffusion":
        from .inpaint_diffusion import DiffusionSettings

        settings = diffusion if diffusion is not None else DiffusionSettings()
        if not isinstance(settings, DiffusionSettings):
            raise InputError(f"refresh: diffusion must be DiffusionSettings (got {type(settings).__name__})")
    report(progress, 0.0, "warp")
    warp = wit.warp_witness(scene, camera, backend=backend, device=device)
    lock_px = wit.lock_mask(warp, locked)
    report(progress, 0.3 if settings else 0.6, "inpaint")
    fill = wit.fill_classical(warp, lock_px)
    # The background the fill continues, once for the diffusion controls, the new splats and the proxy depth.
    fill_depth = wit.fill_depth(warp, fill, scene.regions)
    image = wit.composite_fill(warp, fill, lock_px, wit.FEATHER_PX if feather_px is None else int(feather_px))
    notes: list[str] = []
    if settings is not None:
        from .inpaint_diffusion import inpaint_warp

        image, fill = inpaint_warp(scene, warp, fill, image, lock_px, settings, fill_depth_m=fill_depth, device=device,
                                   progress=scaled(progress, 0.3, 0.9))
    notes += fill.notes
    conf = from_warp(warp)
    names = [r.id for r in scene.regions if r.index in set(locked)]
    out_scene, added = scene, 0
    if update_scene:
        report(progress, 0.9, "new splats")
        step = {"step": len(wit.refresh_steps(scene)) + 1, "camera": camera.to_json_dict(), "inpaint": inpaint,
                "locked_regions": names, "filled_px": int(fill.mask.sum()), "confidence": round(conf.value, 6)}
        out_scene, added = wit.append_fill(scene, warp, fill, image, step=step, fill_depth_m=fill_depth, device=device)
        for r in out_scene.regions:
            r.locked = r.locked or r.index in set(locked)
    report(progress, 1.0, f"confidence {conf.value:.2f} ({conf.level})")
    filled = fill.mask if fill.written is None else fill.written
    return wit.Refresh(camera=camera, witness=image, warp=warp, void=warp.void, locks=lock_px, filled=filled,
                       confidence=conf, scene=out_scene, added_splats=added, inpaint=inpaint, locked_regions=names,
                       notes=notes, fill_depth_m=fill_depth if fill.mask.any() else None)


# ---------------------------------------------------------------------------------------------- generation
def condition(refresh: "Refresh", scene: Optional["Scene"] = None, *, prompt: str = "",
              negative_prompt: Optional[str] = None, seed: int = 0, strength: float = 1.0,
              reference: bool = True) -> "Conditioning":
    """The conditioning stack of a refreshed frame (what :func:`generate` is conditioned on).

    Args:
        refresh: from :func:`refresh`.
        scene: the stage it came from (its photo is the IP-Adapter's reference).
        prompt: the style prompt. negative_prompt: what to avoid (default: the documented one).
        seed: random seed. strength: (0, 1], how far the void is re-noised.
        reference: include the scene's photo as the reference.

    Returns:
        The :class:`~anchorstage.conditioning.Conditioning`: image [H, W, 3] linear (the refreshed
        witness), depth [H, W] metres, camera-frame normals [H, W, 3], mask (the void less the locks)
        and locks [H, W] bool, camera, prompts, seed, strength, reference photo.
    """
    from .conditioning import conditioning_from_refresh
    from .diffusion import DEFAULT_NEGATIVE_PROMPT

    return conditioning_from_refresh(refresh, scene, style_prompt=prompt,
                                     negative_prompt=DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt,
                                     seed=seed, strength=strength, reference=reference)


def generate(conditioning: "Conditioning", settings: Optional["GenerationSettings"] = None, *, device: str = "auto",
             progress: Optional[ProgressFn] = None, cancel: Optional[Any] = None) -> "Generation":
    """Generate a finished frame from a conditioning stack (diffusers SD 1.5 / SDXL ControlNet inpainting
    with depth and normal ControlNets and an optional IP-Adapter); only the mask is generated, locked
    pixels and everything outside the mask stay bit-identical to the conditioning's image.

    Args:
        conditioning: from :func:`condition` or :func:`anchorstage.conditioning.load_conditioning`.
        settings: :class:`~anchorstage.generation.GenerationSettings` (models, steps, memory savers);
            default: from the environment and the documented defaults.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: called once per denoising step.
        cancel: a callable checked between steps; True stops the run (:class:`~anchorstage.errors.Cancelled`).

    Returns:
        The :class:`~anchorstage.generation.Generation`: image [H, W, 3] float32 linear, the generated
        pixels [H, W] bool, notes, seconds per step.

    Raises:
        InputError: bad conditioning or settings. MissingDependencyError: diffusers or weights missing
        (names the id). Cancelled: cancelled.
    """
    from .generation import generate as _generate

    return _generate(conditioning, settings, device=device, progress=progress, cancel=cancel)


# ---------------------------------------------------------------------------------------------- multi-view
def package_product(photo: Photo, depth: "DepthEstimate", out_dir: Union[str, os.PathLike], *,
                    mask_model: Optional[str] = None, identity_model: Optional[str] = None, device: str = "auto",
                    force: bool = False) -> dict[str, Any]:
    """Write a product package: foreground mask (alpha, segmentation model or depth fallback), metric
    depth [H, W] metres, CLIP identity embedding [D] and camera, with ``manifest.json``
    (:mod:`anchorstage.product`). Returns the manifest."""
    from .product import package

    return package(photo, depth, out_dir, mask_model=mask_model, identity_model=identity_model, device=device,
                   force=force)


def fuse_capture(capture_dir: Union[str, os.PathLike], *, depth_model: Optional[str] = None,
                 mask_model: Optional[str] = None, max_splats_per_view: Optional[int] = None, fit_colors: bool = True,
                 device: str = "auto", progress: Optional[ProgressFn] = None) -> "Scene":
    """Fuse a capture folder's posed views into one scene (:mod:`anchorstage.fusion`): each view
    regressed and placed by its camera, splats in space another view proves empty dropped, each
    surface kept from the view that sees it best, colours fitted over every view.

    Returns:
        The fused :class:`~anchorstage.scene.Scene` (world frame, metres; the frontal view is its
        witness; ``meta["fusion"]`` reports what each view kept).

    Raises:
        InputError: empty folder, a view without its camera JSON, masks or depths of another size.
    """
    from .fusion import fuse, load_capture

    views = load_capture(capture_dir, depth_model=depth_model, mask_model=mask_model, device=device,
                         progress=scaled(progress, 0.0, 0.2))
    scene, _ = fuse(views, max_splats_per_view=max_splats_per_view, fit_colors=fit_colors, device=device,
                    progress=scaled(progress, 0.2, 1.0))
    return scene


def measure_fidelity(generated_dir: Union[str, os.PathLike, None] = None, reference_dir: Union[str, os.PathLike, None] = None,
             *, leave_one_out: Union[str, os.PathLike, None] = None, masks: Union[str, os.PathLike, None] = None,
             identity_model: Optional[str] = None, depth_model: Optional[str] = None, device: str = "auto",
             progress: Optional[ProgressFn] = None) -> "FidelityReport":
    """Per-angle fidelity (masked PSNR, SSIM, LPIPS when available, CLIP identity): generated frames
    against references of the same names, or ``leave_one_out`` a capture folder (each view held out,
    the rest fused and rendered at its camera, beside the frontal single-image baseline).

    Raises:
        InputError: both or neither of the two modes, missing folders, mismatched sizes.
    """
    from . import fidelity as fid

    if (leave_one_out is None and (generated_dir is None or reference_dir is None)) or \
            (leave_one_out is not None and (generated_dir is not None or reference_dir is not None)):
        raise InputError("fidelity: give GENERATED_DIR and REFERENCE_DIR, or a capture folder to leave one out, "
                         "not both")
    if leave_one_out is not None:
        if masks is not None:
            raise InputError("fidelity: --masks is for GENERATED_DIR REFERENCE_DIR; a capture carries its own masks")
        from .fusion import load_capture

        views = load_capture(leave_one_out, depth_model=depth_model, device=device, progress=scaled(progress, 0.0, 0.1))
        return fid.leave_one_out(views, identity_model=identity_model, device=device,
                                 progress=scaled(progress, 0.1, 1.0))
    return fid.compare_folders(generated_dir, reference_dir, masks=masks, identity_model=identity_model,
                               device=device, progress=progress)


# ---------------------------------------------------------------------------------------------- turntable, video
#: What a video's frames are: the raw render, the refreshed witness, or a generated frame.
VIDEO_FRAMES = ("render", "refresh", "generate")
_BACKGROUND_LABELS = ("sky", "ground", "facade")


def product_centre(source: Union["Scene", "Splats"]) -> np.ndarray:
    """A robust centre of the foreground splats: [3] world metres.

    The foreground is the splats of ``object`` regions when the scene has any, else every splat not
    in a sky, ground or facade region (a fused product capture has dropped its background), of
    opacity at least 0.5 when there are such. The centre is the middle of their 2nd-98th percentile
    box on each axis: the middle of the product's extent (not of its visible surface, as a mean or
    median would be), with stray splats ignored.

    Raises:
        InputError: no splats.
    """
    splats = getattr(source, "splats", source)
    means = splats.means.detach().cpu().numpy().astype(np.float64)
    if len(means) == 0:
        raise InputError("turntable: the scene has no splats to find the product's centre from; give a centre")
    keep = splats.opacities.detach().cpu().numpy() >= 0.5
    keep = keep if keep.any() else np.ones(len(means), bool)
    regions = list(getattr(source, "regions", []) or [])
    ids = splats.region_ids.detach().cpu().numpy()
    objects = [r.index for r in regions if r.label == "object"]
    if objects:
        fg = np.isin(ids, objects)
    else:
        fg = ~np.isin(ids, [r.index for r in regions if r.label in _BACKGROUND_LABELS])
    if (keep & fg).any():
        keep &= fg
    lo, hi = np.percentile(means[keep], [2.0, 98.0], axis=0)
    return (lo + hi) / 2.0


def turntable_cameras(scene: "Scene", views: int, *, radius_m: Optional[float] = None,
                      elevation_deg: Optional[float] = None, centre: Optional[Sequence[float]] = None,
                      start_deg: Optional[float] = None, sweep_deg: float = 360.0,
                      resolution: Optional[tuple[int, int]] = None) -> list[Camera]:
    """Turntable cameras about the product: ``views`` cameras on a circle about the vertical axis
    through its centre, each looking at it (:func:`anchorstage.camera.turntable_path`).

    Args:
        scene: the stage; its camera gives the lens and the defaults.
        views: number of cameras (8: 45° apart).
        radius_m: distance from the centre, metres (default: the scene camera's).
        elevation_deg: degrees above the centre's horizontal plane (default: the scene camera's).
        centre: [3] world metres (default: :func:`product_centre`).
        start_deg: azimuth of the first view, degrees (default: the scene camera's: view 0 from the photo's position).
        sweep_deg: azimuth covered, degrees (360: a full turn, no repeated end view).
        resolution: (width, height) pixels (default: the scene camera's).

    Returns:
        ``views`` cameras (OpenCV frame, metres).

    Raises:
        InputError: bad count, radius, elevation, sweep, centre or resolution.
    """
    from .camera import turntable_path

    ref = getattr(scene, "camera", None)
    if not isinstance(ref, Camera):
        raise InputError(f"turntable: needs a Scene with its camera (got {type(scene).__name__})")
    if resolution is not None:
        ref = ref.with_resolution(*resolution)
    c = product_centre(scene) if centre is None else centre
    return turntable_path(ref, c, views, radius_m=radius_m, elevation_deg=elevation_deg, start_deg=start_deg,
                          sweep_deg=sweep_deg)


def export_turntable(scene: "Scene", cameras: Sequence[Camera], out: Union[str, os.PathLike], *,
                     centre: Sequence[float], centre_given: bool = False, sweep_deg: float = 360.0,
                     preset: str = "blender", passes: Optional[Sequence[str]] = None, backend: str = "auto",
                     device: str = "auto", progress: Optional[ProgressFn] = None) -> dict[str, Any]:
    """Render every pass per turntable angle into ``out`` (a compositing package per angle, as
    :func:`anchorstage.export.export_frames`), with ``cameras.json`` (for ``anchorstage video --path``)
    and ``turntable.json`` (the record below, also in each frame's metadata).

    Args:
        scene: the stage.
        cameras: from :func:`turntable_cameras` (OpenCV frame, metres).
        centre: [3] world metres the cameras turn about.
        centre_given: the centre was given, not found from the foreground splats.
        sweep_deg: the azimuth the cameras cover, degrees (for the record).
        preset, passes, backend, device, progress: as :func:`anchorstage.export.export_frames`.

    Returns:
        The JSON-ready record: views, centre (metres) and its source, radius (metres), elevation and
        sweep (degrees), resolution.
    """
    import json

    from .atomic import atomic_file
    from .export import export_frames, save_camera_list
    from .passes import PASSES

    c = [float(v) for v in centre]
    p = cameras[0].position
    radius = math.dist(p, c)
    record = {"views": len(cameras), "centre_m": c, "centre_source": "given" if centre_given else "foreground splats",
              "radius_m": round(radius, 9), "elevation_deg": round(math.degrees(math.asin((p[2] - c[2]) / radius)), 9),
              "sweep_deg": sweep_deg, "resolution": list(cameras[0].resolution)}
    out = Path(out)
    export_frames(scene, cameras, out, preset=preset, passes=PASSES if passes is None else passes, backend=backend,
                  device=device, generation={"turntable": record}, progress=progress)
    save_camera_list(out / "cameras.json", cameras)
    with atomic_file(out / "turntable.json", "turntable record") as tmp:
        tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def render_video(scene: "Scene", cameras: Sequence[Camera], out: Union[str, os.PathLike], *, fps: float = 24.0,
                 gif: Union[str, os.PathLike, None] = None, frames_from: str = "render",
                 background: Sequence[float] = (0.0, 0.0, 0.0), locks: Sequence[str] = (), prompt: str = "",
                 seed: int = 0, generation: Optional["GenerationSettings"] = None,
                 smoothing: Optional["SmoothingSettings"] = None, crf: Optional[int] = None,
                 gif_max_side: Optional[int] = None, backend: str = "auto", device: str = "auto",
                 progress: Optional[ProgressFn] = None, cancel: Optional[Any] = None) -> "ClipResult":
    """Render a camera path of a stage into an MP4 (H.264, yuv420p) and optionally a GIF, frame by frame.

    Each frame is made, (smoothed,) encoded and dropped before the next is made, so a clip of any
    length needs the memory of one frame (one AnimateDiff window with smoothing).

    Args:
        scene: the stage.
        cameras: one camera per frame, all of one even resolution (OpenCV frame, metres).
        out: the ``.mp4`` file. gif: an optional ``.gif`` file.
        fps: frames per second.
        frames_from: ``"render"`` (the splats' beauty pass over ``background``), ``"refresh"`` (the
            refreshed witness, :func:`refresh`, classical fill) or ``"generate"`` (refresh, then
            :func:`condition` and :func:`generate` per frame, one seed for all).
        background: linear RGB behind the splats for ``"render"``.
        locks: region ids or labels locked in refresh and generation.
        prompt, seed: for ``"generate"`` (and the smoothing's prompt when it has none).
        generation: :class:`~anchorstage.generation.GenerationSettings` for ``"generate"``.
        smoothing: :class:`~anchorstage.temporal.SmoothingSettings`: AnimateDiff temporal smoothing, or None.
        crf: x264 quality (default :data:`anchorstage.video.DEFAULT_CRF`).
        gif_max_side: longest GIF side in pixels (default :data:`anchorstage.video.GIF_MAX_SIDE`).
        backend, device: render backend and device.
        progress: optional progress callback. cancel: checked between frames
            (True stops the clip with :class:`~anchorstage.errors.Cancelled`, nothing written).

    Returns:
        The :class:`~anchorstage.video.ClipResult`.

    Raises:
        InputError: no cameras, cameras of different or odd sizes, bad fps, mode or background.
        OutputError: the MP4 or GIF cannot be written. MissingDependencyError: PyAV, or weights missing.
    """
    from .errors import Cancelled
    from .progress import report
    from .input_files import path_arg
    from .video import DEFAULT_CRF, GIF_MAX_SIDE, check_fps, check_video_size, write_clip

    if not isinstance(frames_from, str) or frames_from not in VIDEO_FRAMES:
        raise InputError(f"video: frames must come from one of {', '.join(VIDEO_FRAMES)} (got {frames_from!r})")
    if not hasattr(scene, "splats") or (frames_from != "render" and getattr(scene, "depth_m", None) is None):
        raise InputError(f"video: scene must be a Scene{' with its photo and depth' if frames_from != 'render' else ''} "
                         f"(got {type(scene).__name__})")
    out = path_arg(out, "video: out")
    gif = None if gif is None else path_arg(gif, "video: gif")
    if isinstance(cameras, Camera):
        cameras = [cameras]
    cams = list(cameras) if isinstance(cameras, (list, tuple)) else None
    if not cams or not all(isinstance(c, Camera) for c in cams):
        raise InputError("video: cameras must be a non-empty list of Cameras")
    sizes = sorted({c.resolution for c in cams})
    if len(sizes) > 1:
        raise InputError(f"video: every camera of a clip must have one resolution (got {', '.join(f'{w}x{h}' for w, h in sizes)})")
    width, height = sizes[0]
    check_video_size(width, height)
    check_fps(fps)
    try:
        with np.errstate(over="ignore"):  # a huge value becomes inf and is refused below
            bg = np.asarray(background, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        bg = np.zeros(0, np.float32)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise InputError(f"video: background must be three finite linear RGB values (got {background!r})")
    if not isinstance(prompt, str):
        raise InputError(f"video: prompt must be text (got {type(prompt).__name__})")
    smoother = None
    if smoothing is not None:
        from .temporal import SmoothingSettings, TemporalSmoother, load_animatediff

        if not isinstance(smoothing, SmoothingSettings):
            raise InputError(f"video: smoothing must be SmoothingSettings (got {type(smoothing).__name__})")
        if not smoothing.prompt and prompt:
            smoothing = replace(smoothing, prompt=prompt)
        smoother = TemporalSmoother(smoothing, device=device)
        load_animatediff(smoothing, device)  # missing weights fail now, before any frame is rendered
    if frames_from == "generate":
        from .generation import GenerationSettings

        generation = GenerationSettings() if generation is None else generation
        if not isinstance(generation, GenerationSettings):
            raise InputError(f"video: generation must be GenerationSettings (got {type(generation).__name__})")
    n = len(cams)

    def frames() -> Any:
        for k, cam in enumerate(cams):
            if cancel is not None and cancel():
                raise Cancelled(f"video cancelled after {k} of {n} frames")
            step = scaled(progress, k / n, (k + 1) / n)
            report(step, 0.0, f"frame {k + 1}/{n}: {frames_from}")
            if frames_from == "render":
                passes = render_frame(scene, cam, ["color", "alpha"], backend=backend, device=device).passes
                yield passes["color"] + (1.0 - passes["alpha"])[..., None] * bg
                continue
            res = refresh(scene, cam, locks=locks, backend=backend, device=device, progress=scaled(step, 0.0, 0.3))
            if frames_from == "refresh":
                yield res.witness
                continue
            cond = condition(res, scene, prompt=prompt, seed=seed)
            yield generate(cond, generation, device=device, progress=scaled(step, 0.3, 1.0), cancel=cancel).image

    result = write_clip(frames(), out, width, height, fps=fps, gif=gif,
                        gif_max_side=GIF_MAX_SIDE if gif_max_side is None else gif_max_side,
                        crf=DEFAULT_CRF if crf is None else crf, smoother=smoother)
    report(progress, 1.0, f"{result.frames} frames")
    return result
