/**
 * `npm run bench`: the DESIGN.md §8 figures, each next to a baseline measured in the same run.
 * Every step runs against a fresh nats-server with a temp store (removed afterwards):
 *   1. raw JetStream publish (fast publisher) and raw consume (consume(), AckPolicy.None)
 *   2. end-to-end ingest of the same events through the app, from app start to caught up
 *   3. freshness: publish → visible in GetRecommendations, under a modest background load
 *   4. serving: GetRecommendations vs a bare grpc-js echo server, both driven by h2load
 * Prints a table and writes bench/RESULTS.md. See bench/README.md for the knobs.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { PROM_LOOP_RESOLUTION_MS, delayMs, watchGc, watchLoopDelay } from "./loop-delay.js";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AckPolicy, DeliverPolicy, type NatsConnection } from "nats";
import { pino } from "pino";
import { create, toBinary } from "@bufbuild/protobuf";
import { loadConfig } from "../bin/config.js";
import { SETTINGS } from "../bin/config-settings.js";
import { startApp, type App } from "../bin/app.js";
import { trainingsDone } from "../actors/sources/als-worker.js";
import { connectNats } from "../connectors/nats/connection.js";
import { ensureEventsStream, EVENTS_STREAM } from "../connectors/nats/streams.js";
import { createJetStreamPublisher, type OutgoingMessage } from "../connectors/nats/publisher.js";
import { createRecoClient } from "../connectors/grpc/client.js";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import {
  GetRecommendationsRequestSchema,
  GetRecommendationsResponseSchema,
  Source,
  type GetRecommendationsResponse,
} from "../proto/gen/reco/v1/reco_pb.js";
import {
  DEFAULT_GENERATOR,
  createGenerator,
  generateMessages,
  rng32,
  toMessage,
  uuidFrom,
} from "./generator.js";
import { startEchoServer } from "./echo.js";
import { nextMessage, repoPath, spawnTs, stopChild } from "./child.js";
import { lineChartSvg } from "./plot.js";
import { ensureH2load, grpcFrame, runH2load, type H2loadResult } from "./h2load.js";
import { ratio, TARGETS, verdict, type Report, type Row } from "./report.js";
import { measureRecovery, stepRecovery } from "./recovery.js";
import { stepFanout } from "./fanout.js";
import { stepMemory } from "./memory.js";
import { startLoad } from "./load.js";
import { traceProbeHops } from "./hop-trace.js";
import { spawnGrpcLoad } from "./grpc-load.js";
import { waitAppQuiet } from "./quiet.js";
import { watchAllocation } from "./gc-alloc.js";
import { startSplitServing, type SplitServing } from "./serve-split.js";
import type { JsonMetrics } from "../bin/parse-process.js";
import { runtimeEnv } from "../bin/node-runtime.mjs";
import { APP_FROM_SOURCES } from "./app-process.js";
import {
  fmtInt,
  fmtMiB,
  fmtMs,
  median,
  percentile,
  machineBusyPct,
  machineCpuTicks,
  procCpuSeconds,
  threadCpuList,
  threadCpuSeconds,
  threadSchedSeconds,
  procRssBytes,
  type PromSample,
  scrape,
  selfCpuSeconds,
  showsAsOwn,
  sleep,
  stateDirBytes,
  sum,
  withFreshNats,
} from "./util.js";

const env = process.env;
const int = (name: string, def: number) => {
  const v = env[name];
  if (v === undefined || v === "") return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive integer`);
  return n;
};
const N = int("BENCH_EVENTS", 200_000);
const SERVE_EVENTS = Math.min(N, int("BENCH_SERVE_EVENTS", 50_000));
const PUB_WINDOW = int("BENCH_PUB_WINDOW", 2048);
const PARTITIONS = int("BENCH_PARTITIONS", 8);
/** Background loads of the freshness step, events/s, in the order run (one app, ramped up). */
const FRESH_RATES = (env.BENCH_FRESH_RATES ?? env.BENCH_FRESH_RATE ?? "1000,2000,5000,10000")
  .split(",")
  .map((x) => Number(x.trim()))
  .filter((x) => {
    if (!Number.isInteger(x) || x <= 0) throw new Error(`BENCH_FRESH_RATES: ${x} is not a rate`);
    return true;
  });
/** DESIGN §8: ingest of 50,000 events/s on 2 cores, at least 0.2× raw consume in the same run. */
const INGEST_TARGET_RATE = TARGETS.ingestEventsPerSec;
const INGEST_TARGET_RATIO = TARGETS.ingestShareOfRawConsume;
/** DESIGN §8: freshness p99 under 100 ms at 10k events/s. */
const FRESH_TARGET_RATE = TARGETS.freshnessRate;
const FRESH_TARGET_MS = TARGETS.freshnessP99Ms;
/** BENCH_FRESH_TRACE=0: no per-hop timestamps in step 3 (their subscription costs some CPU). */
const FRESH_TRACE = env.BENCH_FRESH_TRACE !== "0";
const FRESH_SECONDS = int("BENCH_FRESH_SECONDS", 10);
const PROBE_EVERY_MS = int("BENCH_PROBE_MS", 200);
const POLL_MS = 10;
const H2_REQUESTS = int("BENCH_H2LOAD_REQUESTS", 20_000);
/** Step 4 asks for this many of the ingested events' users (all of them by default) ... */
const SERVE_USERS = int("BENCH_SERVE_USERS", 1_000_000);
/** ... and this share more that were never seen (percent). */
const SERVE_UNKNOWN_SHARE =
  (env.BENCH_SERVE_UNKNOWN_PCT === "0" ? 0 : int("BENCH_SERVE_UNKNOWN_PCT", 10)) / 100;
const ROUNDS = int("BENCH_ROUNDS", 5);
/** Step 4's many-user generator: `raw` (prebuilt HTTP/2 frames) or `node` (node:http2). */
const GEN_CLIENT = env.BENCH_GEN_CLIENT === "node" ? "node" : "raw";
/** Step 4 waits at most this long for the app to go quiet after its ingest (bench/quiet.ts). */
const QUIET_MAX_MS = int("BENCH_QUIET_MAX_MS", 180_000);
const ALL_STEPS = ["1", "2", "3", "4", "4b", "5", "6", "7"];
const STEPS = new Set(
  (env.BENCH_STEPS ?? ALL_STEPS.join(",")).split(",").map((x) => x.trim().toLowerCase()),
);
/** Like `int`, but 0 is allowed (it turns something off). */
const intOrZero = (name: string, def: number) => (env[name] === "0" ? 0 : int(name, def));
/** Background ingest of step 4b, events/s (current event times, from a separate process). */
const SERVE_LOAD_RATE = int("BENCH_SERVE_LOAD_RATE", 10_000);
/** Step 4b runs h2load for this long (not a count: under load the rate can be anything). */
const SERVE_LOAD_SECONDS = int("BENCH_SERVE_LOAD_SECONDS", 5);
const FANOUT_SUBSCRIBERS = int("BENCH_FANOUT_SUBSCRIBERS", 1000);
const FANOUT_CHANNELS = int("BENCH_FANOUT_CHANNELS", 10);
const FANOUT_SECONDS = int("BENCH_FANOUT_SECONDS", 20);
const FANOUT_RATE = int("BENCH_FANOUT_RATE", 2000);
const FANOUT_TRIGGER_MS = int("BENCH_FANOUT_TRIGGER_MS", 1000);
const RECOVERY_EVENTS = int("BENCH_RECOVERY_EVENTS", 1_000_000);
/** Users of step 6's events (the same number of events each); default one event per user. */
const RECOVERY_USERS = int("BENCH_RECOVERY_USERS", RECOVERY_EVENTS);
const MEMORY_USERS = (env.BENCH_MEMORY_USERS ?? "10000,100000,1000000").split(",").map((x) => {
  const n = Number(x.trim());
  if (!Number.isInteger(n) || n <= 0) throw new Error(`BENCH_MEMORY_USERS: ${x} is not a count`);
  return n;
});
const MEMORY_DOUBLE_AT = intOrZero("BENCH_MEMORY_DOUBLE_AT", 100_000);
/**
 * Steps 6 and 7 both need an app holding 1M events: when both run and step 7 has a point of
 * BENCH_RECOVERY_EVENTS users, step 6 is measured on that point's app (one 1M ingest, not two).
 */
const RECOVERY_IN_MEMORY =
  STEPS.has("6") &&
  STEPS.has("7") &&
  RECOVERY_USERS === RECOVERY_EVENTS &&
  MEMORY_USERS.includes(RECOVERY_EVENTS);
const RECOVERY_LOAD_RATE = intOrZero("BENCH_RECOVERY_LOAD_RATE", 10_000);
/** Steps 2 and 4; steps 6 and 7 scale it with their events (it is for 200k). */
const INGEST_TIMEOUT_MS = int("BENCH_INGEST_TIMEOUT_S", 150) * 1000;
const recoveryOptions = {
  events: RECOVERY_EVENTS,
  users: RECOVERY_USERS,
  partitions: PARTITIONS,
  ingestTimeoutMs: INGEST_TIMEOUT_MS,
  loadRate: RECOVERY_LOAD_RATE,
  publishWindow: PUB_WINDOW,
  waitModel: env.BENCH_RECOVERY_WAIT_MODEL === "1",
};
/**
 * Extra node flags for the step processes (the app runs in them), e.g.
 * BENCH_NODE_FLAGS=--max-semi-space-size=32 to try a GC setting before putting it in `npm start`.
 * None by default: the bench measures the app as `npm start` runs it.
 */
const STEP_NODE_FLAGS = (env.BENCH_NODE_FLAGS ?? "").split(" ").filter(Boolean);
/** Ingest is done once positions have not moved for this long (the end time is the last move). */
const SETTLE_MS = 1000;

