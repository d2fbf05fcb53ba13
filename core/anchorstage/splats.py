# SPDX-License-Identifier: GPL-3.0-or-later
"""The Gaussian-splat container shared by reconstruction, rendering, regions, export and file I/O."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field, replace
from typing import TYPE_CHECKING, Optional, Union

import numpy as np

from .arrays import is_tensor
from .errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["Splats", "StoredSplats"]

_SH_ENCODINGS = ("sRGB", "linearRGB")
#: Stored columns that hold a direction (a file's normals): they turn with the splats.
_DIRECTION_COLUMNS = ("nx", "ny", "nz")


@dataclass
class StoredSplats:
    """What a splat file stored beyond the working values, so writing the same format again
    reproduces every stored value bit for bit (see docs/formats.md).

    Readers keep a stored column only where re-encoding the decoded working value would not
    give it back (a log scale, a logit, a quantised byte); writers use a stored value for a splat
    only while decoding it still gives that splat's current working value, so edited splats are
    encoded afresh.

    Attributes:
        format: the format that stored it: ``"ply"``, ``"compressed_ply"``, ``"splat"`` or ``"spz"``.
        columns: per-splat values by property name, each a numpy array [N] or [N, k] in the
            stored dtype: extra properties (``object_id``, normals, ...) and the raw encodings
            of working values.
        elements: file-level data by element name (PLY elements other than the splats, e.g.
            SHARP's ``intrinsic``; a compressed PLY's chunk table; an .spz header), each a
            numpy structured array in the stored property types.
        layout: the per-splat record as stored (a PLY vertex element's property names and
            types, in order), or None.
        comments: the file's header comments.
    """

    format: str
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    elements: dict[str, np.ndarray] = field(default_factory=dict)
    layout: Optional[np.dtype] = None
    comments: list[str] = field(default_factory=list)

    def check(self, n: int) -> None:
        for name, col in self.columns.items():
            if not isinstance(col, np.ndarray) or col.shape[:1] != (n,):
                raise InputError(f"splats: stored column {name!r} must be a numpy array with {n} rows")

    def subset(self, index) -> "StoredSplats":
        idx = index.cpu().numpy() if is_tensor(index) else index
        return replace(self, columns={k: v[idx] for k, v in self.columns.items()})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (no objects: ``np.savez`` and ``np.load(allow_pickle=False)`` keep them
        bit for bit): ``format``, ``comments``, ``layout`` (an empty structured array),
        ``col__<name>`` and ``el__<name>``."""
        out = {"format": np.array(self.format), "comments": np.array(self.comments, dtype=str)}
        if self.layout is not None:
            out["layout"] = np.zeros(0, dtype=self.layout)
        out.update({f"col__{k}": np.ascontiguousarray(v) for k, v in self.columns.items()})
        out.update({f"el__{k}": np.ascontiguousarray(v) for k, v in self.elements.items()})
        return out

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], where: str = "stored splat data") -> "StoredSplats":
        """The inverse of :meth:`to_arrays`.

        Raises:
            InputError: no ``format`` entry.
        """
        if "format" not in arrays:
            raise InputError(f"{where}: no 'format' entry")
        layout = arrays.get("layout")
        return StoredSplats(
            format=str(np.asarray(arrays["format"])),
            columns={k[5:]: np.asarray(v) for k, v in arrays.items() if k.startswith("col__")},
            elements={k[4:]: np.asarray(v) for k, v in arrays.items() if k.startswith("el__")},
            layout=None if layout is None else np.asarray(layout).dtype,
            comments=[str(c) for c in np.asarray(arrays.get("comments", np.array([], dtype=str))).ravel()],
        )


_FLOAT_FIELDS = ("means", "quats", "scales", "opacities", "colors", "confidence")


_CHECK_ROWS = 1 << 20  # rows summed at a time by the finiteness check


def _refuse_non_finite(sp: "Splats", n: int) -> None:
    """NaN / inf in a splat parameter is an error naming the fields and how many splats (never a black frame)."""
    if n <= 0:
        return
    from .splat_store import release_pages

    fields = [k for k in (*_FLOAT_FIELDS, "sh_rest") if getattr(sp, k) is not None]
    if sp.numpy_backed:
        isfinite, stack = np.isfinite, np.stack
    else:
        import torch

        isfinite, stack = torch.isfinite, torch.stack
    # The common case in one cheap pass per field: NaN / inf reach the sum (an overflow only takes the
    # slow path). In pieces, each given back once read where it is a memory-mapped scene's.
    finite = True
    for k in fields:
        t = getattr(sp, k)
        for r0 in range(0, n, _CHECK_ROWS):
            r = (r0, min(n, r0 + _CHECK_ROWS))
            finite &= bool(isfinite(t[r[0]:r[1]].sum()))
            release_pages(t, r)
    if finite:
        return
    bad = stack([(~isfinite(getattr(sp, k).reshape(n, -1))).any(1) for k in fields])
    per_field = bad.sum(1).tolist()
    if any(per_field):
        total = int(bad.any(0).sum())
        which = ", ".join(f"{k} ({c:,})" for k, c in zip(fields, per_field) if c)
        raise InputError(f"splats: {total:,} of {n:,} splats have non-finite parameters (NaN or inf) in {which}; "
                         "remove or repair them before use")


