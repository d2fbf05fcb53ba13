# SPDX-License-Identifier: GPL-3.0-or-later
"""Measured fidelity: per-angle PSNR, SSIM, LPIPS and CLIP identity, masked to the product.

Two ways in (see docs/fidelity.md):

* :func:`compare_folders` pairs generated frames with reference frames by file name;
* :func:`leave_one_out` fuses a capture without one view, renders that view's camera and compares
  with the held-out photo, for every view; beside it the **single-image baseline**: the stage
  reconstructed from the frontal view alone, rendered at the same cameras.

Metrics are computed on display-referred sRGB in [0, 1] (what people see), inside the reference
mask only: PSNR over the masked pixels' squared error; SSIM (Gaussian window σ = 1.5, the
usual constants) averaged over the masked pixels; LPIPS only when the ``lpips`` package and its
backbone weights are on the machine (else the column says why); identity = cosine similarity of
the CLIP image embeddings of the two masked images (:mod:`anchorstage.identity`).

:func:`write_report` writes ``fidelity.md``, ``fidelity.json``, ``contact_sheet.png`` (reference |
generated [| baseline] per angle) and ``per_angle.png`` (PSNR per angle, drawn with Pillow).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from .errors import InputError
from .progress import ProgressFn, report

if TYPE_CHECKING:  # pragma: no cover
    from .fusion import CaptureView
    from .identity import IdentityEncoder

__all__ = ["AngleResult", "FidelityReport", "masked_psnr", "masked_ssim", "LpipsMetric", "load_lpips", "compare_folders",
           "leave_one_out", "write_report", "REPORT_FILES", "PSNR_TARGET_DB"]

REPORT_FILES = ("fidelity.md", "fidelity.json", "contact_sheet.png", "per_angle.png")
#: The acceptance line drawn in the plot: leave-one-out renders should reach it at every angle.
PSNR_TARGET_DB = 28.0
_SSIM_SIGMA = 1.5
_C1, _C2 = 0.01 ** 2, 0.03 ** 2


# ---------------------------------------------------------------------------------------------- metrics
def _srgb(image_linear: np.ndarray) -> np.ndarray:
    from .image_io import linear_to_srgb

    return linear_to_srgb(np.asarray(image_linear, dtype=np.float32)).astype(np.float64)


def masked_psnr(test_linear: np.ndarray, ref_linear: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB of two [H, W, 3] linear images over the [H, W] bool mask (sRGB, peak 1); inf when equal."""
    err = (_srgb(test_linear) - _srgb(ref_linear))[mask]
    mse = float(np.mean(err ** 2)) if err.size else float("nan")
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def masked_ssim(test_linear: np.ndarray, ref_linear: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Gaussian σ = 1.5, per channel, on sRGB) of two [H, W, 3] linear images over the mask."""
    from scipy.ndimage import gaussian_filter

    a, b = _srgb(test_linear), _srgb(ref_linear)
    blur = lambda x: gaussian_filter(x, sigma=(_SSIM_SIGMA, _SSIM_SIGMA, 0), truncate=3.5)  # noqa: E731
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma ** 2, blur(b * b) - mb ** 2, blur(a * b) - ma * mb
    s = ((2 * ma * mb + _C1) * (2 * cov + _C2)) / ((ma ** 2 + mb ** 2 + _C1) * (va + vb + _C2))
    return float(s.mean(-1)[mask].mean()) if mask.any() else float("nan")


@dataclass
class LpipsMetric:
    """LPIPS through the ``lpips`` package (AlexNet backbone); images in [-1, 1] with the background greyed."""

    net: Any

    def __call__(self, test_linear: np.ndarray, ref_linear: np.ndarray, mask: np.ndarray) -> float:
        import torch

        def t(x: np.ndarray) -> "torch.Tensor":
            x = np.where(mask[..., None], _srgb(x), 0.5)
            return torch.from_numpy(x * 2 - 1).permute(2, 0, 1)[None].float()

        with torch.no_grad():
            return float(self.net(t(test_linear), t(ref_linear)).item())


def load_lpips() -> tuple[Optional[LpipsMetric], str]:
    """LPIPS when the ``lpips`` package and its backbone weights are already on this machine (nothing is
    downloaded), else (None, why)."""
    try:
        import lpips  # noqa: F401
        import torch
    except ImportError:
        return None, "unavailable: the 'lpips' package is not installed"
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    if not any(hub.glob("alexnet-*.pth")):
        return None, f"unavailable: LPIPS's AlexNet backbone weights are not in {hub}"
    try:
        return LpipsMetric(lpips.LPIPS(net="alex", verbose=False).eval()), ""
    except Exception as e:  # noqa: BLE001 - any failure to build the optional metric leaves its column out
        return None, f"unavailable: LPIPS could not be built ({type(e).__name__}: {e})"


# ---------------------------------------------------------------------------------------------- results
@dataclass
class AngleResult:
    """One angle's metrics.

    Attributes:
        name: the view's name. azimuth_deg: its azimuth about the product (None when unknown).
        psnr_db, ssim, lpips, identity: the metrics (None when unavailable).
        baseline: the single-image baseline's metrics at this angle (leave-one-out only).
        image_linear: [H, W, 3] the generated (rendered) image; reference_linear: the reference;
        mask: [H, W] bool; baseline_linear: the baseline's render (or None).
    """

    name: str
    azimuth_deg: Optional[float]
    psnr_db: float
    ssim: float
    lpips: Optional[float] = None
    identity: Optional[float] = None
    baseline: Optional[dict[str, Optional[float]]] = None
    image_linear: Optional[np.ndarray] = field(default=None, repr=False)
    reference_linear: Optional[np.ndarray] = field(default=None, repr=False)
    mask: Optional[np.ndarray] = field(default=None, repr=False)
    baseline_linear: Optional[np.ndarray] = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        return {"view": self.name, "azimuth_deg": self.azimuth_deg, "psnr_db": _num(self.psnr_db),
                "ssim": _num(self.ssim), "lpips": _num(self.lpips), "identity": _num(self.identity),
                **({"baseline": {k: _num(v) for k, v in self.baseline.items()}} if self.baseline is not None else {})}


@dataclass
class FidelityReport:
    """A fidelity table. ``mode`` is ``"compare"`` or ``"leave-one-out"``."""

    mode: str
    angles: list[AngleResult]
    lpips_note: str = ""
    identity_note: str = ""
    frontal_view: Optional[str] = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        ps = [a.psnr_db for a in self.angles]
        out: dict[str, Any] = {"mode": self.mode, "angles": [a.row() for a in self.angles],
                               "summary": {"min_psnr_db": _num(min(ps)), "mean_psnr_db": _num(float(np.mean(ps))),
                                           "mean_ssim": _num(float(np.mean([a.ssim for a in self.angles])))},
                               "lpips": self.lpips_note or "available", "identity": self.identity_note or "available",
                               "psnr_target_db": PSNR_TARGET_DB, **self.meta}
        if self.frontal_view is not None:
            out["frontal_view"] = self.frontal_view
            others = [a for a in self.angles if a.name != self.frontal_view and a.baseline is not None]
            out["summary"]["beats_baseline_off_frontal"] = all(a.psnr_db > a.baseline["psnr_db"] for a in others)
            out["summary"]["reaches_target_everywhere"] = all(a.psnr_db >= PSNR_TARGET_DB for a in self.angles)
        return out


def _num(v: Optional[float]) -> Optional[float]:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return 99.0 if math.isinf(v) else round(float(v), 4)


def _metrics(test: np.ndarray, ref: np.ndarray, mask: np.ndarray, lp: Optional[LpipsMetric],
             enc: Optional["IdentityEncoder"]) -> dict[str, Optional[float]]:
    from .identity import cosine_similarity

    ident = None
    if enc is not None:
        e = enc.embed([test, ref], [mask, mask])
        ident = cosine_similarity(e[0], e[1])
    return {"psnr_db": masked_psnr(test, ref, mask), "ssim": masked_ssim(test, ref, mask),
            "lpips": lp(test, ref, mask) if lp is not None else None, "identity": ident}


# ---------------------------------------------------------------------------------------------- compare folders
def _frames(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"{what} folder {str(folder)!r} does not exist or is not a folder")
    out = {p.stem: p for p in sorted(folder.iterdir())
           if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".exr") and not p.stem.endswith("_mask")}
    if not out:
        raise InputError(f"{what} folder {str(folder)!r} has no images (PNG, JPEG or EXR)")
    return out


def compare_folders(generated: Union[str, os.PathLike], reference: Union[str, os.PathLike], *,
                    masks: Union[str, os.PathLike, None] = None, identity_model: Optional[str] = None,
                    device: str = "auto", progress: Optional[ProgressFn] = None) -> FidelityReport:
    """Compare generated frames with reference frames of the same names.

    The mask of frame NAME: ``MASKS/NAME.png`` or ``MASKS/NAME_mask.png`` when ``masks`` is given, else
    the reference's alpha (RGBA PNG), else ``REFERENCE/NAME_mask.png``, else the whole frame.

    Raises:
        InputError: missing or empty folders, no common names, frames or masks of different sizes.
    """
    from .identity import load_identity
    from .image_io import load_image
    from .product import read_alpha

    gen, ref = _frames(Path(generated), "generated"), _frames(Path(reference), "reference")
    names = [n for n in ref if n in gen]
    if not names:
        raise InputError(f"generated folder {str(generated)!r} and reference folder {str(reference)!r} share no frame "
                         "names (frames are paired by file name)")
    lp, lp_note = load_lpips()
    enc, why = load_identity(identity_model, device=device)
    angles = []
    for k, name in enumerate(names):
        report(progress, k / len(names), name)
        g, r = load_image(gen[name]), load_image(ref[name])
        if g.rgb_linear.shape != r.rgb_linear.shape:
            raise InputError(f"generated frame {gen[name].name!r} is {g.width}x{g.height} but its reference is "
                             f"{r.width}x{r.height}")
        mask_file = None
        if masks is not None:
            mask_file = next((Path(masks) / f"{name}{s}.png" for s in ("", "_mask")
                              if (Path(masks) / f"{name}{s}.png").is_file()), None)
            if mask_file is None:
                raise InputError(f"masks folder {str(masks)!r} has no mask for frame {name!r} ({name}.png or {name}_mask.png)")
        elif (Path(reference) / f"{name}_mask.png").is_file():
            mask_file = Path(reference) / f"{name}_mask.png"
        if mask_file is not None:
            m = read_alpha(mask_file, luminance=True) >= 0.5
        elif ref[name].suffix.lower() == ".png" and any("alpha" in n for n in r.notes):
            m = read_alpha(ref[name]) >= 0.5
        else:
            m = np.ones((r.height, r.width), bool)
        if m.shape != (r.height, r.width):
            raise InputError(f"mask for frame {name!r} is {m.shape[1]}x{m.shape[0]} but the frame is {r.width}x{r.height}")
        # A cut-out reference is straight colour over its alpha: compare what the mask shows.
        met = _metrics(g.rgb_linear, r.rgb_linear, m, lp, enc)
        angles.append(AngleResult(name, None, met["psnr_db"], met["ssim"], met["lpips"], met["identity"],
                                  image_linear=g.rgb_linear, reference_linear=r.rgb_linear, mask=m))
    report(progress, 1.0, f"{len(angles)} frames")
    return FidelityReport("compare", angles, lp_note, "" if enc is not None else f"unavailable: {why}",
                          meta={"generated": str(generated), "reference": str(reference)})


# ---------------------------------------------------------------------------------------------- leave one out
def _render_rgb(scene: Any, camera: Any, device: str) -> np.ndarray:
    from .renderer import render

    out = render(scene.splats, camera, ("color",), device=device)
    return out["color"].detach().cpu().numpy().astype(np.float32)


def _azimuth(view: "CaptureView", centre: np.ndarray, front: np.ndarray) -> float:
    """Degrees about world +Z from the frontal camera's direction, counter-clockwise seen from above."""
    d = view.camera.position[:2] - centre[:2]
    a = math.degrees(math.atan2(d[1], d[0]) - math.atan2(front[1], front[0]))
    return round(a % 360.0, 3)


