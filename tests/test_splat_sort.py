# SPDX-License-Identifier: GPL-3.0-or-later
"""Depth order for back-to-front viewers: the exact reverse of the renderer's front-to-back order,
the re-sort thresholds, and the background sorter that never makes its caller wait."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from anchorstage import splat_sort
from anchorstage.projection import depth_order
from anchorstage.splat_sort import BackgroundSorter, ResortPolicy, ViewPose, back_to_front, sort_for_view, view_depths


@pytest.fixture(params=["numba", "numpy"])
def sort_kernel(request, monkeypatch):
    monkeypatch.setenv("ANCHORSTAGE_NUMBA", "1" if request.param == "numba" else "0")
    if request.param == "numba" and splat_sort._kernels() is None:
        pytest.skip("numba is not installed")
    return request.param


def test_order_is_the_renderers_order_reversed(sort_kernel):
    rng = np.random.default_rng(0)
    d = rng.uniform(0.1, 50.0, 5000).astype(np.float32)
    d[100:200] = d[100]  # ties keep input order front to back, so come in descending index here
    d[300:310] = 7.0
    order = back_to_front(d)
    expect = depth_order(torch.from_numpy(d)).numpy()[::-1]
    np.testing.assert_array_equal(order, expect)
    assert order.dtype == np.int32


def test_negative_and_mixed_depths_sort_as_floats(sort_kernel):
    d = np.array([3.0, -1.0, 0.0, -0.0, -7.5, 1e30, -1e30, 2.5], np.float32)
    order = back_to_front(d)
    assert list(d[order]) == sorted(d, reverse=True)
    np.testing.assert_array_equal(order, np.argsort(d, kind="stable")[::-1])


def test_large_random_orders_agree_with_numpy(sort_kernel):
    d = np.random.default_rng(1).normal(5.0, 3.0, 200_003).astype(np.float32)
    np.testing.assert_array_equal(back_to_front(d), np.argsort(d, kind="stable")[::-1])


def test_view_depths_and_pose_follow_the_camera():
    from anchorstage import look_at

    world_from_cam = look_at((1.0, -2.0, 0.5), (1.0, 3.0, 0.5))
    cam_from_world = np.linalg.inv(world_from_cam)
    means = np.array([[1.0, 3.0, 0.5], [1.0, -1.0, 0.5], [1.0, -4.0, 0.5]], np.float32)
    np.testing.assert_allclose(view_depths(means, cam_from_world), [5.0, 1.0, -2.0], atol=1e-5)
    pose = ViewPose.from_cam_from_object(cam_from_world)
    np.testing.assert_allclose(pose.eye, (1.0, -2.0, 0.5), atol=1e-9)
    np.testing.assert_allclose(pose.forward, (0.0, 1.0, 0.0), atol=1e-9)
    res = sort_for_view(means, cam_from_world, tag="gen1")
    assert list(res.order) == [0, 1, 2] and res.tag == "gen1"
    assert res.median_depth == pytest.approx(3.0) and res.depth_range[0] < res.depth_range[1] <= 5.0


def test_resort_policy_thresholds():
    p = ResortPolicy(angle_deg=1.0, distance=0.01)
    a = ViewPose(eye=(0.0, 0.0, 0.0), forward=(0.0, 1.0, 0.0))
    turn = np.radians(0.9)
    assert not p.needs_resort(a, ViewPose(eye=(0, 0, 0), forward=(np.sin(turn), np.cos(turn), 0.0)), 10.0)
    turn = np.radians(1.2)
    assert p.needs_resort(a, ViewPose(eye=(0, 0, 0), forward=(np.sin(turn), np.cos(turn), 0.0)), 10.0)
    assert not p.needs_resort(a, ViewPose(eye=(0.09, 0, 0), forward=(0, 1, 0)), 10.0)  # 0.9 % of 10 m
    assert p.needs_resort(a, ViewPose(eye=(0.11, 0, 0), forward=(0, 1, 0)), 10.0)
    assert ResortPolicy(0.0, 0.0).needs_resort(a, ViewPose(eye=(1e-3, 0, 0), forward=(0, 1, 0)), 10.0)


def test_background_sorter_never_blocks_and_delivers_the_newest(monkeypatch):
    gate = threading.Event()
    real = splat_sort.sort_for_view

    def slow(means, m, tag):
        gate.wait(10.0)
        return real(means, m, tag)

    monkeypatch.setattr(splat_sort, "sort_for_view", slow)
    s = BackgroundSorter()
    means = np.random.default_rng(2).normal(size=(1000, 3)).astype(np.float32) + [0, 0, 5]
    t0 = time.perf_counter()
    s.request("obj", means, np.eye(4), tag=1)
    s.request("obj", means, np.diag([1.0, 1.0, -1.0, 1.0]), tag=2)  # replaces 1 if it has not started
    assert time.perf_counter() - t0 < 0.1  # the caller never waits for a sort
    assert s.busy("obj") and s.take("obj") is None
    gate.set()
    res = s.wait("obj", timeout=10.0)
    if res is not None and res.tag == 1:  # the first had started: the second still follows
        res = s.wait("obj", timeout=10.0) or s.take("obj")
    assert res is not None and res.tag == 2
    assert list(res.order) == list(back_to_front(view_depths(means, np.diag([1.0, 1.0, -1.0, 1.0]))))
    assert not s.busy("obj") and not s.has_result("obj")
    s.close()


def test_background_sorter_reports_failures_and_keeps_working():
    s = BackgroundSorter()
    s.request("bad", np.zeros((3, 2), np.float32), np.eye(4))  # wrong shape: the sort raises
    assert s.wait("bad", timeout=10.0) is None
    assert "ValueError" in s.error("bad") and s.error("bad") == ""
    s.request("good", np.zeros((3, 3), np.float32), np.eye(4), tag="t")
    assert s.wait("good", timeout=10.0).tag == "t"
    s.close()


def test_affine_inverse_matches_the_general_inverse():
    from anchorstage.splat_sort import affine_inverse

    rng = np.random.default_rng(3)
    m = np.eye(4)
    m[:3, :3] = rng.normal(size=(3, 3))
    m[:3, 3] = rng.normal(size=3)
    np.testing.assert_allclose(affine_inverse(m), np.linalg.inv(m), atol=1e-10)


def test_a_forgotten_key_drops_its_running_sort(monkeypatch):
    gate = threading.Event()
    real = splat_sort.sort_for_view
    monkeypatch.setattr(splat_sort, "sort_for_view", lambda *a: (gate.wait(10.0), real(*a))[1])
    s = BackgroundSorter()
    s.request("k", np.zeros((5, 3), np.float32), np.eye(4))
    deadline = time.monotonic() + 10.0
    while s._running != "k" and time.monotonic() < deadline:
        time.sleep(0.005)
    s.forget("k")
    gate.set()
    assert s.wait("k", timeout=10.0) is None and not s.has_result("k")
    s.close()
