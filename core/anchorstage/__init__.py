# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage core: one photo → a metric 3D Gaussian-splat stage with compositing passes.

This package never imports Blender. Everything loads on first use, so ``import anchorstage`` is
cheap (no torch) and never touches a GPU or the network. The stage functions (``reconstruct``,
``render``, ``segment``) live in modules of other names (``regression``, ``renderer``,
``segmentation``), so importing a module never hides a function of the same name.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .errors import AnchorStageError, InputError, MissingDependencyError, OutputError

# name -> module that defines it.
_LAZY = {
    "Camera": "camera",
    "FOCAL_PRESETS_MM": "camera",
    "MOVES": "camera",
    "look_at": "camera",
    "camera_path": "camera",
    "load_camera_json": "camera",
    "save_camera_json": "camera",
    "Region": "region",
    "Splats": "splats",
    "reconstruct": "regression",
    "render": "renderer",
    "segment": "segmentation",
    "PASSES": "passes",
    "load_image": "image_io",
    "Scene": "scene",
    "load_scene": "scene",
    "save_scene": "scene",
    "read_ply": "splatio.ply",
    "write_ply": "splatio.ply",
    "read_splats": "splatio",
    "write_splats": "splatio",
    "load_depth": "depth_io",
    "write_exr": "exr",
    "read_exr": "exr",
    "export_frames": "export",
    "estimate_depth": "depth",
    "DepthEstimate": "depth",
    "read_intrinsics": "exif",
    "Photo": "stages",
    "Frame": "stages",
    "load_photo": "stages",
    "metric_depth": "stages",
    "build_stage": "stages",
    "segment_stage": "stages",
    "render_frame": "stages",
    "refresh": "stages",
    "condition": "stages",
    "generate": "stages",
    "Conditioning": "conditioning",
    "load_conditioning": "conditioning",
    "save_conditioning": "conditioning",
    "Generation": "generation",
    "GenerationSettings": "generation",
    "save_generation": "generation",
    "Cancelled": "errors",
    "Refresh": "witness",
    "Confidence": "confidence",
}

__all__ = ["__version__", "AnchorStageError", "InputError", "OutputError", "MissingDependencyError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anchorstage' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
