// SPDX-License-Identifier: GPL-3.0-or-later
//
// The AnchorStage Flamenco job type (farm/flamenco/anchorstage.js), compiled by the harness that
// stands in for Flamenco Manager's job compiler. Run: node --test tests/flamenco/
// (tests/test_flamenco.py runs it from pytest).

"use strict";

const assert = require("node:assert/strict");
const path = require("node:path");
const test = require("node:test");

const { loadJobType, compile, frameChunker } = require("./harness.js");

const JOB_FILE = path.join(__dirname, "..", "..", "farm", "flamenco", "anchorstage.js");

const CLI = {
    engine: "cli", frames: "1-25", chunk_size: 10, output_dir: "/farm/out", scene_dir: "/farm/stage",
    cameras: "/farm/cams.json",
};
const BLENDER = { engine: "blender", frames: "1-25", chunk_size: 10, output_dir: "/farm/out", blendfile: "/farm/shot.blend" };

function commands(task) {
    return task.commands;
}

function argAfter(args, flag) {
    return args[args.indexOf(flag) + 1];
}

test("the job type declares what Flamenco needs", () => {
    const { JOB_TYPE, compileJob } = loadJobType(JOB_FILE);
    assert.equal(typeof compileJob, "function");
    assert.equal(JOB_TYPE.label, "AnchorStage Render");
    const keys = JOB_TYPE.settings.map((s) => s.key);
    assert.equal(new Set(keys).size, keys.length, "setting keys repeat");
    for (const s of JOB_TYPE.settings) {
        assert.ok(["string", "int32", "float", "bool"].includes(s.type), `${s.key}: type ${s.type}`);
        if (s.choices) assert.ok(s.choices.includes(s.default), `${s.key}: default not among its choices`);
    }
    for (const k of ["frames", "chunk_size", "output_dir", "blendfile", "scene_dir", "cameras", "engine"]) {
        assert.ok(keys.includes(k), k);
    }
});

test("cli engine: one exec task per chunk running anchorstage export --skip-existing", () => {
    const job = compile(loadJobType(JOB_FILE), CLI);
    assert.deepEqual(job.tasks.map((t) => t.name), ["render-1-10", "render-11-20", "render-21-25"]);
    for (const task of job.tasks) {
        assert.equal(task.type, "misc");
        assert.equal(commands(task).length, 1);
    }
    const cmd = job.tasks[2].commands[0];
    assert.equal(cmd.type, "exec");
    assert.equal(cmd.parameters.exe, "anchorstage");
    assert.deepEqual(cmd.parameters.args, [
        "export", "/farm/stage", "--cameras", "/farm/cams.json", "--preset", "blender",
        "--frames", "21-25", "--out", "/farm/out", "--skip-existing", "--device", "auto",
    ]);
});

test("blender engine: blender-render tasks through the add-on's batch entry", () => {
    const job = compile(loadJobType(JOB_FILE), { ...BLENDER, device: "cpu" });
    assert.equal(job.tasks.length, 3);
    const cmd = job.tasks[0].commands[0];
    assert.equal(job.tasks[0].type, "blender");
    assert.equal(cmd.type, "blender-render");
    assert.equal(cmd.parameters.exe, "{blender}");
    assert.equal(cmd.parameters.exeArgs, "{blenderArgs}");
    assert.equal(cmd.parameters.blendfile, "/farm/shot.blend");
    const args = cmd.parameters.args;
    assert.deepEqual(args.slice(0, 3), ["--python-exit-code", "1", "--python-expr"]);
    assert.equal(args[4], "--");
    assert.deepEqual(args.slice(5), ["--frames", "1-10", "--out", "/farm/out", "--skip-existing", "--device", "cpu"]);
    // The same one-line entry as the OpenJD jobs (anchorstage.farm.BLENDER_ENTRY), when pytest passes it.
    if (process.env.ANCHORSTAGE_BLENDER_ENTRY) assert.equal(args[3], process.env.ANCHORSTAGE_BLENDER_ENTRY);
});

test("chunks that are not one range become one command per contiguous run", () => {
    // Flamenco writes a two-frame chunk as "A,B", and a chunk can span a gap in the frame list.
    assert.deepEqual(frameChunker("1-3,7,9-10", 3), ["1-3", "7,9,10"]);
    assert.deepEqual(frameChunker("5-6", 2), ["5,6"]);
    const job = compile(loadJobType(JOB_FILE), { ...CLI, frames: "1-3,7,9-10", chunk_size: 3 });
    assert.deepEqual(job.tasks.map((t) => t.commands.map((c) => argAfter(c.parameters.args, "--frames"))),
        [["1-3"], ["7", "9-10"]]);
    const two = compile(loadJobType(JOB_FILE), { ...BLENDER, frames: "5-6", chunk_size: 2 });
    assert.deepEqual(two.tasks[0].commands.map((c) => argAfter(c.parameters.args, "--frames")), ["5-6"]);
});

test("encode_video adds an ffmpeg task after every render task (cli engine)", () => {
    const job = compile(loadJobType(JOB_FILE), { ...CLI, encode_video: true, fps: 25 });
    const video = job.tasks[job.tasks.length - 1];
    assert.equal(video.name, "preview-video");
    assert.equal(video.type, "ffmpeg");
    assert.deepEqual(video.dependencies, ["render-1-10", "render-11-20", "render-21-25"]);
    const p = video.commands[0].parameters;
    assert.equal(video.commands[0].type, "frames-to-video");
    assert.equal(p.inputGlob, "/farm/out/frame_*/proxy_render.png");
    assert.equal(p.outputFile, "/farm/out/stage-1-25.mp4");
    assert.equal(p.fps, 25);
    assert.equal(compile(loadJobType(JOB_FILE), CLI).tasks.length, 3, "no video task unless asked");
});

test("bad settings fail with a message naming the setting", () => {
    const jt = loadJobType(JOB_FILE);
    assert.throws(() => compile(jt, { ...CLI, chunk_size: 0 }), /chunk_size/);
    assert.throws(() => compile(jt, { ...CLI, cameras: "" }), /cameras/);
    assert.throws(() => compile(jt, { ...BLENDER, blendfile: "" }), /blendfile/);
    assert.throws(() => compile(jt, { ...BLENDER, encode_video: true }), /encode_video needs engine cli/);
    assert.throws(() => compile(jt, { ...CLI, engine: "cycles" }), /engine/);
    assert.throws(() => compile(jt, { ...CLI, frames: "1-x" }), /invalid range/);
    const { output_dir, ...noOutput } = CLI;
    assert.throws(() => compile(jt, noOutput), /output_dir/);
});