const T_START = performance.now();
/** Wall-clock start of the whole run, passed to the step processes so log times line up. */
const T0 = Number(env.RECO_BENCH_T0) || Date.now();
const log = (msg: string) =>
  console.error(`[bench ${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);

// ---------------------------------------------------------------------------------------------
// Results table

const rows: Row[] = [];
const notes: string[] = [];
let failures = 0;
const row = (r: Partial<Row> & Pick<Row, "step" | "figure" | "value">) =>
  rows.push({ baseline: "", ratio: "", target: "", ...r });
/** What the steps in other files (5, 6, 7) write into. */
const report: Report = {
  row,
  note: (text) => notes.push(text),
  fail: () => failures++,
  log,
};

// ---------------------------------------------------------------------------------------------
// Helpers

async function connect(nats: EmbeddedNats): Promise<NatsConnection> {
  return connectNats({ servers: nats.url, name: "reco-bench" });
}

/** Publishes with the fast publisher; returns msgs/s. */
async function publishAll(nc: NatsConnection, msgs: OutgoingMessage[]): Promise<number> {
  const pub = createJetStreamPublisher(nc, { window: PUB_WINDOW });
  const t0 = performance.now();
  const { published } = await pub.publishMany(msgs);
  const secs = (performance.now() - t0) / 1000;
  await pub.close();
  if (published !== msgs.length) throw new Error(`published ${published} of ${msgs.length}`);
  return msgs.length / secs;
}

function appConfig(nats: EmbeddedNats, dataDir: string, extra: Record<string, string> = {}) {
  return loadConfig({
    NATS_URL: nats.url,
    DATA_DIR: dataDir,
    GRPC_PORT: "0",
    GRPC_HOST: "127.0.0.1",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    PARTITIONS: String(PARTITIONS),
    // As `npm start` reads it: PARSE_PROCESS=0 measures the app with parse in its main process.
    ...(env.PARSE_PROCESS !== undefined ? { PARSE_PROCESS: env.PARSE_PROCESS } : {}),
    // PARSE_PROCESS_STAGES=ingest: the stages no answer reads run beside parse in its process.
    ...(env.PARSE_PROCESS_STAGES !== undefined
      ? { PARSE_PROCESS_STAGES: env.PARSE_PROCESS_STAGES }
      : {}),
    // CHAINING=on: the user path as one chain per partition (docs/HOW-IT-WORKS.md "Chains").
    ...(env.CHAINING !== undefined ? { CHAINING: env.CHAINING } : {}),
    // RANKER=design: the design stages alone, without the blend's sources (their cost hides
    // the user path's).
    ...(env.RANKER !== undefined ? { RANKER: env.RANKER } : {}),
    // Bounded staleness of blended answers (off by default): the report says when it is on.
    ...(env.ANSWER_MAX_AGE_MS !== undefined ? { ANSWER_MAX_AGE_MS: env.ANSWER_MAX_AGE_MS } : {}),
    ...extra,
  });
}

/** Parse's last processed EVENTS sequence, in this process or in the app's parse process. */
const parsePosition = (app: App) =>
  app.pipeline.instance("parse/0")?.position() ?? app.parseProcess?.position() ?? 0;

/** CPU seconds the app's parse process (PARSE_PROCESS=1) has used so far; 0 without one. */
async function parseCpuSeconds(app: App): Promise<number> {
  const pid = app.parseProcess?.pid();
  return pid === undefined ? 0 : procCpuSeconds(pid);
}

/**
 * Waits until parse has processed the EVENTS stream up to `lastSeq`, no stage instance's input
 * position has moved for SETTLE_MS, and every consumer-lag gauge reads 0. Returns the time of
 * the last observed move (polled every 50 ms), i.e. when the pipeline actually finished.
 */
async function waitCaughtUp(
  app: App,
  lastSeq: number,
  t0: number,
): Promise<{ doneAt: number; timedOut: boolean; parsed: number }> {
  // Every stage instance the app runs: the source and quality stages (history, covisit,
  // collaborative, drift, prequential) as well as the design path, so the ingest ends when
  // the last of them has caught up (read at every poll: instances start in tiers).
  let lastSum = -1;
  let lastMove = performance.now();
  for (;;) {
    const now = performance.now();
    const parsePos = parsePosition(app);
    // Parse may run in its own process (PARSE_PROCESS=1): its position comes from there.
    let s = parsePos;
    for (const id of app.pipeline.instanceIds())
      if (id !== "parse/0") s += app.pipeline.instance(id)?.position() ?? 0;
    // The stages that run beside parse in its process (bin/pipeline/units.ts).
    for (const [id, at] of Object.entries(app.parseProcess?.positions() ?? {}))
      if (id !== "parse/0") s += at;
    if (s !== lastSum) {
      lastSum = s;
      lastMove = now;
    } else if (parsePos >= lastSeq && now - lastMove >= SETTLE_MS) {
      const lags = (await scrape(app.metricsPort)).filter(
        (m) => m.name === "reco_stage_consumer_lag",
      );
      if (lags.every((m) => m.value === 0))
        return { doneAt: lastMove, timedOut: false, parsed: parsePos };
    }
    if (now - t0 > INGEST_TIMEOUT_MS) return { doneAt: now, timedOut: true, parsed: parsePos };
    await sleep(50);
  }
}

/**
 * Stage failures (each followed by a restart from the last snapshot) with their reasons, as the
 * app's supervisor reports them: a step whose stages failed says so, and why, even with the
 * app's log off.
 */
function watchStageFailures(app: App): { id: string; why: string }[] {
  const seen: { id: string; why: string }[] = [];
  app.pipeline.supervisor.events$.subscribe((e) => {
    if (e.type === "child-failed")
      seen.push({
        id: e.childId,
        why: e.error instanceof Error ? e.error.message : String(e.error),
      });
  });
  return seen;
}

/** "3 (watermark/0: why; history/1: why; ...)": how many failed, the first few reasons. */
function describeFailures(list: { id: string; why: string }[], first = 3): string {
  const shown = list.slice(0, first).map((f) => `${f.id}: ${f.why}`);
  return `${list.length}${shown.length ? ` (${shown.join("; ")}${list.length > first ? "; ..." : ""})` : ""}`;
}

/**
 * BENCH_SERVE_PROCESS=1: steps 4 and 4b measure the app as `reco start` runs it by default
 * (SERVE_PROCESS=1): this process serves, the stages run in its child at INGEST_NICE
 * (bench/serve-split.ts). Default 0: the one-process app, as before.
 */
const SERVE_SPLIT = env.BENCH_SERVE_PROCESS === "1";
/** ANSWER_MAX_AGE_MS as the app reads it (bounded staleness of blended answers; 0: exact). */
const ANSWER_MAX_AGE_MS = Number(env.ANSWER_MAX_AGE_MS ?? 0);

/** What step 4 reads of either app. */
interface ServedApp {
  grpcPort: number;
  metricsPort: number;
  parseProcess?: { childMetrics(): Promise<JsonMetrics> };
  parsed(): Promise<number>;
  stop(): Promise<void>;
}
function servedApp(app: App | SplitServing): ServedApp {
  if ("ingest" in app)
    return {
      grpcPort: app.grpcPort,
      metricsPort: app.metricsPort,
      parseProcess: app.ingest,
      parsed: () => app.parsed(),
      stop: () => app.stop(),
    };
  return {
    grpcPort: app.grpcPort,
    metricsPort: app.metricsPort,
    ...(app.parseProcess ? { parseProcess: app.parseProcess } : {}),
    parsed: async () => parsePosition(app),
    stop: () => app.stop(),
  };
}

/** As `ingest`, with the split app (BENCH_SERVE_PROCESS=1); its stage failures are not watched. */
async function ingestSplit(nats: EmbeddedNats, dir: string, msgs: OutgoingMessage[]) {
  const nc = await connect(nats);
  await ensureEventsStream(await nc.jetstreamManager());
  await publishAll(nc, msgs);
  const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state.last_seq;
  await nc.close();
  const appLog = env.BENCH_APP_LOG
    ? pino({ level: "warn" }, pino.destination(env.BENCH_APP_LOG))
    : pino({ level: "silent" });
  // The serving settings as the environment gives them (`reco start` reads them so).
  const extra: Record<string, string> = {};
  for (const k of ["INGEST_NICE", "RANKER"]) if (env[k] !== undefined) extra[k] = env[k]!;
  const started = await startSplitServing(
    appConfig(nats, join(dir, "app"), extra),
    appLog,
    lastSeq,
    {
      settleMs: SETTLE_MS,
      timeoutMs: INGEST_TIMEOUT_MS,
    },
  );
  return { ...started, stageFailures: [] as { id: string; why: string }[] };
}

/**
 * Step 2's note on where each process's main thread went: every stage's time on the event loop
 * (reco_stage_busy_seconds_total, summed over partitions) per event, by process.
 */
async function busyNote(app: App, samples: PromSample[], events: number): Promise<string> {
  const byStage = (list: { labels: Partial<Record<string, string | number>>; value: number }[]) => {
    const out = new Map<string, number>();
    for (const s of list) {
      const stage = String(s.labels.stage);
      out.set(stage, (out.get(stage) ?? 0) + s.value);
    }
    return out;
  };
  const all = byStage(samples.filter((s) => s.name === "reco_stage_busy_seconds_total"));
  const childJson = (await app.parseProcess?.childMetrics()) ?? [];
  const child = byStage(
    childJson.find((m) => m.name === "reco_stage_busy_seconds_total")?.values ?? [],
  );
  const us = (secs: number) => ((secs / events) * 1e6).toFixed(1);
  const list = (m: Map<string, number>) =>
    [...m.entries()]
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${us(v)}`)
      .join(", ");
  const main = new Map([...all].map(([k, v]) => [k, v - (child.get(k) ?? 0)]));
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return (
    `Step 2, time each stage held its process's event loop (reco_stage_busy_seconds_total, all ` +
    `partitions), µs per event: main process ${us(total(main))} (${list(main)})` +
    (app.parseProcess ? `; child process ${us(total(child))} (${list(child)})` : "") +
    "."
  );
}

/**
 * The stages that held their process's event loop longest with one message (a hop of many
 * records, a snapshot capture), from reco_stage_busy_longest_seconds: the worst of each stage's
 * partitions, the longest first. Wall time on the loop, so a loaded machine's preemptions are in.
 */
function longestNote(samples: PromSample[], since?: PromSample[], top = 6): string {
  const worst = (list: PromSample[]) => {
    const out = new Map<string, number>();
    for (const s of list)
      if (s.name === "reco_stage_busy_longest_seconds") {
        const stage = String(s.labels.stage);
        out.set(stage, Math.max(out.get(stage) ?? 0, s.value));
      }
    return out;
  };
  const before = since ? worst(since) : new Map<string, number>();
  const rose = [...worst(samples)].filter(([stage, v]) => v > (before.get(stage) ?? 0));
  if (rose.length === 0) return "none longer than before";
  return rose
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([stage, v]) => `${stage} ${fmtMs(v * 1000)} ms`)
    .join(", ");
}

