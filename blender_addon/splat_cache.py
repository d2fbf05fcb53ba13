# SPDX-License-Identifier: GPL-3.0-or-later
"""Splats read from splat meshes, kept while the meshes stay as they were.

Reading a splat mesh (:func:`.boundary.splats_from_mesh`: every point attribute copied out and
checked) costs 0.1–1 s per million splats on a small CPU (more when it is busy), and moving them to world space about as
much again. The render engine needs them every frame (F12, ``-a``, the CPU viewport) and
the GPU drawer on every change; both ask this module, which reads a mesh again only when its
*stamp* changes:

* its **generation**: a ``depsgraph_update_post`` handler counts the depsgraph updates that touch
  the mesh: an edit in the UI, a Python write through RNA or ``foreach_set``, new mesh data on the
  object (Blender brings the view layer up to date, calling the handler, before every render);
* its **layout**: the vertex count, the name, domain and type of every attribute, and the mesh's
  custom property names and SH encoding (written by Python without a depsgraph update).

World-space splats are kept per object too, keyed on the mesh's stamp and the object's matrix, so
an unchanged object costs nothing per frame and a moving one only its transform; so is the stage
(:func:`object_stage`) of an object carrying its witness, which the Void pass and the refreshed
beauty warp every frame (the witness mesh is built once per stage, not per frame).
"""

from __future__ import annotations

import sys
from typing import Hashable

import numpy as np

import bpy

from . import boundary

__all__ = ["data_key", "stamp", "mesh_splats", "object_splats", "object_stage", "prune", "forget", "STATS", "register",
           "unregister"]

_GENERATION: dict[Hashable, int] = {}
_MESHES: dict[Hashable, tuple[tuple, object]] = {}   # data key -> (stamp, splats in the mesh's frame)
_OBJECTS: dict[Hashable, tuple[tuple, object]] = {}  # object key -> (stamp + matrix, splats in world space)
_STAGES: dict[Hashable, tuple[tuple, object]] = {}   # object key -> (stamp + matrix + witness, core Scene)
_JOINED: list = [(), None]  # (the parts, their concatenation): several objects are joined once while they stay
#: How often meshes were read, objects moved to world space and witness stages built (for tests and benchmarks).
STATS = {"mesh_reads": 0, "world_transforms": 0, "stages": 0}


def data_key(mesh: bpy.types.Mesh) -> Hashable:
    """Identifies a mesh datablock for this session (objects sharing a mesh share its entry)."""
    return ("mesh", getattr(mesh, "session_uid", None) or mesh.name_full)


def _object_key(obj: bpy.types.Object) -> Hashable:
    return ("object", getattr(obj, "session_uid", None) or obj.name_full)


def stamp(mesh: bpy.types.Mesh) -> tuple:
    """What the cached splats of ``mesh`` are valid for (see the module docstring)."""
    key = data_key(mesh)
    layout = tuple((a.name, a.domain, a.data_type) for a in mesh.attributes if not a.name.startswith("."))
    return (key, _GENERATION.get(key, 0), len(mesh.vertices), layout, tuple(mesh.keys()),
            str(mesh.get(boundary.SH_ENCODING_TAG, "")))


def mesh_splats(mesh: bpy.types.Mesh, keep: bool = True):
    """The splats of a splat mesh in the mesh's own frame (read only when its stamp changed).

    Args:
        mesh: the splat mesh.
        keep: keep what is read for the next call (the render engine); False reads without keeping
            (the GPU drawer, which keeps its own textures: a stage only looked at holds no copy here).

    Raises:
        InputError: not a splat mesh, or a malformed one (as :func:`.boundary.splats_from_mesh`).
    """
    key, st = data_key(mesh), stamp(mesh)
    hit = _MESHES.get(key)
    if hit is not None and hit[0] == st:
        return hit[1]
    splats = boundary.splats_from_mesh(mesh)
    STATS["mesh_reads"] += 1
    if keep:
        _MESHES[key] = (st, splats)
    else:
        _MESHES.pop(key, None)
    return splats


