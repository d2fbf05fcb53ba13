# SPDX-License-Identifier: GPL-3.0-or-later
"""Builders of small valid and malformed inputs for the untrusted-input and fuzz tests."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from anchorstage import Camera, Region, Splats, look_at
from anchorstage.scene import Scene

W, H = 32, 24


def tiny_camera(width: int = W, height: int = H) -> Camera:
    return Camera(width=width, height=height, lens_mm=35.0, world_from_cam=look_at((0, 0, 1), (0, 5, 1)))


def tiny_splats(n: int = 64, seed: int = 0) -> Splats:
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([-1.0, 4.0, 0.5])
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1)
    return Splats(means=means, quats=quats, scales=torch.full((n, 3), 0.05), opacities=torch.full((n,), 0.8),
                  colors=torch.rand(n, 3, generator=g))


def tiny_scene(n: int = 64) -> Scene:
    """A 32x24 scene with two regions (one with a mask and splat indices)."""
    rng = np.random.default_rng(0)
    cam = tiny_camera()
    mask = np.zeros((H, W), bool)
    mask[H // 2:] = True
    regions = [Region(index=0, id="ground_001", label="ground", mask=mask, plane=(0, 0, 1, 0),
                      splat_indices=np.arange(0, 8, dtype=np.int64), locked=True),
               Region(index=1, id="sky", label="sky")]
    sp = tiny_splats(n)
    sp.region_ids[:8] = 0
    return Scene(camera=cam, splats=sp, image_linear=rng.random((H, W, 3), dtype=np.float32),
                 depth_m=np.full((H, W), 5.0, np.float32), regions=regions, meta={"metric_scale": 1.0})


def png_bytes(width: int, height: int, *, bit_depth: int = 8, color_type: int = 0, rows: bytes | None = None) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height``; its IDAT holds ``rows`` (default: one empty row)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def npy_bytes(header: str, data: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file with a hand-written header dict text (padded as numpy pads it) and raw data."""
    h = header.encode("latin1")
    size_fmt = "<H" if version == (1, 0) else "<I"
    pre = 6 + 2 + struct.calcsize(size_fmt)
    h = h + b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(size_fmt, len(h)) + h + data


def write_exr(path: Path, channels: dict[str, np.ndarray], header: dict[str, Any] | None = None) -> Path:
    import OpenEXR

    hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **(header or {})}
    OpenEXR.File(hdr, {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(path))
    return path


def patch_exr_data_window(path: Path, xmin: int, ymin: int, xmax: int, ymax: int) -> Path:
    """Rewrite the dataWindow attribute of a single-part EXR in place (the pixels stay as they were)."""
    b = path.read_bytes()
    key = b"dataWindow\x00box2i\x00" + struct.pack("<i", 16)
    i = b.index(key) + len(key)
    path.write_bytes(b[:i] + struct.pack("<4i", xmin, ymin, xmax, ymax) + b[i + 16:])
    return path


def finishes_within(seconds: float, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``fn`` in a daemon thread: (finished in time, its result or the exception it raised)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller to assert on
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    return (not t.is_alive()), (box[0] if box else None)
