# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: the scripting API of the add-on (see docs/scripting.md).

Every operator answers bad input with ``self.report({'ERROR'}, message)`` and ``{'CANCELLED'}``;
nothing raises into Blender.
"""

from __future__ import annotations

import os

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper
from mathutils import Matrix

from . import boundary, compositor, splat_object, stage


def _error_text(exc: BaseException, where: str = "an AnchorStage operator") -> str:
    """A user mistake's message, or one line for a bug (its traceback goes to a log file)."""
    from anchorstage.errors import error_message

    return error_message(exc, where)


# ---------------------------------------------------------------------------------------------- stage
class ANCHORSTAGE_OT_new_stage(bpy.types.Operator):
    """Build a stage from a photo: the node tree, the witness camera (metric, from EXIF or a camera
    JSON) as the scene camera, passes and compositor"""

    bl_idname = "anchorstage.new_stage"
    bl_label = "New Stage"
    bl_options = {"REGISTER", "UNDO"}

    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH")
    depth_path: bpy.props.StringProperty(name="Depth", subtype="FILE_PATH",
                                         description="Optional depth map (.npy/.exr metres, 16-bit .png mm); "
                                                     "empty: estimate metric depth")
    camera_json: bpy.props.StringProperty(name="Camera JSON", subtype="FILE_PATH",
                                          description="Optional camera file; empty: lens and sensor from EXIF")
    name: bpy.props.StringProperty(name="Name", default="", description="Tree name (default: the photo's name)")
    set_render_engine: bpy.props.BoolProperty(name="Use AnchorStage Engine", default=True)
    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context, event):
        if self.image_path:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        image_path = self.image_path or self.filepath
        if not image_path:
            self.report({"ERROR"}, "New Stage: no photo given (image_path)")
            return {"CANCELLED"}
        for label, p in (("photo", image_path), ("depth file", self.depth_path), ("camera file", self.camera_json)):
            if p and not os.path.isfile(bpy.path.abspath(p)):
                self.report({"ERROR"}, f"New Stage: {label} {bpy.path.abspath(p)!r} does not exist")
                return {"CANCELLED"}
        scene = context.scene
        name = self.name or f"Stage {bpy.path.display_name_from_filepath(image_path)}"
        tree = stage.build_default_tree(name, image_path, self.depth_path, self.camera_json)
        image_node = next(n for n in tree.nodes if n.bl_idname == "AnchorStageImageNode")
        report = stage.run_with_progress(tree, context, targets=[image_node.name])
        if not report.ok:
            msg = report.errors.get(image_node.name) or "; ".join(report.errors.values())
            bpy.data.node_groups.remove(tree)
            self.report({"ERROR"}, f"New Stage: {msg}")
            return {"CANCELLED"}
        camera = report.outputs[image_node.name]["camera"]
        witness = stage.ensure_witness_camera(scene, camera)
        scene.anchorstage.tree = tree
        scene.anchorstage.witness_camera = witness
        stage.prepare_scene(scene, set_engine=self.set_render_engine)
        self.report({"INFO"}, f"New stage {tree.name!r}: {camera.width}x{camera.height}, {camera.lens_mm:.4g} mm lens "
                              f"on a {camera.sensor_width_mm:.4g} mm sensor; run Execute to reconstruct")
        return {"FINISHED"}


