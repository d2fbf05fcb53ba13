# SPDX-License-Identifier: GPL-3.0-or-later
"""Real Gaussians in the 3D viewport: the GPU splat drawer and where Blender calls it.

:class:`SplatDrawer` draws splat objects with Blender's ``gpu`` module (programs in
:mod:`.viewport_shaders`): each splat object's splats are uploaded once as float textures
(:mod:`anchorstage.viewport_layout`, object frame) and again only when its mesh changes; one
instanced quad per splat is drawn back to front into two float targets (the pass's premultiplied
sums and the depth sum), then one full-screen pass shows the chosen pass and writes the
alpha-normalised depth so Blender geometry occludes the splats. Moving a splat object costs
nothing: its matrix is a shader constant.

Depth order: re-sorted only when the view has turned or moved beyond the thresholds of the add-on
preferences (:class:`anchorstage.splat_sort.ResortPolicy`); on the GPU (a bitonic compute sort)
or on a CPU worker thread (:class:`anchorstage.splat_sort.BackgroundSorter`) while the viewport
keeps drawing with the last order; a timer redraws the viewports when a new order is ready.

Where it draws:

* the ANCHORSTAGE engine's rendered viewport (:func:`engine_view_draw`): the colour pass through
  Blender's display transform (as F12 shows it), the other passes as false colour;
* Solid and Material Preview shading, as an overlay drawn after the scene with its depth
  buffer (:func:`_overlay_draw`), unless the scene's *Viewport Display* is *Proxies*.

Errors never reach Blender: the overlay shows the message in the viewport's corner, the engine
in its header.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Hashable, Optional

import bpy
import numpy as np

from anchorstage.errors import AnchorStageError, error_message
from anchorstage.passes import DEFAULT_VOID_THRESHOLD
from anchorstage.preview import region_colors
from anchorstage.splat_sort import BackgroundSorter, ResortPolicy, SortResult, ViewPose, affine_inverse, view_depths
from anchorstage.viewport_layout import (TEXTURE_WIDTH, display_kind, pass_channels, padded, splat_arrays,
                                         texture_shape)

from . import boundary, splat_cache
from . import viewport_shaders as sh

__all__ = ["SplatDrawer", "DrawItem", "DrawStats", "drawer", "drawer_stats", "message", "draw_items_from_objects",
           "engine_view_draw", "sort_mode", "register", "unregister"]

#: Accumulation targets: the pass's sums (half float is blendable on every backend) and the
#: depth sum with alpha again (full float: the expected depth keeps 1e-5 of its value).
_VALUE_FORMAT = "RGBA16F"
_DEPTH_FORMAT = "RG32F"
#: The void view paints void pixels with this display colour, covering this much.
_VOID_COLOR = (0.9, 0.1, 0.8, 0.85)
_MAX_ACCUM_TARGETS = 6   # cached accumulation targets (a few per viewport size)
_MAX_ORDERS = 32         # cached (object, view) orders
_POLL_SECONDS = 0.03     # how often the redraw timer looks for finished sorts
_SET_IDLE_SECONDS = 60.0  # uploaded splats not drawn for this long are freed (deleted objects)


@dataclass
class DrawItem:
    """One splat object to draw.

    Attributes:
        key: identifies the object (its drawing order is kept per object and view).
        data_key: identifies the splat data (objects sharing a mesh share the uploaded textures).
        load: returns the object's splats in its own frame (``anchorstage.Splats``); called only
            when ``data_key`` or ``generation`` is new.
        generation: changes whenever the splat data changes.
        matrix: [4, 4] object → world (location, rotation, uniform scale).
    """

    key: Hashable
    data_key: Hashable
    load: Callable[[], object]
    generation: Hashable
    matrix: np.ndarray


@dataclass
class DrawStats:
    """What the last draw did (shown in the viewport panel; read by the benchmark)."""

    splats: int = 0
    objects: int = 0
    sort_device: str = ""
    sorting: bool = False
    last_sort_ms: float = 0.0
    cpu_ms: float = 0.0
    uploaded: bool = False
    message: str = ""


class _SplatSet:
    """One splat data block on the GPU (object frame)."""

    def __init__(self, splats, generation: Hashable) -> None:
        arrays = splat_arrays(splats)
        self.count = int(arrays["means"].shape[0])
        self.means = arrays["means"]
        self.generation = generation
        self.size = texture_shape(self.count, TEXTURE_WIDTH)
        self.data_width = self.size[0]
        self.textures = {name: _float_texture(arrays[name], self.size, "RGBA32F")
                         for name in ("center_opacity", "cov_a", "cov_b")}
        self.values: dict[str, object] = {}
        self.region_ids = splats.region_ids.detach().cpu().numpy().astype(np.int32)
        self.regions_present = np.unique(self.region_ids)
        self.classes_tex, self.classes_key = None, None
        self.centre = self.means.mean(axis=0) if self.count else np.zeros(3, np.float32)
        # The splats just read serve this frame's pass values too (then dropped: the mesh keeps them).
        self.loaded = splats
        self.last_used = time.monotonic()

    def class_texture(self, lut: np.ndarray):
        """The region class (index into ``lut``) of every splat, as a texture (per ``lut``)."""
        key = lut.tobytes()
        if self.classes_key != key:
            classes = np.searchsorted(lut, self.region_ids).astype(np.float32)
            self.classes_tex = _float_texture(padded(classes, self.data_width)[:, :1], self.size, "R32F")
            self.classes_key = key
        return self.classes_tex

    def value_texture(self, pass_name: str, camera_position: np.ndarray, load: Callable[[], object]):
        """The texture of a pass's per-splat values (made on first use for that pass)."""
        key = "color" if display_kind(pass_name) == "void" else pass_name  # the void view shows colour
        tex = self.values.get(key)
        if tex is None:
            splats = self.loaded if self.loaded is not None else load()
            values = pass_channels(splats, key, camera_position, self.data_width)
            tex = self.values[key] = _float_texture(values, self.size, "RGBA16F")
        return tex


