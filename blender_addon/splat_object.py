# SPDX-License-Identifier: GPL-3.0-or-later
"""The splat object: a vertex-only mesh holding every splat as a point with attributes, shown
in the viewport (and in Eevee / Cycles) by a Geometry Nodes group that instances oriented,
scaled proxies on a random subset of at most "Max Display Splats" points.

The mesh always keeps all splats (the ANCHORSTAGE render engine reads them); only the
display is decimated, so a 1M-splat stage stays interactive. With the scene's *Viewport Display*
at *Gaussians* (the default) the proxies are hidden in the viewport and the GPU drawer
(:mod:`.viewport`) shows every splat instead; Cycles and EEVEE renders keep the proxies.
"""

from __future__ import annotations

import bpy

from .boundary import is_splat_mesh, splats_to_mesh

DISPLAY_GROUP = "AnchorStage Splat Display"
DISPLAY_MODIFIER = "AnchorStage Display"
MATERIAL = "AnchorStage Splat"
#: group interface version; a stored group with another version is rebuilt.
_GROUP_VERSION = 1
DEFAULT_MAX_DISPLAY = 200_000


def _socket_id(group, name: str) -> str:
    for item in group.interface.items_tree:
        if getattr(item, "item_type", "SOCKET") == "SOCKET" and item.in_out == "INPUT" and item.name == name:
            return item.identifier
    raise KeyError(name)


def ensure_material() -> bpy.types.Material:
    """Emission from the instancer's ``color`` attribute, faded to transparent by ``opacity``."""
    mat = bpy.data.materials.get(MATERIAL)
    if mat is not None and mat.get("anchorstage_version") == _GROUP_VERSION:
        return mat
    if mat is None:
        mat = bpy.data.materials.new(MATERIAL)
    if bpy.app.version < (5, 0, 0):  # 5.0 materials always have a node tree
        mat.use_nodes = True
    nt = mat.node_tree
    nt.nodes.clear()
    out = nt.nodes.new("ShaderNodeOutputMaterial")
    col = nt.nodes.new("ShaderNodeAttribute")
    col.attribute_type, col.attribute_name = "INSTANCER", "color"
    opa = nt.nodes.new("ShaderNodeAttribute")
    opa.attribute_type, opa.attribute_name = "INSTANCER", "opacity"
    emit = nt.nodes.new("ShaderNodeEmission")
    transp = nt.nodes.new("ShaderNodeBsdfTransparent")
    mix = nt.nodes.new("ShaderNodeMixShader")
    nt.links.new(col.outputs["Color"], emit.inputs["Color"])
    nt.links.new(opa.outputs["Fac"], mix.inputs["Fac"])
    nt.links.new(transp.outputs[0], mix.inputs[1])
    nt.links.new(emit.outputs[0], mix.inputs[2])
    nt.links.new(mix.outputs[0], out.inputs["Surface"])
    for i, n in enumerate((col, opa, emit, transp, mix, out)):
        n.location = (i * 200 - 600, 0)
    if hasattr(mat, "surface_render_method"):
        mat.surface_render_method = "DITHERED"
    mat.diffuse_color = (0.8, 0.8, 0.8, 1.0)
    mat["anchorstage_version"] = _GROUP_VERSION
    return mat


def ensure_display_group() -> bpy.types.NodeTree:
    """The shared Geometry Nodes group (created once, reused by every splat object)."""
    group = bpy.data.node_groups.get(DISPLAY_GROUP)
    if group is not None and group.bl_idname == "GeometryNodeTree" and group.get("anchorstage_version") == _GROUP_VERSION:
        return group
    if group is None or group.bl_idname != "GeometryNodeTree":
        group = bpy.data.node_groups.new(DISPLAY_GROUP, "GeometryNodeTree")
    group.nodes.clear()
    group.interface.clear()
    iface = group.interface
    iface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    s = iface.new_socket("Max Display Splats", in_out="INPUT", socket_type="NodeSocketInt")
    s.default_value, s.min_value = DEFAULT_MAX_DISPLAY, 0
    s.description = "Show oriented proxies for a random subset of at most this many splats"
    s = iface.new_socket("Proxy Size", in_out="INPUT", socket_type="NodeSocketFloat")
    s.default_value, s.min_value = 2.0, 0.0
    s.description = "Proxy radius in standard deviations of each Gaussian"
    s = iface.new_socket("Seed", in_out="INPUT", socket_type="NodeSocketInt")
    iface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")

    nodes, links = group.nodes, group.links
    gin = nodes.new("NodeGroupInput")
    gout = nodes.new("NodeGroupOutput")
    size = nodes.new("GeometryNodeAttributeDomainSize")
    size.component = "MESH"
    ratio = nodes.new("ShaderNodeMath")
    ratio.operation = "DIVIDE"
    rand = nodes.new("FunctionNodeRandomValue")
    rand.data_type = "BOOLEAN"
    rot = nodes.new("GeometryNodeInputNamedAttribute")
    rot.data_type = "QUATERNION"
    rot.inputs["Name"].default_value = "rotation"
    scl = nodes.new("GeometryNodeInputNamedAttribute")
    scl.data_type = "FLOAT_VECTOR"
    scl.inputs["Name"].default_value = "scale"
    mul = nodes.new("ShaderNodeVectorMath")
    mul.operation = "SCALE"
    ico = nodes.new("GeometryNodeMeshIcoSphere")
    ico.inputs["Radius"].default_value = 1.0
    ico.inputs["Subdivisions"].default_value = 1
    setmat = nodes.new("GeometryNodeSetMaterial")
    setmat.inputs["Material"].default_value = ensure_material()
    inst = nodes.new("GeometryNodeInstanceOnPoints")

    links.new(gin.outputs["Geometry"], size.inputs["Geometry"])
    links.new(gin.outputs["Max Display Splats"], ratio.inputs[0])
    links.new(size.outputs["Point Count"], ratio.inputs[1])
    links.new(ratio.outputs[0], rand.inputs["Probability"])
    links.new(gin.outputs["Seed"], rand.inputs["Seed"])
    links.new(gin.outputs["Geometry"], inst.inputs["Points"])
    links.new(rand.outputs[3], inst.inputs["Selection"])  # the BOOLEAN output
    links.new(ico.outputs["Mesh"], setmat.inputs["Geometry"])
    links.new(setmat.outputs["Geometry"], inst.inputs["Instance"])
    links.new(rot.outputs["Attribute"], inst.inputs["Rotation"])
    links.new(scl.outputs["Attribute"], mul.inputs[0])
    links.new(gin.outputs["Proxy Size"], mul.inputs["Scale"])
    links.new(mul.outputs["Vector"], inst.inputs["Scale"])
    links.new(inst.outputs["Instances"], gout.inputs["Geometry"])
    for i, n in enumerate((gin, size, ratio, rand, inst, gout)):
        n.location = (i * 220 - 600, 0)
    for i, n in enumerate((rot, scl, mul, ico, setmat)):
        n.location = (i * 200 - 400, -300)
    group["anchorstage_version"] = _GROUP_VERSION
    return group


