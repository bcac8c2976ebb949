/**
 * The bench's knobs, read once from the environment (bench/README.md, "Knobs"), and the log line
 * every step writes to stderr.
 */
import { TARGETS } from "./report.js";

export const env = process.env;

const int = (name: string, def: number) => {
  const v = env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
};
/** Like `int`, but 0 is allowed (it turns something off). */
const intOrZero = (name: string, def: number) => (env[name] === "0" ? 0 : int(name, def));
/** A comma-separated list of positive integers. */
const ints = (name: string, value: string, what: string) =>
  value.split(",").map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}: ${x} is not ${what}`);
    return n;
  });

export const N = int("BENCH_EVENTS", 200_000);
export const SERVE_EVENTS = Math.min(N, int("BENCH_SERVE_EVENTS", 50_000));
export const PUB_WINDOW = int("BENCH_PUB_WINDOW", 2048);
export const PARTITIONS = int("BENCH_PARTITIONS", 8);
/** Background loads of the freshness step, events/s, in the order run (one app, ramped up). */
export const FRESH_RATES = ints(
  "BENCH_FRESH_RATES",
  env.BENCH_FRESH_RATES ?? env.BENCH_FRESH_RATE ?? "1000,5000,10000,20000",
  "a rate",
);
/** DESIGN §8: ingest of 50,000 events/s on 2 cores, at least 0.2× raw consume in the same run. */
export const INGEST_TARGET_RATE = TARGETS.ingestEventsPerSec;
export const INGEST_TARGET_RATIO = TARGETS.ingestShareOfRawConsume;
/** DESIGN §8: freshness p99 under 100 ms at 10k events/s. */
export const FRESH_TARGET_RATE = TARGETS.freshnessRate;
export const FRESH_TARGET_MS = TARGETS.freshnessP99Ms;
/** BENCH_FRESH_TRACE=0: no per-hop timestamps in step 3 (their subscription costs some CPU). */
export const FRESH_TRACE = env.BENCH_FRESH_TRACE !== "0";
export const FRESH_SECONDS = int("BENCH_FRESH_SECONDS", 10);
export const PROBE_EVERY_MS = int("BENCH_PROBE_MS", 200);
export const POLL_MS = 10;
export const H2_REQUESTS = int("BENCH_H2LOAD_REQUESTS", 20_000);
/** Step 4 asks for this many of the ingested events' users (all of them by default) ... */
export const SERVE_USERS = int("BENCH_SERVE_USERS", 1_000_000);
/** ... and this share more that were never seen (percent). */
export const SERVE_UNKNOWN_SHARE =
  (env.BENCH_SERVE_UNKNOWN_PCT === "0" ? 0 : int("BENCH_SERVE_UNKNOWN_PCT", 10)) / 100;
export const ROUNDS = int("BENCH_ROUNDS", 5);
/** Step 4's many-user generator: `raw` (prebuilt HTTP/2 frames) or `node` (node:http2). */
export const GEN_CLIENT: "raw" | "node" = env.BENCH_GEN_CLIENT === "node" ? "node" : "raw";
/** Step 4 waits at most this long for the app to go quiet after its ingest (bench/quiet.ts). */
export const QUIET_MAX_MS = int("BENCH_QUIET_MAX_MS", 180_000);
export const ALL_STEPS = ["1", "2", "3", "4", "4b", "5", "6", "7", "8"];
export const STEPS = new Set(
  (env.BENCH_STEPS ?? ALL_STEPS.join(",")).split(",").map((x) => x.trim().toLowerCase()),
);
/**
 * A run of every step with the default number of events is the one bench/RESULTS.md and
 * bench/freshness.svg record; anything less writes RESULTS-partial.md and freshness-partial.svg
 * (ignored by git), leaving those figures.
 */
export const FULL_RUN = ALL_STEPS.every((x) => STEPS.has(x)) && N >= 200_000;
/** Background ingest of step 4b, events/s (current event times, from a separate process). */
export const SERVE_LOAD_RATE = int("BENCH_SERVE_LOAD_RATE", 10_000);
/** Step 4b runs h2load for this long (not a count: under load the rate can be anything). */
export const SERVE_LOAD_SECONDS = int("BENCH_SERVE_LOAD_SECONDS", 5);
/**
 * BENCH_SERVE_PROCESS=1: steps 4 and 4b measure the app as `reco start` runs it with
 * SERVE_PROCESS=1: this process serves, the stages run in its child at INGEST_NICE
 * (bench/serve-split.ts). Default 0: the one-process app, `reco start`'s default layout.
 */
export const SERVE_SPLIT = env.BENCH_SERVE_PROCESS === "1";
/** ANSWER_MAX_AGE_MS as the app reads it (bounded staleness of blended answers; 0: exact). */
export const ANSWER_MAX_AGE_MS = Number(env.ANSWER_MAX_AGE_MS ?? 0);
export const FANOUT_SUBSCRIBERS = int("BENCH_FANOUT_SUBSCRIBERS", 1000);
export const FANOUT_CHANNELS = int("BENCH_FANOUT_CHANNELS", 10);
export const FANOUT_SECONDS = int("BENCH_FANOUT_SECONDS", 20);
export const FANOUT_RATE = int("BENCH_FANOUT_RATE", 2000);
export const FANOUT_TRIGGER_MS = int("BENCH_FANOUT_TRIGGER_MS", 1000);
export const RECOVERY_EVENTS = int("BENCH_RECOVERY_EVENTS", 1_000_000);
/** Users of step 6's events (the same number of events each); default one event per user. */
export const RECOVERY_USERS = int("BENCH_RECOVERY_USERS", RECOVERY_EVENTS);
export const MEMORY_USERS = ints(
  "BENCH_MEMORY_USERS",
  env.BENCH_MEMORY_USERS ?? "10000,100000,1000000",
  "a count",
);
export const MEMORY_DOUBLE_AT = intOrZero("BENCH_MEMORY_DOUBLE_AT", 100_000);
/**
 * Steps 6 and 7 both need an app holding 1M events: when both run and step 7 has a point of
 * BENCH_RECOVERY_EVENTS users, step 6 is measured on that point's app (one 1M ingest, not two).
 */
export const RECOVERY_IN_MEMORY =
  STEPS.has("6") &&
  STEPS.has("7") &&
  RECOVERY_USERS === RECOVERY_EVENTS &&
  MEMORY_USERS.includes(RECOVERY_EVENTS);
export const RECOVERY_LOAD_RATE = intOrZero("BENCH_RECOVERY_LOAD_RATE", 10_000);
/** Steps 2 and 4; steps 6 and 7 scale it with their events (it is for 200k). */
export const INGEST_TIMEOUT_MS = int("BENCH_INGEST_TIMEOUT_S", 150) * 1000;
export const recoveryOptions = {
  events: RECOVERY_EVENTS,
  users: RECOVERY_USERS,
  partitions: PARTITIONS,
  ingestTimeoutMs: INGEST_TIMEOUT_MS,
  loadRate: RECOVERY_LOAD_RATE,
  publishWindow: PUB_WINDOW,
  waitModel: env.BENCH_RECOVERY_WAIT_MODEL === "1",
};
/** Events of step 8 (each of its two runs ingests them all); default BENCH_EVENTS. */
export const SCALE_EVENTS = int("BENCH_SCALE_EVENTS", N);
/** Users step 8 asks in both runs to compare the answers. */
export const SCALE_SAMPLE_USERS = int("BENCH_SCALE_SAMPLE_USERS", 200);
/**
 * Extra node flags for the step processes (the app runs in them), e.g.
 * BENCH_NODE_FLAGS=--max-semi-space-size=64 to try a GC setting before putting it in `npm start`.
 * None by default: the bench measures the app as `npm start` runs it.
 */
export const STEP_NODE_FLAGS = (env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
/** Ingest is done once positions have not moved for this long (the end time is the last move). */
export const SETTLE_MS = 1000;

/** Wall-clock start of the whole run, passed to the step processes so log times line up. */
export const T0 = Number(env.RECO_BENCH_T0) || Date.now();
export const log = (msg: string) =>
  console.error(`[bench ${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);