/** Publishes `msgs`, starts the app on the same server and waits until it has caught up. */
async function ingest(nats: EmbeddedNats, dir: string, msgs: OutgoingMessage[]) {
  const nc = await connect(nats);
  await ensureEventsStream(await nc.jetstreamManager());
  const pubRate = await publishAll(nc, msgs);
  const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state.last_seq;
  await nc.close();

  const dataDir = join(dir, "app");
  const rssBefore = process.memoryUsage().rss;
  const cpu0 = selfCpuSeconds();
  const als0 = trainingsDone();
  const natsCpu0 = await procCpuSeconds(nats.pid);
  const machine0 = await machineCpuTicks();
  const mainThread0 = await threadSchedSeconds(process.pid);
  const threads0 = await threadCpuList(process.pid);
  const alloc = watchAllocation();
  const t0 = performance.now();
  // BENCH_APP_LOG=file: the app's warnings and errors go there (a failed step says why).
  const appLog = env.BENCH_APP_LOG
    ? pino({ level: "warn" }, pino.destination(env.BENCH_APP_LOG))
    : pino({ level: "silent" });
  const app = await startApp(appConfig(nats, dataDir), appLog);
  const stageFailures = watchStageFailures(app);
  const startedMs = performance.now() - t0;
  const { doneAt, timedOut, parsed } = await waitCaughtUp(app, lastSeq, t0);
  const secs = (doneAt - t0) / 1000;
  // CPU is read at detection time (SETTLE_MS later): the idle tail adds a little. The parse
  // process (PARSE_PROCESS=1) started with the app: all of its CPU time is the ingest's.
  const parseCpu = await parseCpuSeconds(app);
  const cpu = selfCpuSeconds() - cpu0 + parseCpu;
  const gc = alloc.stop();
  // The main threads (where every stage of the process and gRPC run): on a CPU and waiting for
  // one, as shares of the run. The child's since it started (with the app).
  const mainThread1 = await threadSchedSeconds(process.pid);
  const childPid = app.parseProcess?.pid();
  const childThread =
    childPid === undefined ? undefined : await threadSchedSeconds(childPid, childPid);
  // Every other thread of this process and its children (nats-server, the parse process): CPU
  // seconds during the run, the larger ones.
  const threads: Record<string, number> = {};
  for (const [name, s] of Object.entries(await threadCpuList(process.pid))) {
    const d = s - (threads0[name] ?? 0);
    if (d >= 0.05) threads[name] = Math.round(d * 100) / 100;
  }
  // ALS trainings that finished meanwhile (worker threads of this process, their CPU in `cpu`).
  const als = trainingsDone();
  const natsCpu = (await procCpuSeconds(nats.pid)) - natsCpu0;
  const machine1 = await machineCpuTicks();
  const wall = (performance.now() - t0) / 1000;
  return {
    app,
    stageFailures,
    dataDir,
    lastSeq,
    parsed,
    pubRate,
    secs,
    startedMs,
    timedOut,
    rssBefore,
    gc,
    appCpuPct: (cpu / wall) * 100,
    parseCpuPct: (parseCpu / wall) * 100,
    appCpuSecs: cpu,
    alsTrainings: als.trainings - als0.trainings,
    alsCpuSecs: als.cpuSeconds - als0.cpuSeconds,
    natsCpuPct: (natsCpu / wall) * 100,
    threads,
    mainThreadSecs: mainThread1.run - mainThread0.run,
    mainThreadPct: {
      run: ((mainThread1.run - mainThread0.run) / wall) * 100,
      wait: ((mainThread1.wait - mainThread0.wait) / wall) * 100,
    },
    ...(childThread
      ? {
          childThreadPct: {
            run: (childThread.run / wall) * 100,
            wait: (childThread.wait / wall) * 100,
          },
        }
      : {}),
    /** Share of the whole machine (every core) busy during the ingest, any process. */
    machineBusyPct: machineBusyPct(machine0, machine1),
  };
}

// ---------------------------------------------------------------------------------------------
// 1. Baselines: raw publish and raw consume

async function stepRaw(msgs: OutgoingMessage[]): Promise<number> {
  return withFreshNats("raw", async (nats) => {
    const nc = await connect(nats);
    const jsm = await nc.jetstreamManager();
    await ensureEventsStream(jsm);
    log(`1. raw publish of ${fmtInt(msgs.length)} events (window ${PUB_WINDOW})`);
    const pubRate = await publishAll(nc, msgs);
    row({
      step: "1",
      figure: "raw JetStream publish (fast publisher)",
      value: `${fmtInt(pubRate)} msgs/s`,
    });

    log("1. raw consume (consume(), AckPolicy.None, batch 1024)");
    await jsm.consumers.add(EVENTS_STREAM, {
      durable_name: "bench_raw",
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
    });
    const consumer = await nc.jetstream().consumers.get(EVENTS_STREAM, "bench_raw");
    const t0 = performance.now();
    const iter = await consumer.consume({ max_messages: 1024 });
    let n = 0;
    let bytes = 0;
    // Per NATS-NOTES: close inside the loop and let it end by itself (no `break`).
    for await (const m of iter) {
      bytes += m.data.length;
      if (++n >= msgs.length) void iter.close();
    }
    const consumeRate = n / ((performance.now() - t0) / 1000);
    row({
      step: "1",
      figure: "raw JetStream consume (no acks)",
      value: `${fmtInt(consumeRate)} msgs/s`,
    });
    notes.push(
      `Events are ${Math.round(bytes / n)} bytes of JSON on average (Zipf users/items, ` +
        `view/click/cart/purchase 70/18/7/5%, ±60 s disorder).`,
    );
    await nc.close();
    return consumeRate;
  });
}

// ---------------------------------------------------------------------------------------------
// 2. End-to-end ingest

