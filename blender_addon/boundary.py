# SPDX-License-Identifier: GPL-3.0-or-later
"""The one place Blender data meets the core's conventions.

Blender cameras look down their local -Z with +Y up and carry lens/sensor in
millimetres; the core's :class:`anchorstage.Camera` is OpenCV-framed. The flip itself
is written once, in ``anchorstage.camera.BLENDER_FROM_CV``; this module only moves data
between bpy objects and the core.
"""

from __future__ import annotations

import copy

import bpy
import numpy as np
from mathutils import Matrix

from anchorstage import Camera, InputError

__all__ = ["render_resolution", "camera_from_blender", "apply_camera_to_blender", "camera_json_from_blender",
           "SPLAT_ATTRIBUTES", "splats_to_mesh", "splats_from_mesh", "splats_in_world", "is_splat_mesh", "image_to_render_rect", "set_render_pass",
           "render_rect_to_image", "image_to_pixels", "set_float_image", "camera_from_view", "set_placement", "file_frame_transform",
           "splat_matrix_scale", "cam_from_view_matrix", "view_matrices_from_camera", "WITNESS_KEY", "witness_to_mesh",
           "has_witness", "scene_from_mesh", "locked_region_ids"]


def render_resolution(scene: bpy.types.Scene) -> tuple[int, int]:
    """The output resolution in pixels, after ``resolution_percentage``."""
    r = scene.render
    pct = r.resolution_percentage / 100.0
    return max(1, int(r.resolution_x * pct)), max(1, int(r.resolution_y * pct))


def _rigid_matrix_world(obj: bpy.types.Object) -> np.ndarray:
    # Blender ignores object scale when projecting through a camera; drop it likewise.
    loc, rot, _scale = obj.matrix_world.decompose()
    return np.array(Matrix.LocRotScale(loc, rot, None), dtype=np.float64)


