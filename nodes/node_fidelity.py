# SPDX-License-Identifier: GPL-3.0-or-later
"""Fidelity node: a per-angle fidelity report (leave-one-out of a capture, or generated vs reference frames)."""

from pathlib import Path

import bpy

from .base import AnchorStageNode, file_stamp, folder_stamp

# report folder -> (input hash, stamp of its fidelity.json, the report): an unchanged report is not
# measured again, a deleted or edited one is written again from the kept report.
_WRITTEN: dict = {}


class AnchorStageFidelityNode(AnchorStageNode, bpy.types.Node):
    """Measure fidelity per angle (masked PSNR, SSIM, LPIPS, CLIP identity) and write the report folder"""

    bl_idname = "AnchorStageFidelityNode"
    bl_label = "Fidelity Report"
    bl_icon = "GRAPH"

    mode: bpy.props.EnumProperty(
        name="Mode", default="LEAVE_ONE_OUT",
        items=(("LEAVE_ONE_OUT", "Leave One Out", "Hold out each view of a capture, fuse the rest, render and compare; "
                                                   "beside the frontal single-image baseline"),
               ("COMPARE", "Compare Folders", "Generated frames against reference frames of the same names")))
    capture_dir: bpy.props.StringProperty(name="Capture", subtype="DIR_PATH", description="Capture folder (leave one out)")
    generated_dir: bpy.props.StringProperty(name="Generated", subtype="DIR_PATH", description="Generated frames")
    reference_dir: bpy.props.StringProperty(name="Reference", subtype="DIR_PATH", description="Reference frames")
    masks_dir: bpy.props.StringProperty(name="Masks", subtype="DIR_PATH",
                                        description="Optional masks NAME.png (default: the references' alpha)")
    report_dir: bpy.props.StringProperty(name="Report", subtype="DIR_PATH",
                                         description="Folder for fidelity.md, fidelity.json, contact_sheet.png, per_angle.png")
    identity_model: bpy.props.StringProperty(name="CLIP Model", description="CLIP id or folder (empty: the default; "
                                                                          "without weights the column is left out)")

    def draw_props(self, context, layout):
        layout.prop(self, "mode", text="")
        if self.mode == "LEAVE_ONE_OUT":
            layout.prop(self, "capture_dir")
        else:
            layout.prop(self, "generated_dir")
            layout.prop(self, "reference_dir")
            layout.prop(self, "masks_dir")
        layout.prop(self, "report_dir")
        layout.prop(self, "identity_model")

    volatile = True  # checks its own report on disk (see _WRITTEN)

    def job_params(self, context, services):
        params = {"mode": self.mode, "report": bpy.path.abspath(self.report_dir) if self.report_dir else "",
                  "identity_model": self.identity_model or None, "device": services.device(context)}
        if self.mode == "LEAVE_ONE_OUT":
            params["capture"] = folder_stamp(self.capture_dir)
        else:
            params.update(generated=folder_stamp(self.generated_dir), reference=folder_stamp(self.reference_dir),
                          masks=folder_stamp(self.masks_dir))
        return params

    @staticmethod
    def compute(params, inputs, ctx):
        from anchorstage import InputError
        from anchorstage.fidelity import write_report
        from anchorstage.stages import measure_fidelity

        if not params["report"]:
            raise InputError("Fidelity node: no report folder is set")
        report = Path(params["report"])
        if report.is_dir() and any(report.iterdir()) and not (report / "fidelity.json").is_file():
            raise InputError(f"Fidelity node: report folder {str(report)!r} holds other files; choose an empty folder "
                             "or an earlier report")
        key, listing = str(report), str(report / "fidelity.json")
        kept = _WRITTEN.get(key)
        if kept is not None and kept[0] == ctx.input_hash:
            rep = kept[2]
        elif params["mode"] == "LEAVE_ONE_OUT":
            if not params["capture"][0]:
                raise InputError("Fidelity node: no capture folder is set")
            rep = measure_fidelity(leave_one_out=params["capture"][0], identity_model=params["identity_model"],
                           device=params["device"], progress=ctx.report)
        else:
            if not (params["generated"][0] and params["reference"][0]):
                raise InputError("Fidelity node: set both the generated and the reference folder")
            rep = measure_fidelity(params["generated"][0], params["reference"][0], masks=params["masks"][0] or None,
                           identity_model=params["identity_model"], device=params["device"], progress=ctx.report)
        if kept is None or kept[:2] != (ctx.input_hash, file_stamp(listing)):
            write_report(rep, report, force=True)
        _WRITTEN[key] = (ctx.input_hash, file_stamp(listing), rep)
        s = rep.to_json_dict()["summary"]
        ctx.note(f"{len(rep.angles)} angles: PSNR min {s['min_psnr_db']} dB, mean {s['mean_psnr_db']} dB")
        if "beats_baseline_off_frontal" in s:
            ctx.note(f"beats the single-image baseline off the frontal view: "
                     f"{'yes' if s['beats_baseline_off_frontal'] else 'no'}")
        for col, note in (("LPIPS", rep.lpips_note), ("identity", rep.identity_note)):
            if note:
                ctx.note(f"{col} {note}")
        return {}


register, unregister = bpy.utils.register_classes_factory((AnchorStageFidelityNode,))