def ensure_display_modifier(obj: bpy.types.Object, max_display: int | None = None) -> bpy.types.Modifier:
    group = ensure_display_group()
    mod = obj.modifiers.get(DISPLAY_MODIFIER)
    if mod is None or mod.type != "NODES":
        mod = obj.modifiers.new(DISPLAY_MODIFIER, "NODES")
    mod.node_group = group
    if max_display is not None:
        mod[_socket_id(group, "Max Display Splats")] = int(max_display)
    return mod


def gaussians_drawn(obj: bpy.types.Object) -> bool:
    """True when the viewport draws this object's splats as Gaussians (GPU) in Solid/Material Preview."""
    return any(getattr(getattr(sc, "anchorstage", None), "viewport_display", "PROXIES") != "PROXIES"
               for sc in obj.users_scene)


def apply_viewport_display(obj: bpy.types.Object, display: str) -> None:
    """Show the proxies in the viewport unless only Gaussians are drawn (renders always keep them)."""
    mod = obj.modifiers.get(DISPLAY_MODIFIER)
    if mod is not None:
        mod.show_viewport = display != "GAUSSIANS"


def display_counts(obj: bpy.types.Object) -> tuple[int, int]:
    """(splats shown in the viewport, total splats): every splat when Gaussians are drawn, else the
    proxies (expected count of the random subset)."""
    total = len(obj.data.vertices) if is_splat_mesh(obj.data) else 0
    if gaussians_drawn(obj):
        return total, total
    mod = obj.modifiers.get(DISPLAY_MODIFIER)
    if mod is None or mod.node_group is None or not mod.show_viewport:
        return 0, total
    try:
        cap = int(mod[_socket_id(mod.node_group, "Max Display Splats")])
    except KeyError:
        return total, total
    return min(cap, total), total


def update_splat_object(splats, *, name: str = "AnchorStage Splats", scene: bpy.types.Scene | None = None,
                        source: str = "", max_display: int | None = None) -> bpy.types.Object:
    """Create or refresh the splat object ``name`` in ``scene`` from core splats.

    Args:
        splats: :class:`anchorstage.Splats` (world frame, metres).
        name: object (and mesh) name; an existing splat object of that name is updated in place.
        scene: where to link a new object (default: the context scene).
        source: an identifier of what produced the splats (the executor's input hash); stored on
            the mesh so an unchanged input is not written again.
        max_display: cap on displayed proxies for a new object (an existing one keeps its modifier's value).

    Returns:
        The object (identity transform when created).
    """
    scene = scene or bpy.context.scene
    obj = bpy.data.objects.get(name)
    if obj is not None and not (obj.type == "MESH" and (is_splat_mesh(obj.data) or len(obj.data.vertices) == 0)):
        obj = None  # a different object owns the name: make our own
    created = obj is None or obj.modifiers.get(DISPLAY_MODIFIER) is None
    if obj is None:
        mesh = bpy.data.meshes.new(name)
        obj = bpy.data.objects.new(name, mesh)
    if obj.name not in scene.collection.all_objects:
        scene.collection.objects.link(obj)
    mesh = obj.data
    if not (source and mesh.get("anchorstage_source") == source and len(mesh.vertices) == len(splats)):
        splats_to_mesh(splats, mesh)
        mesh["anchorstage_source"] = source
    # The display cap is set when the modifier is made; later the artist's own value is kept.
    ensure_display_modifier(obj, max_display if created else None)
    settings = getattr(scene, "anchorstage", None)
    if created and settings is not None:
        apply_viewport_display(obj, settings.viewport_display)
    return obj


def splat_objects(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    return [o for o in scene.objects if o.type == "MESH" and is_splat_mesh(o.data)]
