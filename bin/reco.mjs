#!/usr/bin/env node
// Entry point of the `reco` CLI (and of `npm start`). It runs the compiled JavaScript in dist/
// (bin/build.mjs, run at install and by `npm start`) when dist/ is not older than the sources, so
// a start loads modules without compiling them: tsx compiling every module at every start was
// ~0.6–1.2 s of a restart (bench step 6). Otherwise (a source edited since the last build) it
// runs the TypeScript sources through tsx, as before: never stale code.
//
// First, node's flags and malloc's settings (bin/node-runtime.mjs) must be in effect from the
// process's start: if they are not, node runs this same command again with them, and this
// process only waits for it.
import { isStale } from "./build.mjs";
import { relaunchWithRuntime } from "./node-runtime.mjs";

if (relaunchWithRuntime()) {
  // The relaunched process does the work; this one mirrors its end.
} else if (!isStale()) {
  // The app's roles go straight to their entry (one bundled module: bin/build.mjs), as the CLI's
  // `start` would with the same arguments: the CLI's other commands import their own modules
  // (~0.3 s of CPU at every start before the app's first line).
  const role = process.argv[2];
  if (role === "start" || role === "worker" || role === "gateway") {
    const { main } = await import("../dist/bin/main.js");
    await main(process.argv.slice(3), role);
  } else await import("../dist/bin/cli.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./cli.ts");
}