class ANCHORSTAGE_OT_execute(bpy.types.Operator):
    """Run the AnchorStage node tree (unchanged nodes come from the cache)"""

    bl_idname = "anchorstage.execute"
    bl_label = "Execute"
    bl_options = {"REGISTER"}

    tree: bpy.props.StringProperty(name="Tree", default="", description="Tree name; empty: the scene's stage tree")
    node: bpy.props.StringProperty(name="Node", default="", description="Run only what this node needs")
    force: bpy.props.BoolProperty(name="Force", default=False, description="Ignore the cache and run every node")

    def execute(self, context):
        tree = stage.stage_tree(context, self.tree)
        if tree is None:
            self.report({"ERROR"}, f"Execute: no AnchorStage tree {self.tree!r}" if self.tree else
                        "Execute: no AnchorStage tree (run New Stage first, or name one with tree=...)")
            return {"CANCELLED"}
        if self.node and self.node not in tree.nodes:
            self.report({"ERROR"}, f"Execute: tree {tree.name!r} has no node {self.node!r}")
            return {"CANCELLED"}
        report = stage.run_with_progress(tree, context, targets=[self.node] if self.node else None, force=self.force)
        for area in getattr(context.screen, "areas", []) or []:
            area.tag_redraw()
        if report.errors:
            first = next(iter(report.errors))
            self.report({"ERROR"}, f"{first}: {report.errors[first]}" +
                        (f" (and {len(report.errors) - 1} more failing node(s))" if len(report.errors) > 1 else ""))
            return {"CANCELLED"}
        if report.blocked:
            first = next(iter(report.blocked))
            self.report({"WARNING"}, f"{first}: {report.blocked[first]}")
        self.report({"INFO"}, f"{tree.name}: {report.summary()}")
        return {"FINISHED"}


class ANCHORSTAGE_OT_clear_cache(bpy.types.Operator):
    """Forget cached node results so the next Execute recomputes everything"""

    bl_idname = "anchorstage.clear_cache"
    bl_label = "Clear Cache"

    def execute(self, context):
        from .nodes import runner

        runner.clear_caches()
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- turntable
TURNTABLE_CAMERA = "AnchorStage Turntable"
#: Custom property on the turntable camera: the path it was keyed from (JSON).
TURNTABLE_TAG = "anchorstage_turntable"


def _stage_object(context, name: str):
    """The named splat object, else the active one, else the scene's first."""
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "MESH" or not boundary.is_splat_mesh(obj.data):
            raise ValueError(f"there is no splat object {name!r}")
        return obj
    active = context.active_object
    if active is not None and active.type == "MESH" and boundary.is_splat_mesh(active.data):
        return active
    objs = splat_object.splat_objects(context.scene)
    if not objs:
        raise ValueError("select a splat object (build a stage and Execute, or import splats) first")
    return objs[0]


