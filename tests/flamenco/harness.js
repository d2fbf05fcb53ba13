// SPDX-License-Identifier: GPL-3.0-or-later
//
// A small stand-in for Flamenco Manager's job compiler, to test job-type scripts under Node.js.
// Flamenco (Go, not on any package registry here) runs a job type's JavaScript in an embedded VM
// with these globals: `author.Task(name, type)`, `author.Command(type, parameters)`,
// `frameChunker(frames, chunkSize)`, `path` (join, dirname, basename, stem), `print`, `alert`.
// This harness provides the same calls with Flamenco's semantics (frameChunker as in its
// js_globals.go: "A-B" for runs of 3+, "A,B" for two frames, "A" for one; chunks in frame order),
// applies setting defaults and refuses missing required settings, then calls compileJob(job) and
// returns the job as plain data (tasks with their commands, dependencies by task name).

"use strict";

const fs = require("node:fs");
const nodePath = require("node:path");
const vm = require("node:vm");

function explodeFrames(range) {
    const text = `${range}`.trim().replaceAll("..", "-");
    if (!text) throw new Error(`invalid range "${range}": empty range`);
    const frames = new Set();
    for (const part of text.split(",")) {
        const m = part.trim().match(/^(-?\d+)(?:-(-?\d+))?$/);
        if (!m) throw new Error(`invalid range "${range}": ${part}`);
        const first = parseInt(m[1], 10);
        const last = m[2] === undefined ? first : parseInt(m[2], 10);
        for (let f = first; f <= last; f++) frames.add(f);
    }
    if (!frames.size) throw new Error(`invalid range "${range}": empty range`);
    return [...frames].sort((a, b) => a - b);
}

function mergeFrames(frames) {
    const parts = [];
    let start = frames[0];
    let prev = frames[0];
    const flush = (a, b) => {
        if (a === b) parts.push(`${a}`);
        else if (a + 1 === b) parts.push(`${a}`, `${b}`);
        else parts.push(`${a}-${b}`);
    };
    for (const f of frames.slice(1)) {
        if (f > prev + 1) {
            flush(start, prev);
            start = f;
        }
        prev = f;
    }
    flush(start, prev);
    return parts.join(",");
}

function frameChunker(range, chunkSize) {
    if (!(chunkSize >= 1)) throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    const frames = explodeFrames(range);
    const chunks = [];
    for (let i = 0; i < frames.length; i += chunkSize) chunks.push(mergeFrames(frames.slice(i, i + chunkSize)));
    return chunks;
}

function makeTask(name, type) {
    return {
        name, type, priority: 50, commands: [], dependencies: [],
        addCommand(cmd) { this.commands.push(cmd); },
        addDependency(task) { this.dependencies.push(task); },
    };
}

const author = {
    Task: (name, type) => makeTask(name, type),
    Command: (type, parameters) => ({ type, parameters }),
};

const flamencoPath = {
    join: (...parts) => nodePath.posix.join(...parts),
    dirname: (p) => nodePath.posix.dirname(p),
    basename: (p) => nodePath.posix.basename(p),
    stem: (p) => nodePath.posix.parse(p).name,
};

function loadJobType(file) {
    const log = [];
    const context = vm.createContext({
        author, frameChunker, path: flamencoPath,
        print: (...a) => log.push(["print", a.join(" ")]),
        alert: (...a) => log.push(["alert", a.join(" ")]),
    });
    const source = fs.readFileSync(file, "utf8");
    // Top-level const/function declarations of a script are not context properties: read them out.
    const exported = vm.runInContext(`${source}\n;({ JOB_TYPE, compileJob });`, context, { filename: file });
    return { ...exported, log, context };
}

function compile(jobType, settings, name = "test job") {
    const full = {};
    for (const s of jobType.JOB_TYPE.settings) {
        if (settings[s.key] !== undefined) full[s.key] = settings[s.key];
        else if (s.default !== undefined) full[s.key] = s.default;
        else if (s.required) throw new Error(`setting '${s.key}' is required`);
    }
    for (const key of Object.keys(settings)) {
        if (!(key in full)) full[key] = settings[key];  // Flamenco keeps unknown settings too
    }
    const job = { name, created: new Date(0), settings: full, tasks: [], addTask(t) { this.tasks.push(t); } };
    jobType.compileJob(job);
    // Plain data of this realm (the script's arrays come from the VM's own Array), as the manager stores it.
    return JSON.parse(JSON.stringify(toPlain(job)));
}

// A JSON view of a compiled job: dependencies by task name.
function toPlain(job) {
    return {
        name: job.name,
        settings: job.settings,
        tasks: job.tasks.map((t) => ({
            name: t.name, type: t.type, commands: t.commands,
            dependencies: t.dependencies.map((d) => d.name),
        })),
    };
}

module.exports = { loadJobType, compile, frameChunker };

// `node harness.js JOB_TYPE.js SETTINGS.json` prints the compiled job as JSON (exit 1 + message on error).
if (require.main === module) {
    try {
        const jobType = loadJobType(process.argv[2]);
        const settings = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));
        process.stdout.write(JSON.stringify(compile(jobType, settings), null, 1) + "\n");
    } catch (e) {
        process.stderr.write(`${e.message}\n`);
        process.exit(1);
    }
}