def camera_json_from_blender(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> dict:
    """The camera JSON of the brief for a Blender camera object at the current frame."""
    if obj is None or obj.type != "CAMERA":
        raise InputError(f"object {getattr(obj, 'name', None)!r} is not a camera")
    cam = obj.data
    if cam.type != "PERSP":
        raise InputError(f"camera {obj.name!r} is {cam.type}; only perspective cameras are supported")
    scene = scene or bpy.context.scene
    r = scene.render
    if r.pixel_aspect_x != r.pixel_aspect_y:
        raise InputError(f"scene {scene.name!r}: non-square pixel aspect is not supported")
    w, h = render_resolution(scene)
    return {
        "lens_mm": cam.lens,
        "sensor_width_mm": cam.sensor_width,
        "sensor_height_mm": cam.sensor_height,
        "sensor_fit": cam.sensor_fit,
        "resolution": [w, h],
        "shift_x": cam.shift_x,
        "shift_y": cam.shift_y,
        "clip_start": cam.clip_start,
        "clip_end": cam.clip_end,
        "matrix_world": _rigid_matrix_world(obj).tolist(),
    }


def camera_from_blender(obj: bpy.types.Object, scene: bpy.types.Scene | None = None) -> Camera:
    """A core Camera from a Blender camera object (pose at the current frame)."""
    return Camera.from_json_dict(camera_json_from_blender(obj, scene), source=f"camera {obj.name!r}")


def apply_camera_to_blender(camera: Camera, obj: bpy.types.Object, scene: bpy.types.Scene | None = None,
                            *, set_resolution: bool = False) -> None:
    """Write a core Camera's pose and lens onto a Blender camera object."""
    cam = obj.data
    cam.type = "PERSP"
    cam.lens_unit = "MILLIMETERS"
    cam.lens = camera.lens_mm
    cam.sensor_width = camera.sensor_width_mm
    cam.sensor_height = camera.sensor_height_mm
    cam.sensor_fit = camera.sensor_fit
    cam.shift_x = camera.shift_x
    cam.shift_y = camera.shift_y
    cam.clip_start = camera.clip_start
    cam.clip_end = camera.clip_end
    obj.matrix_world = Matrix(camera.matrix_world.tolist())
    if set_resolution:
        scene = scene or bpy.context.scene
        scene.render.resolution_x, scene.render.resolution_y = camera.width, camera.height
        scene.render.resolution_percentage = 100


# ---------------------------------------------------------------------------------------------- splats
#: Point attributes of a splat mesh (name, Blender type, foreach field, components).
SPLAT_ATTRIBUTES = (
    ("opacity", "FLOAT", "value", 1),
    ("scale", "FLOAT_VECTOR", "vector", 3),
    ("rotation", "QUATERNION", "value", 4),
    ("color", "FLOAT_COLOR", "color", 4),
    ("confidence", "FLOAT", "value", 1),
    ("region", "INT", "value", 1),
)
#: Custom property that marks a mesh as an AnchorStage splat set (value: format version).
SPLAT_MESH_TAG = "anchorstage_splats"
#: Custom properties carrying what the splats' source file stored (see ``_stored_to_mesh``), the SH
#: encoding, and world_from_file (where the import placed the file's frame; 16 floats, row-major).
STORED_TAG = "anchorstage_stored"
SH_ENCODING_TAG = "anchorstage_sh_encoding"
PLACEMENT_TAG = "anchorstage_placement"
#: Point-attribute prefixes: SH coefficient k (RGB) and stored file columns.
SH_PREFIX = "sh_rest_"
FILE_PREFIX = "file_"
RAW_ROTATION = "rotation_raw"
_MAX_ATTR_NAME = 60


def _column_to_attributes(mesh, index: int, name: str, col: np.ndarray) -> dict:
    """One stored column as point attribute(s), exact: float32 [N] → FLOAT, integers up to 32 bits
    [N] → INT (uint32 by its bit pattern), anything else as its row bytes in INT words."""
    base = f"{FILE_PREFIX}{name}" if len(FILE_PREFIX) + len(name) <= _MAX_ATTR_NAME else f"{FILE_PREFIX}{index}"
    n = col.shape[0]
    info = {"name": name, "dtype": col.dtype.str, "shape": list(col.shape[1:]), "attribute": base}
    if col.ndim == 1 and col.dtype == np.float32:
        info["kind"] = "FLOAT"
        mesh.attributes.new(base, "FLOAT", "POINT").data.foreach_set("value", np.ascontiguousarray(col))
    elif col.ndim == 1 and col.dtype.kind in "iu" and col.dtype.itemsize <= 4:
        info["kind"] = "INT"
        v = col.astype(np.int64) if col.dtype != np.uint32 else col.view(np.int32)
        mesh.attributes.new(base, "INT", "POINT").data.foreach_set("value", np.ascontiguousarray(v, dtype=np.int32))
    else:
        info["kind"] = "WORDS"
        rows = np.ascontiguousarray(col).reshape(n, -1).view(np.uint8).reshape(n, -1)
        words = -(-rows.shape[1] // 4)
        padded = np.zeros((n, words * 4), np.uint8)
        padded[:, :rows.shape[1]] = rows
        packed = padded.view(np.int32).reshape(n, words)
        info["words"], info["row_bytes"] = words, rows.shape[1]
        for j in range(words):
            mesh.attributes.new(f"{base}.{j}", "INT", "POINT").data.foreach_set("value", np.ascontiguousarray(packed[:, j]))
    return info


def _column_from_attributes(mesh, info: dict, n: int) -> np.ndarray:
    def get(name, dtype):
        attr = mesh.attributes.get(name)
        if attr is None or attr.domain != "POINT":
            raise InputError(f"splat mesh {mesh.name!r}: point attribute {name!r} of the source file's data is missing")
        buf = np.empty(n, dtype)
        attr.data.foreach_get("value", buf)
        return buf

    dtype = np.dtype(info["dtype"])
    if info["kind"] == "FLOAT":
        return get(info["attribute"], np.float32)
    if info["kind"] == "INT":
        v = get(info["attribute"], np.int32)
        return v.view(np.uint32) if dtype == np.uint32 else v.astype(dtype)
    words = np.stack([get(f"{info['attribute']}.{j}", np.int32) for j in range(info["words"])], axis=1)
    rows = np.ascontiguousarray(words).view(np.uint8).reshape(n, -1)[:, :info["row_bytes"]]
    return np.ascontiguousarray(rows).view(dtype).reshape((n, *info["shape"]))


def _stored_to_mesh(stored, mesh) -> None:
    """``Splats.stored`` as point attributes (per-splat columns) plus one custom property holding the
    format, comments, record layout and file-level elements (numbers as doubles: exact for every
    PLY type)."""
    import json

    columns = [_column_to_attributes(mesh, i, name, col) for i, (name, col) in enumerate(stored.columns.items())]
    elements = {}
    for name, arr in stored.elements.items():
        elements[name] = {"descr": json.dumps(arr.dtype.descr), "count": len(arr),
                          "fields": {f: np.asarray(arr[f], dtype=np.float64).ravel().tolist() for f in arr.dtype.names}}
    mesh[STORED_TAG] = {"format": stored.format, "comments": list(stored.comments),
                        "layout": json.dumps(stored.layout.descr) if stored.layout is not None else "",
                        "columns": json.dumps(columns), "elements": elements}


def _stored_from_mesh(mesh, n: int):
    import json

    from anchorstage.splats import StoredSplats

    if STORED_TAG not in mesh.keys():
        return None
    d = mesh[STORED_TAG].to_dict()

    def dtype(descr: str) -> np.dtype:
        return np.dtype([tuple(f) if len(f) == 2 else (f[0], f[1], tuple(f[2])) for f in json.loads(descr)])

    columns = {info["name"]: _column_from_attributes(mesh, info, n) for info in json.loads(d.get("columns", "[]"))}
    elements = {}
    for name, e in d.get("elements", {}).items():
        arr = np.zeros(int(e["count"]), dtype=dtype(e["descr"]))
        for f in arr.dtype.names:
            arr[f] = np.asarray(e["fields"].get(f, []), dtype=np.float64).reshape(arr[f].shape)
        elements[name] = arr
    return StoredSplats(str(d.get("format", "ply")), columns, elements,
                        dtype(d["layout"]) if d.get("layout") else None, [str(c) for c in d.get("comments", [])])


def splats_to_mesh(splats, mesh: bpy.types.Mesh) -> None:
    """Write every splat as a vertex of ``mesh`` with the point attributes of ``SPLAT_ATTRIBUTES``.

    Positions are the splat centres in metres (object space); ``rotation`` is wxyz as in the
    core (Blender quaternions are wxyz too); ``scale`` is the activated standard deviation in
    metres; ``color`` is linear RGB with alpha 1; ``region`` is the region index (-1 unassigned).
    """
    means = splats.means.detach().cpu().numpy().astype(np.float32)
    n = means.shape[0]
    mesh.clear_geometry()
    for name, *_ in SPLAT_ATTRIBUTES:
        if name in mesh.attributes:
            mesh.attributes.remove(mesh.attributes[name])
    mesh.vertices.add(n)
    mesh.vertices.foreach_set("co", means.ravel())
    for name in [a.name for a in mesh.attributes if a.name.startswith((SH_PREFIX, FILE_PREFIX, RAW_ROTATION))]:
        mesh.attributes.remove(mesh.attributes[name])
    for key in (STORED_TAG, SH_ENCODING_TAG, PLACEMENT_TAG):
        if key in mesh.keys():
            del mesh[key]
    raw_quats = splats.quats.detach().cpu().numpy().astype(np.float32)
    norms = np.linalg.norm(raw_quats, axis=1, keepdims=True)
    quats = np.where(norms > 0, raw_quats / np.maximum(norms, 1e-12), np.array([1, 0, 0, 0], np.float32))
    colors = np.ones((n, 4), np.float32)
    colors[:, :3] = splats.colors.detach().cpu().numpy()
    values = {
        "opacity": splats.opacities.detach().cpu().numpy(),
        "scale": splats.scales.detach().cpu().numpy(),
        "rotation": quats,
        "color": colors,
        "confidence": splats.confidence.detach().cpu().numpy(),
        "region": splats.region_ids.detach().cpu().numpy(),
    }
    for name, kind, field_, _ in SPLAT_ATTRIBUTES:
        attr = mesh.attributes.new(name, kind, "POINT")
        dtype = np.int32 if kind == "INT" else np.float32
        attr.data.foreach_set(field_, np.ascontiguousarray(values[name], dtype=dtype).ravel())
    if not np.array_equal(quats, raw_quats):  # a file's unnormalised rotations, kept exactly
        mesh.attributes.new(RAW_ROTATION, "QUATERNION", "POINT").data.foreach_set("value", raw_quats.ravel())
    if splats.sh_rest is not None:  # one RGB vector per SH coefficient
        rest = splats.sh_rest.detach().cpu().numpy().astype(np.float32)
        for k in range(rest.shape[1]):
            mesh.attributes.new(f"{SH_PREFIX}{k}", "FLOAT_VECTOR", "POINT").data.foreach_set(
                "vector", np.ascontiguousarray(rest[:, k]).ravel())
    mesh[SH_ENCODING_TAG] = splats.sh_encoding
    if splats.stored is not None:
        _stored_to_mesh(splats.stored, mesh)
    mesh[SPLAT_MESH_TAG] = 1
    mesh.update()


def is_splat_mesh(data) -> bool:
    return isinstance(data, bpy.types.Mesh) and SPLAT_MESH_TAG in data.keys()


def _matrix_to_np(m) -> np.ndarray:
    return np.array([list(row) for row in m], dtype=np.float64)


def splats_from_mesh(mesh: bpy.types.Mesh, matrix_world=None):
    """The core :class:`anchorstage.Splats` stored on a splat mesh, in world space.

    ``matrix_world`` (the object's, default identity) is applied: translation and rotation
    exactly, scale as one uniform factor (its cube-root volume ratio); Gaussians cannot follow
    a non-uniform or sheared object scale, so such a scale raises InputError.
    """
    import torch

    from anchorstage import Splats

    if not is_splat_mesh(mesh):
        raise InputError(f"mesh {mesh.name!r} is not an AnchorStage splat mesh")
    n = len(mesh.vertices)
    means = np.empty(n * 3, np.float32)
    mesh.vertices.foreach_get("co", means)
    means = means.reshape(n, 3)
    vals = {}
    for name, kind, field_, comps in SPLAT_ATTRIBUTES:
        attr = mesh.attributes.get(name)
        if attr is None or attr.domain != "POINT" or attr.data_type != kind:
            raise InputError(f"splat mesh {mesh.name!r}: point attribute {name!r} ({kind}) is missing")
        buf = np.empty(n * comps, np.int32 if kind == "INT" else np.float32)
        attr.data.foreach_get(field_, buf)
        vals[name] = buf.reshape(n, comps) if comps > 1 else buf
    t = lambda a, dt=torch.float32: torch.from_numpy(np.ascontiguousarray(a)).to(dt)  # noqa: E731
    quats = vals["rotation"]
    raw = mesh.attributes.get(RAW_ROTATION)
    if raw is not None and raw.domain == "POINT" and raw.data_type == "QUATERNION":
        buf = np.empty(n * 4, np.float32)
        raw.data.foreach_get("value", buf)
        buf = buf.reshape(n, 4)
        unit = buf / np.maximum(np.linalg.norm(buf, axis=1, keepdims=True), 1e-12)
        same = np.all(np.abs(unit - quats) <= 1e-6, axis=1)
        quats = np.where(same[:, None], buf, quats)  # rotations edited in Blender win
    rest = []
    while (attr := mesh.attributes.get(f"{SH_PREFIX}{len(rest)}")) is not None and attr.data_type == "FLOAT_VECTOR":
        buf = np.empty(n * 3, np.float32)
        attr.data.foreach_get("vector", buf)
        rest.append(buf.reshape(n, 3))
    if len(rest) not in (0, 3, 8, 15):
        raise InputError(f"splat mesh {mesh.name!r}: {len(rest)} SH coefficient attributes (expected 3, 8 or 15)")
    encoding = str(mesh.get(SH_ENCODING_TAG, "sRGB"))
    splats = Splats(means=t(means), quats=t(quats), scales=t(vals["scale"]), opacities=t(vals["opacity"]),
                    colors=t(vals["color"][:, :3]), confidence=t(vals["confidence"]),
                    region_ids=t(vals["region"], torch.int32),
                    sh_rest=t(np.stack(rest, axis=1)) if rest else None,
                    sh_encoding=encoding if encoding in ("sRGB", "linearRGB") else "sRGB",
                    stored=_stored_from_mesh(mesh, n))
    return splats if matrix_world is None else splats_in_world(splats, matrix_world, mesh.name)


def splats_in_world(splats, matrix_world, name: str):
    """Splats of an object's mesh (its own frame) moved to world space by the object's matrix:
    translation and rotation exactly, scale as one uniform factor (its cube-root volume ratio).

    Args:
        splats: the mesh's splats (left unchanged; an identity matrix returns them as they are).
        matrix_world: the object's 4x4 object-to-world matrix (Blender's or an array), metres.
        name: the mesh's name, for the message.

    Raises:
        InputError: a non-uniform or sheared scale (Gaussians cannot follow it).
    """
    m = _matrix_to_np(matrix_world)
    if np.allclose(m, np.eye(4), atol=1e-12):
        return splats
    s = splat_matrix_scale(m, name)
    u, _, vt = np.linalg.svd(m[:3, :3])  # the nearest rotation: drops float noise of Blender's matrix
    rigid = np.eye(4)
    rigid[:3, :3], rigid[:3, 3] = u @ vt, m[:3, 3]
    if s != 1.0:
        # A shallow copy with scaled tensors (the caller's splats stay as they are); transformed() checks the result.
        splats = copy.copy(splats)
        splats.means, splats.scales = splats.means * s, splats.scales * s
    return splats.transformed(rigid)


def set_placement(obj: bpy.types.Object, world_from_file: np.ndarray) -> None:
    """Place a splat object whose mesh holds a file's splats in the file's own frame: the object's
    transform is ``world_from_file`` and the mesh remembers it, so an export can write the file's
    frame again (bit-exact while the object has not moved)."""
    m = np.asarray(world_from_file, dtype=np.float64)
    obj.matrix_world = Matrix(m.tolist())
    obj.data[PLACEMENT_TAG] = m.ravel().tolist()


def file_frame_transform(obj: bpy.types.Object) -> np.ndarray:
    """[4, 4] how the object moved its mesh's file frame since import: placement⁻¹ · matrix_world
    (just matrix_world for meshes without a placement, i.e. world coordinates)."""
    m = _matrix_to_np(obj.matrix_world)
    placed = obj.data.get(PLACEMENT_TAG) if obj.data is not None else None
    if placed is None or len(placed) != 16:
        return m
    rel = np.linalg.solve(np.asarray(placed, dtype=np.float64).reshape(4, 4), m)
    # Blender keeps matrix_world in float32: an unmoved object differs from the placement by rounding.
    return np.eye(4) if np.allclose(rel, np.eye(4), atol=1e-6) else rel


def splat_matrix_scale(matrix_world, name: str) -> float:
    """The uniform scale of a splat object's matrix (the cube root of its determinant).

    Raises:
        InputError: a degenerate, mirrored, non-uniformly scaled or sheared matrix (Gaussians
            follow location, rotation and a uniform scale only).
    """
    a = _matrix_to_np(matrix_world)[:3, :3]
    det = np.linalg.det(a)
    if not np.isfinite(det) or det <= 0:
        raise InputError(f"splat object transform of {name!r} is degenerate or mirrored")
    s = det ** (1.0 / 3.0)
    if not np.allclose((a / s).T @ (a / s), np.eye(3), atol=1e-4):
        raise InputError(f"splat mesh {name!r}: the object has a non-uniform scale or shear; "
                         "splats support location, rotation and a uniform scale only")
    return float(s)


# ---------------------------------------------------------------------------------------------- images
def image_to_render_rect(image: np.ndarray) -> np.ndarray:
    """A core image ([H, W] or [H, W, C], rows top-down) as a render-pass ``rect`` ([H*W, C], rows bottom-up)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    return np.ascontiguousarray(a[::-1].reshape(h * w, c))


def set_render_pass(render_pass, image: np.ndarray) -> None:
    """Fill a render result's pass with a core image ([H, W] or [H, W, C], rows top-down).

    One copy through ``rect.foreach_set``: assigning ``rect`` an array goes value by value (0.8 s for
    one 1280x720 RGBA pass, against milliseconds).

    Raises:
        ValueError: the image's channels differ from the pass's.
    """
    rect = image_to_render_rect(image)
    if rect.shape[1] != render_pass.channels:
        raise ValueError(f"pass {render_pass.name}: {rect.shape[1]} channels, Blender expects {render_pass.channels}")
    render_pass.rect.foreach_set(rect.ravel())


def render_rect_to_image(rect, width: int, height: int, channels: int) -> np.ndarray:
    """A render-pass ``rect`` (rows bottom-up) as a core image [H, W, C] (rows top-down)."""
    a = np.asarray(rect, dtype=np.float32).reshape(height, width, channels)
    return np.ascontiguousarray(a[::-1])


def set_float_image(name: str, rgba: np.ndarray) -> "bpy.types.Image":
    """Put an [H, W, 3|4] linear image (rows top-down) into the float image datablock ``name``
    (made, or remade at another size)."""
    h, w = rgba.shape[:2]
    img = bpy.data.images.get(name)
    if img is None or tuple(img.size) != (w, h) or img.source != "GENERATED":
        if img is not None:
            bpy.data.images.remove(img)
        img = bpy.data.images.new(name, w, h, alpha=True, float_buffer=True)
    img.pixels.foreach_set(image_to_pixels(rgba))
    img.update()
    return img


def image_to_pixels(image: np.ndarray) -> np.ndarray:
    """A core RGB(A) image [H, W, 3|4] (top-down) as ``bpy.types.Image.pixels`` (RGBA, bottom-up, flat)."""
    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape[:2]
    out = np.ones((h, w, 4), np.float32)
    if a.ndim == 2:
        out[..., :3] = a[..., None]
    else:
        out[..., : a.shape[2]] = a[..., :4]
    return np.ascontiguousarray(out[::-1]).ravel()


# ---------------------------------------------------------------------------------------------- viewport
def camera_from_view(view_matrix, window_matrix, width: int, height: int,
                     clip_start: float = 0.1, clip_end: float = 1000.0) -> Camera:
    """A core Camera for a perspective 3D-viewport (or any OpenGL-style projection).

    ``view_matrix`` is world → Blender view space (looks down -Z), ``window_matrix`` the
    projection; for eye coordinates (x, y, z) the normalised device x is
    ``(P00 x + P02 z) / -z``, so ``fx = P00 W / 2`` and ``cx = W / 2 (1 - P02)``; likewise
    ``fy = P11 H / 2`` and, with image rows top-down, ``cy = H / 2 (1 + P12)``.
    """
    from anchorstage.camera import BLENDER_FROM_CV

    p = _matrix_to_np(window_matrix)
    if abs(p[3, 3]) > 1e-9 or abs(p[3, 2] + 1.0) > 1e-6:
        raise InputError("only perspective views can be rendered by AnchorStage (this view is orthographic)")
    fx, fy = p[0, 0] * width / 2.0, p[1, 1] * height / 2.0
    f = 0.5 * (fx + fy)
    K = np.array([[f, 0.0, width / 2.0 * (1.0 - p[0, 2])], [0.0, f, height / 2.0 * (1.0 + p[1, 2])], [0.0, 0.0, 1.0]])
    world_from_view = np.linalg.inv(_matrix_to_np(view_matrix))
    world_from_cam = world_from_view @ BLENDER_FROM_CV
    # drop any scale the view matrix carries (orthonormalise the rotation)
    u, _, vt = np.linalg.svd(world_from_cam[:3, :3])
    world_from_cam[:3, :3] = u @ vt
    cam = Camera.from_K(K, width, height, world_from_cam=world_from_cam)
    return cam.replace(clip_start=max(1e-4, float(clip_start)), clip_end=max(float(clip_end), float(clip_start) * 2))


def cam_from_view_matrix(view_matrix) -> np.ndarray:
    """[4, 4] OpenCV ``cam_from_world`` (x right, y down, z forward) of a Blender view matrix
    (world → view space looking down -Z, +Y up)."""
    from anchorstage.camera import BLENDER_FROM_CV

    return BLENDER_FROM_CV @ _matrix_to_np(view_matrix)


def view_matrices_from_camera(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Blender's view and window (OpenGL projection) matrices that see what a core Camera sees:
    the inverse of :func:`camera_from_view` (clip range from ``clip_start`` / ``clip_end``).

    Returns:
        ([4, 4] world → view, [4, 4] view → clip), float64.
    """
    from anchorstage.camera import BLENDER_FROM_CV

    w, h = camera.resolution
    K = np.asarray(camera.K, dtype=np.float64)
    n, f = float(camera.clip_start), float(camera.clip_end)
    window = np.zeros((4, 4))
    window[0, 0], window[0, 2] = 2.0 * K[0, 0] / w, 1.0 - 2.0 * K[0, 2] / w
    window[1, 1], window[1, 2] = 2.0 * K[1, 1] / h, 2.0 * K[1, 2] / h - 1.0
    window[2, 2], window[2, 3] = -(f + n) / (f - n), -2.0 * f * n / (f - n)
    window[3, 2] = -1.0
    view = BLENDER_FROM_CV @ np.asarray(camera.cam_from_world, dtype=np.float64)
    return view, window


# ---------------------------------------------------------------------------------------------- witness
#: Custom property of a splat mesh holding the stage's witness (the photo the splats came from).
WITNESS_KEY = "anchorstage_witness"


def witness_to_mesh(stage, mesh: bpy.types.Mesh) -> None:
    """Store a core Scene's witness on its splat mesh, so refreshes (the render engine's included, under
    ``blender -b``) work from the .blend alone.

    ``mesh["anchorstage_witness"]`` holds ``image`` ([H*W*3] float32 linear RGB), ``depth`` ([H*W]
    float32 metres, inf = sky), ``region`` ([H*W] int32 region index, -1 none), ``width``, ``height``,
    ``camera`` (camera JSON text), ``regions`` (region records, JSON text) and ``meta`` (the scene's
    meta as JSON text, with its ``refresh_steps``). ``mesh.anchorstage_regions`` lists the regions
    with their lock toggles: a region already listed keeps the artist's lock, a new one takes the
    stage's.
    """
    import json

    from anchorstage.segmentation import label_map

    h, w = stage.height, stage.width
    mesh[WITNESS_KEY] = {
        "width": w, "height": h,
        "image": np.ascontiguousarray(stage.image_linear, dtype=np.float32).ravel(),
        "depth": np.ascontiguousarray(stage.depth_m, dtype=np.float32).ravel(),
        "region": label_map(stage.regions, (h, w)).astype(np.int32).ravel(),
        "camera": json.dumps(stage.camera.to_json_dict()),
        "regions": json.dumps([r.to_json_dict() for r in stage.regions]),
        "meta": json.dumps(stage.meta, default=str),
    }
    items = mesh.anchorstage_regions
    kept = {it.region_id: it.locked for it in items}
    items.clear()
    for r in stage.regions:
        it = items.add()
        it.region_id, it.label, it.index = r.id, r.label, int(r.index)
        it.locked = kept.get(r.id, bool(r.locked))


def has_witness(mesh) -> bool:
    return isinstance(mesh, bpy.types.Mesh) and WITNESS_KEY in mesh.keys()


def locked_region_ids(mesh) -> list[str]:
    """Ids of the regions locked in the splat mesh's region list."""
    return [it.region_id for it in getattr(mesh, "anchorstage_regions", []) if it.locked]


def scene_from_mesh(mesh: bpy.types.Mesh, matrix_world=None, splats=None):
    """The core Scene of a splat mesh with a stored witness: its splats in world space (the object's
    transform applied, as the render engine does) and the witness camera moved with them; region
    locks as the mesh's region list says.

    ``splats``: the mesh's splats already under ``matrix_world`` (the render engine passes its
    cached ones); read from the mesh when None.

    Raises:
        InputError: no witness stored, or a malformed one.
    """
    import json

    from anchorstage import Region, Scene

    if not has_witness(mesh):
        raise InputError(f"splat mesh {mesh.name!r} holds no witness: run the Splat Object node (or New Stage + "
                         "Execute) to store the stage's photo on it")
    rec = mesh[WITNESS_KEY]
    try:
        w, h = int(rec["width"]), int(rec["height"])
        image = np.frombuffer(rec["image"], dtype=np.float32).reshape(h, w, 3).copy()
        depth = np.frombuffer(rec["depth"], dtype=np.float32).reshape(h, w).copy()
        region = np.frombuffer(rec["region"], dtype=np.int32).reshape(h, w)
        camera = Camera.from_json_dict(json.loads(rec["camera"]), source=f"witness camera of {mesh.name!r}")
        records = json.loads(rec["regions"])
        meta = json.loads(rec["meta"])
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"splat mesh {mesh.name!r}: the stored witness is malformed ({e})") from None
    locks = set(locked_region_ids(mesh))
    regions = []
    for d in records:
        r = Region.from_json_dict(d)
        r.mask = region == r.index
        r.locked = r.id in locks
        regions.append(r)
    if splats is None:
        splats = splats_from_mesh(mesh, matrix_world)
    if matrix_world is not None:
        m = _matrix_to_np(matrix_world)
        if not np.allclose(m, np.eye(4), atol=1e-12):
            a = m[:3, :3] / np.cbrt(np.linalg.det(m[:3, :3]))
            u, _, vt = np.linalg.svd(a)
            rigid = np.eye(4)
            rigid[:3, :3], rigid[:3, 3] = u @ vt, m[:3, 3]
            camera = camera.with_pose(rigid @ camera.world_from_cam)
            scale = float(np.cbrt(np.linalg.det(m[:3, :3])))
            if abs(scale - 1.0) > 1e-6:  # a uniformly scaled stage: its depths scale too
                depth = depth * np.float32(scale)
                camera = camera.with_pose(_scaled_pose(camera.world_from_cam, rigid, scale))
    return Scene(camera=camera, splats=splats, image_linear=image, depth_m=depth, regions=regions, meta=meta)


def _scaled_pose(world_from_cam: np.ndarray, rigid: np.ndarray, scale: float) -> np.ndarray:
    """The camera centre of a uniformly scaled stage: scaled about the object's origin."""
    out = world_from_cam.copy()
    out[:3, 3] = rigid[:3, 3] + scale * (world_from_cam[:3, 3] - rigid[:3, 3])
    return out
