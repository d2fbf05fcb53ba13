// SPDX-License-Identifier: GPL-3.0-or-later
//
// AnchorStage job type for Flamenco 3 (https://flamenco.blender.org/).
//
// Copy this file into the Flamenco Manager's `scripts/` folder; the job type appears as
// "AnchorStage Render". Each task renders one chunk of frames through the same entry points as the
// Open Job Description jobs (docs/farm.md):
//
//   engine "cli":     anchorstage export SCENE_DIR --cameras CAMS.json --out OUT --frames A-B --skip-existing
//                     (Flamenco's `exec` command; task type "misc")
//   engine "blender": blender -b FILE.blend --python-exit-code 1 --python-expr <BLENDER_ENTRY>
//                       -- --frames A-B --out OUT --skip-existing
//                     (Flamenco's `blender-render` command; task type "blender")
//
// Both are resumable (frames already complete are kept) and write each frame complete-or-absent,
// so a requeued task only renders what is missing. With "encode_video" on (engine cli), a last
// task turns the frames' proxy_render.png images into an MP4 with Flamenco's `frames-to-video`.

// What `blender --python-expr` runs: find the installed AnchorStage extension and hand it the
// arguments after `--` (kept identical to anchorstage.farm.BLENDER_ENTRY; a test checks).
const BLENDER_ENTRY =
    "import sys, importlib, addon_utils; " +
    "n = [m.__name__ for m in addon_utils.modules(refresh=True) if m.__name__.rsplit('.', 1)[-1] == 'anchorstage']; " +
    "n or sys.exit('AnchorStage farm: error: the AnchorStage extension is not installed in this Blender'); " +
    "addon_utils.check(n[0])[1] or addon_utils.enable(n[0], default_set=True); " +
    "importlib.import_module(n[0] + '.farm').main(sys.argv[sys.argv.index('--') + 1:])";

