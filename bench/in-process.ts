/**
 * The app in the step's own process (steps 2–5): its configuration, its publisher and the wait
 * until it has caught up with what was published.
 */
import type { NatsConnection } from "nats";
import { loadConfig } from "../bin/config.js";
import type { App } from "../bin/app.js";
import { connectNats } from "../connectors/nats/connection.js";
import { createJetStreamPublisher, type OutgoingMessage } from "../connectors/nats/publisher.js";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { env, INGEST_TIMEOUT_MS, PARTITIONS, PUB_WINDOW, SETTLE_MS } from "./options.js";
import { procCpuSeconds, scrape, sleep } from "./util.js";

export async function connect(nats: EmbeddedNats): Promise<NatsConnection> {
  return connectNats({ servers: nats.url, name: "reco-bench" });
}

/** Publishes with the fast publisher; returns msgs/s. */
export async function publishAll(nc: NatsConnection, msgs: OutgoingMessage[]): Promise<number> {
  const pub = createJetStreamPublisher(nc, { window: PUB_WINDOW });
  const t0 = performance.now();
  const { published } = await pub.publishMany(msgs);
  const secs = (performance.now() - t0) / 1000;
  await pub.close();
  if (published !== msgs.length) throw new Error(`published ${published} of ${msgs.length}`);
  return msgs.length / secs;
}

/**
 * The app's settings a bench run passes on from its environment, as `npm start` reads them:
 * - PARSE_PROCESS=0: the app with parse in its main process;
 * - PARSE_PROCESS_STAGES=ingest: the stages no answer reads run beside parse in its process;
 * - CHAINING=on: the user path as one chain per partition (docs/HOW-IT-WORKS.md "Chains");
 * - RANKER=design: the design stages alone, without the blend's sources (their cost hides the
 *   user path's);
 * - QUALITY=off (no prequential scorer) and QUALITY_SAMPLE: what online quality costs;
 * - SNAPSHOT_INTERVAL: what the snapshots' writes (LevelDB, its compaction) cost at another
 *   cadence;
 * - BATCH_MAX_RECORDS: records per hop message, what a stage holds the event loop for at most;
 * - BATCH_MAX_DELAY_MS, PAIRS_MAX_DELAY_MS: how long parse's hops and the history stages' pair
 *   hops linger (fewer, larger hops against freshness);
 * - ANSWER_MAX_AGE_MS: bounded staleness of blended answers (off by default: the report says
 *   when it is on);
 * - HEAP_GROWING_PERCENT, HEAP_GROWING_MIN_MB: what the heap's growth between full GCs costs;
 * - HEAP_QUIET_GC_MS: the full GC once quiet after work (0: none).
 */
export const APP_SETTINGS = [
  "PARSE_PROCESS",
  "PARSE_PROCESS_STAGES",
  "CHAINING",
  "RANKER",
  "QUALITY",
  "QUALITY_SAMPLE",
  "SNAPSHOT_INTERVAL",
  "BATCH_MAX_RECORDS",
  "BATCH_MAX_DELAY_MS",
  "PAIRS_MAX_DELAY_MS",
  "COVISIT_PARTITIONS",
  "INPUT_ALIGNMENT",
  "ANSWER_MAX_AGE_MS",
  "HEAP_GROWING_PERCENT",
  "HEAP_GROWING_MIN_MB",
  "HEAP_QUIET_GC_MS",
] as const;

/** Those of `names` set in the bench's environment. */
const fromEnv = (names: readonly string[]): Record<string, string> =>
  Object.fromEntries(names.flatMap((k) => (env[k] !== undefined ? [[k, env[k]!]] : [])));

export function appConfig(nats: EmbeddedNats, dataDir: string, extra: Record<string, string> = {}) {
  return loadConfig({
    NATS_URL: nats.url,
    DATA_DIR: dataDir,
    GRPC_PORT: "0",
    GRPC_HOST: "127.0.0.1",
    METRICS_PORT: "0",
    LOG_LEVEL: "silent",
    PARTITIONS: String(PARTITIONS),
    ...fromEnv(APP_SETTINGS),
    ...extra,
  });
}

/** Parse's last processed EVENTS sequence, in this process or in the app's parse process. */
export const parsePosition = (app: App) =>
  app.pipeline.instance("parse/0")?.position() ?? app.parseProcess?.position() ?? 0;

/** CPU seconds the app's parse process (PARSE_PROCESS=1) has used so far; 0 without one. */
export async function parseCpuSeconds(app: App): Promise<number> {
  const pid = app.parseProcess?.pid();
  return pid === undefined ? 0 : procCpuSeconds(pid);
}

/**
 * Waits until parse has processed the EVENTS stream up to `lastSeq`, no stage instance's input
 * position has moved for SETTLE_MS, and every consumer-lag gauge reads 0. Returns the time of
 * the last observed move (polled every 50 ms), i.e. when the pipeline actually finished.
 */
export async function waitCaughtUp(
  app: App,
  lastSeq: number,
  t0: number,
): Promise<{ doneAt: number; timedOut: boolean; parsed: number }> {
  // Every stage instance the app runs: the source and quality stages (history, covisit,
  // collaborative, drift, prequential) as well as the design path, so the ingest ends when
  // the last of them has caught up (read at every poll: instances start in tiers).
  let lastSum = -1;
  let lastMove = performance.now();
  // A scrape of the app's /metrics costs it 100-300 ms of CPU at the end of step 2 (every
  // stage's series, the parse process's merged in): while a lag gauge stays above 0, one a
  // second at most, not one every poll (a stall that lasted was turned into a scrape loop that
  // took the app's main thread).
  let nextScrape = 0;
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
    } else if (parsePos >= lastSeq && now - lastMove >= SETTLE_MS && now >= nextScrape) {
      nextScrape = now + 1000;
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
export function watchStageFailures(app: App): { id: string; why: string }[] {
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
export function describeFailures(list: { id: string; why: string }[], first = 3): string {
  const shown = list.slice(0, first).map((f) => `${f.id}: ${f.why}`);
  return `${list.length}${shown.length ? ` (${shown.join("; ")}${list.length > first ? "; ..." : ""})` : ""}`;
}
