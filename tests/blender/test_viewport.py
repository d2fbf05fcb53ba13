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
    covered = float((ref["alpha"] > 0.5).float().mean())
    print(f"sort={sort}: colour PSNR {psnr:.1f} dB, alpha MAE {mae:.5f}, covered {covered:.2f}")
    assert covered > 0.2  # the stage fills a good part of the frame
    assert psnr >= 30.0
    assert mae <= 0.02


def _linear_to_srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def _unpremultiply(rgba):
    a = rgba[..., 3:4]
    return np.where(a > 1e-6, rgba[..., :3] / np.maximum(a, 1e-6), 0.0)


def test_every_viewport_pass_shows_the_renderers_pass(stage):
    """Depth (the written fragment depth), normal, confidence, region, void and the display-referred
    colour against the core's passes for the same camera."""
    from anchorstage import render
    from anchorstage.passes import DEFAULT_VOID_THRESHOLD
    from anchorstage.preview import region_colors
    from anchorstage.viewport_layout import VIEWPORT_PASSES

    boundary = _addon("boundary")
    scene, obj, world = stage
    camera = _camera()
    ref = {k: v.numpy() for k, v in render(world, camera, device="cpu").items()}
    items = _addon("viewport").draw_items_from_objects([obj])
    drawer = _addon("viewport").SplatDrawer()
    out = {p: _draw(items, camera, pass_name=p, write_depth=True, drawer=drawer) for p in VIEWPORT_PASSES}
    solid = ref["alpha"] > 0.5

    # Depth: the fragment depth the finish pass writes is the renderer's alpha-normalised depth.
    _, window = boundary.view_matrices_from_camera(camera)
    ndc = 2.0 * out["depth"][1] - 1.0
    z = window[2, 3] / (ndc + window[2, 2])
    rel = np.abs(z[solid] - ref["depth"][solid]) / ref["depth"][solid]
    assert np.median(rel) < 1e-3 and np.percentile(rel, 99) < 5e-3, (np.median(rel), np.percentile(rel, 99))

    # Normal: 0.5 + 0.5 n, premultiplied.
    n = 2.0 * _unpremultiply(out["normal"][0]) - 1.0
    assert np.percentile(np.abs(n[solid] - ref["normal"][solid]), 95) < 0.02

    # Confidence: the composited sum, as is.
    assert np.abs(out["confidence"][0][..., 0] - ref["confidence"]).mean() < 2e-3

    # Region: the dominant region's colour, never blended (-1: black), as the renderer picks it.
    ids = np.unique(ref["region"])
    assert len(ids) == 5
    palette = region_colors(ids)
    shown = _unpremultiply(out["region"][0]).reshape(-1, 3)
    nearest = ids[np.argmin(((shown[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)].reshape(H, W)
    assert (nearest == ref["region"]).mean() > 0.995, (nearest == ref["region"]).mean()

    # Void: the display colour view, painted where alpha < the threshold.
    col = out["color"][0]  # scene-linear premultiplied
    disp = np.concatenate([_linear_to_srgb(_unpremultiply(col)) * col[..., 3:4], col[..., 3:4]], -1)
    vc = np.array([0.9, 0.1, 0.8, 1.0])
    expect = np.where((ref["alpha"] < DEFAULT_VOID_THRESHOLD)[..., None], 0.15 * disp + 0.85 * vc, disp)
    clear = np.abs(ref["alpha"] - DEFAULT_VOID_THRESHOLD) > 0.01
    assert np.abs(out["void"][0] - expect)[clear].max() < 0.02
    assert ref["void"].mean() > 0.2  # the frame has void to show

    # Colour, display-referred (sRGB-encoded premultiplied in a float target).
    rgba, _ = _draw(items, camera, display=True, drawer=drawer)
    srgb = _linear_to_srgb(np.where(solid[..., None], ref["color"] / np.maximum(ref["alpha"], 1e-6)[..., None], 0.0))
    assert _psnr(_unpremultiply(rgba)[solid], srgb[solid]) > 35.0


def test_first_frame_draws_at_once_and_the_sorted_one_follows(stage):
    """The CPU sorter never blocks a draw: the first frame comes in stored order (visibly wrong on
    this stage), the sorted order lands on a worker thread, and a small view change re-uses it."""
    from anchorstage import render

    viewport = _addon("viewport")
    boundary = _addon("boundary")
    scene, obj, world = stage
    camera = _camera()
    ref = render(world, camera, passes=("color",), device="cpu")["color"].numpy()
    items = viewport.draw_items_from_objects([obj])
    d = viewport.SplatDrawer()
    import gpu

    view, window = boundary.view_matrices_from_camera(camera)
    off = gpu.types.GPUOffScreen(W, H, format="RGBA32F")

    def frame(view_matrix):
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            stats = d.draw(items, view_matrix, window, W, H, view_key="v", display=False, depth_test=False, sort="CPU")
            img = np.array(fb.read_color(0, 0, W, H, 4, 0, "FLOAT").to_list(), np.float32).reshape(H, W, 4)[::-1]
        return stats, img

    stats, first = frame(view)
    assert stats.sorting and stats.sort_device == "CPU"
    assert _psnr(first[..., :3], ref) < 30.0  # unsorted: blending order visibly wrong
    d.wait_for_sorts()
    stats, second = frame(view)
    assert not stats.sorting and _psnr(second[..., :3], ref) > 50.0
    # A tiny turn (below the 1 degree default) keeps the order; a large one asks for a new sort.
    from mathutils import Matrix

    small = np.array(Matrix.Rotation(0.002, 4, "Y")) @ view
    stats, _ = frame(small)
    assert not stats.sorting
    large = np.array(Matrix.Rotation(0.2, 4, "Y")) @ view
    stats, _ = frame(large)
    assert stats.sorting
    d.close()


def _mesh_drawer(obj, view, window, color):
    """Draws a Blender mesh object's triangles into the bound framebuffer with depth (what the
    viewport has drawn before the overlay runs)."""
    import gpu
    from gpu_extras.batch import batch_for_shader

    mesh = obj.data
    mesh.calc_loop_triangles()
    co = np.array([obj.matrix_world @ v.co for v in mesh.vertices], np.float32)
    tris = [tuple(t.vertices) for t in mesh.loop_triangles]
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    batch = batch_for_shader(shader, "TRIS", {"pos": co.tolist()}, indices=tris)
    from mathutils import Matrix

    def draw():
        with gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
            gpu.matrix.load_matrix(Matrix(view.tolist()))
            gpu.matrix.load_projection_matrix(Matrix(window.tolist()))
            gpu.state.depth_test_set("LESS_EQUAL")
            gpu.state.depth_mask_set(True)
            shader.bind()
            shader.uniform_float("color", color)
            batch.draw(shader)
            gpu.state.depth_mask_set(False)
            gpu.state.depth_test_set("NONE")

    return draw


def test_blender_geometry_occludes_the_splats(gpu_ready, fresh_scene):
    """A red splat wall 6 m away, a blue splat blob 2 m away, and a green Blender plane 4 m away
    covering the right half of the view: the plane hides the wall, not the blob."""
    from anchorstage import Camera, Splats, look_at

    splat_object = _addon("splat_object")
    boundary = _addon("boundary")
    viewport = _addon("viewport")
    gx, gz = np.meshgrid(np.linspace(-4, 4, 41), np.linspace(-3, 3, 31))
    wall = np.stack([gx.ravel(), np.full(gx.size, 6.0), gz.ravel()], 1)
    bx, bz = np.meshgrid(np.linspace(-0.25, 0.25, 6), np.linspace(-0.25, 0.25, 6))
    blob = np.stack([bx.ravel(), np.full(bx.size, 2.0), bz.ravel()], 1)
    means = np.concatenate([wall, blob]).astype(np.float32)
    n, nw = len(means), len(wall)
    colors = np.zeros((n, 3), np.float32)
    colors[:nw, 0] = 1.0
    colors[nw:, 2] = 1.0
    scales = np.where(np.arange(n)[:, None] < nw, [0.15, 0.02, 0.15], [0.08, 0.02, 0.08]).astype(np.float32)
    splats = Splats(means=torch.from_numpy(means), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                    scales=torch.from_numpy(scales), opacities=torch.full((n,), 0.98), colors=torch.from_numpy(colors))
    obj = splat_object.update_splat_object(splats, name="Wall and Blob", scene=fresh_scene)
    mesh = bpy.data.meshes.new("Plane")
    mesh.from_pydata([(0, 4, -5), (6, 4, -5), (6, 4, 5), (0, 4, 5)], [], [(0, 1, 2, 3)])
    plane = bpy.data.objects.new("Plane", mesh)
    fresh_scene.collection.objects.link(plane)
    camera = Camera(width=W, height=H, lens_mm=24.0, world_from_cam=look_at((0, 0, 0), (0, 1, 0)))
    view, window = boundary.view_matrices_from_camera(camera)
    items = viewport.draw_items_from_objects([obj])
    rgba, _ = _draw(items, camera, mesh_batch=_mesh_drawer(plane, view, window, (0.0, 1.0, 0.0, 1.0)))
    u, v = camera.project(np.array([[0.0, 2.0, 0.0]]))[0][0]
    cx, cy = int(u), int(v)
    left, right = rgba[cy, 5], rgba[cy, W - 6]
    assert left[0] > 0.9 and left[1] < 0.05          # wall, not occluded
    assert right[1] > 0.9 and right[0] < 0.05        # the plane hides the wall behind it
    for x in (cx - 2, cx + 2):                       # the blob in front of the plane, both halves
        assert rgba[cy, x, 2] > 0.9 and rgba[cy, x, 1] < 0.05, rgba[cy, x]
    # Without the plane's depth the wall shows on the right too (the test can tell them apart).
    clean, _ = _draw(items, camera)
    assert clean[cy, W - 6, 0] > 0.9


def test_region_pass_with_more_classes_than_one_draw_holds(gpu_ready, fresh_scene):
    """30 regions take three class draws (12 classes each); the reduce keeps the renderer's pick."""
    from anchorstage import render
    from anchorstage.preview import region_colors

    splats = _stage_splats(n=600, seed=5)
    g = torch.Generator().manual_seed(1)
    splats.region_ids = torch.randint(-1, 29, (600,), generator=g, dtype=torch.int32) * 3 + 2  # sparse ids
    obj = _addon("splat_object").update_splat_object(splats, name="Many Regions", scene=fresh_scene)
    camera = _camera()
    ref = render(splats, camera, passes=("region",), device="cpu")["region"].numpy()
    out, _ = _draw(_addon("viewport").draw_items_from_objects([obj]), camera, pass_name="region")
    ids = np.unique(ref)
    assert len(ids) > 20
    palette = region_colors(ids)
    nearest = ids[np.argmin(((_unpremultiply(out).reshape(-1, 1, 3) - palette[None]) ** 2).sum(-1), axis=1)]
    assert (nearest.reshape(H, W) == ref).mean() > 0.99


def test_mesh_edits_reupload_and_moves_do_not(stage):
    """Moving the object is a shader constant; editing the mesh makes new textures."""
    viewport = _addon("viewport")
    scene, obj, world = stage
    camera = _camera()
    d = viewport.SplatDrawer()
    _draw(viewport.draw_items_from_objects([obj]), camera, drawer=d)
    first = next(iter(d.sets.values()))
    obj.location.x += 0.1
    bpy.context.view_layer.update()
    moved, _ = _draw(viewport.draw_items_from_objects([obj]), camera, drawer=d)
    assert next(iter(d.sets.values())) is first
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    obj.data.vertices.foreach_set("co", co + 0.05)
    obj.data.update()
    bpy.context.view_layer.update()
    edited, _ = _draw(viewport.draw_items_from_objects([obj]), camera, drawer=d)
    assert next(iter(d.sets.values())) is not first
    assert np.abs(edited - moved).max() > 0.1


def test_a_non_uniform_scale_is_reported(stage):
    from anchorstage import InputError

    scene, obj, world = stage
    obj.scale = (1.0, 2.0, 1.0)
    bpy.context.view_layer.update()
    with pytest.raises(InputError, match="non-uniform scale"):
        _addon("viewport").draw_items_from_objects([obj])
    errors = []
    assert _addon("viewport").draw_items_from_objects([obj], errors) == [] and "non-uniform scale" in errors[0]


def test_viewport_settings_switch_the_proxies(stage):
    """Gaussians (default) hide the proxies in the viewport only; Proxies / Both show them; the
    pass dropdown offers the registry's viewport passes."""
    from anchorstage.viewport_layout import VIEWPORT_PASSES

    splat_object = _addon("splat_object")
    scene, obj, world = stage
    s = scene.anchorstage
    mod = obj.modifiers[splat_object.DISPLAY_MODIFIER]
    assert s.viewport_display == "GAUSSIANS" and not mod.show_viewport and mod.show_render
    total = len(obj.data.vertices)
    assert splat_object.display_counts(obj) == (total, total)
    s.viewport_display = "PROXIES"
    assert mod.show_viewport and mod.show_render
    s.viewport_display = "BOTH"
    assert mod.show_viewport
    items = [i.identifier for i in s.bl_rna.properties["viewport_pass"].enum_items]
    assert tuple(items) == VIEWPORT_PASSES == ("color", "depth", "normal", "confidence", "region", "void")
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    assert prefs.viewport_sort == "AUTO" and prefs.sort_angle == 1.0 and prefs.sort_distance == 1.0
    assert "ANCHORSTAGE_PT_viewport" in dir(bpy.types)


class _FakeEngine:
    """What ``engine_view_draw`` uses of a RenderEngine (the display transform is Blender's own
    OCIO shader in the UI; here the plain image shader stands in for it)."""

    def __init__(self):
        self.stats, self.bound = [], 0

    def bind_display_space_shader(self, scene):
        self.bound += 1

    def unbind_display_space_shader(self):
        pass

    def update_stats(self, a, b):
        self.stats.append(b)


def test_engine_rendered_view_draws_with_the_gpu(stage):
    """The ANCHORSTAGE engine's Rendered view: the colour pass as linear premultiplied RGBA through
    the display transform (upright, matching the renderer), other passes as false colour, and a
    user mistake said in the header instead of raised."""
    import types

    import gpu
    from anchorstage import render

    viewport = _addon("viewport")
    boundary = _addon("boundary")
    scene, obj, world = stage
    camera = _camera()
    view, window = boundary.view_matrices_from_camera(camera)
    from mathutils import Matrix

    region = types.SimpleNamespace(width=W, height=H, as_pointer=lambda: 1)
    context = types.SimpleNamespace(region=region, region_data=types.SimpleNamespace(
        view_matrix=Matrix(view.tolist()), window_matrix=Matrix(window.tolist())))
    depsgraph = types.SimpleNamespace(objects=[obj], scene=scene)
    engine = _FakeEngine()
    off = gpu.types.GPUOffScreen(W, H, format="RGBA32F")

    # Blender calls view_draw in the region's pixel space (ED_region_pixelspace).
    pixelspace = Matrix(((2.0 / W, 0, 0, -1.0), (0, 2.0 / H, 0, -1.0), (0, 0, -1.0, 0), (0, 0, 0, 1.0)))

    def frame():
        with off.bind(), gpu.matrix.push_pop(), gpu.matrix.push_pop_projection():
            gpu.matrix.load_identity()
            gpu.matrix.load_projection_matrix(pixelspace)
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            ok = viewport.engine_view_draw(engine, context, depsgraph)
            img = np.array(fb.read_color(0, 0, W, H, 4, 0, "FLOAT").to_list(), np.float32).reshape(H, W, 4)[::-1]
        return ok, img

    assert frame()[0]
    viewport.drawer().wait_for_sorts()
    ok, img = frame()
    ref = render(world, camera, passes=("color", "alpha"), device="cpu")
    assert ok and engine.bound == 2 and "splats" in engine.stats[-1]
    assert _psnr(img[..., :3], ref["color"].numpy()) > 40.0
    scene.anchorstage.viewport_pass = "depth"
    ok, img = frame()
    assert ok and engine.bound == 2 and img[..., 3].max() > 0.9  # drawn by the finish pass, no display shader
    obj.scale = (1.0, 1.0, 3.0)
    bpy.context.view_layer.update()
    ok, img = frame()
    assert ok and "non-uniform scale" in engine.stats[-1] and img[..., 3].max() == 0.0


def test_gpu_sort_is_the_cpu_order_ties_included(gpu_ready, fresh_scene):
    """The bitonic compute sort gives exactly :func:`anchorstage.splat_sort.back_to_front`: farthest
    first, equal depths in descending index (the renderer's stable order reversed)."""
    from anchorstage import Splats
    from anchorstage.splat_sort import ViewPose, back_to_front, view_depths

    n = 1000  # not a power of two: the padding sorts last and is never drawn
    rng = np.random.default_rng(4)
    depth = np.round(rng.uniform(1.0, 9.0, n), 2).astype(np.float32)  # 0.01 m steps: many exact ties
    means = np.stack([rng.uniform(-1, 1, n), depth, rng.uniform(-1, 1, n)], 1).astype(np.float32)
    sp = Splats(means=torch.from_numpy(means), quats=torch.tensor([[1.0, 0, 0, 0]] * n),
                scales=torch.full((n, 3), 0.05), opacities=torch.full((n,), 0.5), colors=torch.rand(n, 3))
    obj = _addon("splat_object").update_splat_object(sp, name="Ties", scene=fresh_scene)
    d = _addon("viewport").SplatDrawer()
    item = _addon("viewport").draw_items_from_objects([obj])[0]
    s, _ = d._set(item)
    cam_from_object = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])  # looks along +Y
    vo = _addon("viewport")._ViewOrder(generation=s.generation)
    assert d._gpu_sort(vo, s, cam_from_object, ViewPose.from_cam_from_object(cam_from_object))
    keys = np.array(vo.texture.read().to_list(), np.float32).reshape(-1, 4)
    expect = back_to_front(view_depths(means, cam_from_object))
    assert len(np.unique(depth)) < n  # ties exist
    np.testing.assert_array_equal(keys[:n, 1].astype(np.int64), expect)
    assert (keys[n:, 1] == -1).all()
    d.close()


def test_orthographic_views_draw_the_projected_footprint(gpu_ready, fresh_scene):
    """In an orthographic view a round splat of sigma 0.1 m at 24 px/m covers a Gaussian of
    variance (2.4 px)^2 + the 0.3 px^2 low-pass around its projected centre."""
    from anchorstage import Camera, Splats, look_at

    sp = Splats(means=torch.tensor([[0.25, 5.0, 0.0]]), quats=torch.tensor([[1.0, 0, 0, 0]]),
                scales=torch.full((1, 3), 0.1), opacities=torch.tensor([0.9]), colors=torch.ones(1, 3))
    obj = _addon("splat_object").update_splat_object(sp, name="Round", scene=fresh_scene)
    camera = Camera(width=W, height=H, lens_mm=30.0, world_from_cam=look_at((0, 0, 0), (0, 1, 0)))
    view, _ = _addon("boundary").view_matrices_from_camera(camera)
    half_w, half_h, n, f = W / 48.0, H / 48.0, 0.1, 100.0  # 24 pixels per metre
    ortho = np.array([[1 / half_w, 0, 0, 0], [0, 1 / half_h, 0, 0], [0, 0, -2 / (f - n), -(f + n) / (f - n)],
                      [0, 0, 0, 1.0]])
    import gpu

    d = _addon("viewport").SplatDrawer()
    off = gpu.types.GPUOffScreen(W, H, format="RGBA32F")
    with off.bind():
        fb = gpu.state.active_framebuffer_get()
        fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
        d.draw(_addon("viewport").draw_items_from_objects([obj]), view, ortho, W, H, display=False,
               depth_test=False, sort="GPU")
        alpha = np.array(fb.read_color(0, 0, W, H, 4, 0, "FLOAT").to_list(), np.float32).reshape(H, W, 4)[..., 3]
    ys, xs = np.mgrid[0:H, 0:W] + 0.5  # window pixels, y up
    cx, cy = W / 2 + 0.25 * 24, H / 2
    var = (0.1 * 24) ** 2 + 0.3
    expect = 0.9 * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * var))
    expect[expect < 1 / 255] = 0.0
    assert np.abs(alpha - expect).max() < 2e-3, np.abs(alpha - expect).max()
    d.close()