const JOB_TYPE = {
    label: "AnchorStage Render",
    description: "Render an AnchorStage stage in chunks of frames: a scene folder with the anchorstage CLI, "
        + "or a .blend with the ANCHORSTAGE engine. Resumable: complete frames are kept.",
    settings: [
        { key: "engine", type: "string", choices: ["blender", "cli"], default: "blender", required: true,
          description: "blender: render the .blend in Blender; cli: anchorstage export of a scene folder" },
        { key: "frames", type: "string", required: true,
          eval: "f'{C.scene.frame_start}-{C.scene.frame_end}'",
          description: "Frames to render, e.g. '1-240' or '1-10,20-30'" },
        { key: "chunk_size", type: "int32", default: 10, description: "Frames per task" },
        { key: "output_dir", type: "string", subtype: "dir_path", required: true,
          description: "Folder the frames are written to (shared by all workers)" },
        { key: "device", type: "string", choices: ["auto", "cpu", "cuda"], default: "auto",
          description: "Where the workers compute" },
        // engine "blender": the Flamenco add-on fills in `blendfile` with the submitted file.
        { key: "blendfile", type: "string", subtype: "file_path", visible: "web",
          description: "The .blend to render (engine blender)" },
        // engine "cli":
        { key: "scene_dir", type: "string", subtype: "dir_path",
          description: "AnchorStage scene folder (engine cli)" },
        { key: "cameras", type: "string", subtype: "file_path",
          description: "Camera list JSON, one camera per frame (engine cli)" },
        { key: "preset", type: "string", choices: ["blender", "nuke", "after-effects"], default: "blender",
          description: "Export file layout (engine cli)" },
        { key: "anchorstage_cmd", type: "string", default: "anchorstage", visible: "submission",
          description: "The anchorstage executable on the workers (engine cli)" },
        // Preview video (engine cli: made from the frames' proxy_render.png).
        { key: "encode_video", type: "bool", default: false,
          description: "After all frames, encode an MP4 of the proxy renders (engine cli)" },
        { key: "fps", type: "float", default: 24, eval: "C.scene.render.fps / C.scene.render.fps_base",
          visible: "hidden", description: "Frame rate of the preview video" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    checkSettings(settings);
    const renderTasks = authorRenderTasks(settings);
    for (const task of renderTasks) {
        job.addTask(task);
    }
    if (settings.encode_video) {
        const video = authorVideoTask(settings);
        for (const task of renderTasks) {
            video.addDependency(task);
        }
        job.addTask(video);
    }
}

function checkSettings(settings) {
    if (!Number.isInteger(settings.chunk_size) || settings.chunk_size < 1) {
        throw new Error(`chunk_size must be a whole number of frames, at least 1 (got ${settings.chunk_size})`);
    }
    if (settings.engine === "blender") {
        if (!settings.blendfile) throw new Error("engine blender needs 'blendfile' (the .blend to render)");
        if (settings.encode_video) {
            throw new Error("encode_video needs engine cli: the blender engine writes EXRs only, no proxy images");
        }
    } else if (settings.engine === "cli") {
        if (!settings.scene_dir) throw new Error("engine cli needs 'scene_dir' (an AnchorStage scene folder)");
        if (!settings.cameras) throw new Error("engine cli needs 'cameras' (a camera list JSON)");
    } else {
        throw new Error(`engine must be 'blender' or 'cli' (got '${settings.engine}')`);
    }
}

// frameChunker's chunks are frame lists such as "1-10", "11,12" or "8-10,20"; --frames takes one
// contiguous range "A-B", so a chunk becomes one command per contiguous run.
function contiguousRanges(chunk) {
    const frames = [];
    for (const part of `${chunk}`.split(",")) {
        const m = part.trim().match(/^(-?\d+)(?:(?:-|\.\.)(-?\d+))?$/);
        if (!m) throw new Error(`frame chunk '${chunk}' cannot be read`);
        const first = parseInt(m[1], 10);
        const last = m[2] === undefined ? first : parseInt(m[2], 10);
        for (let f = first; f <= last; f++) frames.push(f);
    }
    frames.sort((a, b) => a - b);
    const runs = [];
    for (const f of frames) {
        const run = runs[runs.length - 1];
        if (run && f === run[1] + 1) run[1] = f;
        else if (!run || f > run[1]) runs.push([f, f]);
    }
    return runs.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`));
}

function chunkCommand(settings, range) {
    const tail = ["--frames", range, "--out", settings.output_dir, "--skip-existing", "--device", settings.device];
    if (settings.engine === "blender") {
        return author.Command("blender-render", {
            exe: "{blender}",
            exeArgs: "{blenderArgs}",
            argsBefore: [],
            blendfile: settings.blendfile,
            args: ["--python-exit-code", "1", "--python-expr", BLENDER_ENTRY, "--"].concat(tail),
        });
    }
    return author.Command("exec", {
        exe: settings.anchorstage_cmd,
        args: ["export", settings.scene_dir, "--cameras", settings.cameras, "--preset", settings.preset].concat(tail),
    });
}

function authorRenderTasks(settings) {
    const tasks = [];
    const taskType = settings.engine === "blender" ? "blender" : "misc";
    for (const chunk of frameChunker(settings.frames, settings.chunk_size)) {
        const task = author.Task(`render-${chunk}`, taskType);
        for (const range of contiguousRanges(chunk)) {
            task.addCommand(chunkCommand(settings, range));
        }
        tasks.push(task);
    }
    return tasks;
}

function authorVideoTask(settings) {
    const stem = path.stem(settings.scene_dir) || "anchorstage";
    const frames = `${settings.frames}`.replace(/[^0-9,-]+/g, "").replace(/,/g, "_");
    const task = author.Task("preview-video", "ffmpeg");
    task.addCommand(author.Command("frames-to-video", {
        exe: "ffmpeg",
        fps: settings.fps,
        inputGlob: path.join(settings.output_dir, "frame_*", "proxy_render.png"),
        outputFile: path.join(settings.output_dir, `${stem}-${frames}.mp4`),
        args: ["-c:v", "h264", "-crf", "20", "-g", "18", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p",
               "-r", `${settings.fps}`, "-y"],
    }));
    return task;
}