@dataclass
class Splats:
    """A set of 3D Gaussians with activated parameters.

    The arrays are torch tensors (any device), or all numpy arrays (host memory, memory maps
    included): a frame on the compiled CPU path reads those without loading torch
    (:attr:`numpy_backed`; :meth:`to` makes tensors of them, :meth:`numpy` the reverse).

    Construction checks shapes, dtypes and devices and refuses NaN / inf in any float field
    (an :class:`InputError` saying how many splats and which fields): a non-finite splat would
    otherwise render as a silently black or empty frame.

    Attributes:
        means: [N, 3] float32 centres, metres, world frame.
        quats: [N, 4] float32 rotations, wxyz, local → world, any non-zero norm: a file's
            unnormalised values are kept; every consumer normalises.
        scales: [N, 3] float32 standard deviations along the local axes, metres (not log).
        opacities: [N] float32 in [0, 1] (not logit).
        colors: [N, 3] float32 linear Rec.709 RGB: the view-independent (SH degree 0) colour;
            may be negative or above 1 where a file's DC term is.
        confidence: [N] float32 in [0, 1], per-splat depth confidence (1 when unknown).
        region_ids: [N] int32 region index into ``Scene.regions`` (-1 = unassigned).
        sh_rest: [N, K, 3] float32 spherical-harmonic coefficients of degrees 1..3 (K = 3, 8
            or 15; coefficient-major, RGB last) in ``sh_encoding``, or None: view-independent
            colour (see :mod:`anchorstage.sh`).
        sh_encoding: ``"sRGB"`` (3DGS trainers, the default) or ``"linearRGB"``: the colour
            encoding the SH expansion (DC and ``sh_rest``) sums in; files are written in it.
        stored: what the file the splats came from stored beyond these values, or None.
        check_finite: refuse NaN / inf now (default). Memory-mapped splats skip it (it would read
            every splat); then :attr:`finite_checked` is False and whatever reads them checks what
            it reads: every subset is checked as it is made, and the renderer checks a whole set.
    """

    means: Union["torch.Tensor", np.ndarray]
    quats: Union["torch.Tensor", np.ndarray]
    scales: Union["torch.Tensor", np.ndarray]
    opacities: Union["torch.Tensor", np.ndarray]
    colors: Union["torch.Tensor", np.ndarray]
    confidence: Union["torch.Tensor", np.ndarray, None] = None
    region_ids: Union["torch.Tensor", np.ndarray, None] = None
    sh_rest: Union["torch.Tensor", np.ndarray, None] = None
    sh_encoding: str = "sRGB"
    stored: Optional[StoredSplats] = None
    check_finite: InitVar[bool] = True

    def __post_init__(self, check_finite: bool = True) -> None:
        host = isinstance(self.means, np.ndarray)
        kind, is_kind = ("a numpy array", lambda a: isinstance(a, np.ndarray)) if host else ("a torch.Tensor", is_tensor)
        if not is_kind(self.means):
            raise InputError(f"splats: means must be a torch.Tensor or a numpy array (got {type(self.means).__name__})")
        for name in ("quats", "scales", "opacities", "colors"):
            if not is_kind(getattr(self, name)):
                raise InputError(f"splats: {name} must be {kind}, as means is (got {type(getattr(self, name)).__name__})")
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expect = {"means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,), "colors": (n, 3)}
        if host:
            if self.confidence is None:
                self.confidence = np.ones(max(n, 0), np.float32)
            if self.region_ids is None:
                self.region_ids = np.full(max(n, 0), -1, np.int32)
        else:
            import torch

            if self.confidence is None:
                self.confidence = torch.ones(max(n, 0), dtype=torch.float32, device=self.means.device)
            if self.region_ids is None:
                self.region_ids = torch.full((max(n, 0),), -1, dtype=torch.int32, device=self.means.device)
        expect["confidence"] = (n,)
        expect["region_ids"] = (n,)
        if self.sh_rest is not None:
            if not is_kind(self.sh_rest) or self.sh_rest.ndim != 3 or self.sh_rest.shape[1] not in (0, 3, 8, 15):
                raise InputError(f"splats: sh_rest must be a [N, K, 3] array ({kind}) with K = 3, 8 or 15 (SH degrees 1-3)")
            if self.sh_rest.shape[1] == 0:
                self.sh_rest = None
            else:
                expect["sh_rest"] = (n, self.sh_rest.shape[1], 3)
        for name, shape in expect.items():
            t = getattr(self, name)
            if not is_kind(t):
                raise InputError(f"splats: {name} must be {kind}, as means is (got {type(t).__name__})")
            if tuple(t.shape) != shape:
                raise InputError(f"splats: {name} must have shape {list(shape)} (got {list(t.shape)})")
            if not host and t.device != self.means.device:
                raise InputError(f"splats: {name} is on {t.device} but means are on {self.means.device}")
            floating = t.dtype.kind == "f" if host else t.dtype.is_floating_point
            if name == "region_ids":
                if not (t.dtype.kind in "iu" if host else not (floating or t.dtype.is_complex or t.dtype == torch.bool)):
                    raise InputError(f"splats: region_ids must be an integer array (got {t.dtype})")
            elif not floating:
                raise InputError(f"splats: {name} must be a floating-point array (got {t.dtype})")
        if check_finite:
            _refuse_non_finite(self, n)
        self._finite_checked = bool(check_finite)
        if self.sh_encoding not in _SH_ENCODINGS:
            raise InputError(f"splats: sh_encoding must be one of {', '.join(_SH_ENCODINGS)} (got {self.sh_encoding!r})")
        if self.stored is not None:
            self.stored.check(max(n, 0))

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def finite_checked(self) -> bool:
        """Whether every float parameter has been checked finite (see ``check_finite``)."""
        return self._finite_checked

    def check_rows_finite(self, start: int) -> None:
        """Check rows ``start:`` finite (the rows before are known to be); then the set counts as checked.

        Raises:
            InputError: NaN / inf in a splat parameter of those rows (which fields, how many splats).
        """
        if start < len(self):
            tail = {k: None if t is None else t[start:] for k, t in self._tensors().items()}  # views, no copy
            _refuse_non_finite(Splats(**tail, sh_encoding=self.sh_encoding, check_finite=False), len(self) - start)
        self._finite_checked = True

    def ensure_finite(self) -> None:
        """Check every float parameter now if construction skipped it.

        Raises:
            InputError: NaN / inf in a splat parameter (which fields, how many splats).
        """
        if not self._finite_checked:
            _refuse_non_finite(self, len(self))
            self._finite_checked = True

    @property
    def numpy_backed(self) -> bool:
        """Whether the arrays are numpy arrays (host memory) rather than torch tensors."""
        return isinstance(self.means, np.ndarray)

    @property
    def device(self) -> "torch.device":
        """Where the tensors are (numpy-backed splats: the CPU; asking loads torch)."""
        if self.numpy_backed:
            import torch

            return torch.device("cpu")
        return self.means.device

    @property
    def sh_degree(self) -> int:
        """0 without ``sh_rest``, else 1..3."""
        return {3: 1, 8: 2, 15: 3}[self.sh_rest.shape[1]] if self.sh_rest is not None else 0

    def _tensors(self) -> dict[str, Union["torch.Tensor", np.ndarray, None]]:
        return {k: getattr(self, k) for k in ("means", "quats", "scales", "opacities", "colors", "confidence",
                                              "region_ids", "sh_rest")}

    def _with(self, tensors: dict, stored: Optional[StoredSplats], check_finite: bool = True) -> "Splats":
        return Splats(**tensors, sh_encoding=self.sh_encoding, stored=stored, check_finite=check_finite)

    def _checked_like(self, arrays: dict, stored: Optional[StoredSplats]) -> "Splats":
        """Splats of the same values in other arrays: checked finite where these are."""
        out = self._with(arrays, stored, check_finite=False)
        out._finite_checked = self._finite_checked
        return out

    def to(self, device: Union[str, "torch.device"]) -> "Splats":
        """The splats as torch tensors on ``device`` (stored file data stays in host memory); numpy
        arrays become tensors sharing their memory."""
        import torch

        def move(t):
            return torch.from_numpy(t).to(device) if isinstance(t, np.ndarray) else t.to(device)

        return self._checked_like({k: None if t is None else move(t) for k, t in self._tensors().items()}, self.stored)

    def numpy(self) -> "Splats":
        """The splats as numpy arrays in host memory (views of CPU tensors; self when numpy-backed)."""
        if self.numpy_backed:
            return self
        return self._checked_like({k: None if t is None else t.detach().cpu().numpy() for k, t in self._tensors().items()},
                                  self.stored)

    def subset(self, index: Union["torch.Tensor", np.ndarray, slice]) -> "Splats":
        """The splats selected by a boolean mask, an index array (tensor or numpy) or a slice."""
        if self.numpy_backed and is_tensor(index):
            index = index.cpu().numpy()
        elif not self.numpy_backed and isinstance(index, np.ndarray):
            import torch

            index = torch.from_numpy(index).to(self.device)
        # Rows of a set already checked finite are finite: not checked again (the renderer takes
        # millions of splats in many pieces).
        out = self._with({k: None if t is None else t[index] for k, t in self._tensors().items()},
                         None if self.stored is None else self.stored.subset(index), not self._finite_checked)
        out._finite_checked = True
        return out

    def transformed(self, world_from_local: np.ndarray) -> "Splats":
        """The splats moved by a rigid transform (rotation + translation, metres).

        SH coefficients and stored normals turn with the splats.

        Args:
            world_from_local: [4, 4] rigid matrix taking the splats' current frame to the new one.

        Returns:
            The moved splats, as torch tensors.
        """
        import torch

        from .rotation import quat_from_matrix, quat_mul

        if self.numpy_backed:
            return self.to("cpu").transformed(world_from_local)
        m = np.array(world_from_local, dtype=np.float64)  # a writable copy (torch warns on read-only arrays)
        r = m[:3, :3] if m.shape == (4, 4) else np.zeros((3, 3))
        if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(r.T @ r, np.eye(3), atol=1e-5) \
                or np.linalg.det(r) < 0:
            raise InputError("splats: transform must be a finite rigid 4x4 matrix (rotation + translation)")
        rt = torch.as_tensor(r, dtype=torch.float32, device=self.device)
        t = torch.as_tensor(m[:3, 3], dtype=torch.float32, device=self.device)
        tensors = {k: None if v is None or k in ("means", "quats", "sh_rest") else v.clone() for k, v in self._tensors().items()}
        tensors["means"] = torch.addmm(t[None], self.means, rt.T)
        tensors["quats"] = quat_mul(quat_from_matrix(r), self.quats)
        if self.sh_rest is not None:
            from .sh import rotate_rest

            tensors["sh_rest"] = rotate_rest(self.sh_rest, r)
        stored = self.stored
        if stored is not None and all(k in stored.columns and stored.columns[k].dtype.kind == "f" for k in _DIRECTION_COLUMNS):
            cols = dict(stored.columns)
            nrm = np.stack([cols[k].astype(np.float64) for k in _DIRECTION_COLUMNS], axis=1) @ r.T
            for i, k in enumerate(_DIRECTION_COLUMNS):
                cols[k] = nrm[:, i].astype(stored.columns[k].dtype)
            stored = replace(stored, columns=cols)
        return self._with(tensors, stored)

    @staticmethod
    def concat(parts: "list[Splats]") -> "Splats":
        """Concatenate several splat sets (same device).

        SH coefficients are padded with zeros to the highest degree among the parts (a zero
        coefficient adds no view dependence); stored file data is kept only when every part
        carries the same kind (same format and columns).

        Raises:
            InputError: parts with SH coefficients in different encodings.

        Returns:
            The splats, as torch tensors (numpy-backed parts become tensors first).
        """
        import torch

        if not parts:
            raise InputError("splats: nothing to concatenate")
        parts = [p.to("cpu") if p.numpy_backed else p for p in parts]
        encodings = {p.sh_encoding for p in parts if p.sh_rest is not None}
        if len(encodings) > 1:
            raise InputError("splats: cannot concatenate SH coefficients stored in different colour encodings")
        k = max((p.sh_rest.shape[1] for p in parts if p.sh_rest is not None), default=0)
        tensors = {name: torch.cat([getattr(p, name) for p in parts])
                   for name in ("means", "quats", "scales", "opacities", "colors", "confidence", "region_ids")}
        if k:
            rest = []
            for p in parts:
                r = torch.zeros(len(p), k, 3, dtype=torch.float32, device=p.device)
                if p.sh_rest is not None:
                    r[:, :p.sh_rest.shape[1]] = p.sh_rest
                rest.append(r)
            tensors["sh_rest"] = torch.cat(rest)
        stored = None
        first = parts[0].stored
        if first is not None and all(p.stored is not None and p.stored.format == first.format
                                     and {c: v.dtype for c, v in p.stored.columns.items()}
                                     == {c: v.dtype for c, v in first.columns.items()} for p in parts):
            stored = replace(first, columns={c: np.concatenate([p.stored.columns[c] for p in parts])
                                             for c in first.columns})
        encoding = next(iter(encodings)) if encodings else parts[0].sh_encoding
        return Splats(**tensors, sh_encoding=encoding, stored=stored)
