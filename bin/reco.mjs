#!/usr/bin/env node
// Entry point of the `reco` CLI: runs the TypeScript sources through tsx, so a clone needs no build step.
import { register } from "tsx/esm/api";

register();
await import("./cli.ts");
