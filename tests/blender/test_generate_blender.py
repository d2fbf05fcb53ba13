# SPDX-License-Identifier: GPL-3.0-or-later
"""Generation in real Blender with tiny models loaded through ``from_pretrained``: the Generate node after
the default tree's Witness Refresh, run off the UI thread with progress per diffusion step while the main
thread stays free, applied on the main thread (image, compositor output), cancelled with its message on the
node, run in line by Execute and by the blocking operator, and the remote-worker mode: the same frame
from a worker on loopback (urllib client, progress from /status), a clear error when no worker answers."""

import importlib
import socket
import threading
import time

import numpy as np
import pytest

import bpy
from blender_support import ADDON_MODULE
from gt_fixture import FIXTURE_DIR, load_view

pytest.importorskip("diffusers")

V0 = {"image_path": str(FIXTURE_DIR / "v0_rgb.png"), "depth_path": str(FIXTURE_DIR / "v0_depth.npy"),
      "camera_json": str(FIXTURE_DIR / "v0_camera.json")}


def _addon(name):
    return importlib.import_module(f"{ADDON_MODULE}.{name}")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tiny_diffusion import tiny_controlnet_inpaint

    return tiny_controlnet_inpaint(tmp_path_factory.mktemp("tiny_blender"))


@pytest.fixture(scope="module")
def stage(reset_blender, tiny):
    scene = reset_blender()
    assert bpy.ops.anchorstage.new_stage(**V0) == {"FINISHED"}
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.compute, prefs.device = "LOCAL", "CPU"
    prefs.generation_model = tiny["model"]
    prefs.controlnet_depth, prefs.controlnet_normal = tiny["controlnets"]
    prefs.ip_adapter = ""
    # a shot camera of its own: the Splat Object node keeps the witness camera on the photo's pose
    shot = bpy.data.objects.new("Shot", bpy.data.cameras.new("Shot"))
    scene.collection.objects.link(shot)
    _addon("boundary").apply_camera_to_blender(load_view("orbit")["camera"], shot, scene)
    scene.camera = shot
    bpy.context.view_layer.update()
    obj = bpy.data.objects["AnchorStage Splats"]
    {it.region_id: it for it in obj.data.anchorstage_regions}["facade_001"].locked = True
    tree = scene.anchorstage.tree
    refresh = next(n for n in tree.nodes if n.bl_idname == "AnchorStageRefreshNode")
    gen = tree.nodes.new("AnchorStageGenerateNode")
    gen.location = (540, -700)
    tree.links.new(refresh.outputs["refresh"], gen.inputs["refresh"])
    tree.links.new(refresh.outputs["scene"], gen.inputs["scene"])
    gen.prompt, gen.steps, gen.max_side, gen.seed = "a brick wall", 3, 48, 11
    return scene


def _node(scene):
    return next(n for n in scene.anchorstage.tree.nodes if n.bl_idname == "AnchorStageGenerateNode")


def _pixels(name):
    img = bpy.data.images[name]
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(h, w, 4)[::-1, :, :3]  # Blender rows are bottom-up


def test_generate_runs_off_the_main_thread_with_progress_per_step(stage):
    node = _node(stage)
    node.to_compositor = True
    job = _addon("generate").GenerateJob(bpy.context, stage.anchorstage.tree, node.name, force=True)
    polls = 0
    seen = set()
    while not job.done:  # the main thread is free meanwhile: it polls and reads Blender data
        f, msg = job.progress()
        seen.add(msg)
        assert bpy.context.scene.name == stage.name
        polls += 1
        time.sleep(0.01)
    steps = [m for _, m in job.history if m.startswith("diffusion step")]
    assert steps == ["diffusion step 1/3", "diffusion step 2/3", "diffusion step 3/3"], job.history
    assert polls > 3 and any(m.startswith("diffusion") for m in seen)
    ok, message = job.finish()
    assert ok, message
    assert node.as_state == "RAN" and "generated" in node.as_message
    gen = _addon("nodes.runner").node_outputs(stage.anchorstage.tree, node.name)["generation"]
    cond = gen.conditioning
    assert cond.locked.any() and cond.mask.any() and cond.style_prompt == "a brick wall" and cond.seed == 11
    assert np.array_equal(gen.image[cond.locked], cond.image[cond.locked])
    assert np.array_equal(gen.image[~gen.generated], cond.image[~gen.generated])
    # the frame lands in the image (float, linear) and as the compositor's output
    assert tuple(bpy.data.images["AnchorStage Generate"].size) == (320, 180)
    assert np.allclose(_pixels("AnchorStage Generate"), gen.image, atol=1e-6)
    tree = _addon("compositor").compositor_tree(stage)
    img_node = tree.nodes["AnchorStage Generated"]
    assert img_node.image == bpy.data.images["AnchorStage Generate"]
    out_type = "NodeGroupOutput" if bpy.app.version >= (5, 0, 0) else "CompositorNodeComposite"
    out = next(n for n in tree.nodes if n.bl_idname == out_type)
    assert out.inputs[0].links[0].from_node == img_node
    # the same node run in line by Execute: cached (same inputs), then run again: the same pixels (seeded)
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    assert node.as_state == "CACHED"
    runner = _addon("nodes.runner")
    runner.executor_for(stage.anchorstage.tree).clear(node.name)
    assert bpy.ops.anchorstage.execute() == {"FINISHED"}
    assert node.as_state == "RAN"
    again = runner.node_outputs(stage.anchorstage.tree, node.name)["generation"]
    assert again is not gen and np.array_equal(again.image, gen.image)


