# SPDX-License-Identifier: GPL-3.0-or-later
"""The GPU splat drawer, drawn offscreen in real Blender (``gpu.types.GPUOffScreen`` on the machine's
GPU, Mesa llvmpipe on CI) and compared with the core renderer for the same camera: colour, alpha,
the expected depth, every viewport pass, the GPU and CPU sorts, occlusion by a Blender mesh, and
the viewport settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bpy
from blender_support import ADDON_MODULE

W, H = 96, 72


def _addon(name):
    import importlib

    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture(scope="module")
def gpu_ready(reset_blender):
    """Blender's GPU module works under ``bpy`` once something has drawn: one tiny Workbench render."""
    scene = reset_blender()
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x = scene.render.resolution_y = 8
    cam = bpy.data.objects.new("GPU Init", bpy.data.cameras.new("GPU Init"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    bpy.ops.render.render()
    import gpu

    try:
        gpu.types.GPUOffScreen(4, 4)
    except SystemError as e:  # pragma: no cover - a machine without any OpenGL/EGL
        pytest.skip(f"no GPU drawing here: {e}")
    return True


def _stage_splats(n: int = 400, seed: int = 3):
    """Overlapping splats of every shape and opacity (some above the 0.99 cap), 3-6 m ahead."""
    from anchorstage import Splats

    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.5, 0.7]) + torch.tensor([0.0, 4.5, 0.0])
    op = torch.rand(n, generator=g) * 0.9 + 0.08
    op[:20] = 0.997
    return Splats(means=means, quats=torch.randn(n, 4, generator=g),
                  scales=torch.rand(n, 3, generator=g) * torch.tensor([0.2, 0.05, 0.15]) + 0.01,
                  opacities=op, colors=torch.rand(n, 3, generator=g), confidence=torch.rand(n, generator=g),
                  region_ids=torch.randint(-1, 4, (n,), generator=g, dtype=torch.int32))


def _camera():
    from anchorstage import Camera, look_at

    return Camera(width=W, height=H, lens_mm=28.0, shift_x=0.03, shift_y=-0.02,
                  world_from_cam=look_at((0.4, -0.5, 0.3), (0.0, 4.5, 0.0)))


@pytest.fixture
def stage(gpu_ready, fresh_scene):
    """A splat object (moved, turned and uniformly scaled) read back as the engine reads it."""
    from mathutils import Euler

    splat_object = _addon("splat_object")
    boundary = _addon("boundary")
    obj = splat_object.update_splat_object(_stage_splats(), name="Stage", scene=fresh_scene)
    obj.rotation_euler = Euler((0.05, -0.1, 0.2))
    obj.scale = (1.1, 1.1, 1.1)
    obj.location = (0.2, -0.3, 0.1)
    bpy.context.view_layer.update()
    world = boundary.splats_from_mesh(obj.data, obj.matrix_world)
    return fresh_scene, obj, world


def _draw(items, camera, *, pass_name="color", sort="CPU", display=False, mesh_batch=None, write_depth=False,
          drawer=None, fmt="RGBA32F"):
    """Draw items offscreen from a core camera; returns (RGBA [H, W, 4] top-down, depth buffer)."""
    import gpu

    viewport = _addon("viewport")
    boundary = _addon("boundary")
    view, window = boundary.view_matrices_from_camera(camera)
    d = drawer or viewport.SplatDrawer()
    off = gpu.types.GPUOffScreen(camera.width, camera.height, format=fmt)
    for attempt in range(2):  # the first draw starts the CPU sort; draw again with its order
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            if mesh_batch is not None:
                mesh_batch()
            d.draw(items, view, window, camera.width, camera.height, pass_name=pass_name, view_key="test",
                   display=display, depth_test=mesh_batch is not None, write_depth=write_depth, sort=sort)
            rgba = np.array(fb.read_color(0, 0, camera.width, camera.height, 4, 0, "FLOAT").to_list(), np.float32)
            depth = np.array(fb.read_depth(0, 0, camera.width, camera.height).to_list(), np.float32)
        if sort == "GPU":
            break
        d.wait_for_sorts()
    return rgba.reshape(camera.height, camera.width, 4)[::-1], depth.reshape(camera.height, camera.width)[::-1]


def _psnr(a, b):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


@pytest.mark.parametrize("sort", ["CPU", "GPU"])
def test_drawer_matches_the_core_renderer(stage, sort):
    from anchorstage import render

    scene, obj, world = stage
    camera = _camera()
    ref = render(world, camera, passes=("color", "alpha"), device="cpu")
    items = _addon("viewport").draw_items_from_objects([obj])
    rgba, _ = _draw(items, camera, sort=sort)
    psnr = _psnr(rgba[..., :3], ref["color"].numpy())
    mae = float(np.abs(rgba[..., 3] - ref["alpha"].numpy()).mean())
    print(f"sort={sort}: colour PSNR {psnr:.1f} dB, alpha MAE {mae:.5f}, covered {(ref['alpha'] > 0.5).float().mean():.2f}")
    assert (ref["alpha"] > 0.5).float().mean() > 0.2  # the stage fills a good part of the frame
    assert psnr >= 30.0
    assert mae <= 0.02