class ANCHORSTAGE_OT_turntable_setup(bpy.types.Operator):
    """Animate a camera around the selected stage: a pose keyed on every frame, on a circle about the
    product's centre (radius in metres, elevation in degrees), the whole turn over the frame range;
    `blender -b file.blend -a` renders it"""

    bl_idname = "anchorstage.turntable_setup"
    bl_label = "Turntable Camera"
    bl_options = {"REGISTER", "UNDO"}

    object_name: bpy.props.StringProperty(name="Splat Object", default="",
                                          description="The stage to turn about; empty: the active splat object")
    camera_name: bpy.props.StringProperty(name="Camera", default=TURNTABLE_CAMERA,
                                          description="Camera object to animate (made when missing)")
    frames: bpy.props.IntProperty(name="Frames", default=48, min=1, max=1048574, description="Frames of the turn")
    frame_start: bpy.props.IntProperty(name="Start Frame", default=1, min=-1048574, max=1048574)
    radius: bpy.props.FloatProperty(name="Radius", default=0.0, min=0.0, unit="LENGTH",
                                    description="Metres from the centre (0: the stage camera's distance)")
    use_elevation: bpy.props.BoolProperty(name="Set Elevation", default=False,
                                          description="Off: the stage camera's elevation")
    elevation: bpy.props.FloatProperty(name="Elevation", default=15.0, min=-89.0, max=89.0,
                                       description="Degrees above the centre's horizontal plane")
    use_centre: bpy.props.BoolProperty(name="Set Centre", default=False,
                                       description="Off: the middle of the foreground splats")
    centre: bpy.props.FloatVectorProperty(name="Centre", size=3, subtype="TRANSLATION", unit="LENGTH")
    sweep: bpy.props.FloatProperty(name="Sweep", default=360.0, min=-360.0, max=360.0,
                                   description="Degrees turned over the frames (360: a seamless loop)")

    def execute(self, context):
        import json

        from anchorstage.camera import turntable_path
        from anchorstage.stages import product_centre

        scene = context.scene
        try:
            obj = _stage_object(context, self.object_name)
            if boundary.has_witness(obj.data):  # the stage camera: view 0 stands where the photo was taken
                source = boundary.scene_from_mesh(obj.data, obj.matrix_world)
                reference = source.camera
            else:
                source = boundary.splats_from_mesh(obj.data, obj.matrix_world)
                if scene.camera is None:
                    raise ValueError(f"{obj.name!r} has no stage camera and scene {scene.name!r} has no camera")
                reference = boundary.camera_from_blender(scene.camera, scene)
            reference = reference.with_resolution(*boundary.render_resolution(scene))
            centre = tuple(self.centre) if self.use_centre else tuple(float(v) for v in product_centre(source))
            cams = turntable_path(reference, centre, self.frames, radius_m=self.radius or None,
                                  elevation_deg=self.elevation if self.use_elevation else None, sweep_deg=self.sweep)
            cam_obj = bpy.data.objects.get(self.camera_name)
            if cam_obj is not None and cam_obj.type != "CAMERA":
                raise ValueError(f"{self.camera_name!r} is a {cam_obj.type.lower()} object, not a camera")
            if cam_obj is None:
                cam_obj = bpy.data.objects.new(self.camera_name, bpy.data.cameras.new(self.camera_name))
            if cam_obj.name not in scene.collection.all_objects:
                scene.collection.objects.link(cam_obj)
            cam_obj.animation_data_clear()
            boundary.apply_camera_to_blender(cams[0], cam_obj, scene)
            for k, cam in enumerate(cams):
                apply_pose(cam_obj, cam)
                keyframe_pose(cam_obj, frame=self.frame_start + k)
        except Exception as e:  # noqa: BLE001 - reported, never raised into Blender
            self.report({"ERROR"}, f"Turntable Camera: {_error_text(e)}")
            return {"CANCELLED"}
        radius = float(((cams[0].position - centre) ** 2).sum() ** 0.5)
        cam_obj[TURNTABLE_TAG] = json.dumps({"stage": obj.name, "centre_m": list(centre), "radius_m": radius,
                                             "frames": self.frames, "frame_start": self.frame_start,
                                             "sweep_deg": self.sweep})
        scene.camera = cam_obj
        scene.frame_start, scene.frame_end = self.frame_start, self.frame_start + self.frames - 1
        scene.frame_set(self.frame_start)
        self.report({"INFO"}, f"Turntable Camera: {self.frames} frames about ({', '.join(f'{v:.2f}' for v in centre)}) m "
                              f"of {obj.name!r}, radius {radius:.2f} m; render with blender -b file.blend -a")
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- camera moves
def _camera_object(context, name: str):
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "CAMERA":
            raise ValueError(f"there is no camera object {name!r}")
        return obj
    if context.scene.camera is None:
        raise ValueError(f"scene {context.scene.name!r} has no camera")
    return context.scene.camera


def keyframe_pose(obj, frame=None) -> None:
    """Key the object's location and rotation (in its rotation mode) at ``frame`` (default: the current one)."""
    kw = {} if frame is None else {"frame": frame}
    obj.keyframe_insert("location", **kw)
    path = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(obj.rotation_mode,
                                                                                          "rotation_euler")
    obj.keyframe_insert(path, **kw)


def apply_pose(obj, core_camera, *, keyframe: bool = False) -> None:
    """Put a moved core camera's pose on a Blender camera object (Euler angles kept continuous)."""
    prev = obj.rotation_euler.copy()
    obj.matrix_world = Matrix(core_camera.matrix_world.tolist())
    if obj.rotation_mode not in ("QUATERNION", "AXIS_ANGLE"):
        obj.rotation_euler = obj.matrix_basis.to_euler(obj.rotation_mode, prev)
    if keyframe:
        keyframe_pose(obj)