async function stepIngest(msgs: OutgoingMessage[], consumeRate: number): Promise<void> {
  await withFreshNats("ingest", async (nats, dir) => {
    log(`2. publishing ${fmtInt(msgs.length)} events, then starting the app`);
    const r = await ingest(nats, dir, msgs);
    try {
      // On a timeout, only what parse got through counts (downstream stages lag further).
      const rate = (r.timedOut ? r.parsed : msgs.length) / r.secs;
      log(
        `2. ${r.timedOut ? "TIMED OUT after" : "caught up in"} ${r.secs.toFixed(1)} s ` +
          `(app start ${r.startedMs.toFixed(0)} ms)`,
      );
      const samples = await scrape(r.app.metricsPort);
      notes.push(await busyNote(r.app, samples, msgs.length));
      const accepted = sum(samples, "reco_events_accepted_total");
      const joinIn = sum(samples, "reco_stage_messages_in_total", { stage: "popularity-join" });
      row({
        step: "2",
        figure: `end-to-end ingest, ${PARTITIONS} partitions${
          r.timedOut
            ? ` (TIMED OUT at ${INGEST_TIMEOUT_MS / 1000} s, parse at ${fmtInt(r.parsed)})`
            : ""
        }`,
        value: `${fmtInt(rate)} events/s`,
        baseline: `${fmtInt(consumeRate)} msgs/s raw consume`,
        ratio: ratio(rate, consumeRate),
        target: `≥ ${fmtInt(INGEST_TARGET_RATE)} events/s and ≥ ${INGEST_TARGET_RATIO.toFixed(2)}× (${verdict(
          !r.timedOut && rate >= INGEST_TARGET_RATE && rate / consumeRate >= INGEST_TARGET_RATIO,
        )})`,
      });
      if (r.timedOut) failures++;
      row({
        step: "2",
        figure: `  CPU during ingest (app ${r.app.parseProcess ? "processes, main + parse" : "process"} / nats-server)`,
        value: r.app.parseProcess
          ? `${r.appCpuPct.toFixed(0)}% (${(r.appCpuPct - r.parseCpuPct).toFixed(0)}% + ${r.parseCpuPct.toFixed(0)}%) / ${r.natsCpuPct.toFixed(0)}%`
          : `${r.appCpuPct.toFixed(0)}% / ${r.natsCpuPct.toFixed(0)}%`,
        baseline: `machine ${r.machineBusyPct.toFixed(0)}% busy (all ${availableParallelism()} cores, any process)`,
      });
      row({
        step: "2",
        figure: "  main threads during ingest: on a CPU / runnable, waiting for one (schedstat)",
        value:
          `main process ${r.mainThreadPct.run.toFixed(0)}% / ${r.mainThreadPct.wait.toFixed(0)}%` +
          (r.childThreadPct
            ? `; ${r.app.parseProcess ? "parse" : "child"} process ${r.childThreadPct.run.toFixed(0)}% / ${r.childThreadPct.wait.toFixed(0)}%`
            : ""),
        baseline: "100% = one core for the whole run: a main thread near it is the limit",
      });
      notes.push(
        `Step 2, CPU seconds of the step process's main thread ${r.mainThreadSecs.toFixed(2)} s ` +
          `(the app's stages in this process, gRPC), and of its other threads and child processes ` +
          `during the run (bench/util.ts threadCpuList: V8 helpers, the libuv pool, LevelDB, ALS ` +
          `workers; nats-server and the app's child are "child <pid>"): ` +
          Object.entries(r.threads)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(", ") +
          ".",
      );
      row({
        step: "2",
        figure: "  app CPU per event (less sensitive to other load than events/s)",
        value: `${((r.appCpuSecs / msgs.length) * 1e6).toFixed(1)} µs`,
      });
      // Step 2's generated events span 2 h of event time: ALS trains at each hour boundary
      // within the run, where a live stream trains once an hour (RETRAIN_INTERVAL_MS).
      if (r.alsCpuSecs > 0)
        row({
          step: "2",
          figure: `  of which ALS trainings (worker threads, ${r.alsTrainings} finished in the run)`,
          value: `${((r.alsCpuSecs / msgs.length) * 1e6).toFixed(1)} µs`,
          baseline: `${(((r.appCpuSecs - r.alsCpuSecs) / msgs.length) * 1e6).toFixed(1)} µs per event without them`,
        });
      row({
        step: "2",
        figure: "  main process: bytes allocated per event, GCs (node:v8 GCProfiler, main isolate)",
        value: `${fmtInt(r.gc.allocatedBytes / msgs.length)} B (promoted ${fmtInt(r.gc.promotedBytes / msgs.length)} B)`,
        baseline:
          `${fmtInt(r.gc.scavenges)} scavenges, ${fmtInt(r.gc.markCompacts)} mark-compacts, ` +
          `${((r.gc.gcMs * 1000) / msgs.length).toFixed(1)} µs of GC pauses per event (wall)`,
      });
      if (r.stageFailures.length > 0) {
        // The figure above is of a disturbed run: restarts reload snapshots and replay.
        row({
          step: "2",
          figure: "  stage failures during the ingest (each restarted)",
          value: describeFailures(r.stageFailures),
        });
        failures++;
      }
      row({
        step: "2",
        figure: "  events accepted by parse",
        value: fmtInt(accepted),
        baseline: `${fmtInt(msgs.length)} published`,
      });
      if (accepted !== msgs.length) {
        failures++;
        notes.push(`Step 2: parse accepted ${accepted} of ${msgs.length} events.`);
      }
      notes.push(
        `Step 2: ${fmtInt(r.lastSeq)} events were published first (${fmtInt(r.pubRate)} msgs/s), ` +
          `then the app was started; the time runs from startApp() (${r.startedMs.toFixed(0)} ms of ` +
          `it is start-up) until parse reached the stream's last sequence, no stage input moved for ` +
          `${SETTLE_MS} ms and all consumer-lag gauges read 0. popularity-join consumed ` +
          `${fmtInt(joinIn)} hop messages. Why ingest (and with it freshness at 10k/s) misses ` +
          `its target, measured: bench/README.md, "What limits the missed targets".`,
      );
      const rss = process.memoryUsage();
      await r.app.pipeline.snapshotAll();
      const level = await stateDirBytes(r.dataDir);
      const parsePid = r.app.parseProcess?.pid();
      const parseRss =
        parsePid === undefined ? "" : ` + parse process ${fmtMiB(await procRssBytes(parsePid))}`;
      row({
        step: "2",
        figure: "  RSS after ingest (Δ from before app start)",
        value: `${fmtMiB(rss.rss)} (+${fmtMiB(rss.rss - r.rssBefore)})${parseRss}`,
        baseline: `heap used ${fmtMiB(rss.heapUsed)}`,
      });
      row({ step: "2", figure: "  LevelDB state dir after snapshotAll()", value: fmtMiB(level) });
      notes.push(
        "RSS is of the step's own process, which runs the app in-process and also holds the " +
          "generated events (~" +
          fmtMiB(msgs.reduce((a, m) => a + m.data.length, 0)) +
          " of payloads plus objects); the Δ is the better guide. Every step runs in a fresh " +
          "process and a fresh nats-server.",
      );
    } finally {
      await r.app.stop();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Freshness

interface FreshnessPoint {
  rate: number;
  achieved: number;
  probes: number;
  seen: number[];
  missed: number;
  backlog: number;
  cpuPct: number;
  /** Share of the whole machine (every core) busy meanwhile, any process. */
  machineBusyPct: number;
}

async function stepFreshness(): Promise<void> {
  await withFreshNats("fresh", async (nats, dir) => {
    const app = await startApp(appConfig(nats, join(dir, "app")), pino({ level: "silent" }));
    const nc = await connect(nats);
    const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    const pub = createJetStreamPublisher(nc, { window: 1024 });
    const trace = FRESH_TRACE ? traceProbeHops(nc) : undefined;
    const probeMs = new Map<number, number>();
    const gen = createGenerator({ ...DEFAULT_GENERATOR, seed: 7, start: Date.now() });
    const ids = rng32(99);
    let stop = false;
    // The load: `rate` events/s from `tRate`, counted in `sentAtRate` (the rate changes per point).
    let rate = FRESH_RATES[0]!;
    let tRate = performance.now();
    let sentAtRate = 0;
    let skippedAtRate = 0;
    const pubFailures = { n: 0, first: "" };
    const publish = (m: OutgoingMessage) =>
      pub.publish(m.subject, m.data).catch((err: unknown) => {
        pubFailures.n++;
        pubFailures.first ||= err instanceof Error ? err.message : String(err);
      });
    const load = (async () => {
      while (!stop) {
        const due = Math.floor(((performance.now() - tRate) / 1000) * rate);
        // Never queue without bound (as bench/load.ts): a run at load average ~25 grew this
        // process to 6.4 GB of queued publishes at 10k/s. What is skipped shows as a lower rate.
        for (; sentAtRate + skippedAtRate < due; sentAtRate++) {
          if (pub.pending() >= 8192) {
            skippedAtRate = due - sentAtRate;
            break;
          }
          void publish(toMessage(gen.next(Date.now())));
        }
        await sleep(5);
      }
    })();

    const probe = async (k: number): Promise<number | undefined> => {
      const item = `probe-item-${k}`;
      const category = `probecat${k}.x`;
      const user = `bench-probe-${k}`;
      const base = { item, category, brand: "probe", price: 1 };
      const ts = Date.now();
      const t0 = performance.now();
      trace?.start(k, t0);
      // Another user buys the item (it becomes popular in its category) and the probe user
      // views it (the category becomes the probe user's interest).
      const buy = toMessage({
        ...base,
        type: "purchase",
        ts,
        user: `bench-buyer-${k}`,
        id: uuidFrom(ids),
      });
      const view = toMessage({ ...base, type: "view", ts, user, id: uuidFrom(ids) });
      void publish(buy);
      void publish(view);
      while (performance.now() - t0 < 10_000) {
        await sleep(POLL_MS);
        const res = await client
          .getRecommendations(user, 10, { deadlineMs: 2000 })
          .catch(() => undefined);
        if (res && showsAsOwn(res.items, item)) {
          probeMs.set(k, performance.now() - t0);
          return performance.now() - t0;
        }
      }
      probeMs.set(k, performance.now() - t0);
      return undefined;
    };

    const points: FreshnessPoint[] = [];
    const traceNotes: string[] = [];
    const holdNotes: string[] = [];
    let k = 0;
    try {
      for (const r of FRESH_RATES) {
        rate = r;
        tRate = performance.now();
        sentAtRate = 0;
        skippedAtRate = 0;
        log(
          `3. freshness at ${fmtInt(r)} events/s: 2 s warm-up, probes every ${PROBE_EVERY_MS} ms for ${FRESH_SECONDS} s`,
        );
        await sleep(2000);
        await probe(k++); // warm-up probe, not counted
        const firstProbe = k;
        const holds0 = await scrape(app.metricsPort);
        const resends0 = trace?.resends().count ?? 0;
        const cpu0 = selfCpuSeconds() + (await parseCpuSeconds(app));
        const machine0 = await machineCpuTicks();
        const tProbe = performance.now();
        const probes: Promise<number | undefined>[] = [];
        while (performance.now() - tProbe < FRESH_SECONDS * 1000) {
          probes.push(probe(k++));
          await sleep(PROBE_EVERY_MS);
        }
        const achieved = sentAtRate / ((performance.now() - tRate) / 1000);
        const cpu1 = selfCpuSeconds() + (await parseCpuSeconds(app));
        const cpuPct = ((cpu1 - cpu0) / ((performance.now() - tProbe) / 1000)) * 100;
        const machine1 = await machineCpuTicks();
        const busyPct = machineBusyPct(machine0, machine1);
        const jsm = await nc.jetstreamManager();
        const lastSeq = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
        const backlog = Math.max(0, lastSeq - parsePosition(app));
        const results = await Promise.all(probes);
        const seen = results.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
        if (trace) {
          // Where the slowest probes over the target spent their time (hop-trace.ts).
          const slow = [...probeMs]
            .filter(([pk, ms]) => pk >= firstProbe && ms > FRESH_TARGET_MS)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 3);
          const rs = trace.resends();
          traceNotes.push(
            `at ${fmtInt(r)} events/s: ${slow.length ? slow.map(([pk, ms]) => `probe ${pk}: ${trace.timeline(pk, ms)}`).join("; ") : `no probe over ${FRESH_TARGET_MS} ms`}; ` +
              `hop messages re-sent (one Nats-Msg-Id published twice): ${fmtInt(rs.count - resends0)}` +
              (rs.count > resends0
                ? ` (largest gap so far ${fmtInt(rs.maxGapMs)} ms, ${rs.subject})`
                : ""),
          );
        }
        holdNotes.push(
          `at ${fmtInt(r)} events/s: ${longestNote(await scrape(app.metricsPort), holds0)}`,
        );
        points.push({
          rate: r,
          achieved,
          probes: results.length,
          seen,
          missed: results.length - seen.length,
          backlog,
          cpuPct,
          machineBusyPct: busyPct,
        });
      }
      stop = true;
      await load;
      trace?.stop();
      if (traceNotes.length)
        notes.push(
          "Step 3, per-hop timestamps (first time a hop subject carried the probe's item, from a " +
            "core NATS subscription in the step process; ms after the probe's publish): " +
            traceNotes.join(". "),
        );
      notes.push(
        "Step 3, the longest a stage held its process's event loop with one message while the " +
          "probes ran (reco_stage_busy_longest_seconds, the worst partition, stages whose longest " +
          "grew at that rate; wall time, preemption included): " +
          holdNotes.join("; ") +
          ".",
      );
      // Failures were counted by publish(); close() would only repeat the first one.
      await pub.close().catch(() => undefined);
      if (pubFailures.n > 0) {
        failures++;
        notes.push(
          `Step 3: ${pubFailures.n} publishes failed (first: ${pubFailures.first}): the process ` +
            `was too busy to handle PubAcks in time.`,
        );
      }
      for (const pt of points) {
        const p50 = percentile(pt.seen, 50);
        const p99 = percentile(pt.seen, 99);
        const met = pt.missed === 0 && p99 < FRESH_TARGET_MS;
        if (pt.missed > 0) failures++;
        row({
          step: "3",
          figure: `freshness p50 / p99 at ${fmtInt(pt.rate)} events/s, ${pt.probes} probes`,
          value: `${fmtMs(p50)} / ${fmtMs(p99)} ms`,
          baseline:
            (pt.missed ? `${pt.missed} probes not visible within 10 s; ` : "") +
            `load ${fmtInt(pt.achieved)}/s, CPU ${pt.cpuPct.toFixed(0)}% (machine ${pt.machineBusyPct.toFixed(0)}% busy), backlog ${fmtInt(pt.backlog)}`,
          target:
            pt.rate === FRESH_TARGET_RATE
              ? `p99 < ${FRESH_TARGET_MS} ms at 10k/s (${verdict(met)})`
              : `(p99 < ${FRESH_TARGET_MS} ms: ${met ? "yes" : "no"})`,
        });
      }
      if (!points.some((pt) => pt.rate === FRESH_TARGET_RATE))
        notes.push(`Step 3: no point at ${fmtInt(FRESH_TARGET_RATE)} events/s, the target's rate.`);
      const plotFile = fileURLToPath(new URL("./freshness.svg", import.meta.url));
      await writeFile(
        plotFile,
        lineChartSvg({
          title: "Freshness: publish → visible in GetRecommendations",
          xLabel: "background ingest rate (events/s)",
          yLabel: "ms (log scale)",
          series: [
            {
              name: "p50",
              color: "#1f77b4",
              points: points.map((pt) => [
                pt.rate,
                pt.seen.length ? percentile(pt.seen, 50) : undefined,
              ]),
            },
            {
              name: "p99",
              color: "#d62728",
              points: points.map((pt) => [
                pt.rate,
                pt.seen.length ? percentile(pt.seen, 99) : undefined,
              ]),
            },
          ],
          reference: { y: FRESH_TARGET_MS, label: `target: p99 < ${FRESH_TARGET_MS} ms at 10k/s` },
          caption:
            `npm run bench, ${new Date().toISOString().slice(0, 16)}Z, ${PARTITIONS} partitions, ` +
            `${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}; one app, rates ` +
            `run in this order, ~${Math.round((FRESH_SECONDS * 1000) / PROBE_EVERY_MS)} probes each, ` +
            `${POLL_MS} ms polling.`,
        }),
      );
      notes.push(
        `Step 3: one app under a background load that steps through ${FRESH_RATES.map(fmtInt).join(", ")} ` +
          `events/s (current event times); at each rate, after a 2 s warm-up, a probe every ` +
          `${PROBE_EVERY_MS} ms for ${FRESH_SECONDS} s publishes a purchase of a new item in a new ` +
          `category by another user and a view of it by a fresh probe user, then polls ` +
          `GetRecommendations over gRPC every ${POLL_MS} ms until the item is listed as ` +
          `PERSONALIZED; the time is from publish to the answer that shows it (so it includes up ` +
          `to ${POLL_MS} ms of polling granularity and one round trip). With under 100 probes, p99 ` +
          `is the maximum. CPU is the step process's (app, load generator and probes; with ` +
          `PARSE_PROCESS=1 plus the app's parse process) over the ` +
          `probing; backlog is how far parse was behind the EVENTS stream when probing ended. ` +
          `Plot: bench/freshness.svg.`,
      );
    } finally {
      stop = true;
      client.close();
      await nc.close().catch(() => undefined);
      await app.stop();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// 4. Serving

const userRe = /"user_id":"([^"]*)"/;
/** The user id of a generated event's JSON bytes ("" if none). */
function userOf(data: Uint8Array): string {
  return (
    userRe.exec(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString())?.[1] ?? ""
  );
}

async function stepServing(msgs: OutgoingMessage[]): Promise<void> {
  await withFreshNats("serve", async (nats, dir) => {
    log(
      `4. serving: ingesting ${fmtInt(msgs.length)} events first` +
        (SERVE_SPLIT
          ? " (BENCH_SERVE_PROCESS=1: serving here, the stages in a child at nice)"
          : ""),
    );
    const r = SERVE_SPLIT ? await ingestSplit(nats, dir, msgs) : await ingest(nats, dir, msgs);
    const app = servedApp(r.app);
    const tmp = await mkdtemp(join(tmpdir(), "reco-bench-h2-"));
    const appClient = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    let echo: Awaited<ReturnType<typeof startEchoServer>> | undefined;
    /** Step 4b's echo in a process of its own (bench/echo-process.ts), once started. */
    let ownEcho: ChildProcess | undefined;
    try {
      if (r.timedOut) throw new Error("serving set-up: ingest did not catch up");
      // The most active user (Zipf rank 0): a full personalised answer.
      const user = "u0";
      const n = 10;
      const real: GetRecommendationsResponse = await appClient.getRecommendations(user, n);
      const personal = real.items.filter((i) => i.source === Source.PERSONALIZED).length;
      if (real.items.length === 0) throw new Error(`GetRecommendations(${user}) returned no items`);
      const bodyFile = join(tmp, "body.bin");
      const request = toBinary(
        GetRecommendationsRequestSchema,
        create(GetRecommendationsRequestSchema, { userId: user, n }),
      );
      await writeFile(bodyFile, grpcFrame(request));
      echo = await startEchoServer(real);
      const echoClient = createRecoClient(`127.0.0.1:${echo.port}`);
      const echoed = await echoClient.getRecommendations(user, n);
      echoClient.close();
      if (echoed.items.length !== real.items.length) throw new Error("echo server answer differs");

      // Many distinct users, as a front end asks: every user of the ingested events (shuffled,
      // seeded) and a share never seen. One user asked again and again would be answered from
      // per-user caches and flatter the figures.
      const known = [...new Set(msgs.map((m) => userOf(m.data)).filter((u) => u !== ""))];
      const shuffle = rng32(4);
      for (let x = known.length - 1; x > 0; x--) {
        const y = shuffle() % (x + 1);
        [known[x], known[y]] = [known[y]!, known[x]!];
      }
      const askUsers = known.slice(0, SERVE_USERS);
      const unknownCount = Math.round(askUsers.length * SERVE_UNKNOWN_SHARE);
      for (let x = 0; x < unknownCount; x++)
        askUsers.splice(Math.floor((x * askUsers.length) / unknownCount), 0, `bench-new-${x}`);
      const bodiesFile = join(tmp, "bodies.bin");
      await writeFile(
        bodiesFile,
        Buffer.concat(
          askUsers.map((u) =>
            grpcFrame(
              toBinary(
                GetRecommendationsRequestSchema,
                create(GetRecommendationsRequestSchema, { userId: u, n }),
              ),
            ),
          ),
        ),
      );

      const path = "/reco.v1.RecommendationService/GetRecommendations";
      const targets: Record<"echo" | "app" | "own", string> = {
        echo: `http://127.0.0.1:${echo.port}${path}`,
        app: `http://127.0.0.1:${app.grpcPort}${path}`,
        own: "",
      };
      const grpcOk = async () =>
        sum(await scrape(app.metricsPort), "grpc_requests_total", { code: "OK" });
      const grpcAll = async () => sum(await scrape(app.metricsPort), "grpc_requests_total");
      // What the app's grpc_requests_total must have counted (a range: a run for a duration
      // ends with requests in flight, which the server may or may not have answered).
      const appCalls = { min: 0, max: 0 };
      /** The event-loop delay of this process (the app's main one) during `work`, ms. */
      const withLoopDelay = async <T extends object>(work: () => Promise<T>) => {
        const loop = watchLoopDelay(1);
        const gc = watchGc();
        try {
          const r = await work();
          const d = loop.read();
          return { ...r, loopP99Ms: d.p99Ms, loopMaxMs: d.maxMs, gc: gc.stop() };
        } finally {
          loop.stop();
          gc.stop();
        }
      };
      /** h2load, one user (u0) in every request: the figure of earlier runs. */
      const runOne = async (
        t: "echo" | "app",
        streams: number,
        load: number | { seconds: number },
      ) => {
        const res = await runH2load({
          url: targets[t],
          bodyFile,
          ...(typeof load === "number" ? { requests: load } : { durationS: load.seconds }),
          streams,
          logFile: join(tmp, `${t}-${streams}.log`),
        });
        const requests = typeof load === "number" ? load : res.requests;
        if (res.succeeded !== requests || res.logged200 !== requests || requests === 0)
          throw new Error(
            `h2load against ${t}: ${res.succeeded}/${requests} succeeded, ` +
              `${res.logged200} with status 200\n${res.raw}`,
          );
        if (t === "app") {
          appCalls.min += res.requests;
          appCalls.max += res.started;
        }
        return res;
      };
      /** The many-user generator (bench/grpc-load.ts): every call's grpc-status is read. */
      const run = (
        t: "echo" | "app" | "own",
        streams: number,
        load: number | { seconds: number },
        client: "raw" | "node" = GEN_CLIENT,
      ) =>
        withLoopDelay(async () => {
          // The server's process: this one, or the echo's own (its CPU and main thread).
          const pid = t === "own" ? ownEcho!.pid! : process.pid;
          const serverCpu = () => (t === "own" ? procCpuSeconds(pid) : selfCpuSeconds());
          const cpu0 = await serverCpu();
          const main0 = await threadCpuSeconds(pid);
          const nats0 = await procCpuSeconds(nats.pid);
          const sched0 = await threadSchedSeconds(pid);
          const wall0 = performance.now();
          const res = await spawnGrpcLoad({
            url: targets[t],
            bodiesFile,
            streams,
            ...(typeof load === "number" ? { requests: load } : { durationS: load.seconds }),
            client,
          });
          const cpu = (await serverCpu()) - cpu0;
          const main = (await threadCpuSeconds(pid)) - main0;
          const natsCpu = (await procCpuSeconds(nats.pid)) - nats0;
          const sched = await threadSchedSeconds(pid);
          const wallS = (performance.now() - wall0) / 1000;
          if (res.ok !== res.requests || res.requests === 0)
            throw new Error(
              `grpc-load against ${t}: ${res.ok}/${res.requests} OK, codes ${JSON.stringify(res.codes)}` +
                (res.messages && Object.keys(res.messages).length > 0
                  ? ` (${JSON.stringify(res.messages)})`
                  : "") +
                (r.stageFailures.length > 0
                  ? `; stage failures since the app started: ${describeFailures(r.stageFailures)}`
                  : ""),
            );
          if (t === "app") {
            appCalls.min += res.requests;
            appCalls.max += res.requests;
          }
          return {
            ...res,
            serverCpuUsPerReq: (cpu / res.requests) * 1e6,
            // Where a run's server CPU went: a figure off by 40% once (0.68x at 64a46c3, all
            // answers from the memo) must say whether the handler or something beside it cost.
            serverMainCpuUsPerReq: (main / res.requests) * 1e6,
            natsCpuUsPerReq: (natsCpu / res.requests) * 1e6,
            // The main thread's share of the run on a CPU and runnable but waiting for one.
            mainRunShare: (sched.run - sched0.run) / wallS,
            mainWaitShare: (sched.wait - sched0.wait) / wallS,
          };
        });
      type Served = Awaited<ReturnType<typeof run>>;

      // Idle figures of an idle app: not the catch-up of the source stages nor the training an
      // ingest leaves behind (bench/quiet.ts).
      const quiet = await waitAppQuiet({ metricsPort: app.metricsPort, maxMs: QUIET_MAX_MS });
      log(
        `4. app ${quiet.quiet ? "quiet" : "still busy"} after ${fmtInt(quiet.waitedMs / 1000)} s ` +
          `(CPU ${fmtInt(quiet.cpuShare * 100)}% of a core, model at ${fmtInt(quiet.modelAt)} of ` +
          `${fmtInt(quiet.fed)} events)`,
      );
      log(
        `4. warm-up: ${fmtInt(askUsers.length)} users (${fmtInt(unknownCount)} never seen), once each`,
      );
      // node:http2 reads every answer's grpc-status and message: each user is checked once here
      // (the raw client of the rounds tells answers from errors by their frames only).
      await run("echo", 64, askUsers.length, "node");
      await run("app", 64, askUsers.length, "node");
      await runOne("echo", 64, 3000);
      await runOne("app", 64, 3000);
      appCalls.min = appCalls.max = 0;
      /**
       * The blend memo's counts (reco_recommender memo_hits / memo_misses; split, the serving
       * process's replica answers: reco_blend_replica).
       */
      const memoCounts = async () => {
        const m = await scrape(app.metricsPort);
        const of = (name: string) =>
          sum(m, "reco_recommender", { name }) + sum(m, "reco_blend_replica", { name });
        return { hits: of("memo_hits"), misses: of("memo_misses"), aged: of("memo_aged") };
      };
      /** Snapshot writes of the app so far, by stage: keys written and snapshots taken. */
      const snapshotWrites = async () => {
        const m = await scrape(app.metricsPort);
        const by = new Map<string, { keys: number; writes: number }>();
        for (const x of m) {
          const stage = x.labels.stage;
          if (stage === undefined) continue;
          const isKeys = x.name === "reco_stage_snapshot_keys_total";
          if (!isKeys && x.name !== "reco_stage_snapshot_seconds_count") continue;
          const e = by.get(stage) ?? { keys: 0, writes: 0 };
          if (isKeys) e.keys += x.value;
          else e.writes += x.value;
          by.set(stage, e);
        }
        return by;
      };
      const snaps0 = await snapshotWrites();
      const memo0 = await memoCounts();
      let memo1 = memo0;
      /** BENCH_SERVE_PROCESS=1: where the serving process's answers came from (split-backend.ts). */
      const answerSources = async () => {
        const m = await scrape(app.metricsPort);
        const froms = ["blend", "replica", "replica_fallback"];
        return froms.map((from) => sum(m, "reco_serving_answers_total", { from }));
      };
      let sources1 = await answerSources();
      const ok0 = await grpcOk();
      const all0 = await grpcAll();
      const res: Record<string, Served[]> = {
        "echo-64": [],
        "app-64": [],
        "echo-4": [],
        "app-4": [],
        "echo-64-load": [],
        "app-64-load": [],
        "own-64": [],
        "own-64-load": [],
      };
      const one: Record<string, H2loadResult[]> = {
        "echo-64": [],
        "app-64": [],
        "echo-4": [],
        "app-4": [],
      };
      const idle = STEPS.has("4");
      const m4Requests = Math.max(1000, Math.floor(H2_REQUESTS / 2));
      for (let round = 1; round <= ROUNDS; round++) {
        log(
          idle
            ? `4. round ${round}/${ROUNDS}: -m 64 (${H2_REQUESTS} req) and -m 4 (${m4Requests} req), echo then app; h2load with u0 at -m 64`
            : `4. round ${round}/${ROUNDS}: echo at -m 64 (${H2_REQUESTS} req), the baseline of 4b`,
        );
        res["echo-64"]!.push(await run("echo", 64, H2_REQUESTS));
        if (!idle) continue;
        res["app-64"]!.push(await run("app", 64, H2_REQUESTS));
        res["echo-4"]!.push(await run("echo", 4, m4Requests));
        res["app-4"]!.push(await run("app", 4, m4Requests));
        one["echo-64"]!.push(await runOne("echo", 64, H2_REQUESTS));
        one["app-64"]!.push(await runOne("app", 64, H2_REQUESTS));
        one["echo-4"]!.push(await runOne("echo", 4, m4Requests));
        one["app-4"]!.push(await runOne("app", 4, m4Requests));
      }

      memo1 = await memoCounts();
      // What the idle app still wrote during the rounds (each snapshot's batch is prepared on
      // the event loop that serves).
      const snaps1 = await snapshotWrites();
      const idleWrites = [...snaps1]
        .map(([stage, e]) => {
          const b = snaps0.get(stage) ?? { keys: 0, writes: 0 };
          return { stage, keys: e.keys - b.keys, writes: e.writes - b.writes };
        })
        .filter((x) => x.keys > 0)
        .sort((a, b) => b.keys - a.keys);
      sources1 = await answerSources();
      // 4b: the same calls while the app ingests a steady load (from a separate process).
      let underLoad: { achieved: number; backlog: number; skipped: number } | undefined;
      /**
       * The parse process's event-loop delay (PARSE_PROCESS=1) since its metrics were last
       * collected (prom-client's histogram restarts at each collect, sampled every 10 ms), ms.
       */
      const parseLoop = async () => {
        const ms = (await app.parseProcess?.childMetrics()) ?? [];
        // BENCH_SERVE_PROCESS=1: the ingest child's gauges, averaged with its parse child's.
        // prom-client's lag gauges include its 10 ms sampling interval (bench/loop-delay.ts).
        const v = (name: string) =>
          delayMs(
            (ms.find((m) => m.name === name)?.values[0]?.value ?? NaN) * 1000,
            PROM_LOOP_RESOLUTION_MS,
          );
        return {
          p99: v("nodejs_eventloop_lag_p99_seconds"),
          max: v("nodejs_eventloop_lag_max_seconds"),
        };
      };
      const parseLoops: { p99: number; max: number }[] = [];
      let publisherLoop = { p99: NaN, max: NaN };
      if (STEPS.has("4b")) {
        // The ceiling: the same echo in a process of its own, idle first, then beside the app's
        // ingest in every round.
        ownEcho = spawnTs(repoPath("echo-process.ts"), [
          Buffer.from(toBinary(GetRecommendationsResponseSchema, real)).toString("base64"),
        ]);
        const ownPort = await nextMessage(ownEcho, (m) =>
          typeof m === "object" && m !== null && "port" in m ? Number(m.port) : undefined,
        );
        targets.own = `http://127.0.0.1:${ownPort}${path}`;
        await run("own", 64, 3000, "node"); // warm-up, every grpc-status read
        res["own-64"]!.push(await run("own", 64, { seconds: SERVE_LOAD_SECONDS }));
        log(`4b. background ingest at ${fmtInt(SERVE_LOAD_RATE)} events/s (current event times)`);
        const load = await startLoad(nats.url, SERVE_LOAD_RATE);
        const holds0 = await scrape(app.metricsPort);
        try {
          await sleep(3000);
          load.setRate(SERVE_LOAD_RATE); // restarts its counts: the rate during the rounds
          for (let round = 1; round <= ROUNDS; round++) {
            log(
              `4b. round ${round}/${ROUNDS}: -m 64 for ${SERVE_LOAD_SECONDS} s, echo then app, under load`,
            );
            res["echo-64-load"]!.push(await run("echo", 64, { seconds: SERVE_LOAD_SECONDS }));
            res["own-64-load"]!.push(await run("own", 64, { seconds: SERVE_LOAD_SECONDS }));
            await parseLoop(); // restarts the parse process's histogram
            res["app-64-load"]!.push(await run("app", 64, { seconds: SERVE_LOAD_SECONDS }));
            parseLoops.push(await parseLoop());
          }
          const ls = await load.stats();
          publisherLoop = { p99: ls.loopP99Ms, max: ls.loopMaxMs };
          const nc = await connect(nats);
          const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state
            .last_seq;
          await nc.close();
          const parsed = await app.parsed();
          underLoad = {
            achieved: ls.rate,
            backlog: Math.max(0, lastSeq - parsed),
            skipped: ls.skipped,
          };
          if (ls.failed > 0) {
            failures++;
            notes.push(`Step 4b: ${ls.failed} background publishes failed (${ls.firstError}).`);
          }
          notes.push(
            `Step 4b, the longest a stage held its process's event loop with one message during ` +
              `the ingest (reco_stage_busy_longest_seconds, the worst partition; wall time, ` +
              `preemption included): ${longestNote(await scrape(app.metricsPort), holds0)}.`,
          );
        } finally {
          await load.stop();
        }
      }
      const memo2 = await memoCounts();
      const sources2 = await answerSources();
      const [fromBlend, fromReplica, fromFallback] = sources2.map((v, i) => v - sources1[i]!);
      const memoNote = (a: typeof memo0, b: typeof memo0) =>
        `${fmtInt(b.hits - a.hits)} answered from the blend memo, ${fmtInt(b.misses - a.misses)} computed` +
        (ANSWER_MAX_AGE_MS > 0
          ? ` (ANSWER_MAX_AGE_MS=${ANSWER_MAX_AGE_MS}: ${fmtInt(b.aged - a.aged)} of those from the memo served although their data had changed, with their staleness)`
          : "");
      const okDelta = (await grpcOk()) - ok0;
      const allDelta = (await grpcAll()) - all0;
      const expected =
        appCalls.min === appCalls.max
          ? fmtInt(appCalls.min)
          : `${fmtInt(appCalls.min)} to ${fmtInt(appCalls.max)}`;
      if (okDelta < appCalls.min || okDelta > appCalls.max || allDelta !== okDelta) failures++;
      const med = (k: string, f: (x: Served) => number) => median(res[k]!.map(f));
      const rps = (k: string) => med(k, (x) => x.reqPerSec);
      const p99 = (k: string) => med(k, (x) => x.p99Ms);
      const p50 = (k: string) => med(k, (x) => x.p50Ms);
      const cpu = (k: string) => med(k, (x) => x.serverCpuUsPerReq);
      const loop = (k: string) =>
        `${fmtMs(med(k, (x) => x.loopP99Ms))} / ${fmtMs(med(k, (x) => x.loopMaxMs))} ms`;
      const client = (k: string) => fmtInt(med(k, (x) => x.clientCpuUsPerReq));

      if (idle) {
        row({
          step: "4",
          figure: "GetRecommendations req/s, 64 streams, many users",
          value: `${fmtInt(rps("app-64"))} req/s`,
          baseline: `${fmtInt(rps("echo-64"))} req/s echo`,
          ratio: ratio(rps("app-64"), rps("echo-64")),
          target: `≥ ${TARGETS.servingShareOfEcho.toFixed(2)}× (${verdict(rps("app-64") / rps("echo-64") >= TARGETS.servingShareOfEcho)})`,
        });
        row({
          step: "4",
          figure: "  p50 / p99 latency, 64 streams",
          value: `${fmtMs(p50("app-64"))} / ${fmtMs(p99("app-64"))} ms`,
          baseline: `${fmtMs(p50("echo-64"))} / ${fmtMs(p99("echo-64"))} ms echo`,
          ratio: ratio(p99("app-64"), p99("echo-64")),
          target: `p99 ≤ ${TARGETS.servingP99OfEcho}× (${verdict(p99("app-64") / p99("echo-64") <= TARGETS.servingP99OfEcho)})`,
        });
        row({
          step: "4",
          figure: "  server CPU per request, 64 streams",
          value: `${fmtInt(cpu("app-64"))} µs`,
          baseline: `${fmtInt(cpu("echo-64"))} µs echo`,
          ratio: ratio(cpu("app-64"), cpu("echo-64")),
        });
        row({
          step: "4",
          figure: "  event-loop delay p99 / max of the app's process, 64 streams",
          value: loop("app-64"),
          baseline: `${loop("echo-64")} echo (same process)`,
        });
        row({
          step: "4",
          figure: "GetRecommendations p50 / p99, 4 streams",
          value: `${fmtMs(p50("app-4"))} / ${fmtMs(p99("app-4"))} ms`,
          baseline: `${fmtMs(p50("echo-4"))} / ${fmtMs(p99("echo-4"))} ms echo`,
          ratio: ratio(p99("app-4"), p99("echo-4")),
          target: `p99 < 5 ms (${verdict(p99("app-4") < 5)})`,
        });
        row({
          step: "4",
          figure: "  the load generator's own event-loop delay p99 / max, 4 streams",
          value: `${fmtMs(med("app-4", (x) => x.clientLoopP99Ms))} / ${fmtMs(med("app-4", (x) => x.clientLoopMaxMs))} ms`,
          baseline: `${fmtMs(med("echo-4", (x) => x.clientLoopP99Ms))} / ${fmtMs(med("echo-4", (x) => x.clientLoopMaxMs))} ms against the echo`,
        });
        row({
          step: "4",
          figure: "  server's event-loop delay p99 / max, 4 streams",
          value: loop("app-4"),
          baseline: `${loop("echo-4")} echo (same process)`,
        });
        row({
          step: "4",
          figure: "  req/s, 4 streams",
          value: `${fmtInt(rps("app-4"))} req/s`,
          baseline: `${fmtInt(rps("echo-4"))} req/s echo`,
          ratio: ratio(rps("app-4"), rps("echo-4")),
        });
        const oneMed = (k: string, f: (x: H2loadResult) => number) => median(one[k]!.map(f));
        row({
          step: "4",
          figure: "  h2load, one user (u0) in every request, 64 streams: req/s, p99",
          value: `${fmtInt(oneMed("app-64", (x) => x.reqPerSec))} req/s, ${fmtMs(oneMed("app-64", (x) => x.p99Ms))} ms`,
          baseline: `${fmtInt(oneMed("echo-64", (x) => x.reqPerSec))} req/s, ${fmtMs(oneMed("echo-64", (x) => x.p99Ms))} ms echo`,
          ratio: ratio(
            oneMed("app-64", (x) => x.reqPerSec),
            oneMed("echo-64", (x) => x.reqPerSec),
          ),
        });
        row({
          step: "4",
          figure: "  h2load, one user (u0) in every request, 4 streams: p50 / p99",
          value: `${fmtMs(oneMed("app-4", (x) => x.p50Ms))} / ${fmtMs(oneMed("app-4", (x) => x.p99Ms))} ms`,
          baseline: `${fmtMs(oneMed("echo-4", (x) => x.p50Ms))} / ${fmtMs(oneMed("echo-4", (x) => x.p99Ms))} ms echo`,
          ratio: ratio(
            oneMed("app-4", (x) => x.p99Ms),
            oneMed("echo-4", (x) => x.p99Ms),
          ),
        });
      }
      if (idle) {
        // Which side a tail came from, round by round: the server's loop, the generator's, or
        // neither (the machine's run queue).
        const at = (k: string, i: number) => {
          const x = res[k]![i]!;
          return (
            `${k.split("-")[0]} ${fmtMs(x.p99Ms)} (${fmtMs(x.loopP99Ms)}; ` +
            `${fmtInt(x.gc.count)} GC, ${fmtInt(x.gc.minor)} minor, ${fmtMs(x.gc.totalMs)} in all, ` +
            `max ${fmtMs(x.gc.maxMs)}; ` +
            `${fmtMs(x.clientLoopP99Ms)})`
          );
        };
        notes.push(
          `Step 4: snapshot keys the app wrote during the rounds (idle: no events), by stage: ` +
            (idleWrites.length === 0
              ? "none"
              : idleWrites
                  .map((x) => `${x.stage} ${fmtInt(x.keys)} in ${fmtInt(x.writes)} snapshots`)
                  .join(", ")) +
            ".",
        );
        const cpuAt = (k: string, i: number) => {
          const x = res[k]![i]!;
          return (
            `${k.split("-")[0]} ${fmtInt(x.reqPerSec)} req/s, ${fmtInt(x.serverCpuUsPerReq)} µs ` +
            `(main thread ${fmtInt(x.serverMainCpuUsPerReq)}, nats-server ` +
            `${fmtInt(x.natsCpuUsPerReq)}; ${fmtInt(x.gc.count)} GC, ${fmtMs(x.gc.totalMs)} ms)`
          );
        };
        notes.push(
          `Step 4 at -m 64, each round: req/s and the server process's CPU per request (of it ` +
            `the main thread's, where gRPC, the stages and GC pauses run; the rest is its other ` +
            `threads: V8's GC helpers, the libuv pool, LevelDB's compaction, the ALS worker), ` +
            `nats-server's CPU per request beside it, the process's garbage collections: ` +
            res["app-64"]!.map(
              (_, i) => `round ${i + 1}: ${cpuAt("echo-64", i)}, ${cpuAt("app-64", i)}`,
            ).join("; ") +
            ".",
        );
        notes.push(
          `Step 4 at -m 4, each round: latency p99 ms (the server's event-loop delay p99; its ` +
            `garbage collections during the run (perf_hooks), how many were young-generation ` +
            `scavenges, their pauses in all and the longest; the generator's event-loop delay p99): ` +
            res["app-4"]!.map(
              (_, i) => `round ${i + 1}: ${at("echo-4", i)}, ${at("app-4", i)}`,
            ).join("; ") +
            ".",
        );
      }
      notes.push(
        `Step 4: ${fmtInt(msgs.length)} events ingested into a fresh app first; requests ask ` +
          `GetRecommendations(n=${n}) for ${fmtInt(askUsers.length)} users in turn: ` +
          `${fmtInt(askUsers.length - unknownCount)} of the ${fmtInt(known.length)} users of those ` +
          `events (shuffled, seeded) and ${fmtInt(unknownCount)} never seen, each once in a warm-up ` +
          `first. Load: bench/grpc-load.ts in a child process (one connection, -m concurrent ` +
          `calls, each posting the next user's prebuilt frame; ` +
          (GEN_CLIENT === "raw"
            ? `its raw HTTP/2 client, bench/h2-raw.ts, writes prebuilt HEADERS + DATA frames and ` +
              `tells answers from errors by their frames; the warm-up asks through node:http2 ` +
              `and reads every grpc-status`
            : `node:http2, every grpc-status read`) +
          `; it costs ${client("echo-64")} µs of its own CPU per call at -m 64` +
          `${idle ? ` and ${client("echo-4")} µs at -m 4` : ""} against the echo, taken from the 2 cores the server ` +
          `shares, for echo and app alike). The echo ` +
          `server is grpc-js with the same service definition answering the app's prebuilt answer ` +
          `for ${user} (${real.items.length} items, ${personal} personalised, ` +
          `${toBinary(GetRecommendationsResponseSchema, real).length} bytes) to every call. ` +
          `${fmtInt(H2_REQUESTS)} calls at -m 64 and ${fmtInt(m4Requests)} at -m 4; ${ROUNDS} rounds ` +
          `alternating echo and app, medians shown` +
          `${idle ? "" : " (this run: only the echo at -m 64, the baseline of 4b)"}. The h2load rows ` +
          `post GetRecommendations(user_id="${user}") every time (the figure of earlier runs; ` +
          `per-user caches answer it; after the warm-up the many-user calls are answered from ` +
          `the blend memo too, see below). At -m 4 a call's latency includes the generator's ` +
          `own stalls (its event-loop delay row): where that p99 is near 5 ms the many-user ` +
          `row measures the generator as much as the server, and h2load at -m 4 (same calls ` +
          `to echo and app) is the server's figure. Over steps 4 and 4b the app's grpc_requests_total counted ` +
          `${fmtInt(okDelta)} OK of ${fmtInt(allDelta)} (expected ${expected}). Server CPU per ` +
          `request is this process's CPU time over the run divided by requests (the app's idle ` +
          `pipeline included); event-loop delay is perf_hooks' monitorEventLoopDelay in this ` +
          `process (the app's main one, where gRPC is served) during each run, less its sampling ` +
          `interval (bench/loop-delay.ts: an idle loop reads 0). Before the ` +
          `warm-up the bench waited ${fmtInt(quiet.waitedMs / 1000)} s for the app to go quiet ` +
          `(the source stages caught up, the idle ALS training done: bench/quiet.ts)` +
          `${quiet.quiet ? "" : ` and went on after ${fmtInt(QUIET_MAX_MS / 1000)} s with it still busy (CPU ${fmtInt(quiet.cpuShare * 100)}% of a core, model at ${fmtInt(quiet.modelAt)} of ${fmtInt(quiet.fed)} events)`}. Blended answers ` +
          `after the warm-up (reco_recommender memo_hits / memo_misses): ${memoNote(memo0, memo1)}` +
          `${underLoad ? `; during 4b ${memoNote(memo1, memo2)}` : ""}.` +
          (SERVE_SPLIT && underLoad
            ? ` BENCH_SERVE_PROCESS=1: during 4b the serving process answered ${fmtInt(fromBlend!)} ` +
              `blended from its replica of the blend's sources, ${fmtInt(fromReplica!)} with the ` +
              `design ranking and ${fmtInt(fromFallback!)} with the design ranking as a fallback ` +
              `(the blend's replica not received yet).`
            : ""),
      );
      if (underLoad) {
        const a = "app-64-load";
        row({
          step: "4b",
          figure: `GetRecommendations req/s, 64 streams, during ${fmtInt(SERVE_LOAD_RATE)} events/s ingest`,
          value: `${fmtInt(rps(a))} req/s`,
          baseline: `${fmtInt(rps("echo-64"))} req/s echo (idle, as in 4)`,
          ratio: ratio(rps(a), rps("echo-64")),
          target: `≥ 0.50× (${verdict(rps(a) / rps("echo-64") >= 0.5)})`,
        });
        row({
          step: "4b",
          figure: "  p50 / p99 latency, 64 streams, during ingest",
          value: `${fmtMs(p50(a))} / ${fmtMs(p99(a))} ms`,
          baseline: `${fmtMs(p50("echo-64"))} / ${fmtMs(p99("echo-64"))} ms echo (idle)`,
          ratio: ratio(p99(a), p99("echo-64")),
          target: `p99 < 25 ms (${verdict(p99(a) < 25)})`,
        });
        row({
          step: "4b",
          figure: "  event-loop delay p99 / max of the app's process, during ingest",
          value: loop(a),
          baseline: `${loop("echo-64-load")} while the echo was measured`,
        });
        const pct = (x: number) => `${fmtInt(x * 100)}%`;
        /** A run's serving thread: CPU per request; share of the round on a CPU / waiting for one. */
        const thread = (k: string) =>
          `${fmtInt(med(k, (x) => x.serverMainCpuUsPerReq))} µs; ` +
          `${pct(med(k, (x) => x.mainRunShare))} / ${pct(med(k, (x) => x.mainWaitShare))}`;
        /** A run's req/s and p50 / p99. */
        const served = (k: string) =>
          `${fmtInt(rps(k))} req/s, ${fmtMs(p50(k))} / ${fmtMs(p99(k))} ms`;
        row({
          step: "4b",
          figure:
            "  this process's main thread during ingest: CPU per request; share of the round on a CPU / waiting for one",
          value: thread(a),
          baseline:
            `echo during ingest ${thread("echo-64-load")}` +
            (SERVE_SPLIT ? "" : " (it runs the stages too)"),
        });
        const parseMed = (f: (x: { p99: number; max: number }) => number) =>
          fmtMs(median(parseLoops.map(f)));
        row({
          step: "4b",
          figure: "  event-loop delay p99 / max of the other processes, during ingest",
          value:
            (app.parseProcess
              ? `${SERVE_SPLIT ? "ingest + parse (mean of the two)" : "parse"} ${parseMed((x) => x.p99)} / ${parseMed((x) => x.max)} ms; `
              : "parse in the app's process; ") +
            `publisher ${fmtMs(publisherLoop.p99)} / ${fmtMs(publisherLoop.max)} ms; ` +
            `load generator ${fmtMs(med(a, (x) => x.clientLoopP99Ms))} / ${fmtMs(med(a, (x) => x.clientLoopMaxMs))} ms`,
          baseline: "parse: during the app rounds; publisher: all rounds",
        });
        row({
          step: "4b",
          figure: "  echo in the same process during the same ingest: req/s, p50 / p99",
          value: served("echo-64-load"),
          baseline: "app / echo, both during ingest",
          ratio: ratio(rps(a), rps("echo-64-load")),
        });
        const own = "own-64-load";
        row({
          step: "4b",
          figure:
            "  echo in a process of its own during the same ingest (the machine's ceiling): req/s, p50 / p99",
          value: served(own),
          baseline: `${served("own-64")} idle (before the ingest)`,
          ratio: ratio(rps(own), rps("echo-64")),
          target: `${verdict(rps(own) / rps("echo-64") >= 0.5 && p99(own) < 25)} by an echo`,
        });
        row({
          step: "4b",
          figure:
            "  that echo's main thread during ingest: CPU per request; share of the round on a CPU / waiting for one",
          value: thread(own),
          baseline: `idle ${thread("own-64")}`,
        });
        row({
          step: "4b",
          figure: "  ingest achieved during the rounds / parse backlog at the end",
          value: `${fmtInt(underLoad.achieved)} events/s / ${fmtInt(underLoad.backlog)}`,
          baseline: `${fmtInt(SERVE_LOAD_RATE)} events/s asked`,
        });
        notes.push(
          `Step 4b: after step 4, in the same process and app, a separate process publishes ` +
            `${fmtInt(SERVE_LOAD_RATE)} events/s with current event times (Zipf over the same 20k ` +
            `users); after 3 s, ${ROUNDS} rounds of the many-user generator at -m 64 for ` +
            `${SERVE_LOAD_SECONDS} s each, echo then app, medians shown. The ratio is to the idle ` +
            `echo of step 4 (DESIGN's baseline); the echo server measured during the ingest shares ` +
            `the process and its event loop with the ingesting app, so app / echo-during-ingest ` +
            `isolates the serving path. Achieved ingest is what JetStream acked during the rounds` +
            `${underLoad.skipped ? ` (${fmtInt(underLoad.skipped)} events skipped: the publisher fell behind)` : ""}; ` +
            `the backlog is how far parse was behind the EVENTS stream when they ended. The main ` +
            `thread's row: its CPU time over a round per request (in one process it runs the ` +
            `stages too), and its time on a CPU and runnable but waiting for one (schedstat) as ` +
            `shares of the round: waiting is what other processes (ingest, the generator, anything ` +
            `else on the machine) took from the thread that serves.`,
        );
      }
    } finally {
      appClient.close();
      await echo?.stop();
      if (ownEcho) await stopChild(ownEcho);
      await app.stop();
      await rm(tmp, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Main

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8" }).trim().split("\n")[0] ?? "";
  } catch {
    return "unknown";
  }
}

/** The commit measured, and whether files outside bench/ differed from it (work in progress). */
function codeVersion(): string {
  const git = (args: string[]) => {
    try {
      return execFileSync("git", args, {
        encoding: "utf8",
        cwd: fileURLToPath(new URL("..", import.meta.url)),
      }).trimEnd();
    } catch {
      return "";
    }
  };
  const head = git(["log", "-1", "--format=%h %s"]);
  if (!head) return "not a git checkout";
  // Porcelain lines are "XY path": the leading space of " M path" is part of the format.
  const dirty = git(["status", "--porcelain", "--untracked-files=no"])
    .split("\n")
    .filter((l) => l.length > 3 && !l.slice(3).startsWith("bench/"));
  const subject = head.length > 80 ? `${head.slice(0, 80).replace(/[\s;,.:]+$/, "")}…` : head;
  return (
    `commit ${subject}` +
    (dirty.length
      ? `; ${dirty.length} tracked files outside bench/ had uncommitted changes, measured as they were`
      : "")
  );
}

function commandLine(): string {
  const knobs = Object.keys(env)
    .filter((k) => k.startsWith("BENCH_"))
    .sort()
    .map((k) => `${k}=${env[k]}`);
  const cmd = env.npm_lifecycle_event === "bench" ? "npm run bench" : "npx tsx bench/run.ts";
  return [...knobs, cmd].join(" ");
}

/** Child mode: runs one step in this (fresh) process and prints its result as one JSON line. */
async function runStep(name: string, consumeRate: number): Promise<void> {
  const msgs = () =>
    generateMessages(N, { ...DEFAULT_GENERATOR, start: Date.now() - DEFAULT_GENERATOR.spanMs });
  let rate: number | undefined;
  try {
    if (name === "1") rate = await stepRaw(msgs());
    else if (name === "2") await stepIngest(msgs(), consumeRate);
    else if (name === "3") await stepFreshness();
    else if (name === "4") await stepServing(msgs().slice(0, SERVE_EVENTS));
    else if (name === "5")
      await stepFanout(report, {
        subscribers: FANOUT_SUBSCRIBERS,
        channels: FANOUT_CHANNELS,
        seconds: FANOUT_SECONDS,
        rate: FANOUT_RATE,
        triggerMs: FANOUT_TRIGGER_MS,
        k: 10,
        config: appConfig,
      });
    else if (name === "6") await stepRecovery(report, recoveryOptions);
    else if (name === "7") {
      const memory = {
        users: MEMORY_USERS,
        doubleAt: MEMORY_DOUBLE_AT,
        partitions: PARTITIONS,
        ingestTimeoutMs: INGEST_TIMEOUT_MS,
        publishWindow: PUB_WINDOW,
      };
      if (!RECOVERY_IN_MEMORY) await stepMemory(report, memory);
      else {
        // Step 6 measured on step 7's point of the same size; its rows go first.
        const rows6: Row[] = [];
        const notes6: string[] = [];
        const report6: Report = {
          row: (r) => rows6.push({ baseline: "", ratio: "", target: "", ...r }),
          note: (text) => notes6.push(text),
          fail: () => failures++,
          log,
        };
        try {
          await stepMemory(report, memory, {
            users: RECOVERY_EVENTS,
            fn: (s) => measureRecovery(report6, s, recoveryOptions),
          });
        } finally {
          if (rows6.length === 0)
            rows6.push({
              step: "6",
              figure: "FAILED",
              value: "step 7 failed before its recovery measurement",
              baseline: "",
              ratio: "",
              target: "",
            });
          rows.unshift(...rows6);
          notes.unshift(...notes6);
        }
      }
    } else throw new Error(`unknown step ${name}`);
  } catch (err) {
    failures++;
    const msg = err instanceof Error ? err.message.split("\n")[0] : String(err);
    log(`${name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    row({ step: name, figure: "FAILED", value: msg ?? "" });
  }
  const result: StepResult = { rows, notes, failures, ...(rate !== undefined ? { rate } : {}) };
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

interface StepResult {
  rows: Row[];
  notes: string[];
  failures: number;
  /** Step 1: the raw consume rate, the baseline of step 2. */
  rate?: number;
}
const RESULT_PREFIX = "BENCH-RESULT ";

/**
 * Runs one step in a child process (same node flags, so tsx's loader too): every step gets a
 * fresh heap, so one step's garbage or leftovers cannot slow the next, and RSS is the step's own.
 */
async function spawnStep(name: string, consumeRate: number): Promise<StepResult> {
  const script = fileURLToPath(import.meta.url);
  const args = [
    ...process.execArgv,
    ...STEP_NODE_FLAGS,
    script,
    "--step",
    name,
    "--consume-rate",
    String(consumeRate),
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "inherit"],
      // The app runs in it: with the node flags and environment `npm start` gives it.
      env: runtimeEnv({ ...env, RECO_BENCH_T0: String(T0) }),
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.once("exit", (code, signal) => {
      const line = out.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
      if (line) {
        resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as StepResult);
        return;
      }
      const why = `step process exited with ${signal ?? code} and no result`;
      resolve({
        rows: [{ step: name, figure: "FAILED", value: why, baseline: "", ratio: "", target: "" }],
        notes: [],
        failures: 1,
      });
    });
  });
}

function table(): string {
  const head: Row = {
    step: "#",
    figure: "figure",
    value: "value",
    baseline: "baseline (same run)",
    ratio: "ratio",
    target: `target (${TARGETS.section})`,
  };
  const cols = Object.keys(head) as (keyof Row)[];
  const all = [head, ...rows];
  const width = (c: keyof Row) => Math.max(...all.map((r) => r[c].length));
  const line = (r: Row) => `| ${cols.map((c) => r[c].padEnd(width(c))).join(" | ")} |`;
  const sep = `| ${cols.map((c) => "-".repeat(width(c))).join(" | ")} |`;
  return [line(head), sep, ...rows.map(line)].join("\n");
}

async function main(): Promise<void> {
  if (STEPS.has("4") || STEPS.has("4b")) {
    try {
      ensureH2load(log);
    } catch (err) {
      console.error(`bench: ${(err as Error).message}`);
      process.exit(2);
    }
  }
  // Steps 6 and 7 start the app as `npm start` does: from dist/, built here if a source is newer.
  if ((STEPS.has("6") || STEPS.has("7")) && !APP_FROM_SOURCES)
    execFileSync(process.execPath, [fileURLToPath(new URL("../bin/build.mjs", import.meta.url))], {
      stdio: "inherit",
    });
  const machine = {
    nproc: version("nproc", []) || String(availableParallelism()),
    node: process.version,
    nats: version("nats-server", ["--version"]),
    h2load: version("h2load", ["--version"]),
    date: new Date().toISOString(),
    load: loadavg(),
    // Before any step writes bench/ files (freshness.svg): the tree as the run found it.
    code: codeVersion(),
  };
  let consumeRate = NaN;
  for (const name of ["1", "2", "3", "4", "5", "6", "7"]) {
    // 4b runs in step 4's process: it needs that step's app and echo baseline.
    if (!STEPS.has(name) && !(name === "4" && STEPS.has("4b"))) continue;
    if (name === "6" && RECOVERY_IN_MEMORY) continue; // measured in step 7's process
    const r = await spawnStep(name, consumeRate);
    rows.push(...r.rows);
    notes.push(...r.notes);
    failures += r.failures;
    if (r.rate !== undefined) consumeRate = r.rate;
  }

  const totalSecs = (performance.now() - T_START) / 1000;
  const t = table();
  console.log(
    `\nreco-stream bench: ${fmtInt(N)} events, ${PARTITIONS} partitions, ${totalSecs.toFixed(0)} s\n`,
  );
  console.log(t);
  console.log(
    `\nload average (1 min): ${machine.load[0]!.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end ` +
      `on ${machine.nproc} cores\n`,
  );
  for (const n of notes) console.log(`- ${n}`);

  const md = [
    "# Bench results",
    "",
    "Written by `bench/run.ts`; see bench/README.md for what each figure means. Treat every",
    "figure as ±25%: the machine is shared and noisy (NATS-NOTES.md).",
    "",
    "```",
    commandLine(),
    "```",
    "",
    `- machine: ${machine.nproc} cores (nproc), Node ${machine.node}, ${machine.nats}, ${machine.h2load}`,
    `- date: ${machine.date}; the whole run took ${totalSecs.toFixed(0)} s`,
    `- load average (1 min) at start ${machine.load[0]!.toFixed(1)}, at end ${loadavg()[0]!.toFixed(1)}: ` +
      "anything above ~0.5 means other work shared the 2 cores and the figures are pessimistic",
    `- code: ${machine.code}`,
    `- ${fmtInt(N)} events, ${PARTITIONS} partitions, publish window ${PUB_WINDOW}, CHAINING=${env.CHAINING ?? SETTINGS.chaining.default}, RANKER=${env.RANKER ?? SETTINGS.ranker.default}, ${STEP_NODE_FLAGS.length ? `step processes run with \`${STEP_NODE_FLAGS.join(" ")}\`` : "no extra node flags"}`,
    "",
    t,
    "",
    "## Notes",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].join("\n");
  // A run of every step (with the default number of events) is the one RESULTS.md records; a
  // subset or a smaller run writes RESULTS-partial.md (ignored by git), leaving those figures.
  const full = ALL_STEPS.every((x) => STEPS.has(x)) && N >= 200_000;
  const out = fileURLToPath(
    new URL(full ? "./RESULTS.md" : "./RESULTS-partial.md", import.meta.url),
  );
  // Formatted like the rest of the repo, so `prettier --check .` stays clean after a run.
  const formatted = await import("prettier")
    .then((p) => p.format(md, { parser: "markdown", printWidth: 100 }))
    .catch(() => md);
  await writeFile(out, formatted);
  log(`wrote ${out}${failures ? ` (${failures} failures)` : ""}`);
}

const stepArg = process.argv.indexOf("--step");
const entry =
  stepArg > 0
    ? () =>
        runStep(
          process.argv[stepArg + 1] ?? "",
          Number(process.argv[process.argv.indexOf("--consume-rate") + 1]),
        )
    : main;
entry().then(
  () => process.exit(failures ? 1 : 0),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