@dataclass
class _ViewOrder:
    """The drawing order of one object in one view."""

    generation: Hashable = None
    texture: object = None          # R32F (CPU order) or RGBA32F (GPU keys: .g is the index)
    component: int = 0
    width: int = 1
    result: object = None           # the SortResult (or its GPU equivalent) being drawn
    requested_pose: object = None   # pose of the CPU sort in flight
    gpu_keys: object = None         # the GPU sort's key texture, reused while the size holds
    last_used: float = field(default_factory=time.monotonic)


def _float_texture(values: np.ndarray, size: tuple[int, int], fmt: str):
    """A 2D float texture of ``size`` (width, height) from [H · W, C] float32 values."""
    import gpu

    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    # gpu.types.Buffer wraps the array's memory: it stays referenced until the upload is done.
    buf = gpu.types.Buffer("FLOAT", flat.size, flat)
    return gpu.types.GPUTexture(size, format=fmt, data=buf)


def _projection_params(window: np.ndarray, width: int, height: int) -> dict:
    """Focal lengths, Jacobian limits, clip range and depth mapping of a Blender projection."""
    p = np.asarray(window, dtype=np.float64)
    perspective = abs(p[3, 3]) < 1e-9 and abs(p[3, 2] + 1.0) < 1e-6
    fx, fy = p[0, 0] * width / 2.0, p[1, 1] * height / 2.0
    if perspective:
        near, far = p[2, 3] / (p[2, 2] - 1.0), p[2, 3] / (p[2, 2] + 1.0)
        cx, cy = width / 2.0 * (1.0 - p[0, 2]), height / 2.0 * (1.0 - p[1, 2])  # window pixels, y up
        # The renderer clamps x/z, y/z to the image plus 30 % of its half size (gsplat's 1.3x FOV).
        lim = (cx / fx + 0.15 * width / fx, (width - cx) / fx + 0.15 * width / fx,
               cy / fy + 0.15 * height / fy, (height - cy) / fy + 0.15 * height / fy)
    else:
        near, far = (p[2, 3] + 1.0) / p[2, 2], (p[2, 3] - 1.0) / p[2, 2]
        lim = (1.0, 1.0, 1.0, 1.0)
    return {"perspective": perspective, "focal": (fx, fy), "limits": lim, "clip": (min(near, far), max(near, far)),
            "depth_from_view": (p[2, 2], p[2, 3])}


def sort_mode(preference: str = "AUTO") -> str:
    """``"GPU"`` or ``"CPU"``: the sort the drawer uses for a preference (``AUTO``, ``GPU``, ``CPU``).

    ``AUTO`` sorts on the GPU with compute shaders unless the GPU is a software renderer (Mesa
    llvmpipe and the like run "GPU" compute on the CPU, slower than the CPU sorter).
    """
    import gpu

    if preference == "CPU":
        return "CPU"
    try:
        software = gpu.platform.device_type_get() == "SOFTWARE"
    except Exception:  # noqa: BLE001 - an unknown platform: trust its compute support
        software = False
    if preference == "GPU" or not software:
        return "GPU"
    return "CPU"