class _CameraMove:
    bl_options = {"REGISTER", "UNDO"}

    camera: bpy.props.StringProperty(name="Camera", default="", description="Camera object; empty: the scene camera")
    keyframe: bpy.props.BoolProperty(name="Keyframe", default=False,
                                     description="Insert location/rotation keyframes at the current frame")

    def execute(self, context):
        try:
            obj = _camera_object(context, self.camera)
            core = boundary.camera_from_blender(obj, context.scene)
            moved = self.moved(context, core)
            apply_pose(obj, moved, keyframe=self.keyframe)
            if moved.lens_mm != core.lens_mm:
                obj.data.lens_unit = "MILLIMETERS"
                obj.data.lens = moved.lens_mm
                if self.keyframe:
                    obj.data.keyframe_insert("lens")
        except Exception as e:  # noqa: BLE001 - reported, never raised into Blender
            self.report({"ERROR"}, f"{self.bl_label}: {_error_text(e)}")
            return {"CANCELLED"}
        return {"FINISHED"}


#: operator property of each move unit: (name, default, Blender unit, what it holds)
_MOVE_PROPS = {"m": ("distance", 0.5, "LENGTH", "metres"), "deg": ("angle", 5.0, "NONE", "degrees"),
               "x": ("factor", 1.25, "NONE", "focal-length factor")}


def _move_operator(move: str):
    """``anchorstage.camera_<move>``: one core camera move (:data:`anchorstage.camera.MOVES`) by one amount."""
    from anchorstage.camera import MOVES

    unit, what = MOVES[move]
    prop, default, blender_unit, units = _MOVE_PROPS[unit]

    def moved(self, context, cam):
        return cam.moved(move, getattr(self, prop))

    return type(f"ANCHORSTAGE_OT_camera_{move}", (_CameraMove, bpy.types.Operator), {
        "__doc__": f"{move.title()} the camera: {what} ({units})",
        "bl_idname": f"anchorstage.camera_{move}", "bl_label": move.title(), "moved": moved,
        "__annotations__": {prop: bpy.props.FloatProperty(name=prop.title(), default=default, unit=blender_unit,
                                                          description=f"{units}; {what}")},
    })


class ANCHORSTAGE_OT_camera_orbit(_CameraMove, bpy.types.Operator):
    """Orbit the camera about a pivot, keeping its distance (degrees)"""

    bl_idname = "anchorstage.camera_orbit"
    bl_label = "Orbit"
    yaw: bpy.props.FloatProperty(name="Yaw", default=10.0, description="Degrees about world Z (positive: counter-clockwise)")
    pitch: bpy.props.FloatProperty(name="Pitch", default=0.0, description="Degrees about the camera's right axis (positive: rise)")
    pivot_mode: bpy.props.EnumProperty(
        name="Pivot",
        items=(("AHEAD", "Ahead", "A point Distance metres ahead of the camera"),
               ("CURSOR", "3D Cursor", "The 3D cursor"),
               ("POINT", "Point", "The Pivot Point coordinates")),
        default="AHEAD")
    distance: bpy.props.FloatProperty(name="Distance", default=5.0, min=0.001, unit="LENGTH")
    pivot: bpy.props.FloatVectorProperty(name="Pivot Point", size=3, subtype="TRANSLATION", unit="LENGTH")

    def moved(self, context, cam):
        if self.pivot_mode == "AHEAD":
            p = cam.position + self.distance * cam.forward
        elif self.pivot_mode == "CURSOR":
            p = tuple(context.scene.cursor.location)
        else:
            p = tuple(self.pivot)
        return cam.moved("orbit", self.yaw, pivot=p, pitch_deg=self.pitch)


def _move_operators() -> tuple:
    from anchorstage.camera import MOVES

    return tuple(_move_operator(m) for m in MOVES if m != "orbit") + (ANCHORSTAGE_OT_camera_orbit,)