def leave_one_out(views: Sequence["CaptureView"], *, identity_model: Optional[str] = None,
                  max_splats_per_view: Optional[int] = None, device: str = "auto",
                  progress: Optional[ProgressFn] = None) -> FidelityReport:
    """Leave-one-out fidelity of capture fusion, beside the single-image baseline.

    For every view k: fuse every other view (:func:`anchorstage.fusion.fuse`), render view k's
    camera and compare with view k's photo inside its mask. The baseline is the stage regressed
    from the frontal view (``views[0]``) alone, with its own single-view colour fit, rendered at
    the same camera.

    Args:
        views: from :func:`anchorstage.fusion.load_capture` (at least 3; the frontal view first).
        identity_model: CLIP id or folder (unavailable weights leave the column out, noted).
        max_splats_per_view: splat budget per view.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: optional progress callback.

    Returns:
        The :class:`FidelityReport` (mode ``"leave-one-out"``), one row per view with the baseline's metrics.

    Raises:
        InputError: fewer than 3 views.
    """
    from .fusion import fuse, regress_view
    from .identity import load_identity

    views = list(views)
    if len(views) < 3:
        raise InputError(f"leave-one-out needs at least 3 views (got {len(views)})")
    lp, lp_note = load_lpips()
    enc, why = load_identity(identity_model, device=device)
    baseline = regress_view(views[0], max_splats=max_splats_per_view, fit_colors=True, device=device)
    seen = [v.mask & np.isfinite(v.depth_m) for v in views]
    pts = np.concatenate([v.camera.unproject(np.argwhere(m)[:, ::-1] + 0.5, v.depth_m[m]) for v, m in zip(views, seen)])
    centre = pts.mean(0)
    front = views[0].camera.position[:2] - centre[:2]
    angles = []
    for k, held in enumerate(views):
        report(progress, k / len(views), f"leaving out {held.name}")
        scene, _ = fuse([v for i, v in enumerate(views) if i != k], max_splats_per_view=max_splats_per_view,
                        device=device)
        img = _render_rgb(scene, held.camera, device)
        base = _render_rgb(baseline, held.camera, device)
        met = _metrics(img, held.image_linear, held.mask, lp, enc)
        bmet = _metrics(base, held.image_linear, held.mask, lp, enc)
        angles.append(AngleResult(held.name, _azimuth(held, centre, front), met["psnr_db"], met["ssim"], met["lpips"],
                                  met["identity"], baseline=bmet, image_linear=img, reference_linear=held.image_linear,
                                  mask=held.mask, baseline_linear=base))
    report(progress, 1.0, f"{len(views)} views")
    return FidelityReport("leave-one-out", angles, lp_note, "" if enc is not None else f"unavailable: {why}",
                          frontal_view=views[0].name, meta={"views": len(views)})