def object_splats(obj: bpy.types.Object, matrix_world=None):
    """The splats of a splat object in world space: its mesh's cached splats under ``matrix_world``
    (default the object's), transformed again only when the mesh or the matrix changed.

    Args:
        obj: the original (not evaluated) splat object; its mesh is read.
        matrix_world: the 4x4 object-to-world matrix to apply (e.g. the evaluated object's at this frame).

    Raises:
        InputError: a malformed splat mesh, or a non-uniform object scale.
    """
    mesh = obj.data
    m = np.array(obj.matrix_world if matrix_world is None else matrix_world, dtype=np.float64)
    local = mesh_splats(mesh)
    if np.allclose(m, np.eye(4), atol=1e-12):
        _OBJECTS.pop(_object_key(obj), None)
        return local
    key, st = _object_key(obj), (stamp(mesh), m.tobytes())
    hit = _OBJECTS.get(key)
    if hit is not None and hit[0] == st:
        return hit[1]
    splats = boundary.splats_in_world(local, m, mesh.name)
    STATS["world_transforms"] += 1
    _OBJECTS[key] = (st, splats)
    return splats


def object_stage(obj: bpy.types.Object):
    """The core Scene of a splat object carrying its stage's witness (:func:`.boundary.scene_from_mesh`:
    world space, region locks as listed), kept while its splats, matrix, witness record and locks stay.

    Raises:
        InputError: no witness stored, or a malformed one.
    """
    mesh = obj.data
    if not boundary.has_witness(mesh):
        return boundary.scene_from_mesh(mesh, obj.matrix_world)  # raises its message
    m = np.array(obj.matrix_world, dtype=np.float64)
    rec = mesh[boundary.WITNESS_KEY]
    st = (stamp(mesh), m.tobytes(), tuple(boundary.locked_region_ids(mesh)),
          tuple(str(rec.get(k, "")) for k in ("width", "height", "camera", "regions", "meta")),
          tuple(len(rec[k]) if k in rec else -1 for k in ("image", "depth", "region")))
    key = _object_key(obj)
    hit = _STAGES.get(key)
    if hit is not None and hit[0] == st:
        return hit[1]
    stage = boundary.scene_from_mesh(mesh, m, splats=object_splats(obj, m))
    STATS["stages"] += 1
    _STAGES[key] = (st, stage)
    return stage


def prune() -> None:
    """Forget the splats of meshes and objects that no longer exist."""
    meshes = {data_key(m) for m in bpy.data.meshes}
    objects = {_object_key(o) for o in bpy.data.objects}
    for k in [k for k in _MESHES if k not in meshes]:
        del _MESHES[k]
    for cache in (_OBJECTS, _STAGES):
        for k in [k for k in cache if k not in objects]:
            del cache[k]


def joined(parts: list):
    """The splat sets of several objects as one set (world space), joined again only when a part changed.

    Args:
        parts: :func:`object_splats` results, in render order.
    """
    from anchorstage import Splats

    last = _JOINED[0]
    if len(last) != len(parts) or any(a is not b for a, b in zip(last, parts)):
        _JOINED[:] = [tuple(parts), Splats.concat(parts)]
    return _JOINED[1]


def forget() -> None:
    """Drop every cached splat set and the renderer's kept frame buffers (a new file, or the add-on going away)."""
    for cache in (_MESHES, _OBJECTS, _STAGES, _GENERATION):
        cache.clear()
    _JOINED[:] = [(), None]
    scratch = sys.modules.get("anchorstage.scratch")  # loaded once something rendered (no torch import here)
    if scratch is not None:
        scratch.release()


@bpy.app.handlers.persistent
def _on_depsgraph_update(scene, depsgraph) -> None:
    """A splat mesh changed: its next reader reads it again."""
    for upd in depsgraph.updates:
        idd = getattr(upd.id, "original", upd.id)
        mesh = None
        if isinstance(idd, bpy.types.Mesh):
            mesh = idd
        elif isinstance(idd, bpy.types.Object) and idd.type == "MESH" and upd.is_updated_geometry:
            mesh = idd.data
        if mesh is not None and boundary.is_splat_mesh(mesh):
            key = data_key(mesh)
            _GENERATION[key] = _GENERATION.get(key, 0) + 1


@bpy.app.handlers.persistent
def _on_load(*_args) -> None:
    forget()


def register() -> None:
    if _on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(_on_depsgraph_update)
    if _on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load)


def unregister() -> None:
    for handlers, fn in ((bpy.app.handlers.depsgraph_update_post, _on_depsgraph_update),
                         (bpy.app.handlers.load_post, _on_load)):
        while fn in handlers:
            handlers.remove(fn)
    forget()