def _focal_items(self, context):
    from anchorstage import FOCAL_PRESETS_MM

    return [(f"{f:g}", f"{f:g} mm", f"Set the focal length to {f:g} mm") for f in FOCAL_PRESETS_MM]


class ANCHORSTAGE_OT_camera_focal_preset(bpy.types.Operator):
    """Set the camera's focal length to a preset (24/35/50/85/135 mm); the sensor stays"""

    bl_idname = "anchorstage.camera_focal_preset"
    bl_label = "Focal Length Preset"
    bl_options = {"REGISTER", "UNDO"}

    lens: bpy.props.EnumProperty(name="Lens", items=_focal_items)
    camera: bpy.props.StringProperty(name="Camera", default="")
    keyframe: bpy.props.BoolProperty(name="Keyframe", default=False)

    def execute(self, context):
        try:
            obj = _camera_object(context, self.camera)
            core = boundary.camera_from_blender(obj, context.scene).with_lens(float(self.lens))
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, f"Focal preset: {_error_text(e)}")
            return {"CANCELLED"}
        obj.data.lens_unit = "MILLIMETERS"
        obj.data.lens = core.lens_mm
        if self.keyframe:
            obj.data.keyframe_insert("lens")
        return {"FINISHED"}


class ANCHORSTAGE_OT_export_camera_list(bpy.types.Operator, ExportHelper):
    """Write the scene camera's animation as a camera-list JSON (one metric camera per frame) for
    `anchorstage export --cameras` on machines without Blender"""

    bl_idname = "anchorstage.export_camera_list"
    bl_label = "Export Camera List (.json)"
    filename_ext = ".json"
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})
    camera: bpy.props.StringProperty(name="Camera", default="", description="Camera object; empty: the scene camera")
    frame_start: bpy.props.IntProperty(name="Start", default=-1, description="-1: the scene's frame range")
    frame_end: bpy.props.IntProperty(name="End", default=-1)

    def execute(self, context):
        from anchorstage.export import save_camera_list

        scene = context.scene
        first = scene.frame_start if self.frame_start < 0 else self.frame_start
        last = scene.frame_end if self.frame_end < 0 else self.frame_end
        if last < first:
            self.report({"ERROR"}, f"Camera list: frame range {first}-{last} is empty")
            return {"CANCELLED"}
        current = scene.frame_current
        cams = []
        try:
            obj = _camera_object(context, self.camera)
            for f in range(first, last + 1):
                scene.frame_set(f)
                cams.append((f, boundary.camera_from_blender(obj, scene)))
            save_camera_list(self.filepath, cams)
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, f"Camera list: {_error_text(e)}")
            return {"CANCELLED"}
        finally:
            scene.frame_set(current)
        self.report({"INFO"}, f"Wrote {len(cams)} cameras to {self.filepath}")
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- splat files
_SPLAT_GLOB = "*.ply;*.splat;*.spz"
_EXPORT_FORMATS = (
    ("AUTO", "By Extension", ".compressed.ply: compressed PLY; .ply: 3DGS PLY (a SHARP file's elements kept); "
                             ".splat; .spz"),
    ("ply", "3DGS PLY", "Standard 3D Gaussian Splatting PLY with SH, extra properties and elements"),
    ("sharp", "SHARP PLY", "PLY in the photo camera's frame with SHARP's camera elements (scene camera if the "
                           "splats carry none)"),
    ("compressed_ply", "Compressed PLY", "SuperSplat / PlayCanvas compressed PLY"),
    ("splat", ".splat", "antimatter15 web-viewer layout (no SH)"),
    ("spz", ".spz", "Niantic .spz version 3"),
)


# ---------------------------------------------------------------------------------------------- witness refresh
REFRESH_IMAGE = "AnchorStage Refresh"
CONFIDENCE_IMAGE = "AnchorStage Confidence"


def _witness_object(context, name: str):
    from . import meter

    obj = bpy.data.objects.get(name) if name else meter.witness_object(context.scene)
    if obj is None or obj.type != "MESH" or not boundary.has_witness(obj.data):
        raise ValueError(f"no splat object {name!r} with a witness" if name else
                         "the scene has no splat object with a witness (build a stage and Execute first)")
    return obj