def test_a_finished_background_sort_redraws_the_viewports(stage, monkeypatch):
    """The add-on's drawer starts a timer when it asks for a CPU sort; the timer keeps polling while
    the sort runs and stops once the order is ready, leaving it for the redraw it asked for."""
    import threading
    import time

    import gpu
    from anchorstage import splat_sort

    gate, real = threading.Event(), splat_sort.sort_for_view
    monkeypatch.setattr(splat_sort, "sort_for_view", lambda *a: (gate.wait(10.0), real(*a))[1])
    viewport = _addon("viewport")
    scene, obj, world = stage
    d = viewport.drawer()
    d.free()
    view, window = _addon("boundary").view_matrices_from_camera(_camera())
    with gpu.types.GPUOffScreen(W, H).bind():
        d.draw(viewport.draw_items_from_objects([obj]), view, window, W, H, view_key="poll", sort="CPU")
    key = next(iter(d.orders))
    assert d.stats.sorting and bpy.app.timers.is_registered(viewport._poll_sorts)
    assert viewport._poll_sorts() is not None  # still sorting: keep polling
    gate.set()
    deadline = time.monotonic() + 10.0
    while not d.sorter.has_result(key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert viewport._poll_sorts() is None and d.sorter.has_result(key)
    bpy.app.timers.unregister(viewport._poll_sorts)


def test_overlay_handler_draws_in_solid_and_material_only(stage, monkeypatch):
    """The POST_VIEW handler with the context Blender gives it: Gaussians in Solid / Material
    Preview (display-referred: sRGB-encoded into this float target), nothing in Rendered shading or
    with Display = Proxies, and a splat object it cannot draw named in the viewport, not raised."""
    import types

    import gpu
    from anchorstage import render
    from mathutils import Matrix

    viewport = _addon("viewport")
    scene, obj, world = stage
    camera = _camera()
    view, window = _addon("boundary").view_matrices_from_camera(camera)
    bad = bpy.data.objects.new("Squashed", obj.data)
    scene.collection.objects.link(bad)
    bad.scale = (1.0, 0.2, 1.0)
    bpy.context.view_layer.update()
    shading = types.SimpleNamespace(type="SOLID")
    ctx = types.SimpleNamespace(
        space_data=types.SimpleNamespace(type="VIEW_3D", shading=shading),
        region=types.SimpleNamespace(width=W, height=H, as_pointer=lambda: 7),
        region_data=types.SimpleNamespace(view_matrix=Matrix(view.tolist()), window_matrix=Matrix(window.tolist())),
        scene=scene, visible_objects=[obj, bad], preferences=bpy.context.preferences)
    monkeypatch.setattr(viewport, "bpy", types.SimpleNamespace(context=ctx))
    monkeypatch.setattr(viewport, "_sort_pref", lambda: "GPU")  # the first frame sorted
    off = gpu.types.GPUOffScreen(W, H, format="RGBA32F")

    def frame():
        with off.bind():
            fb = gpu.state.active_framebuffer_get()
            fb.clear(color=(0.0, 0.0, 0.0, 0.0), depth=1.0)
            viewport._overlay_draw()
            return np.array(fb.read_color(0, 0, W, H, 4, 0, "FLOAT").to_list(), np.float32).reshape(H, W, 4)[::-1]

    ref = render(world, camera, passes=("color", "alpha"), device="cpu")
    solid = ref["alpha"].numpy() > 0.5
    srgb = _linear_to_srgb(ref["color"].numpy() / np.maximum(ref["alpha"].numpy(), 1e-6)[..., None])
    for kind in ("SOLID", "MATERIAL"):
        shading.type = kind
        img = frame()
        assert _psnr(_unpremultiply(img)[solid], srgb[solid]) > 35.0, viewport.message()
        assert "Squashed" in viewport.message() and "non-uniform scale" in viewport.message()
    shading.type = "RENDERED"
    assert frame()[..., 3].max() == 0.0
    shading.type = "SOLID"
    scene.anchorstage.viewport_display = "PROXIES"
    assert frame()[..., 3].max() == 0.0
