# SPDX-License-Identifier: GPL-3.0-or-later
"""The core Camera projects exactly as Blender's own camera does."""

import itertools

import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Euler, Vector

import bpy

CASES = list(itertools.product(
    (18.0, 50.0, 135.0),                 # lens mm
    ("AUTO", "HORIZONTAL", "VERTICAL"),  # sensor fit
    ((1920, 1080), (1080, 1920), (640, 640)),
    ((0.0, 0.0), (0.12, -0.07)),        # shift
))


@pytest.fixture(scope="module")
def blender_camera(reset_blender):
    scene = reset_blender()
    cam_data = bpy.data.cameras.new("Cam")
    obj = bpy.data.objects.new("Cam", cam_data)
    scene.collection.objects.link(obj)
    scene.camera = obj
    return scene, obj


def _points_in_view(rng, n=200):
    # Spread points in front of a camera at the origin looking along +Y (set below).
    return np.stack([rng.uniform(-6, 6, n), rng.uniform(2, 40, n), rng.uniform(-4, 4, n)], axis=1)


@pytest.mark.parametrize("lens,fit,res,shift", CASES)
def test_projection_matches_blender(blender_camera, lens, fit, res, shift):
    from bl_ext.user_default.anchorstage.boundary import camera_from_blender

    scene, obj = blender_camera
    cam = obj.data
    cam.lens, cam.sensor_fit = lens, fit
    cam.sensor_width, cam.sensor_height = 36.0, 20.25
    cam.shift_x, cam.shift_y = shift
    scene.render.resolution_x, scene.render.resolution_y = res
    scene.render.resolution_percentage = 50
    obj.location = (0.7, -1.3, 1.6)
    obj.rotation_euler = Euler((np.radians(85.0), np.radians(4.0), np.radians(-12.0)), "XYZ")
    bpy.context.view_layer.update()

    core = camera_from_blender(obj, scene)
    assert core.resolution == (res[0] // 2, res[1] // 2)
    rng = np.random.default_rng(0)
    pts = _points_in_view(rng)
    uv, z = core.project(pts)
    w, h = core.resolution
    expected = []
    for p in pts:
        v = world_to_camera_view(scene, obj, Vector(p))
        expected.append((v.x * w, (1.0 - v.y) * h, v.z))
    expected = np.array(expected)
    assert np.all(z > 0)
    np.testing.assert_allclose(z, expected[:, 2], rtol=1e-5)
    err = np.abs(uv - expected[:, :2]).max()
    assert err < 0.01, f"max pixel error {err:.4g} px"


def test_round_trip_to_blender(blender_camera):
    from bl_ext.user_default.anchorstage.boundary import apply_camera_to_blender, camera_from_blender

    from anchorstage import Camera, look_at

    scene, obj = blender_camera
    original = Camera(width=800, height=600, lens_mm=35.0, sensor_fit="HORIZONTAL", shift_x=0.05,
                      world_from_cam=look_at((3, -4, 2), (0, 0, 1)))
    apply_camera_to_blender(original, obj, scene, set_resolution=True)
    bpy.context.view_layer.update()
    back = camera_from_blender(obj, scene)
    assert back.allclose(original, atol=1e-5)


def test_object_scale_is_ignored_like_blender(blender_camera):
    from bl_ext.user_default.anchorstage.boundary import camera_from_blender

    scene, obj = blender_camera
    obj.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    core = camera_from_blender(obj, scene)
    obj.scale = (1.0, 1.0, 1.0)
    bpy.context.view_layer.update()
    assert core.allclose(camera_from_blender(obj, scene), atol=1e-5)