def _show_image(name: str, rgb_linear, *, srgb: bool = False):
    """Put an [H, W, 3] image (linear, or sRGB with ``srgb``) into a float image datablock."""
    from anchorstage.image_io import srgb_to_linear

    return boundary.set_float_image(name, srgb_to_linear(rgb_linear) if srgb else rgb_linear)


class ANCHORSTAGE_OT_refresh_frame(bpy.types.Operator):
    """Refresh the witness for the scene camera at the current frame: warp the photo, fill what it never
    saw (locked regions kept), show the result in the image "AnchorStage Refresh" and the confidence overlay
    in "AnchorStage Confidence\""""

    bl_idname = "anchorstage.refresh_frame"
    bl_label = "Refresh Frame"
    bl_options = {"REGISTER", "UNDO"}

    object_name: bpy.props.StringProperty(name="Splat Object", default="",
                                          description="Splat object with the witness; empty: the scene's first")
    inpaint: bpy.props.EnumProperty(name="Inpaint", default="classical",
                                    items=(("classical", "Classical", "No weights, fast"),
                                           ("diffusion", "Diffusion", "ControlNet inpainting (default models)")))
    update_scene: bpy.props.BoolProperty(name="Update Splats", default=False,
                                         description="Add the filled pixels to the splat object as splats")
    output_dir: bpy.props.StringProperty(name="Output Folder", subtype="DIR_PATH", default="",
                                         description="Also write witness.png/.exr, void_map.png, locks.png, "
                                                     "confidence.json and confidence_overlay.png here")

    def execute(self, context):
        from anchorstage.confidence import overlay
        from anchorstage.stages import refresh

        scene = context.scene
        try:
            obj = _witness_object(context, self.object_name)
            if scene.camera is None:
                raise ValueError(f"scene {scene.name!r} has no camera")
            if self.update_scene and obj.matrix_world != obj.matrix_world.Identity(4):
                raise ValueError(f"Update Splats writes world-space splats: apply {obj.name!r}'s transform first")
            stage = boundary.scene_from_mesh(obj.data, obj.matrix_world)
            camera = boundary.camera_from_blender(scene.camera, scene)
            from .preferences import get_prefs

            device = str(getattr(get_prefs(context), "device", "AUTO")).lower()
            res = refresh(stage, camera, inpaint=self.inpaint, update_scene=self.update_scene, device=device)
            _show_image(REFRESH_IMAGE, res.witness)
            _show_image(CONFIDENCE_IMAGE, overlay(res.witness, res.confidence.map, res.void), srgb=True)
            if self.output_dir:
                from anchorstage.witness import save_refresh

                save_refresh(res, bpy.path.abspath(self.output_dir))
            if self.update_scene:
                splat_object.update_splat_object(res.scene.splats, name=obj.name, scene=scene)
                boundary.witness_to_mesh(res.scene, obj.data)
        except Exception as e:  # noqa: BLE001 - reported, never raised into Blender
            self.report({"ERROR"}, f"Refresh Frame: {_error_text(e)}")
            return {"CANCELLED"}
        c = res.confidence
        self.report({"WARNING" if c.level != "green" else "INFO"},
                    f"Refresh Frame {scene.frame_current}: confidence {c.value:.2f} ({c.level}), void {c.void_coverage:.1%}, "
                    f"{int(res.filled.sum()):,} px filled" + (f", {res.added_splats:,} splats added" if res.added_splats else ""))
        return {"FINISHED"}


