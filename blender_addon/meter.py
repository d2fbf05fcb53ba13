# SPDX-License-Identifier: GPL-3.0-or-later
"""The live confidence meter: the scene camera's shot rated as it moves.

A depsgraph / frame-change handler notices when the scene camera's pose, lens or the render size
changed and rates the shot with :func:`anchorstage.confidence.estimate`'s warp at reduced resolution
(the witness decimated to 256 pixels, the shot to 160 pixels on the long side; a few milliseconds,
well under the 50 ms budget of an interactive update). The decimated stage is built once per splat
object (one reduced render of the splats' confidence) and rebuilt when its splats or witness change.
Results live here, per scene; the camera panel draws them and redraws when they change.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import bpy

from . import boundary

#: scene name -> {"key", "confidence", "warp", "ms", "error", "object"}
STATE: dict[str, dict[str, Any]] = {}
#: (object name, witness stamp) -> MeterProxy
_PROXIES: dict[tuple, Any] = {}
MAX_SIDE = 160


def witness_object(scene):
    """The first visible splat object of ``scene`` that carries a witness, or None."""
    for obj in scene.objects:
        if obj.type == "MESH" and boundary.is_splat_mesh(obj.data) and boundary.has_witness(obj.data):
            return obj
    return None


def _stamp(obj) -> tuple:
    mesh = obj.data
    return (obj.name, mesh.get("anchorstage_source", ""), len(mesh.vertices), tuple(tuple(r) for r in obj.matrix_world),
            tuple(boundary.locked_region_ids(mesh)), len(mesh[boundary.WITNESS_KEY]["depth"]),
            mesh[boundary.WITNESS_KEY].get("meta", ""))


def proxy_for(obj):
    """The decimated stage of a splat object (cached while its splats and witness stay)."""
    from anchorstage.confidence import meter_proxy

    key = _stamp(obj)
    proxy = _PROXIES.get(key)
    if proxy is None:
        _PROXIES.clear()
        proxy = meter_proxy(boundary.scene_from_mesh(obj.data, obj.matrix_world), device="cpu")
        _PROXIES[key] = proxy
    return proxy


def update(scene, force: bool = False) -> Optional[dict[str, Any]]:
    """Rate the scene camera's shot if it changed since the last time (or ``force``); returns the state."""
    settings = getattr(scene, "anchorstage", None)
    if settings is None or not settings.show_meter or scene.camera is None:
        return STATE.get(scene.name)
    obj = witness_object(scene)
    if obj is None:
        STATE.pop(scene.name, None)
        return None
    cam = scene.camera
    try:
        camera = boundary.camera_from_blender(cam, scene)
    except Exception as e:  # noqa: BLE001 - shown in the panel
        STATE[scene.name] = {"key": None, "error": str(e)}
        return STATE[scene.name]
    key = (camera.matrix_world.round(9).tobytes(), camera.lens_mm, camera.resolution, camera.shift_x, camera.shift_y,
           _stamp(obj))
    state = STATE.get(scene.name)
    if not force and state is not None and state.get("key") == key:
        return state
    t0 = time.perf_counter()
    try:
        from anchorstage.confidence import from_warp
        from anchorstage.witness import warp_witness

        proxy = proxy_for(obj)
        scale = min(1.0, MAX_SIDE / max(camera.width, camera.height))
        small = camera.with_resolution(max(1, round(camera.width * scale)), max(1, round(camera.height * scale)))
        warp = warp_witness(proxy.scene, small, device="cpu")
        state = {"key": key, "confidence": from_warp(warp), "warp": warp, "error": "", "object": obj.name,
                 "ms": 1000.0 * (time.perf_counter() - t0)}
    except Exception as e:  # noqa: BLE001 - the meter never raises into Blender
        from anchorstage.errors import error_message

        state = {"key": key, "error": error_message(e, "the AnchorStage confidence meter")}
    STATE[scene.name] = state
    _redraw()
    return state


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []) or []:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


@bpy.app.handlers.persistent
def _on_change(scene, depsgraph=None) -> None:
    if not bpy.app.background:  # no panel to show it in a batch render
        update(scene)


def register() -> None:
    for handlers in (bpy.app.handlers.depsgraph_update_post, bpy.app.handlers.frame_change_post):
        if _on_change not in handlers:
            handlers.append(_on_change)


def unregister() -> None:
    for handlers in (bpy.app.handlers.depsgraph_update_post, bpy.app.handlers.frame_change_post):
        while _on_change in handlers:
            handlers.remove(_on_change)
    STATE.clear()
    _PROXIES.clear()