# ---------------------------------------------------------------------------------------------- report
def _fmt(v: Optional[float], digits: int) -> str:
    return "–" if v is None else ("∞" if math.isinf(v) else f"{v:.{digits}f}")


def _markdown(rep: FidelityReport) -> str:
    loo = rep.mode == "leave-one-out"
    head = ["view", "azimuth °", "PSNR dB", "SSIM", "LPIPS", "identity"]
    if loo:
        head += ["baseline PSNR dB", "baseline SSIM", "baseline LPIPS", "baseline identity"]
    lines = [f"# Fidelity ({rep.mode})", ""]
    if loo:
        lines += [f"Each view held out in turn: the scene fused from the other views is rendered at its camera and "
                  f"compared with it. Baseline: the stage from the frontal view ({rep.frontal_view}) alone.", ""]
    lines += ["Masked to the product, on sRGB. " + (f"LPIPS: {rep.lpips_note}. " if rep.lpips_note else "")
              + (f"Identity (CLIP): {rep.identity_note}." if rep.identity_note else ""), ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in rep.angles:
        row = [a.name, _fmt(a.azimuth_deg, 0), _fmt(a.psnr_db, 2), _fmt(a.ssim, 4), _fmt(a.lpips, 4), _fmt(a.identity, 4)]
        if loo and a.baseline is not None:
            b = a.baseline
            row += [_fmt(b["psnr_db"], 2), _fmt(b["ssim"], 4), _fmt(b["lpips"], 4), _fmt(b["identity"], 4)]
        lines.append("| " + " | ".join(row) + " |")
    s = rep.to_json_dict()["summary"]
    lines += ["", f"Lowest PSNR {_fmt(s['min_psnr_db'], 2)} dB, mean {_fmt(s['mean_psnr_db'], 2)} dB, "
                  f"mean SSIM {_fmt(s['mean_ssim'], 4)}."]
    if loo:
        lines.append(f"Reaches {PSNR_TARGET_DB:g} dB at every held-out angle: {'yes' if s['reaches_target_everywhere'] else 'no'}. "
                     f"Beats the single-image baseline at every angle but the frontal one: "
                     f"{'yes' if s['beats_baseline_off_frontal'] else 'no'}.")
    lines += ["", "![contact sheet](contact_sheet.png)", "", "![PSNR per angle](per_angle.png)", ""]
    return "\n".join(lines)


def _contact_sheet(rep: FidelityReport) -> Any:
    from PIL import Image, ImageDraw

    from .image_io import to_uint8_srgb

    cols = 3 if any(a.baseline_linear is not None for a in rep.angles) else 2
    h = max(a.reference_linear.shape[0] for a in rep.angles)
    w = max(a.reference_linear.shape[1] for a in rep.angles)
    label_h = 14
    sheet = Image.new("RGB", (cols * w, len(rep.angles) * (h + label_h) + label_h), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for c, title in enumerate(("reference", "fused" if cols == 3 else "generated", "baseline")[:cols]):
        draw.text((c * w + 4, 1), title, fill=(230, 230, 230))
    for r, a in enumerate(rep.angles):
        y = label_h + r * (h + label_h)
        draw.text((4, y + 1), f"{a.name}  PSNR {_fmt(a.psnr_db, 1)} dB"
                  + (f" | baseline {_fmt(a.baseline['psnr_db'], 1)} dB" if a.baseline else ""), fill=(230, 230, 230))
        for c, im in enumerate((a.reference_linear, a.image_linear, a.baseline_linear)[:cols]):
            if im is not None:
                sheet.paste(Image.fromarray(to_uint8_srgb(im)), (c * w, y + label_h))
    return sheet


def _plot(rep: FidelityReport) -> Any:
    """PSNR per angle (and the baseline's), with the target line, drawn with Pillow."""
    from PIL import Image, ImageDraw

    W, H, L, R, T, B = 640, 360, 56, 16, 28, 48
    img = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    series = [("fused" if rep.mode == "leave-one-out" else "generated", [a.psnr_db for a in rep.angles], (200, 60, 30))]
    if any(a.baseline for a in rep.angles):
        series.append(("single-image baseline", [a.baseline["psnr_db"] for a in rep.angles], (40, 90, 200)))
    vals = [min(v, 60.0) for _, s, _ in series for v in s if not math.isnan(v)] + [PSNR_TARGET_DB]
    lo, hi = math.floor(min(vals) / 5) * 5, math.ceil(max(vals) / 5) * 5 + (5 if max(vals) % 5 == 0 else 0)
    n = len(rep.angles)
    x = lambda i: L + (W - L - R) * (i + 0.5) / n  # noqa: E731
    y = lambda v: T + (H - T - B) * (1 - (min(v, 60.0) - lo) / max(hi - lo, 1e-9))  # noqa: E731
    d.rectangle([L, T, W - R, H - B], outline=(0, 0, 0))
    for v in range(int(lo), int(hi) + 1, 5):
        d.line([L, y(v), W - R, y(v)], fill=(225, 225, 225))
        d.text((8, y(v) - 6), f"{v} dB", fill=(0, 0, 0))
    d.line([L, y(PSNR_TARGET_DB), W - R, y(PSNR_TARGET_DB)], fill=(0, 150, 0), width=2)
    d.text((W - R - 90, y(PSNR_TARGET_DB) - 14), f"target {PSNR_TARGET_DB:g} dB", fill=(0, 120, 0))
    for i, a in enumerate(rep.angles):
        label = a.name if a.azimuth_deg is None else f"{a.azimuth_deg:.0f}°"
        d.text((x(i) - 3 * len(label), H - B + 6), label, fill=(0, 0, 0))
    for k, (name, s, colour) in enumerate(series):
        pts = [(x(i), y(v)) for i, v in enumerate(s) if not math.isnan(v)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for px, py in pts:
            d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        d.line([L + 8 + 220 * k, 14, L + 28 + 220 * k, 14], fill=colour, width=3)
        d.text((L + 34 + 220 * k, 8), name, fill=colour)
    d.text((L, H - 20), "PSNR (masked) per angle", fill=(0, 0, 0))
    return img


def write_report(rep: FidelityReport, out_dir: Union[str, os.PathLike], *, force: bool = False) -> dict[str, Path]:
    """Write the report folder (:data:`REPORT_FILES`) atomically; returns file name → path."""
    from .atomic import atomic_dir, check_new_dir

    out = check_new_dir(out_dir, force, "report folder")
    with atomic_dir(out, replace=force, what="report folder") as tmp:
        tmp = Path(tmp)
        (tmp / "fidelity.md").write_text(_markdown(rep), encoding="utf-8")
        (tmp / "fidelity.json").write_text(json.dumps(rep.to_json_dict(), indent=2, allow_nan=False) + "\n",
                                           encoding="utf-8")
        _contact_sheet(rep).save(tmp / "contact_sheet.png", optimize=True)
        _plot(rep).save(tmp / "per_angle.png", optimize=True)
    return {name: out / name for name in REPORT_FILES}