class ANCHORSTAGE_OT_show_confidence(bpy.types.Operator):
    """Show the confidence meter's green/yellow/red overlay of the scene camera's shot in the image
    "AnchorStage Confidence" (in an Image Editor when one is open)"""

    bl_idname = "anchorstage.show_confidence"
    bl_label = "Show Confidence Overlay"

    def execute(self, context):
        from anchorstage.confidence import overlay

        from . import meter

        state = meter.update(context.scene, force=True)
        if not state or state.get("error") or "warp" not in state:
            self.report({"ERROR"}, f"Confidence: {state.get('error') if state else 'no splat object with a witness'}")
            return {"CANCELLED"}
        warp, c = state["warp"], state["confidence"]
        img = _show_image(CONFIDENCE_IMAGE, overlay(warp.color, c.map, warp.void), srgb=True)
        for area in getattr(context.screen, "areas", []) or []:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = img
        return {"FINISHED"}


# ---------------------------------------------------------------------------------------------- PLY
class ANCHORSTAGE_OT_import_ply(bpy.types.Operator, ImportHelper):
    """Import Gaussian splats (3DGS / SHARP / compressed PLY, .splat, .spz) as a splat object"""

    bl_idname = "anchorstage.import_ply"
    bl_label = "Import Gaussian Splats"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".ply"
    filter_glob: bpy.props.StringProperty(default=_SPLAT_GLOB, options={"HIDDEN"})
    add_camera: bpy.props.BoolProperty(
        name="Add Photo Camera", default=True,
        description="For SHARP files, which carry the photo's intrinsics, add that camera (at the origin looking "
                    "along +Y, as AnchorStage places photos) and make it the scene camera if there is none")

    def execute(self, context):
        from anchorstage.splatio import read_splats
        from anchorstage.splatio.sharp import camera, placement

        try:
            splats = read_splats(self.filepath)
            # The mesh keeps the file's frame; the object's transform places it in the Z-up world.
            world_from_file = placement(splats, self.filepath)
            photo_camera = camera(splats, self.filepath) if self.add_camera else None
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, f"Splat import: {_error_text(e)}")
            return {"CANCELLED"}
        from .preferences import get_prefs

        prefs = get_prefs(context)
        name = bpy.path.display_name_from_filepath(self.filepath)
        if name.lower().endswith(".compressed"):
            name = name[: -len(".compressed")]
        obj = splat_object.update_splat_object(splats, name=name, scene=context.scene,
                                               max_display=getattr(prefs, "display_max_splats", None))
        boundary.set_placement(obj, world_from_file)
        if photo_camera is not None:
            cam_obj = bpy.data.objects.new(f"{name} Camera", bpy.data.cameras.new(f"{name} Camera"))
            context.scene.collection.objects.link(cam_obj)
            first = context.scene.camera is None
            boundary.apply_camera_to_blender(photo_camera, cam_obj, context.scene, set_resolution=first)
            if first:
                context.scene.camera = cam_obj
        for o in context.view_layer.objects:
            o.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        shown, total = splat_object.display_counts(obj)
        self.report({"INFO"}, f"Imported {total:,} splats as {obj.name!r}" +
                    (f" (SH degree {splats.sh_degree})" if splats.sh_degree else "") +
                    (f"; displaying {shown:,} (decimated)" if shown < total else "") +
                    (" with the photo's camera" if photo_camera is not None else ""))
        return {"FINISHED"}