def test_generate_can_be_cancelled_and_blender_stays_usable(stage):
    node = _node(stage)
    node.steps = 200
    try:
        job = _addon("generate").GenerateJob(bpy.context, stage.anchorstage.tree, node.name, force=True)
        while not any(m.startswith("diffusion step") for _, m in job.history):
            assert not job.done, job.error
            time.sleep(0.01)
        job.cancel()
        assert job.wait(60)
        ok, message = job.finish()
        assert not ok and "cancelled" in message
        assert node.as_state == "ERROR" and "cancelled" in node.as_message
        assert len([m for _, m in job.history if m.startswith("diffusion step")]) < 200
    finally:
        node.steps = 3
    assert bpy.ops.anchorstage.generate(node=node.name) == {"FINISHED"}  # the blocking operator (scripts, -b)
    assert node.as_state in ("RAN", "CACHED")


def test_remote_mode_without_a_worker_says_so_on_the_node(stage):
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    prefs.compute, prefs.worker_url = "REMOTE", f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(RuntimeError, match="Generate: cannot reach the remote worker"):  # the operator's report
            bpy.ops.anchorstage.generate(node=_node(stage).name)
        assert _node(stage).as_state == "ERROR"
        msg = _node(stage).as_message
        assert "cannot reach the remote worker" in msg and str(port) in msg
    finally:
        prefs.compute = "LOCAL"


@pytest.fixture
def worker_url(tiny):
    """A worker on loopback in this process: the RunPod SDK's app behind the guard, served by uvicorn on a thread."""
    pytest.importorskip("runpod")
    import uvicorn

    from anchorstage.diffusion import MemorySettings, model_set
    from anchorstage.remote import handler as h
    from anchorstage.remote.server import Guard, _runpod_app

    h.configure(h.WorkerConfig(models=model_set("sd15", model=tiny["model"], controlnet_depth=tiny["controlnets"][0],
                                                controlnet_normal=tiny["controlnets"][1]),
                               memory=MemorySettings(), device="cpu"))
    app = _runpod_app().rp_app
    app.add_middleware(Guard)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and t.is_alive()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    t.join(10)
    h._CONFIG[0] = None


def test_remote_mode_gives_the_local_frame(stage, worker_url):
    node = _node(stage)
    node.steps = 40  # long enough for a few /status polls (0.5 s apart) to see diffusion steps
    runner = _addon("nodes.runner")
    tree = stage.anchorstage.tree
    local = _addon("generate").GenerateJob(bpy.context, tree, node.name)
    local.wait(120)
    assert local.finish()[0]
    local_gen = runner.node_outputs(tree, node.name)["generation"]
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    prefs.compute, prefs.worker_url = "REMOTE", worker_url
    try:
        job = _addon("generate").GenerateJob(bpy.context, tree, node.name)
        assert not job.cached  # the compute mode is part of the node's parameters
        assert job.wait(120)
        ok, message = job.finish()
        assert ok, message
        assert "on http://127.0.0.1" in node.as_message
        remote_gen = runner.node_outputs(tree, node.name)["generation"]
        assert np.array_equal(remote_gen.image, local_gen.image)
        assert any(m.startswith("diffusion step") for _, m in job.history), job.history  # progress from /status
    finally:
        prefs.compute = "LOCAL"
        node.steps = 3
