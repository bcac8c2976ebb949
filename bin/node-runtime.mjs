// The node flags and environment every process of the app starts with, whoever starts it: `npm
// start` and the image (both through bin/reco.mjs, which relaunches itself with them when they
// are missing), the bench (bench/app-process.ts sets them when it spawns the app), and the app's
// own child processes (the parse and ingest processes inherit the environment, NODE_OPTIONS
// included). Both kinds of setting are read once, when a process starts (glibc's malloc reads
// its variables before any JavaScript runs; V8 sizes the young generation when it creates the
// heap), so they cannot be set from inside the app; settings V8 reads at each GC are set by the
// app itself once started (bin/heap-growth.ts).
//
// Plain JavaScript: bin/reco.mjs imports it before anything is compiled.
import { spawn, spawnSync } from "node:child_process";

/**
 * Environment variables, each with why (bench/README "What limits ... memory" has the figures).
 * A value already in the environment is kept: a user's own setting wins.
 */
export const RUNTIME_ENV = Object.freeze({
  // glibc gives each thread that allocates its own malloc arena (up to 8 per core), and memory
  // freed in one is never used by another: LevelDB's and libuv's threads, V8's compiler and GC
  // helpers, the ALS worker. Two arenas held ~30-50 MiB less at bench step 7's 1M users, in
  // the main process and the parse process together.
  MALLOC_ARENA_MAX: "2",
});

/**
 * Node flags, passed in NODE_OPTIONS so that the app's child processes and worker threads get
 * them too. Only flags node accepts in NODE_OPTIONS.
 */
export const RUNTIME_NODE_OPTIONS = Object.freeze([
  // Each semi-space of V8's young generation up to 32 MiB (node 20's default: 16). Records wait
  // a few hundred ms between stages (hop batching, merges), so at 8 MiB a scavenge came every
  // ~50 ms of ingest and copied about half of what it found; at 32 MiB there are a quarter as
  // many and GC pauses fall by a third (bench/README "V8's helper threads are garbage
  // collection"). The cost: the young generation, once grown, holds up to 64 MiB per process.
  "--max-semi-space-size=32",
]);

/** Set in a relaunched process: never relaunch twice, whatever the environment says. */
const RELAUNCHED = "RECO_RUNTIME_RELAUNCHED";

const flagName = (f) => f.split("=")[0];
const words = (s) => (s ?? "").split(/\s+/).filter(Boolean);

/**
 * `env` with the runtime settings added: each variable of RUNTIME_ENV not already set, each flag
 * of RUNTIME_NODE_OPTIONS appended to NODE_OPTIONS unless it names that flag already.
 */
export function runtimeEnv(env = process.env) {
  const out = { ...env };
  for (const [k, v] of Object.entries(RUNTIME_ENV)) if (!out[k]) out[k] = v;
  const opts = words(out.NODE_OPTIONS);
  for (const f of RUNTIME_NODE_OPTIONS)
    if (!opts.some((o) => flagName(o) === flagName(f))) opts.push(f);
  out.NODE_OPTIONS = opts.join(" ");
  return out;
}

/**
 * The runtime settings this process did not start with (names of variables and flags): a
 * variable must be in its environment, a flag in NODE_OPTIONS or on node's command line.
 */
export function runtimeMissing(env = process.env, execArgv = process.execArgv) {
  const missing = Object.keys(RUNTIME_ENV).filter((k) => !env[k]);
  const given = [...words(env.NODE_OPTIONS), ...execArgv].map(flagName);
  for (const f of RUNTIME_NODE_OPTIONS) if (!given.includes(flagName(f))) missing.push(f);
  return missing;
}

/** Signals passed on to the relaunched process (a terminal's Ctrl-C reaches both anyway). */
const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR2"];

/**
 * When this process started without the runtime settings, runs the same command again in a
 * child node process that has them, and mirrors it: signals go to it, and this process ends as
 * it ends (its exit code, or the same signal). Returns false when the settings are in effect
 * already (nothing to do); otherwise never returns. The child dies with this process, even by
 * SIGKILL (util-linux setpriv, as for the app's own children). What this process costs while it
 * waits: ~7 MiB of anonymous memory (the rest of its RSS is node's code, shared with the child)
 * and ~40-60 ms more at each start.
 */
export function relaunchWithRuntime() {
  if (process.env[RELAUNCHED] || runtimeMissing().length === 0) return false;
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const setpriv =
    process.platform === "linux" &&
    spawnSync("setpriv", ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" }).status === 0;
  const [command, ...prefix] = setpriv
    ? ["setpriv", "--pdeathsig", "KILL", "--", process.execPath]
    : [process.execPath];
  const child = spawn(command, [...prefix, ...args], {
    stdio: "inherit",
    env: { ...runtimeEnv(), [RELAUNCHED]: "1" },
  });
  const forward = (signal) => child.kill(signal);
  for (const s of FORWARDED) process.on(s, forward);
  child.once("error", (err) => {
    console.error(`reco: could not start node again with its runtime settings: ${err.message}`);
    process.exit(1);
  });
  child.once("exit", (code, signal) => {
    for (const s of FORWARDED) process.off(s, forward);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
  return true;
}