class ANCHORSTAGE_OT_export_ply(bpy.types.Operator, ExportHelper):
    """Export the active splat object as Gaussian splats; the format follows the extension
    (.ply, .compressed.ply, .splat, .spz) unless chosen"""

    bl_idname = "anchorstage.export_ply"
    bl_label = "Export Gaussian Splats"
    filename_ext = ".ply"
    check_extension = None  # .compressed.ply, .splat and .spz are all fine
    filter_glob: bpy.props.StringProperty(default=_SPLAT_GLOB, options={"HIDDEN"})
    object_name: bpy.props.StringProperty(name="Object", default="", description="Splat object; empty: the active one")
    format: bpy.props.EnumProperty(name="Format", items=_EXPORT_FORMATS, default="AUTO")

    def execute(self, context):
        from anchorstage.splatio import format_for_path, write_splats

        obj = bpy.data.objects.get(self.object_name) if self.object_name else context.active_object
        if obj is None or obj.type != "MESH" or not boundary.is_splat_mesh(obj.data):
            self.report({"ERROR"}, f"Splat export: {getattr(obj, 'name', 'no object')!r} is not a splat object")
            return {"CANCELLED"}
        try:
            fmt = None if self.format == "AUTO" else self.format
            if fmt is None and format_for_path(self.filepath) is None:
                raise ValueError(f"cannot tell the format from {self.filepath!r}: use .ply, .compressed.ply, .splat "
                                 "or .spz, or choose a format")
            # In the frame of the file the splats came from (world for stages), moved as the object moved.
            splats = boundary.splats_from_mesh(obj.data, boundary.file_frame_transform(obj))
            cam = None
            if fmt == "sharp":
                from anchorstage.splatio.sharp import is_sharp

                if not is_sharp(splats):
                    if context.scene.camera is None:
                        raise ValueError("SHARP export needs the photo camera: set a scene camera")
                    splats = boundary.splats_from_mesh(obj.data, obj.matrix_world)
                    cam = boundary.camera_from_blender(context.scene.camera, context.scene)
            written = write_splats(self.filepath, splats, fmt, camera=cam)
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, f"Splat export: {_error_text(e)}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {len(splats):,} splats to {self.filepath} ({written})")
        return {"FINISHED"}


def _menu_import(self, context):
    self.layout.operator(ANCHORSTAGE_OT_import_ply.bl_idname, text="Gaussian Splats (.ply, .splat, .spz)")


def _menu_export(self, context):
    self.layout.operator(ANCHORSTAGE_OT_export_ply.bl_idname, text="Gaussian Splats (.ply, .splat, .spz)")
    self.layout.operator(ANCHORSTAGE_OT_export_camera_list.bl_idname, text="AnchorStage Camera List (.json)")


# ---------------------------------------------------------------------------------------------- compositor
class ANCHORSTAGE_OT_setup_compositor(bpy.types.Operator):
    """Create (once) the compositor tree with a Render Layers node showing the AnchorStage passes"""

    bl_idname = "anchorstage.setup_compositor"
    bl_label = "Set Up Compositor"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        compositor.ensure_compositor(context.scene)
        return {"FINISHED"}


class ANCHORSTAGE_OT_import_exr(bpy.types.Operator, ImportHelper):
    """Bring a multilayer EXR (e.g. from the anchorstage CLI) into the compositor as an Image node"""

    bl_idname = "anchorstage.import_exr"
    bl_label = "Import Passes EXR"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".exr"
    filter_glob: bpy.props.StringProperty(default="*.exr", options={"HIDDEN"})

    def execute(self, context):
        try:
            node, image = compositor.add_exr_image_node(context.scene, self.filepath)
        except Exception as e:  # noqa: BLE001
            self.report({"ERROR"}, f"EXR import: {_error_text(e)}")
            return {"CANCELLED"}
        sockets = [s.name for s in node.outputs if s.enabled]
        if image.type != "MULTILAYER":
            self.report({"WARNING"}, f"{os.path.basename(self.filepath)} is not a multilayer EXR; one image socket only")
        else:
            self.report({"INFO"}, f"{node.name}: passes {', '.join(sockets)}")
        return {"FINISHED"}


classes = (
    ANCHORSTAGE_OT_new_stage, ANCHORSTAGE_OT_execute, ANCHORSTAGE_OT_clear_cache, *_move_operators(),
    ANCHORSTAGE_OT_camera_focal_preset, ANCHORSTAGE_OT_export_camera_list, ANCHORSTAGE_OT_import_ply, ANCHORSTAGE_OT_export_ply,
    ANCHORSTAGE_OT_setup_compositor, ANCHORSTAGE_OT_import_exr, ANCHORSTAGE_OT_refresh_frame,
    ANCHORSTAGE_OT_show_confidence, ANCHORSTAGE_OT_turntable_setup,
)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister():
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
    _unregister()
