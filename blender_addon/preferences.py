# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: models, device, cache folder, display budget, viewport sorting, and the dependency check
with an Install operator that pip-installs what is missing into the extension's own site folder.

Network rule: nothing here touches the network unless Blender's "Allow Online Access" is on
(``bpy.app.online_access``). With it off, Install works only from a local wheel folder
(``--no-index --find-links``) and otherwise refuses with a message saying how to proceed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import queue
import subprocess
import sys
import threading

import bpy

#: (import name, pip requirement, what it is for, required?)
DEPENDENCIES = (
    ("torch", "torch", "all computation (CPU or CUDA)", True),
    ("numpy", "numpy<2", "arrays", True),
    ("OpenEXR", "OpenEXR>=3.3", "EXR input and output", True),
    ("PIL", "Pillow>=10", "photo input", True),
    ("scipy", "scipy>=1.11", "region segmentation", True),
    ("tqdm", "tqdm>=4.66", "command-line progress", True),
    ("numba", "numba>=0.60", "witness refresh and the confidence meter; fast CPU splat rendering", False),
    ("transformers", "transformers>=4.45", "metric depth estimation", False),
    ("diffusers", "diffusers>=0.30", "generation and diffusion inpainting", False),
    ("gsplat", "gsplat>=1.5", "CUDA splat rendering (GPU only)", False),
    ("av", "av>=14", "MP4 video (the Video node, demo clips)", False),
)


#: the import error that kept the add-on from registering fully ("" when fully registered).
IMPORT_ERROR = [""]


def site_folder(create: bool = False) -> str:
    """The extension's own site-packages folder (in its user directory, kept across upgrades)."""
    return bpy.utils.extension_path_user(__package__, path="site-packages", create=create)


def add_site_folder_to_path() -> None:
    try:
        path = site_folder(create=False)
    except (ValueError, RuntimeError):
        return
    if os.path.isdir(path) and path not in sys.path:
        sys.path.append(path)
        importlib.invalidate_caches()


def missing_dependencies(include_optional: bool = True) -> list[tuple[str, str, str, bool]]:
    """The entries of ``DEPENDENCIES`` whose module cannot be found (nothing is imported)."""
    importlib.invalidate_caches()
    out = []
    for name, req, why, required in DEPENDENCIES:
        if not required and not include_optional:
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append((name, req, why, required))
    return out


def describe_missing(missing) -> str:
    if not missing:
        return "All dependencies are installed"
    return "Missing: " + ", ".join(f"{n} ({why})" for n, _, why, _ in missing)


def pip_command(packages: list[str], target: str, wheelhouse: str = "") -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--target", target, "--no-input", "--disable-pip-version-check",
           "--progress-bar", "off", "--upgrade"]
    if wheelhouse:
        cmd += ["--no-index", "--find-links", wheelhouse]
    return cmd + list(packages)


def _default_cache_dir() -> str:
    try:
        return bpy.utils.extension_path_user(__package__, path="cache", create=False)
    except (ValueError, RuntimeError):
        return ""


def _cache_dir_update(self, context):
    apply_cache_env(self)


def apply_cache_env(prefs) -> None:
    """Point the model hub cache at the cache folder (for models fetched while online)."""
    folder = bpy.path.abspath(prefs.cache_dir) if prefs.cache_dir else ""
    if folder:
        os.environ["HF_HOME"] = os.path.join(folder, "huggingface")


class AnchorStagePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    depth_model: bpy.props.StringProperty(
        name="Depth Model", default="depth-anything/Depth-Anything-V2-Metric-Outdoor-Large-hf",
        description="Hub id, alias (da2-outdoor, da2-indoor, depth-pro, zoedepth) or a local model folder")
    generation_model: bpy.props.StringProperty(
        name="Generation Model", default="",
        description="Hub id or local folder of the inpainting pipeline used by generation nodes "
                    "(empty: $ANCHORSTAGE_DIFFUSION_MODEL, else the family's default)")
    generation_family: bpy.props.EnumProperty(
        name="Model Family", default="AUTO",
        items=(("AUTO", "Auto", "From the model (SDXL when its pipeline is an XL one)"),
               ("SD15", "SD 1.5", "Stable Diffusion 1.5 inpainting + ControlNet 1.1"),
               ("SDXL", "SDXL", "Stable Diffusion XL inpainting + SDXL ControlNets")))
    controlnet_depth: bpy.props.StringProperty(
        name="Depth ControlNet", default="", description="Hub id or folder ('none': off; empty: environment, then default)")
    controlnet_normal: bpy.props.StringProperty(
        name="Normal ControlNet", default="", description="Hub id or folder ('none': off; empty: environment, then default)")
    ip_adapter: bpy.props.StringProperty(
        name="IP-Adapter", default="",
        description="Appearance from the stage's photo: hub id or folder, 'default' for h94/IP-Adapter (empty: none)")
    ip_adapter_weight: bpy.props.StringProperty(
        name="IP-Adapter Weight", default="", description="subfolder/file of the adapter (empty: the family's)")
    attention_slicing: bpy.props.EnumProperty(
        name="Attention Slicing", default="AUTO",
        items=(("AUTO", "Auto", "On with less than 10 GB of GPU memory"), ("ON", "On", ""), ("OFF", "Off", "")))
    cpu_offload: bpy.props.EnumProperty(
        name="CPU Offload", default="AUTO",
        items=(("AUTO", "Auto", "When the models would not fit the GPU"), ("NONE", "None", ""),
               ("MODEL", "Model", "Whole models move to the GPU when used"),
               ("SEQUENTIAL", "Sequential", "Layer by layer: least GPU memory, slowest")))
    compute: bpy.props.EnumProperty(
        name="Compute", default="LOCAL",
        items=(("LOCAL", "This Computer", "Generate here (CUDA when available, else the CPU: slow)"),
               ("REMOTE", "Remote Worker", "Send generation to a GPU worker (anchorstage serve, or a RunPod endpoint)")))
    worker_url: bpy.props.StringProperty(
        name="Worker URL", default="http://127.0.0.1:8000",
        description="anchorstage serve's address, or a RunPod endpoint (https://api.runpod.ai/v2/ENDPOINT_ID)")
    worker_api_key: bpy.props.StringProperty(name="API Key", default="", subtype="PASSWORD",
                                             description="Sent as 'Authorization: Bearer KEY'")
    worker_timeout: bpy.props.FloatProperty(name="Timeout", default=3600.0, min=10.0, max=86400.0, unit="TIME_ABSOLUTE",
                                            description="Give up on (and cancel) a remote job after this many seconds")
    device: bpy.props.EnumProperty(
        name="Device",
        items=(("AUTO", "Auto", "CUDA when available, else CPU"), ("CPU", "CPU", ""), ("CUDA", "CUDA", "")),
        default="AUTO")
    cache_dir: bpy.props.StringProperty(
        name="Cache Folder", subtype="DIR_PATH", default="", update=_cache_dir_update,
        description="Where downloaded models and caches go (empty: the extension's user folder)")
    display_max_splats: bpy.props.IntProperty(
        name="Max Displayed Splats", default=200_000, min=1000,
        description="New splat objects show proxies for a random subset of at most this many splats")
    wheelhouse: bpy.props.StringProperty(
        name="Local Wheels", subtype="DIR_PATH", default="",
        description="Install dependencies from this folder of wheels only (no network)")
    viewport_sort: bpy.props.EnumProperty(
        name="Viewport Sort",
        items=(("AUTO", "Auto", "GPU compute sort on a hardware GPU, the CPU sorter on a software renderer"),
               ("GPU", "GPU", "Bitonic sort in compute shaders (runs in the GPU queue before the frame)"),
               ("CPU", "CPU", "Sort on a background thread; the viewport draws with the last order meanwhile")),
        default="AUTO", description="Where the viewport's Gaussians are sorted by depth")
    sort_angle: bpy.props.FloatProperty(
        name="Re-sort Angle", default=1.0, min=0.0, max=90.0, precision=2,
        description="Sort the Gaussians again when the view has turned by more than this (degrees)")
    sort_distance: bpy.props.FloatProperty(
        name="Re-sort Distance", default=1.0, min=0.0, max=100.0, precision=2, subtype="PERCENTAGE",
        description="Sort the Gaussians again when the view has moved by more than this percentage of the "
                    "median distance to the splats")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "depth_model")
        col.prop(self, "device")
        box = layout.box()
        box.label(text="Generation", icon="SHADERFX")
        box.prop(self, "compute", expand=True)
        if self.compute == "REMOTE":
            box.prop(self, "worker_url")
            box.prop(self, "worker_api_key")
            box.prop(self, "worker_timeout")
        else:
            for name in ("generation_family", "generation_model", "controlnet_depth", "controlnet_normal", "ip_adapter",
                         "ip_adapter_weight", "attention_slicing", "cpu_offload"):
                box.prop(self, name)
        col.prop(self, "cache_dir")
        col.prop(self, "display_max_splats")
        col = layout.column(heading="Viewport Gaussians")
        col.prop(self, "viewport_sort")
        col.prop(self, "sort_angle")
        col.prop(self, "sort_distance")

        box = layout.box()
        box.label(text="Dependencies", icon="SCRIPTPLUGINS")
        if IMPORT_ERROR[0]:
            col = box.column()
            col.alert = True
            col.label(text="AnchorStage is not fully enabled:", icon="ERROR")
            col.label(text=IMPORT_ERROR[0][:200])
        missing = missing_dependencies()
        if not missing:
            box.label(text="All dependencies are installed", icon="CHECKMARK")
        for name, req, why, required in missing:
            row = box.row()
            row.alert = required
            row.label(text=f"{name} missing — {why}" + ("" if required else " (optional)"), icon="ERROR" if required else "INFO")
        box.prop(self, "wheelhouse")
        row = box.row()
        row.operator("anchorstage.check_dependencies", icon="FILE_REFRESH")
        op = row.operator("anchorstage.install_dependencies", icon="IMPORT")
        op.packages = ""
        if not bpy.app.online_access and not self.wheelhouse:
            box.label(text="Online access is off: Install needs a Local Wheels folder "
                           "or Preferences > System > Network > Allow Online Access", icon="INFO")
        box.label(text=f"Installs into: {site_folder()}")


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


