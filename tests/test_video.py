# SPDX-License-Identifier: GPL-3.0-or-later
"""``anchorstage video`` end to end on the CPU: a 24-frame turntable MP4 that decodes back (PyAV) to 24
frames of the right size, H.264 yuv420p, and a GIF; camera-list paths; refreshed, generated (tiny
ControlNet inpainting) and AnimateDiff-smoothed (tiny MotionAdapter + UNet/VAE/CLIP) frames; encoding
streams; bad input is one line and leaves no file behind."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import anchorstage as a
from anchorstage.errors import InputError
from anchorstage.stages import turntable_cameras
from gt_fixture import load_view

av = pytest.importorskip("av")


@functools.lru_cache(maxsize=None)
def _stage():
    v0 = load_view("v0")
    return a.segment_stage(a.reconstruct(v0["image_linear"], v0["depth_m"], v0["camera"], device="cpu"))


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return a.save_scene(_stage(), tmp_path_factory.mktemp("video") / "scene")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("diffusers")
    from tiny_diffusion import tiny_animatediff, tiny_controlnet_inpaint

    root = tmp_path_factory.mktemp("tiny_video")
    return {"sd15": tiny_controlnet_inpaint(root / "sd15"), "animatediff": tiny_animatediff(root / "ad")}


def _run(capsys, *args):
    from anchorstage.cli import main

    code = main(["video", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _decode(path):
    from anchorstage.video import frames_of

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        info = (s.codec_context.name, s.codec_context.pix_fmt, float(s.average_rate))
    return info, list(frames_of(path))  # the library's own decoder, exercised here


def _gif_frames(path):
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def _luma_error(decoded, linear):
    """Mean absolute difference of Rec.709 luma, 8-bit steps (yuv420p halves the chroma, not the luma)."""
    from anchorstage.image_io import to_uint8_srgb

    w = np.array([0.2126, 0.7152, 0.0722])
    return float(np.abs(decoded.astype(float) @ w - to_uint8_srgb(linear).astype(float) @ w).mean())


def _no_leftovers(folder):
    assert not [p for p in os.listdir(folder) if "tmp" in p], os.listdir(folder)


def test_turntable_video_is_24_h264_frames_of_the_right_size_and_a_gif(tmp_path, scene_dir, capsys):
    code, out, err = _run(capsys, scene_dir, "--path", "turntable", "--frames", "24", "--fps", "24", "--out",
                          tmp_path / "clip.mp4", "--gif", tmp_path / "clip.gif", "--resolution", "96x54",
                          "--sweep-deg", "30", "--centre", "0,8,1", "--device", "cpu")
    assert code == 0, err
    assert "24 frames 96x54" in out
    (codec, pix_fmt, fps), frames = _decode(tmp_path / "clip.mp4")
    assert (codec, pix_fmt, fps) == ("h264", "yuv420p", 24.0)
    assert len(frames) == 24 and all(f.shape == (54, 96, 3) for f in frames)
    # the camera turns: frames differ, and they show the stage (not black)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 2 and frames[0].mean() > 20
    # the first frame is the render from the first turntable camera (up to H.264's loss)
    cams = turntable_cameras(_stage(), 24, centre=(0, 8, 1), sweep_deg=30, resolution=(96, 54))
    ref = a.render_frame(_stage(), cams[0], ["color"], device="cpu").passes["color"]
    assert _luma_error(frames[0], ref) < 2.5
    gif = _gif_frames(tmp_path / "clip.gif")
    assert len(gif) == 24 and gif[0].shape == (54, 96, 3)
    _no_leftovers(tmp_path)


def test_a_camera_list_path_and_its_first_n(tmp_path, scene_dir, capsys):
    from anchorstage.export import save_camera_list

    cam = _stage().camera.with_resolution(160, 90)
    save_camera_list(tmp_path / "cams.json", a.camera_path(cam, "dolly", 0.0, 1.0, 5))
    code, _, err = _run(capsys, scene_dir, "--path", tmp_path / "cams.json", "--out", tmp_path / "all.mp4",
                        "--fps", "12", "--device", "cpu")
    assert code == 0, err
    (_, _, fps), frames = _decode(tmp_path / "all.mp4")
    assert fps == 12.0 and len(frames) == 5 and frames[0].shape == (90, 160, 3)
    code, _, err = _run(capsys, scene_dir, "--path", tmp_path / "cams.json", "--frames", "2", "--out",
                        tmp_path / "two.mp4", "--device", "cpu")
    assert code == 0, err
    assert len(_decode(tmp_path / "two.mp4")[1]) == 2


def test_refreshed_frames(tmp_path, scene_dir, capsys):
    code, out, err = _run(capsys, scene_dir, "--frames", "3", "--refresh", "--sweep-deg", "20", "--resolution",
                          "96x54", "--out", tmp_path / "r.mp4", "--device", "cpu")
    assert code == 0, err
    assert "refresh frames" in out
    _, frames = _decode(tmp_path / "r.mp4")
    assert len(frames) == 3
    # the refreshed witness fills what the render leaves void: no black holes where the raw render has them
    cams = turntable_cameras(_stage(), 3, sweep_deg=20, resolution=(96, 54))
    res = a.refresh(_stage(), cams[0], device="cpu")
    assert _luma_error(frames[0], res.witness) < 2.5


def test_generated_frames_with_tiny_models(tmp_path, scene_dir, tiny, capsys):
    t = tiny["sd15"]
    code, out, err = _run(capsys, scene_dir, "--frames", "2", "--generate", "--sweep-deg", "30", "--resolution",
                          "96x54", "--out", tmp_path / "g.mp4", "--gif", tmp_path / "g.gif", "--model", t["model"],
                          "--controlnet-depth", t["controlnets"][0], "--controlnet-normal", t["controlnets"][1],
                          "--steps", "2", "--max-side", "48", "--prompt", "a brick wall", "--device", "cpu")
    assert code == 0, err
    assert "generate frames" in out
    _, frames = _decode(tmp_path / "g.mp4")
    assert len(frames) == 2 and len(_gif_frames(tmp_path / "g.gif")) == 2


def test_animatediff_smoothing_with_tiny_models(tmp_path, scene_dir, tiny, capsys):
    t = tiny["animatediff"]
    args = [scene_dir, "--frames", "5", "--sweep-deg", "30", "--resolution", "64x36", "--device", "cpu"]
    code, _, err = _run(capsys, *args, "--out", tmp_path / "raw.mp4")
    assert code == 0, err
    code, out, err = _run(capsys, *args, "--out", tmp_path / "s.mp4", "--gif", tmp_path / "s.gif", "--smooth",
                          "--smooth-model", t["model"], "--motion-adapter", t["motion_adapter"], "--smooth-steps", "2",
                          "--smooth-window", "4", "--smooth-overlap", "2", "--smooth-max-side", "32",
                          "--smooth-strength", "0.6")
    assert code == 0, err
    assert "2 AnimateDiff window(s)" in out
    _, raw = _decode(tmp_path / "raw.mp4")
    _, smooth = _decode(tmp_path / "s.mp4")
    assert len(smooth) == 5 and smooth[0].shape == (36, 64, 3)
    assert np.abs(np.stack(raw).astype(int) - np.stack(smooth).astype(int)).mean() > 1  # the model did act


def test_smoother_windows_cover_every_frame_once(tiny):
    from anchorstage.temporal import SmoothingSettings, TemporalSmoother

    t = tiny["animatediff"]
    rng = np.random.default_rng(0)
    for n, window, overlap, windows in ((1, 4, 2, 1), (4, 4, 2, 1), (5, 4, 2, 2), (9, 4, 1, 3), (8, 4, 0, 2)):
        s = SmoothingSettings(model=t["model"], motion_adapter=t["motion_adapter"], steps=2, window=window,
                              overlap=overlap, max_side=32, strength=0.5)
        sm = TemporalSmoother(s, device="cpu")
        out = []
        for _ in range(n):
            out += sm.push(rng.random((18, 32, 3), dtype=np.float32))
            assert len(sm._inputs) < window  # never more than a window held
        out += sm.flush()
        assert len(out) == n and sm.windows == windows and all(f.shape == (18, 32, 3) for f in out)
    with pytest.raises(InputError, match="no denoising step"):
        SmoothingSettings(model=t["model"], motion_adapter=t["motion_adapter"], steps=1, strength=0.5)


def test_a_cancelled_clip_stops_between_frames_and_leaves_nothing(tmp_path):
    from anchorstage.errors import Cancelled
    from anchorstage.stages import render_video

    cams = turntable_cameras(_stage(), 6, sweep_deg=20, resolution=(64, 36))
    asked = []
    with pytest.raises(Cancelled, match="after 2 of 6 frames"):
        render_video(_stage(), cams, tmp_path / "c.mp4", gif=tmp_path / "c.gif", device="cpu",
                     cancel=lambda: asked.append(1) or len(asked) > 2)
    assert os.listdir(tmp_path) == []


def test_encoding_streams_frame_by_frame(tmp_path, monkeypatch):
    from anchorstage import video

    written = []
    real = video.Mp4Writer.write
    monkeypatch.setattr(video.Mp4Writer, "write", lambda self, f: (written.append(1), real(self, f)))

    def frames():
        for k in range(30):
            assert len(written) == k  # frame k is asked for only after frame k-1 was encoded
            yield np.full((32, 48, 3), k / 30, np.float32)

    res = video.write_clip(frames(), tmp_path / "s.mp4", 48, 32, fps=30)
    assert res.frames == 30 and len(_decode(tmp_path / "s.mp4")[1]) == 30


def test_a_failing_clip_leaves_nothing(tmp_path):
    from anchorstage import video

    def frames():
        yield np.zeros((32, 48, 3), np.float32)
        raise InputError("boom")

    with pytest.raises(InputError, match="boom"):
        video.write_clip(frames(), tmp_path / "x.mp4", 48, 32, gif=tmp_path / "x.gif")
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="no frames"):
        video.write_clip(iter(()), tmp_path / "x.mp4", 48, 32)
    assert os.listdir(tmp_path) == []
    with pytest.raises(InputError, match="frame 1 is 50x32"):
        video.write_clip(iter([np.zeros((32, 50, 3), np.float32)]), tmp_path / "x.mp4", 48, 32)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case,needle", [
    ("missing path", "camera list"), ("bad json", "camera list"), ("frames 0", "--frames"), ("frames -2", "--frames"),
    ("odd size", "odd side"), ("unwritable out", "not a folder"), ("unwritable gif", "not a folder"), ("fps 0", "fps"),
    ("too many frames", "has only 1 cameras"), ("smooth window", "window"),
    ("missing motion adapter", "--motion-adapter, the add-on's preferences or $ANCHORSTAGE_MOTION_ADAPTER"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, scene_dir, capsys, case, needle):
    from anchorstage.camera import save_camera_json

    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "file").write_text("x")
    save_camera_json(tmp_path / "one.json", _stage().camera)
    out = tmp_path / "clip.mp4"
    args = {
        "missing path": ["--path", tmp_path / "nope.json"],
        "bad json": ["--path", tmp_path / "bad.json"],
        "frames 0": ["--frames", "0"],
        "frames -2": ["--frames", "-2"],
        "odd size": ["--frames", "2", "--resolution", "97x54"],
        "unwritable out": ["--frames", "2", "--resolution", "96x54"],
        "unwritable gif": ["--frames", "2", "--resolution", "96x54", "--gif", tmp_path / "file" / "x.gif"],
        "fps 0": ["--frames", "2", "--fps", "0"],
        "too many frames": ["--path", tmp_path / "one.json", "--frames", "3"],
        "smooth window": ["--frames", "2", "--smooth", "--smooth-window", "1"],
        "missing motion adapter": ["--frames", "2", "--resolution", "96x54", "--smooth", "--motion-adapter",
                                   tmp_path / "no_adapter"],
    }[case]
    if case == "unwritable out":
        out = tmp_path / "file" / "clip.mp4"
    code, _, err = _run(capsys, scene_dir, *args, "--out", out, "--device", "cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "clip.mp4").exists()
    _no_leftovers(tmp_path)
