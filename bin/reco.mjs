#!/usr/bin/env node
// Entry point of the `reco` CLI (and of `npm start`). It runs the compiled JavaScript in dist/
// (bin/build.mjs, run at install and by `npm start`) when dist/ is not older than the sources, so
// a start loads modules without compiling them: tsx compiling every module at every start was
// ~0.6–1.2 s of a restart (bench step 6). Otherwise (a source edited since the last build) it
// runs the TypeScript sources through tsx, as before: never stale code.
import { isStale } from "./build.mjs";

if (!isStale()) {
  await import("../dist/bin/cli.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./cli.ts");
}