class ANCHORSTAGE_OT_check_dependencies(bpy.types.Operator):
    """Check which Python packages AnchorStage needs are missing"""

    bl_idname = "anchorstage.check_dependencies"
    bl_label = "Check Dependencies"

    def execute(self, context):
        add_site_folder_to_path()
        missing = missing_dependencies()
        required = [m for m in missing if m[3]]
        self.report({"WARNING"} if required else {"INFO"}, describe_missing(missing))
        return {"FINISHED"}


class ANCHORSTAGE_OT_install_dependencies(bpy.types.Operator):
    """pip-install the missing packages into the extension's own site folder"""

    bl_idname = "anchorstage.install_dependencies"
    bl_label = "Install"
    bl_options = {"REGISTER", "INTERNAL"}

    packages: bpy.props.StringProperty(
        name="Packages", default="",
        description="Space-separated requirements; empty: every missing dependency")
    include_optional: bpy.props.BoolProperty(name="Include Optional", default=True)

    _proc = None
    _timer = None
    _lines: "queue.Queue[str]"

    # -------------------------------------------------------------- shared
    def _plan(self, context):
        """(pip command, packages) or (None, message, is_error)."""
        prefs = get_prefs(context)
        wheelhouse = bpy.path.abspath(prefs.wheelhouse) if prefs and prefs.wheelhouse else ""
        if self.packages.strip():
            packages = self.packages.split()
        else:
            packages = [req for _, req, _, _ in missing_dependencies(self.include_optional)]
        if not packages:
            return None, "Nothing to install: all dependencies are present", False
        if wheelhouse and not os.path.isdir(wheelhouse):
            return None, f"Local Wheels folder {wheelhouse!r} does not exist", True
        if not wheelhouse and not bpy.app.online_access:
            return None, ("Not installing " + ", ".join(packages) + ": Blender's online access is off. Allow it in "
                          "Preferences > System > Network, or set a Local Wheels folder in the AnchorStage "
                          "preferences"), True
        return pip_command(packages, site_folder(create=True), wheelhouse), packages, False

    def _start(self, cmd):
        self._lines = queue.Queue()
        env = dict(os.environ, PYTHONNOUSERSITE="1")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

        def pump(stream, q):
            for line in stream:
                q.put(line.rstrip())
            q.put(None)

        threading.Thread(target=pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        self._steps = 0
        self._log: list[str] = []
        self._done_reading = False

    def _drain(self, wm, n_packages):
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._done_reading = True
                return
            self._log.append(line)
            if line.startswith(("Collecting", "Processing", "Downloading", "Installing", "Successfully")):
                self._steps += 1
                wm.progress_update(min(99, int(100 * self._steps / (3 * n_packages + 2))))
                print(f"AnchorStage install: {line}")

    def _finish(self, context, wm):
        wm.progress_end()
        rc = self._proc.wait()
        self._proc = None
        add_site_folder_to_path()
        if rc != 0:
            tail = " | ".join(l for l in self._log[-6:] if l)
            self.report({"ERROR"}, f"pip failed (exit {rc}): {tail}")
            return {"CANCELLED"}
        import sys as _sys

        addon = _sys.modules.get(__package__)
        if addon is not None and IMPORT_ERROR[0]:
            addon.register_rest()
        self.report({"INFO"}, "Installed. " + describe_missing(missing_dependencies()))
        return {"FINISHED"}

    # -------------------------------------------------------------- blocking (scripts, background)
    def execute(self, context):
        import time

        cmd, packages, is_error = self._plan(context)
        if cmd is None:
            self.report({"ERROR"} if is_error else {"INFO"}, packages)
            return {"CANCELLED"} if is_error else {"FINISHED"}
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._start(cmd)
        while not self._done_reading:
            self._drain(wm, len(packages))
            time.sleep(0.05)
        return self._finish(context, wm)

    # -------------------------------------------------------------- modal (UI stays responsive)
    def invoke(self, context, event):
        cmd, packages, _ = self._plan(context)
        if cmd is None:
            return self.execute(context)
        self._n = len(packages)
        context.window_manager.progress_begin(0, 100)
        self._start(cmd)
        self._timer = context.window_manager.event_timer_add(0.2, window=context.window)
        context.window_manager.modal_handler_add(self)
        self.report({"INFO"}, "Installing " + ", ".join(packages) + " …")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        wm = context.window_manager
        self._drain(wm, self._n)
        if self._done_reading and self._proc.poll() is not None:
            wm.event_timer_remove(self._timer)
            return self._finish(context, wm)
        return {"RUNNING_MODAL"}

    def cancel(self, context):
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()


classes = (AnchorStagePreferences, ANCHORSTAGE_OT_check_dependencies, ANCHORSTAGE_OT_install_dependencies)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    add_site_folder_to_path()
    prefs = get_prefs()
    if prefs is not None:
        apply_cache_env(prefs)


def unregister():
    _unregister()
