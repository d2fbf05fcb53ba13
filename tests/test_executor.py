# SPDX-License-Identifier: GPL-3.0-or-later
"""The node-graph executor (anchorstage.graph): order, cache, errors, progress, services."""

import pytest

import anchorstage.graph as ex
from anchorstage import InputError


class Counter:
    def __init__(self):
        self.calls = []

    def op(self, out_name, fn):
        def run(params, inputs, ctx):
            self.calls.append(ctx.key)
            ctx.report(0.5, "half")
            return {out_name: fn(params, inputs)}
        return run


def chain(counter, cam_x=0.0):
    """image -> depth -> recon -> render(camera), camera is separate."""
    J, L = ex.Job, ex.Link
    return {
        "render": J("render", "Render", counter.op("passes", lambda p, i: (i["scene"], i["camera"])),
                    inputs={"scene": L("recon", "scene"), "camera": L("camera", "camera")}, required=("scene", "camera")),
        "recon": J("recon", "Recon", counter.op("scene", lambda p, i: ("scene", i["image"], i["depth"])),
                   params={"max": 10}, inputs={"image": L("image", "image"), "depth": L("depth", "depth")}),
        "depth": J("depth", "Depth", counter.op("depth", lambda p, i: i["image"] + "-d"), inputs={"image": L("image", "image")}),
        "image": J("image", "Image", counter.op("image", lambda p, i: p["path"]), params={"path": "a.png"}),
        "camera": J("camera", "Camera", counter.op("camera", lambda p, i: p["x"]), params={"x": cam_x}),
    }


def test_topological_order_and_results():
    c = Counter()
    jobs = chain(c)
    order = ex.topological_order(jobs)
    for a, b in [("image", "depth"), ("depth", "recon"), ("image", "recon"), ("recon", "render"), ("camera", "render")]:
        assert order.index(a) < order.index(b)
    rep = ex.Executor().run(jobs)
    assert rep.ok and sorted(rep.ran) == sorted(jobs)
    assert rep.outputs["render"]["passes"] == (("scene", "a.png", "a.png-d"), 0.0)


def test_camera_move_reuses_reconstruction():
    c = Counter()
    e = ex.Executor()
    e.run(chain(c, cam_x=0.0))
    c.calls.clear()
    rep = e.run(chain(c, cam_x=0.5))
    assert sorted(c.calls) == ["camera", "render"]
    assert sorted(rep.cached) == ["depth", "image", "recon"]
    assert rep.outputs["render"]["passes"][1] == 0.5
    c.calls.clear()
    rep = e.run(chain(c, cam_x=0.5))
    assert c.calls == [] and len(rep.cached) == 5


def test_param_change_invalidates_downstream_only():
    c = Counter()
    e = ex.Executor()
    e.run(chain(c))
    c.calls.clear()
    jobs = chain(c)
    jobs["depth"].params = {"model": "other"}
    e.run(jobs)
    assert sorted(c.calls) == ["depth", "recon", "render"]


def test_failing_node_is_marked_and_downstream_blocked():
    c = Counter()
    jobs = chain(c)

    def bad(params, inputs, ctx):
        raise InputError("depth file 'x.npy' does not exist")

    jobs["depth"].run = bad
    e = ex.Executor()
    rep = e.run(jobs)
    assert rep.errors == {"depth": "depth file 'x.npy' does not exist"}
    assert set(rep.blocked) == {"recon", "render"}
    assert "failed upstream" in rep.blocked["recon"]
    assert rep.status("camera") == "ran" and rep.status("depth") == "error" and rep.status("render") == "blocked"
    assert not rep.ok
    # fixed: the good upstream results are reused, the failed one runs again.
    c.calls.clear()
    rep = e.run(chain(c))
    assert rep.ok and sorted(c.calls) == ["depth", "recon", "render"]


def test_unexpected_exception_names_its_type_and_logs_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORSTAGE_LOG_DIR", str(tmp_path))
    jobs = {"a": ex.Job("a", "A", lambda p, i, ctx: 1 / 0)}
    rep = ex.Executor().run(jobs)
    msg = rep.errors["a"]
    assert msg.startswith("internal error (a bug) in node 'a': ZeroDivisionError: division by zero; traceback in ")
    log = msg.rsplit("traceback in ", 1)[1]
    assert log.startswith(str(tmp_path)) and "Traceback" in open(log).read()


def test_non_dict_return_is_an_error():
    jobs = {"a": ex.Job("a", "A", lambda p, i, ctx: 42)}
    rep = ex.Executor().run(jobs)
    assert "returned int" in rep.errors["a"]


def test_unconnected_required_input_blocks():
    jobs = {"r": ex.Job("r", "R", lambda p, i, ctx: {"x": 1}, required=("scene",), label="Splat Render")}
    rep = ex.Executor().run(jobs)
    assert rep.blocked["r"] == "input 'scene' is not connected"


def test_cycle_is_reported_before_running():
    c = Counter()
    jobs = {
        "a": ex.Job("a", "A", c.op("x", lambda p, i: 1), inputs={"i": ex.Link("b", "x")}, label="Node A"),
        "b": ex.Job("b", "B", c.op("x", lambda p, i: 1), inputs={"i": ex.Link("a", "x")}, label="Node B"),
    }
    with pytest.raises(ex.GraphError, match="cycle.*Node A"):
        ex.Executor().run(jobs)
    assert c.calls == []


def test_targets_limit_the_run():
    c = Counter()
    rep = ex.Executor().run(chain(c), targets=["depth"])
    assert sorted(c.calls) == ["depth", "image"]
    assert rep.order == ["depth", "image"] or set(rep.order) == {"image", "depth"}


def test_volatile_job_always_runs_but_sees_stable_hash():
    seen = []

    def out(params, inputs, ctx):
        seen.append(ctx.input_hash)
        return {}

    jobs = {"o": ex.Job("o", "Out", out, params={"name": "Splats"}, volatile=True)}
    e = ex.Executor()
    e.run(jobs)
    e.run(jobs)
    assert len(seen) == 2 and seen[0] == seen[1]


def test_progress_is_monotonic_and_complete():
    c = Counter()
    seen = []
    ex.Executor().run(chain(c), progress=lambda f, m: seen.append((f, m)))
    fr = [f for f, _ in seen]
    assert fr[0] == 0.0 and fr[-1] == 1.0
    assert all(b >= a - 1e-12 for a, b in zip(fr, fr[1:]))
    assert any("half" in m for _, m in seen)


def test_fingerprint_is_canonical():
    assert ex.fingerprint({"a": 1, "b": [1.0, 2]}) == ex.fingerprint({"b": [1.0, 2], "a": 1})
    assert ex.fingerprint({"a": 1}) != ex.fingerprint({"a": 2})


def test_notes_reach_the_report_even_on_failure():
    def run(params, inputs, ctx):
        ctx.note("depth resampled from 80x45")
        raise InputError("bad")

    rep = ex.Executor().run({"a": ex.Job("a", "A", run)})
    assert rep.notes["a"] == ["depth resampled from 80x45"] and rep.errors["a"] == "bad"


def test_services_reach_every_job():
    seen = []
    services = object()
    jobs = {"a": ex.Job("a", "A", lambda p, i, ctx: seen.append(ctx.services) or {"x": 1}),
            "b": ex.Job("b", "B", lambda p, i, ctx: seen.append(ctx.services) or {}, inputs={"x": ex.Link("a", "x")})}
    assert ex.Executor().run(jobs, services=services).ok
    assert seen == [services, services]
