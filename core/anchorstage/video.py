# SPDX-License-Identifier: GPL-3.0-or-later
"""Video and GIF encoding, one frame at a time.

* **MP4** (:class:`Mp4Writer`): H.264 (libx264) in yuv420p, BT.709 tagged, through PyAV, the profile
  every browser and player decodes; the ``moov`` atom is moved to the front (``faststart``) so a browser starts
  playing before the file has arrived. yuv420p halves the chroma resolution, so both sides must be
  even: an odd size is refused with the size to render at instead.
* **GIF** (:class:`GifWriter`, Pillow): frames scaled to at most ``max_side`` pixels and quantised
  to an adaptive 256-colour palette as they arrive; only these small paletted frames are kept until
  the file is written (Pillow writes a GIF in one go).

Both write to a temporary file beside the target and rename it at the end
(:func:`anchorstage.atomic.atomic_file`), so a failed or cancelled clip leaves nothing behind.
Frames come in as [H, W, 3] float32 linear Rec.709 (what the renderer and refresh give) or
uint8 sRGB and are encoded as they arrive: memory does not grow with the clip (x264 keeps only its
own look-ahead of a few dozen frames).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from .errors import InputError, MissingDependencyError

__all__ = ["Mp4Writer", "GifWriter", "ClipResult", "write_clip", "check_fps", "check_video_size", "to_srgb_u8", "frames_of", "DEFAULT_CRF", "GIF_MAX_SIDE"]

#: x264 constant rate factor: 18 is visually lossless for rendered frames (lower: larger files).
DEFAULT_CRF = 18
#: Default longest side of a GIF, pixels (GIFs are for previews; the MP4 keeps the full size).
GIF_MAX_SIDE = 480
_MAX_FPS = 240.0


def check_fps(fps: Any, what: str = "video") -> Fraction:
    """``fps`` as an exact frame rate: the nearest fraction with a denominator up to 1001 (24 → 24,
    29.97 → 2997/100; NTSC's 30000/1001 is kept when given as that Fraction).

    Raises:
        InputError: not a finite number in (0, 240].
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not math.isfinite(fps) \
            or not 0 < fps <= _MAX_FPS:
        raise InputError(f"{what}: fps must be a number in (0, {_MAX_FPS:g}] (got {fps!r})")
    return Fraction(fps).limit_denominator(1001)


def check_video_size(width: int, height: int, what: str = "video") -> None:
    """Refuse a frame size H.264 in yuv420p cannot hold (odd sides).

    Raises:
        InputError: an odd width or height, naming an even size to render at.
    """
    if width % 2 or height % 2:
        raise InputError(f"{what}: frame size {width}x{height} has an odd side; H.264 in yuv420p (what browsers "
                         f"play) needs even sides: render at {width + width % 2}x{height + height % 2} "
                         f"(--resolution) or {width - width % 2}x{height - height % 2}")


def to_srgb_u8(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 sRGB from a float32 linear frame (clipped to [0, 1]) or a uint8 sRGB one.

    Raises:
        InputError: not [H, W, 3], or a float frame with NaN / inf.
    """
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"video: a frame must be [H, W, 3] (got shape {tuple(a.shape)})")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if not np.all(np.isfinite(a)):
        raise InputError("video: a frame has NaN or inf values")
    from .image_io import to_uint8_srgb

    return np.ascontiguousarray(to_uint8_srgb(a))


def _import_av() -> Any:
    try:
        import av
    except ImportError as e:
        raise MissingDependencyError(f"MP4 encoding needs PyAV, a dependency of anchorstage (pip install 'av>=14'): {e}") from None
    return av


class Mp4Writer:
    """Stream frames into an H.264 yuv420p MP4, written atomically.

    Usage::

        with Mp4Writer("clip.mp4", 640, 360, fps=24) as mp4:
            for frame in frames:          # [360, 640, 3] float32 linear or uint8 sRGB
                mp4.write(frame)

    Args:
        path: the ``.mp4`` file (replaced when the clip is complete).
        width, height: frame size in pixels (even).
        fps: frames per second (see :func:`check_fps`).
        crf: x264 quality, 0 (lossless) to 51.

    Raises:
        InputError: odd size, bad fps or crf, a frame of another size.
        OutputError: the file cannot be written. MissingDependencyError: PyAV missing.
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, *, fps: float = 24.0,
                 crf: int = DEFAULT_CRF) -> None:
        from .input_files import path_arg

        path = path_arg(path, "video: path")
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise InputError(f"video: {name} must be a positive integer number of pixels (got {v!r})")
        check_video_size(width, height, f"video {str(path)!r}")
        if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
            raise InputError(f"video: crf must be an integer in [0, 51] (got {crf!r})")
        self.path, self.width, self.height = Path(path), int(width), int(height)
        self.fps, self.crf = check_fps(fps), crf
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> "Mp4Writer":
        from .atomic import atomic_file

        av = _import_av()
        try:
            tmp = self._stack.enter_context(atomic_file(self.path, "video file"))
            self._container = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
            self._stack.callback(self._container.close)
            s = self._container.add_stream("libx264", rate=self.fps)
            s.width, s.height, s.pix_fmt = self.width, self.height, "yuv420p"
            s.options = {"crf": str(self.crf), "preset": "medium"}
            cc = s.codec_context  # tagged BT.709, limited range: what browsers assume for sRGB-like video
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
            self._stream = s
        except BaseException:
            self._stack.__exit__(None, None, None)
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame ([H, W, 3] float32 linear or uint8 sRGB, the writer's size)."""
        import av

        rgb = to_srgb_u8(frame)
        if rgb.shape[:2] != (self.height, self.width):
            raise InputError(f"video {str(self.path)!r}: frame {self.frames + 1} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"the clip is {self.width}x{self.height}")
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p", dst_colorspace="ITU709",
                                                                      dst_color_range="MPEG")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Optional[bool]:
        if exc_type is None:
            try:
                if self.frames == 0:
                    raise InputError(f"video {str(self.path)!r}: no frames were written")
                for packet in self._stream.encode():  # flush the encoder's delayed frames
                    self._container.mux(packet)
            except BaseException as e:  # the temporary file goes, the error stays
                if not self._stack.__exit__(type(e), e, e.__traceback__):
                    raise
                return None
        return self._stack.__exit__(exc_type, exc, tb)


class GifWriter:
    """Collect frames (scaled and paletted as they arrive) and write a looping GIF atomically.

    Args:
        path: the ``.gif`` file.
        fps: frames per second (GIF stores delays in 10 ms steps; players round).
        max_side: frames larger than this are scaled down to it (pixels; 0 keeps the size).

    Raises:
        InputError: bad fps or max_side; no frames. OutputError: the file cannot be written.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float = 24.0, max_side: int = GIF_MAX_SIDE) -> None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 0:
            raise InputError(f"gif: max_side must be 0 or a positive number of pixels (got {max_side!r})")
        from .input_files import path_arg

        self.path, self.fps, self.max_side = path_arg(path, "gif: path"), check_fps(fps, "gif"), max_side
        self._frames: list[Any] = []
        self._stack = contextlib.ExitStack()
        self._tmp: Optional[Path] = None

    def __enter__(self) -> "GifWriter":
        from .atomic import atomic_file

        # The temporary file is made now, so an unwritable destination fails before any rendering.
        self._tmp = self._stack.enter_context(atomic_file(self.path, "GIF file"))
        return self

    def write(self, frame: np.ndarray) -> None:
        """Add one frame ([H, W, 3] float32 linear or uint8 sRGB)."""
        from PIL import Image

        im = Image.fromarray(to_srgb_u8(frame))
        if self.max_side and max(im.size) > self.max_side:
            scale = self.max_side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
        self._frames.append(im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))

    @property
    def frames(self) -> int:
        return len(self._frames)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Optional[bool]:
        if exc_type is None:
            try:
                if not self._frames:
                    raise InputError(f"gif {str(self.path)!r}: no frames were written")
                first, rest = self._frames[0], self._frames[1:]
                first.save(self._tmp, format="GIF", save_all=True, append_images=rest, loop=0,
                           duration=float(1000 / self.fps), disposal=1, optimize=False)
            except BaseException as e:
                self._frames = []
                if not self._stack.__exit__(type(e), e, e.__traceback__):
                    raise
                return None
        self._frames = []
        return self._stack.__exit__(exc_type, exc, tb)


@dataclass
class ClipResult:
    """What :func:`write_clip` wrote.

    Attributes:
        path: the MP4. gif: the GIF, or None.
        frames: frames in the clip. width, height: pixels. fps: frames per second.
        smoothing_windows: AnimateDiff windows run (0 without smoothing).
        seconds: wall time of the whole clip (frames made, smoothed and encoded).
    """

    path: Path
    gif: Optional[Path]
    frames: int
    width: int
    height: int
    fps: float
    smoothing_windows: int = 0
    seconds: float = 0.0


def write_clip(frames: Iterable[np.ndarray], path: str | os.PathLike, width: int, height: int, *,
               fps: float = 24.0, gif: Optional[str | os.PathLike] = None, gif_max_side: int = GIF_MAX_SIDE,
               crf: int = DEFAULT_CRF, smoother: Optional[Any] = None) -> ClipResult:
    """Encode frames as they come into an MP4 (and a GIF), optionally through a temporal smoother.

    Both files are opened (their temporary files made) before the first frame is asked for, so a
    bad destination fails before any rendering; both appear only when the clip is complete.

    Args:
        frames: [H, W, 3] float32 linear (or uint8 sRGB) frames of ``width`` x ``height``, consumed lazily.
        path: the ``.mp4`` file. gif: an optional ``.gif`` file.
        width, height: frame size in pixels (even).
        fps: frames per second. gif_max_side: longest GIF side in pixels (0: full size). crf: x264 quality.
        smoother: a :class:`~anchorstage.temporal.TemporalSmoother` (``push`` / ``flush``), or None.

    Returns:
        The :class:`ClipResult`.

    Raises:
        InputError: odd size, bad fps, no frames, a frame of another size.
        OutputError: a file cannot be written. MissingDependencyError: PyAV missing.
    """
    import time

    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        mp4 = stack.enter_context(Mp4Writer(path, width, height, fps=fps, crf=crf))
        gw = stack.enter_context(GifWriter(gif, fps=fps, max_side=gif_max_side)) if gif is not None else None

        def emit(done: Iterable[np.ndarray]) -> None:
            for f in done:
                mp4.write(f)
                if gw is not None:
                    gw.write(f)

        for frame in frames:
            emit(smoother.push(frame) if smoother is not None else [frame])
        if smoother is not None:
            emit(smoother.flush())
        count = mp4.frames
    return ClipResult(Path(path), None if gif is None else Path(gif), count, int(width), int(height), float(mp4.fps),
                      getattr(smoother, "windows", 0), time.perf_counter() - t0)


def frames_of(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video file's frames as [H, W, 3] uint8 sRGB, one at a time (for checks and tools)."""
    av = _import_av()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