class SplatDrawer:
    """Draws splat objects with the GPU; keeps their textures and per-view orders between draws.

    Args:
        sorter: the CPU :class:`anchorstage.splat_sort.BackgroundSorter` (one is made if None).
    """

    def __init__(self, sorter=None) -> None:
        self.sorter = sorter or BackgroundSorter()
        self.sets: dict[Hashable, _SplatSet] = {}
        self.orders: dict[tuple, _ViewOrder] = {}
        self.targets: dict[tuple[int, int], tuple] = {}
        self.stats = DrawStats()
        self.on_sort_requested: Optional[Callable[[], None]] = None
        self._batches: dict[str, object] = {}
        self._ubos: list = []

    # ------------------------------------------------------------------ resources
    def free(self) -> None:
        """Drop every GPU resource (they are freed with their Python objects)."""
        for key in list(self.orders):
            self.sorter.forget(key)
        self.sets.clear()
        self.orders.clear()
        self.targets.clear()
        self._batches.clear()

    def close(self) -> None:
        self.free()
        self.sorter.close()

    def _batch(self, name: str):
        if name not in self._batches:
            self._batches[name] = sh.quad_batch("corner" if name == "splat" else "pos")
        return self._batches[name]

    def _target(self, what: str, width: int, height: int):
        """Cached framebuffers of one viewport size: ``"value"`` (fb, value, depth), ``"classes"``
        (fb, CLASS_TARGETS weight textures, depth) or ``"best"`` (fb, texture, fb, texture)."""
        import gpu

        key = (what, width, height)
        tgt = self.targets.pop(key, None)
        if tgt is None:
            if what == "best":
                a, b = (gpu.types.GPUTexture((width, height), format="RG32F") for _ in range(2))
                tgt = (gpu.types.GPUFrameBuffer(color_slots=(a,)), a, gpu.types.GPUFrameBuffer(color_slots=(b,)), b)
            else:
                n = 1 if what == "value" else sh.CLASS_TARGETS
                colour = [gpu.types.GPUTexture((width, height), format=_VALUE_FORMAT) for _ in range(n)]
                depth = gpu.types.GPUTexture((width, height), format=_DEPTH_FORMAT)
                tgt = (gpu.types.GPUFrameBuffer(color_slots=(*colour, depth)), *colour, depth)
        self.targets[key] = tgt  # most recently used last
        while len(self.targets) > _MAX_ACCUM_TARGETS:
            self.targets.pop(next(iter(self.targets)))
        return tgt

    def _evict_idle_sets(self) -> None:
        """Free the textures of splat data no view has drawn for a while (deleted or hidden objects)."""
        now = time.monotonic()
        for key in [k for k, s in self.sets.items() if now - s.last_used > _SET_IDLE_SECONDS]:
            gen = self.sets.pop(key).generation
            for okey in [k for k, vo in self.orders.items() if vo.generation == gen]:
                self.sorter.forget(okey)
                del self.orders[okey]

    def _set(self, item: DrawItem) -> tuple[_SplatSet, bool]:
        s = self.sets.get(item.data_key)
        if s is not None and s.generation == item.generation:
            return s, False
        s = self.sets[item.data_key] = _SplatSet(item.load(), item.generation)
        return s, True

    # ------------------------------------------------------------------ ordering
    def _order(self, item: DrawItem, s: _SplatSet, view_key: Hashable, cam_from_object: np.ndarray,
               mode: str, policy) -> _ViewOrder:
        """The order to draw with now; starts a new sort when the view moved beyond ``policy``."""
        key = (item.key, view_key)
        vo = self.orders.get(key)
        if vo is None or vo.generation != s.generation:
            if vo is not None:
                self.sorter.forget(key)
            vo = self.orders[key] = _ViewOrder(generation=s.generation)
            while len(self.orders) > _MAX_ORDERS:
                old = min(self.orders, key=lambda k: self.orders[k].last_used)
                self.sorter.forget(old)
                del self.orders[old]
        vo.last_used = time.monotonic()
        done = self.sorter.take(key)
        if done is not None and done.tag == s.generation:
            self._use_cpu_order(vo, done, s)
        err = self.sorter.error(key)
        if err:
            self.stats.message = f"sorting failed: {err}"
        pose = ViewPose.from_cam_from_object(cam_from_object)
        stale = vo.result is None or policy.needs_resort(vo.result.pose, pose, vo.result.median_depth)
        if stale and mode == "GPU" and self._gpu_sort(vo, s, cam_from_object, pose):
            stale = False
        if stale:
            in_flight = self.sorter.busy(key) and vo.requested_pose is not None
            if not (in_flight and not policy.needs_resort(vo.requested_pose, pose, _median(vo))):
                self.sorter.request(key, s.means, cam_from_object, s.generation)
                vo.requested_pose = pose
                if self.on_sort_requested is not None:
                    self.on_sort_requested()
            self.stats.sorting = True
        if vo.texture is None:  # nothing sorted yet: draw in stored order until the first sort lands
            ident = np.arange(s.count, dtype=np.float32)
            vo.width = texture_shape(s.count)[0]
            vo.texture, vo.component = _float_texture(padded(ident)[:, :1], texture_shape(s.count), "R32F"), 0
        return vo

    def _use_cpu_order(self, vo: _ViewOrder, result, s: _SplatSet) -> None:
        size = texture_shape(s.count)
        flat = np.zeros(size[0] * size[1], np.float32)
        flat[: s.count] = result.order  # exact as float32 below 2^24 splats
        vo.texture, vo.component, vo.width, vo.result = _float_texture(flat, size, "R32F"), 0, size[0], result
        vo.requested_pose = None
        self.stats.last_sort_ms = result.seconds * 1e3
        self.stats.uploaded = True

    def _gpu_sort(self, vo: _ViewOrder, s: _SplatSet, cam_from_object: np.ndarray, pose) -> bool:
        """Sort on the GPU into ``vo``; False when it cannot (then the CPU sorts)."""
        import gpu

        t0 = time.perf_counter()
        padded_n = 1 << max(0, (s.count - 1).bit_length())
        size = texture_shape(padded_n)
        groups = -(-padded_n // sh.SORT_GROUP_SIZE)
        if s.count >= (1 << 24) or groups > gpu.capabilities.max_work_group_count_get(0):
            return False
        try:
            keys_prog, step_prog = sh.sort_shaders()
        except Exception as e:  # noqa: BLE001 - no compute on this GPU: the CPU sorter takes over
            self.stats.message = f"GPU sort unavailable ({e}); sorting on the CPU"
            return False
        keys = vo.gpu_keys
        if keys is None or (keys.width, keys.height) != size:
            keys = vo.gpu_keys = gpu.types.GPUTexture(size, format="RGBA32F")
        row = np.asarray(cam_from_object, dtype=np.float64)[2]
        keys_prog.bind()
        keys_prog.uniform_sampler("centerTex", s.textures["center_opacity"])
        keys_prog.image("keys", keys)
        keys_prog.uniform_float("depthRow", tuple(float(v) for v in row))
        keys_prog.uniform_int("splatCount", s.count)
        keys_prog.uniform_int("paddedCount", padded_n)
        keys_prog.uniform_int("dataWidth", s.data_width)
        keys_prog.uniform_int("keyWidth", size[0])
        gpu.compute.dispatch(keys_prog, groups, 1, 1)
        step_prog.bind()
        step_prog.image("keys", keys)
        step_prog.uniform_int("paddedCount", padded_n)
        step_prog.uniform_int("keyWidth", size[0])
        k = 2
        while k <= padded_n:
            j = k // 2
            while j > 0:
                step_prog.uniform_int("stepJ", j)
                step_prog.uniform_int("stepK", k)
                gpu.compute.dispatch(step_prog, groups, 1, 1)
                j //= 2
            k *= 2
        # The depth ramp's range and the re-sort scale from a sample (the GPU keeps the order).
        sample = s.means[:: max(1, s.count // 65536)]
        d = view_depths(sample, cam_from_object)
        d = d[d > 0]
        lo, med, hi = np.percentile(d, (1.0, 50.0, 99.0)) if d.size else (0.0, 0.0, 0.0)
        vo.texture, vo.component, vo.width = keys, 1, size[0]
        vo.result = SortResult(order=np.zeros(0, np.int32), pose=pose, tag=s.generation, median_depth=float(med),
                               depth_range=(float(lo), float(hi)), seconds=time.perf_counter() - t0)
        self.stats.last_sort_ms = vo.result.seconds * 1e3
        return True

    def wait_for_sorts(self, timeout: float = 60.0) -> None:
        """Block until every CPU sort in flight has finished (tests, benchmarks, batch)."""
        for key in list(self.orders):
            res = self.sorter.wait(key, timeout)
            if res is not None:  # the next draw uses it
                vo = self.orders[key]
                s = next((x for x in self.sets.values() if x.generation == res.tag), None)
                if s is not None:
                    self._use_cpu_order(vo, res, s)

    # ------------------------------------------------------------------ drawing
    def draw(self, items: list[DrawItem], view_matrix, window_matrix, width: int, height: int, *,
             pass_name: str = "color", view_key: Hashable = "view", display: bool = True, depth_test: bool = True,
             write_depth: bool = False, sort: str = "AUTO", policy=None,
             void_threshold: Optional[float] = None) -> DrawStats:
        """Draw splat objects into the bound framebuffer.

        Args:
            items: the splat objects.
            view_matrix: [4, 4] Blender view matrix (world → view, looking down -Z).
            window_matrix: [4, 4] Blender projection (view → OpenGL clip space).
            width: viewport width in pixels (the bound framebuffer's viewport).
            height: viewport height in pixels.
            pass_name: a pass of :data:`anchorstage.viewport_layout.VIEWPORT_PASSES`.
            view_key: identifies the view (orders are kept per object and view).
            display: True: display-referred output (sRGB for a viewport overlay); False: the
                colour pass as scene-linear premultiplied RGBA (data passes are false colour either way).
            depth_test: test the splats' depth against the bound depth buffer.
            write_depth: also write it (so later drawing sees the splats).
            sort: ``"AUTO"``, ``"GPU"`` or ``"CPU"`` (:func:`sort_mode`).
            policy: :class:`anchorstage.splat_sort.ResortPolicy` (default thresholds if None).
            void_threshold: alpha below which the void view paints a pixel (default: the registry's).

        Returns:
            :class:`DrawStats` of this draw.
        """
        t0 = time.perf_counter()
        value, _depth = self.accumulate(items, view_matrix, window_matrix, width, height, pass_name=pass_name,
                                        view_key=view_key, sort=sort, policy=policy)
        self.finish(pass_name, window_matrix, display=display, depth_test=depth_test, write_depth=write_depth,
                    void_threshold=void_threshold)
        self.stats.cpu_ms = (time.perf_counter() - t0) * 1e3
        return self.stats

    def accumulate(self, items: list[DrawItem], view_matrix, window_matrix, width: int, height: int, *,
                   pass_name: str = "color", view_key: Hashable = "view", sort: str = "AUTO", policy=None):
        """Draw the splats' premultiplied sums into the accumulation targets (arguments as :meth:`draw`).

        Returns:
            (value texture, depth texture): RGBA16F Σ wᵢ·vᵢ with alpha (for the region pass: the
            first class-weight target), RG32F Σ wᵢ·zᵢ (metres) and alpha.
        """
        import gpu

        kind = display_kind(pass_name)
        policy = policy or ResortPolicy()
        mode = sort_mode(sort)
        self.stats = DrawStats(sort_device=mode)
        width, height = max(1, int(width)), max(1, int(height))
        view = np.asarray(view_matrix, dtype=np.float64)
        window = np.asarray(window_matrix, dtype=np.float64)
        proj = _projection_params(window, width, height)
        cam_from_world = boundary.cam_from_view_matrix(view)
        eye = affine_inverse(view)[:3, 3]
        self._ubos = []
        # Farthest object first: objects blend one after another (splats interleave within one).
        live = []
        self._evict_idle_sets()
        for it in items:
            s, uploaded = self._set(it)
            s.last_used = time.monotonic()
            self.stats.uploaded |= uploaded
            if s.count:
                m = np.asarray(it.matrix, dtype=np.float64)
                live.append((float(np.linalg.norm(m[:3, :3] @ s.centre + m[:3, 3] - eye)), it, s, m))
        live.sort(key=lambda x: -x[0])
        # Orders (and a GPU sort's dispatches) before any drawing; values per object.
        draws, ranges = [], []
        lut = self._class_lut(live) if kind == "ids" else None
        for _, it, s, m in live:
            vo = self._order(it, s, view_key, cam_from_world @ m, mode, policy)
            eye_obj = (affine_inverse(m) @ np.append(eye, 1.0))[:3]
            values = s.class_texture(lut) if lut is not None else s.value_texture(pass_name, eye_obj, it.load)
            draws.append((it, s, m, vo, values))
            self.stats.splats += s.count
            self.stats.objects += 1
            if vo.result is not None and vo.result.depth_range[1] > vo.result.depth_range[0] > 0:
                ranges.append(vo.result.depth_range)
        for _, _, s, _ in live:
            s.loaded = None
        restore_viewport = gpu.state.viewport_get()
        region = palette = None
        if lut is None:
            fb, value_tex, depth_tex = self._target("value", width, height)
            self._draw_splats(fb, sh.splat_shader(), draws, view, window, proj, eye, width, height, kind, 0)
        else:
            fb, *slots, depth_tex = self._target("classes", width, height)
            value_tex = slots[0]  # its alpha is the accumulated alpha
            for offset in range(0, len(lut), sh.CLASS_SLOTS):
                self._draw_splats(fb, sh.splat_shader(classes=True), draws, view, window, proj, eye, width, height,
                                  kind, offset)
                region = self._reduce_regions(slots, depth_tex, offset, len(lut), width, height)
            palette = self._palette(lut)
        gpu.state.viewport_set(*restore_viewport)
        depth_range = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else \
            (max(proj["clip"][0], 1e-3), max(proj["clip"][1], 2e-3))
        self._last = (proj, kind, value_tex, depth_tex, depth_range, region, palette)
        return value_tex, depth_tex

    def _draw_splats(self, fb, prog, draws, view, window, proj, eye, width, height, kind, class_offset) -> None:
        """One instanced draw per object into ``fb`` (cleared first), back to front, premultiplied over."""
        import gpu

        batch = self._batch("splat")
        with fb.bind():
            gpu.state.viewport_set(0, 0, width, height)
            fb.clear(color=(0.0, 0.0, 0.0, 0.0))
            gpu.state.depth_test_set("NONE")
            gpu.state.depth_mask_set(False)
            gpu.state.blend_set("ALPHA_PREMULT")
            for it, s, m, vo, values in draws:
                block = sh.splat_view_block(m, view, window, proj["limits"], eye, proj["focal"], (width, height),
                                            proj["clip"], vo.width, vo.component, s.data_width, s.count,
                                            proj["perspective"], kind == "normal", class_offset)
                # One block per object and draw: rewriting one buffer between draws would stall the GPU.
                ubo = gpu.types.GPUUniformBuf(block)
                prog.bind()
                prog.uniform_block("sv", ubo)
                prog.uniform_sampler("orderTex", vo.texture)
                prog.uniform_sampler("centerTex", s.textures["center_opacity"])
                prog.uniform_sampler("covATex", s.textures["cov_a"])
                prog.uniform_sampler("covBTex", s.textures["cov_b"])
                prog.uniform_sampler("valueTex", values)
                batch.draw_instanced(prog, instance_count=s.count)
                self._ubos.append(ubo)  # kept alive until the next frame
            gpu.state.blend_set("NONE")

    def _class_lut(self, live) -> np.ndarray:
        """Sorted region ids of the drawn objects with -1 (class 0: no region) first."""
        ids = [np.array([-1], np.int32)] + [s.regions_present for _, _, s, _ in live]
        return np.unique(np.concatenate(ids))

    def _palette(self, lut: np.ndarray):
        """[1, K] display colours of the region classes (the contact sheet's; class 0 black)."""
        key = lut.tobytes()
        if getattr(self, "_palette_key", None) != key:
            colours = region_colors(lut).astype(np.float32)
            self._palette_tex = _float_texture(padded(colours, 16384), (len(lut), 1), "RGBA32F")
            self._palette_key = key
        return self._palette_tex

    def _reduce_regions(self, slots, depth_tex, offset: int, count: int, width: int, height: int):
        """Fold one class draw into the per-pixel (weight, class) of the heaviest region so far."""
        import gpu

        fbs = self._target("best", width, height)
        (fb_a, tex_a, fb_b, tex_b) = fbs
        src, (dst_fb, dst_tex) = (tex_b, (fb_a, tex_a)) if offset // sh.CLASS_SLOTS % 2 else (tex_a, (fb_b, tex_b))
        prog = sh.region_reduce_shader()
        with dst_fb.bind():
            gpu.state.viewport_set(0, 0, width, height)
            gpu.state.blend_set("NONE")
            gpu.state.depth_test_set("NONE")
            prog.bind()
            for t, tex in enumerate(slots):
                prog.uniform_sampler(f"slots{t}", tex)
            prog.uniform_sampler("depthTex", depth_tex)
            prog.uniform_sampler("bestTex", src)
            prog.uniform_int("classOffset", offset)
            prog.uniform_int("classCount", count)
            self._batch("finish").draw(prog)
        return dst_tex

    def finish(self, pass_name: str, window_matrix, *, display: bool = True, depth_test: bool = True,
               write_depth: bool = False, void_threshold: Optional[float] = None) -> None:
        """Show the last :meth:`accumulate` in the bound framebuffer (arguments as :meth:`draw`)."""
        import gpu

        proj, kind, value_tex, depth_tex, (lo, hi), region, palette = self._last
        prog = sh.finish_shader()
        batch = self._batch("finish")
        old_test, old_mask = gpu.state.depth_test_get(), gpu.state.depth_mask_get()
        gpu.state.depth_test_set("LESS_EQUAL" if depth_test else ("ALWAYS" if write_depth else "NONE"))
        gpu.state.depth_mask_set(bool(write_depth))
        gpu.state.blend_set("ALPHA_PREMULT")
        prog.bind()
        prog.uniform_sampler("valueTex", value_tex)
        prog.uniform_sampler("depthTex", depth_tex)
        prog.uniform_sampler("regionTex", region if region is not None else depth_tex)
        prog.uniform_sampler("paletteTex", palette if palette is not None else depth_tex)
        prog.uniform_float("voidColor", _VOID_COLOR)
        prog.uniform_float("depthRange", (float(lo), float(hi)))
        prog.uniform_float("depthFromView", tuple(float(v) for v in proj["depth_from_view"]))
        prog.uniform_float("voidThreshold", float(DEFAULT_VOID_THRESHOLD if void_threshold is None else void_threshold))
        prog.uniform_int("displayKind", sh.KIND_CODES[kind])
        prog.uniform_int("displayTarget", int(bool(display)))
        prog.uniform_int("isPerspective", int(proj["perspective"]))
        batch.draw(prog)
        gpu.state.blend_set("NONE")
        gpu.state.depth_test_set(old_test)
        gpu.state.depth_mask_set(old_mask)


def _median(vo: _ViewOrder) -> float:
    return vo.result.median_depth if vo.result is not None else 1.0


# ---------------------------------------------------------------------------------------------- Blender side
_DRAWER: list[Optional[SplatDrawer]] = [None]
_MESSAGE = [""]
_HANDLES: list = []


def drawer() -> SplatDrawer:
    """The add-on's one drawer (made on first use)."""
    if _DRAWER[0] is None:
        _DRAWER[0] = SplatDrawer()
        _DRAWER[0].on_sort_requested = _start_polling
    return _DRAWER[0]


def drawer_stats() -> Optional[DrawStats]:
    """The last draw's statistics (None before the first draw)."""
    return _DRAWER[0].stats if _DRAWER[0] is not None else None


def message() -> str:
    """The overlay's last error message ("" when none)."""
    return _MESSAGE[0]


def draw_items_from_objects(objects, errors: Optional[list] = None) -> list[DrawItem]:
    """Draw items for the splat objects among ``objects`` (original or evaluated objects).

    Args:
        objects: Blender objects; those that are not splat objects are ignored.
        errors: when given, a splat object that cannot be drawn is left out and its message
            appended here instead of raised.

    Raises:
        InputError: a splat object with a non-uniform scale (as the render engine refuses it).
    """
    items, seen = [], set()
    for obj in objects:
        orig = getattr(obj, "original", obj)
        if orig.type != "MESH" or not boundary.is_splat_mesh(orig.data) or orig.name_full in seen:
            continue
        seen.add(orig.name_full)
        mesh = orig.data
        m = np.array(obj.matrix_world, dtype=np.float64)
        try:
            boundary.splat_matrix_scale(m, mesh.name)
        except AnchorStageError as e:
            if errors is None:
                raise
            errors.append(f"object {orig.name!r} not drawn: {e}")
            continue
        items.append(DrawItem(key=("object", getattr(orig, "session_uid", None) or orig.name_full),
                              data_key=splat_cache.data_key(mesh), load=lambda mesh=mesh: splat_cache.mesh_splats(mesh, keep=False),
                              generation=splat_cache.stamp(mesh), matrix=m))
    return items


def _settings(scene):
    return getattr(scene, "anchorstage", None)


def _prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def _policy():
    prefs = _prefs()
    if prefs is None:
        return ResortPolicy()
    return ResortPolicy(angle_deg=float(getattr(prefs, "sort_angle", 1.0)),
                        distance=float(getattr(prefs, "sort_distance", 1.0)) / 100.0)


def _sort_pref() -> str:
    prefs = _prefs()
    return str(getattr(prefs, "viewport_sort", "AUTO") or "AUTO") if prefs is not None else "AUTO"


def _pass_of(scene) -> str:
    s = _settings(scene)
    return str(getattr(s, "viewport_pass", "color") or "color") if s is not None else "color"


_ERROR_TEXTS: dict = {}


def _error_text(e: BaseException, where: str) -> str:
    """The one-line message of a failure; a bug's traceback is logged once, not on every redraw."""
    key = (type(e).__name__, str(e))
    if key not in _ERROR_TEXTS:
        if len(_ERROR_TEXTS) > 64:
            _ERROR_TEXTS.clear()
        _ERROR_TEXTS[key] = error_message(e, where)
    return _ERROR_TEXTS[key]


def _overlay_draw() -> None:
    """POST_VIEW handler: Gaussians over Solid / Material Preview, tested against the scene's depth."""
    context = bpy.context
    space, region, rv3d = context.space_data, context.region, context.region_data
    if space is None or getattr(space, "type", "") != "VIEW_3D" or rv3d is None or region is None:
        return
    settings = _settings(context.scene)
    if settings is None or settings.viewport_display == "PROXIES" or space.shading.type not in {"SOLID", "MATERIAL"}:
        return
    try:
        errors: list[str] = []
        items = draw_items_from_objects(context.visible_objects, errors)
        if items:
            drawer().draw(items, rv3d.view_matrix, rv3d.window_matrix, region.width, region.height,
                          pass_name=_pass_of(context.scene), view_key=("region", region.as_pointer()),
                          display=True, depth_test=True, write_depth=False, sort=_sort_pref(), policy=_policy())
            errors.append(drawer().stats.message)
        _MESSAGE[0] = "; ".join(e for e in errors if e)
    except Exception as e:  # noqa: BLE001 - never raise into Blender's drawing; say it in the viewport
        _MESSAGE[0] = "AnchorStage viewport: " + _error_text(e, "the AnchorStage viewport")


def _overlay_text() -> None:
    """POST_PIXEL handler: the drawer's message, if any, in the viewport's lower-left corner."""
    if not _MESSAGE[0]:
        return
    import blf

    font = 0
    blf.size(font, 13)
    blf.color(font, 1.0, 0.45, 0.35, 1.0)
    blf.position(font, 12, 12, 0)
    blf.draw(font, _MESSAGE[0][:160])


def _poll_sorts():
    """Timer: redraw the 3D viewports once a CPU sort has finished; stops when none is running
    (a finished order waits for the next redraw to take it)."""
    d = _DRAWER[0]
    if d is None:
        return None
    busy = any(d.sorter.busy(k) for k in d.orders)  # checked first: a sort publishes, then idles
    if any(d.sorter.has_result(k) for k in d.orders):
        for win in bpy.context.window_manager.windows:
            for area in win.screen.areas:
                if area.type == "VIEW_3D":
                    area.tag_redraw()
    return _POLL_SECONDS if busy else None


def _start_polling() -> None:
    if not bpy.app.timers.is_registered(_poll_sorts):
        bpy.app.timers.register(_poll_sorts, first_interval=_POLL_SECONDS)


@bpy.app.handlers.persistent
def _on_load(*_args) -> None:
    if _DRAWER[0] is not None:
        _DRAWER[0].free()
    _MESSAGE[0] = ""


# ---------------------------------------------------------------------------------------------- render engine
def engine_view_draw(engine, context, depsgraph) -> bool:
    """The engine's ``view_draw`` with the GPU drawer.

    Returns:
        False when the drawer failed for another reason than a user mistake (the caller then
        falls back to the CPU renderer); the header says what happened either way.
    """
    import gpu

    region, rv3d = context.region, context.region_data
    scene = depsgraph.scene
    try:
        errors: list[str] = []
        items = draw_items_from_objects(depsgraph.objects, errors)
        if not items:
            if errors:
                engine.update_stats("AnchorStage", "viewport: " + "; ".join(errors))
            return True
        pass_name = _pass_of(scene)
        d = drawer()
        colour = display_kind(pass_name) == "srgb"
        value, _depth = d.accumulate(items, rv3d.view_matrix, rv3d.window_matrix, region.width, region.height,
                                     pass_name=pass_name, view_key=("engine", region.as_pointer()),
                                     sort=_sort_pref(), policy=_policy())
        if colour:
            # Scene-linear premultiplied colour through Blender's view transform, as F12 shows it.
            from gpu_extras.presets import draw_texture_2d

            gpu.state.blend_set("ALPHA_PREMULT")
            engine.bind_display_space_shader(scene)
            draw_texture_2d(value, (0, 0), region.width, region.height)
            engine.unbind_display_space_shader()
            gpu.state.blend_set("NONE")
        else:
            d.finish(pass_name, rv3d.window_matrix, display=True, depth_test=False, write_depth=False)
        msg = "; ".join(m for m in (*errors, d.stats.message) if m)
        engine.update_stats("AnchorStage", f"viewport: {msg}" if msg else f"{d.stats.splats:,} splats"
                            + (" (sorting…)" if d.stats.sorting else ""))
        return True
    except Exception as e:  # noqa: BLE001 - never raise into Blender; the header says what happened
        engine.update_stats("AnchorStage", "viewport: " + _error_text(e, "the AnchorStage viewport"))
        # A user mistake (e.g. a non-uniform scale) is said and stays; anything else (a GPU the
        # drawer cannot run on) hands the viewport to the CPU renderer.
        return isinstance(e, AnchorStageError)


# ---------------------------------------------------------------------------------------------- registration
def register() -> None:
    handle = bpy.types.SpaceView3D.draw_handler_add(_overlay_draw, (), "WINDOW", "POST_VIEW")
    text = bpy.types.SpaceView3D.draw_handler_add(_overlay_text, (), "WINDOW", "POST_PIXEL")
    _HANDLES[:] = [handle, text]
    if _on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load)


def unregister() -> None:
    for h in _HANDLES:
        bpy.types.SpaceView3D.draw_handler_remove(h, "WINDOW")
    _HANDLES.clear()
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
    if bpy.app.timers.is_registered(_poll_sorts):
        bpy.app.timers.unregister(_poll_sorts)
    if _DRAWER[0] is not None:
        _DRAWER[0].close()
        _DRAWER[0] = None
