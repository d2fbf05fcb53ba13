# SPDX-License-Identifier: GPL-3.0-or-later
"""AnchorStage core: one photo → a metric 3D Gaussian-splat stage with compositing passes.

This package never imports Blender. Heavy modules load on first use, so
``import anchorstage`` is cheap and never touches a GPU or the network.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .camera import FOCAL_PRESETS_MM, Camera, load_camera_json, look_at, save_camera_json
from .errors import AnchorStageError, InputError, MissingDependencyError, OutputError
from .region import Region
from .splats import Splats

# These stage functions share their module's name. Importing a submodule sets the package
# attribute of that name to the module, so bind the functions here, after their modules are
# loaded: `anchorstage.render` is then always the function, whatever was imported first.
from .regression import reconstruct
from .renderer import render
from .segmentation import segment

# name -> module that defines it; filled by each stage's module.
_LAZY = {
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
    "read_intrinsics": "exif",
}

__all__ = [
    "__version__",
    "AnchorStageError",
    "InputError",
    "OutputError",
    "MissingDependencyError",
    "Camera",
    "FOCAL_PRESETS_MM",
    "look_at",
    "load_camera_json",
    "save_camera_json",
    "Region",
    "Splats",
    "reconstruct",
    "render",
    "segment",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anchorstage' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
