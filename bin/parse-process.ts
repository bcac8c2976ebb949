import { setTimeout as sleep } from "node:timers/promises";
import { createChildReplies, type ChildReplies } from "./child-replies.js";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Logger } from "pino";
import {
  AggregatorRegistry,
  Registry,
  type MetricObjectWithValues,
  type MetricValue,
} from "prom-client";
import { createActor, createSupervisor, type Actor } from "../runtime/index.js";
import { openStateDb, type StateDb, type StateDbOptions } from "../state/index.js";
import type { Metrics } from "../connectors/http/metrics.js";
import type { AppConfig } from "./config.js";
import { tsxFlags } from "./tsx-flags.js";
import { watchStages, type HealthProblem } from "./health.js";
import { parentDeathPrefix } from "../connectors/nats/embedded-server.js";
import type { ChangeChunk } from "../actors/serving/index.js";

/**
 * `reco start` with PARSE_PROCESS=1: the parse unit (the single reader of EVENTS: validation,
 * dedupe, routing) runs in a child process on the second core; the main process runs the
 * partitions' units, serving, gRPC and metrics. Stages only talk over JetStream, so nothing
 * else changes: parse's snapshot (in `${DATA_DIR}/state-parse`: LevelDB allows one process per
 * directory) and its durable consumer make a SIGKILL of either process safe, as in one process.
 *
 * The child lives and dies with the main process: it exits when its IPC channel closes (the
 * parent died, however), ignores the signals meant for the app as a whole, and stops (final
 * snapshot) when the parent asks. The parent restarts a child that dies, with the backoff and
 * escalation of the stage supervisor, and serves the child's metrics merged into its own.
 */

/** Messages parent → child. */
export type ToParseChild =
  | {
      type: "start";
      cfg: AppConfig;
      natsUrl: string;
      /**
       * The ingest child: the source stages' snapshots the parent's replica read (a token per
       * instance, bin/serve-app.ts), whose first runs send no dump (blend-changes.ts).
       */
      replicaBases?: Record<string, string>;
    }
  | { type: "metrics"; id: number }
  | { type: "stop" };

export type JsonMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** Messages child → parent. */
export type FromParseChild =
  | { type: "ready" }
  /**
   * Parse's last processed EVENTS sequence and every stage instance's input position, sent when
   * one moves (at most every 100 ms).
   */
  | { type: "position"; seq: number; stages?: Record<string, number> }
  | { type: "metrics"; id: number; metrics: JsonMetrics }
  /** The child's own health problems (NATS, parse failing, its state store), every second. */
  | { type: "health"; problems: HealthProblem[] }
  /** The child cannot run (its state store is corrupt): restarting it will not help. */
  | { type: "fatal"; message: string }
  /** The ingest child's blend source changes, for the serving process's replica. */
  | { type: "blend"; chunk: ChangeChunk }
  /** The ingest child has no blend change left to send (now: the replica is caught up). */
  | { type: "blend-idle" };

/** The parse child exited without being asked to. */
export class ParseProcessExitedError extends Error {
  override readonly name = "ParseProcessExitedError";
  constructor(
    readonly code: number | null,
    readonly signal: string | null,
    what = "parse",
  ) {
    super(`the ${what} process exited with ${signal ?? `code ${code}`}`);
  }
}

/** The parse child said it cannot run (its message names why and the way out). */
export class ParseProcessFatalError extends Error {
  override readonly name = "ParseProcessFatalError";
}

export interface ParseProcess {
  /** PID of the current child; undefined while it is being restarted. */
  pid(): number | undefined;
  /** Whether a child runs and has said it is ready (false while one is (re)starting). */
  running(): boolean;
  /** Parse's last processed EVENTS sequence as the current child last reported it (0 before). */
  position(): number;
  /** Input positions of the child's stage instances ("<stage>/<partition>"), as last reported. */
  positions(): Readonly<Record<string, number>>;
  /** Resolves when a child runs parse (following restarts); rejects if supervision gave up. */
  ready(): Promise<void>;
  /**
   * Health problems of the parse process (read from memory): its own (NATS, parse failing, its
   * state store) as it last reported them, a child that keeps dying, or one that stopped reporting.
   */
  problems(now: number): HealthProblem[];
  /** A registry whose /metrics text is `own` merged with the child's metrics. */
  mergedRegistry(own: Registry): Registry;
  /**
   * The child's own metrics (as JSON, [] when it does not answer within 2 s): the bench reads
   * the parse process's event-loop delay from them, which the merged registry averages with
   * the main process's.
   */
  childMetrics(): Promise<JsonMetrics>;
  /** Asks the child to drain (final snapshot) and exit, SIGKILL after `graceMs`; no restarts. */
  stop(): Promise<void>;
}

/**
 * Which child: the parse unit (default), or the ingest process of a split `reco start`
 * (bin/ingest-child.ts: every stage, no façade), started at a lower scheduling priority.
 */
export interface ChildKind {
  /** Actor id and health check name ("parse-process"). */
  id: string;
  /** The entry file beside this one, without extension ("parse-child"). */
  entry: string;
  /** Stage label of its restart and error counts, and its name in messages ("parse"). */
  label: string;
  /** Niceness to start it with (`nice -n`); absent: as this process. */
  nice?: number;
  /**
   * IPC serialization: "advanced" (structured clone) carries bytes as bytes (the ingest child's
   * blend changes hold covisit's binary neighbour lists); default "json".
   */
  serialization?: "json" | "advanced";
}

export const PARSE_CHILD: ChildKind = { id: "parse-process", entry: "parse-child", label: "parse" };

export interface ParseProcessOptions {
  cfg: AppConfig;
  natsUrl: string;
  log: Logger;
  /** Restarts and failures of the child count as parse's (`reco_stage_restarts_total`, …). */
  metrics?: Metrics;
  /**
   * Called when the child keeps dying (20 times within a minute) or says it cannot run (a corrupt
   * state store): the app exits non-zero.
   */
  onFatal?: (err: Error) => void;
  /** How long the child may drain on stop before it is SIGKILLed (default 15 s). */
  graceMs?: number;
  /** Which child (default: parse). */
  kind?: ChildKind;
  /** Messages of the child this module does not handle itself (the ingest child's "blend"). */
  onMessage?: (m: FromParseChild) => void;
  /**
   * Called before each child is spawned (the first and every restart), its result sent with the
   * start message: the serving process reads the state store the child is about to open.
   */
  beforeSpawn?: () => Promise<{ replicaBases?: Record<string, string> }>;
  /**
   * The child is spawned once this settles (the first time; a restart after it at once): a
   * restarted app spawns parse once the blend's sources have loaded, so that parse's own start
   * (its modules, its dedupe memory, ~2 s of CPU at 1M events) does not take a core from them.
   */
  spawnAfter?: Promise<unknown>;
}

/**
 * Events parse may have waiting at a start for it to count as caught up: its acks go every 256
 * events, so a stop or a kill leaves up to that many unacknowledged.
 */
export const PARSE_IDLE_BACKLOG = 1_000;

/**
 * When a start spawns the parse process. With next to nothing for it to read (`backlog`: events
 * waiting in its consumer; a failure to tell counts as many), once the blend's sources run, at
 * most `maxWaitMs`: its own start (modules, its snapshot: ~1.5-2 s of CPU with 1M events of
 * state) would take a core from their loads, which a restart's first right answers wait for.
 * With events to catch up (the app was down while they were published), at once: freshness
 * first (bench 6b with it deferred: the downtime's backlog processed 17.7 s after the kill,
 * against 7.5 s).
 */
export async function parseSpawnGate(
  backlog: () => Promise<number>,
  sourcesRunning: () => Promise<void>,
  maxWaitMs: number,
): Promise<void> {
  if ((await backlog().catch(() => Infinity)) > PARSE_IDLE_BACKLOG) return;
  await Promise.race([sourcesRunning(), sleep(maxWaitMs, undefined, { ref: false })]);
}

/** Directory of the child's LevelDB, beside the main process's `state`. */
export const parseStateDir = (dataDir: string) => join(dataDir, "state-parse");

/** Starts the child (and supervises it); `ready()` tells when it runs parse. */
export function startParseProcess(o: ParseProcessOptions): ParseProcess {
  const kind = o.kind ?? PARSE_CHILD;
  const CHILD_ID = kind.id;
  const what = `${kind.label} process`;
  let lastPosition = 0;
  let lastPositions: Readonly<Record<string, number>> = {};
  let reported: { at: number; problems: HealthProblem[] } | undefined;
  // Scrapes wait up to 5 s for the child (Prometheus's default timeout is 10 s); a later answer,
  // or a child restarting, leaves its series out of that scrape (never older values as current).
  const replies = createChildReplies<JsonMetrics>([], 5000);
  const supervisor = createSupervisor({
    id: CHILD_ID,
    // As the stage supervisor: backoff up to 5 s; 20 deaths within a minute is a crash loop.
    restart: { count: 20, period: 60_000, delay: 100, maxDelay: 5_000 },
    onEscalate: (err) => {
      o.log.fatal({ err: String(err) }, `the ${what} keeps dying: giving up`);
      o.onFatal?.(err);
    },
    reporter: (err) => o.log.error({ err: String(err) }, `${what} supervisor`),
  });
  const labels = { stage: kind.label, partition: "0" };
  supervisor.events$.subscribe((e) => {
    if (e.type === "child-failed") {
      o.metrics?.errors.inc(labels);
      o.log.warn({ err: String(e.error), restarts: e.restarts }, `${what} failed`);
    }
    if (e.type === "child-restarted") {
      o.metrics?.restarts.inc(labels);
      o.log.info({ delayMs: e.delayMs }, `${what} restarting`);
    }
  });
  const current = () => supervisor.child(CHILD_ID) as ParseChildActor | undefined;
  supervisor.supervise(CHILD_ID, () =>
    createParseChildActor(o, kind, replies, {
      onPosition: (seq, stages) => {
        lastPosition = seq;
        if (stages) lastPositions = stages;
      },
      onStart: () => {
        lastPosition = 0;
        lastPositions = {};
        reported = undefined;
      },
      onHealth: (problems) => (reported = { at: Date.now(), problems }),
      // Silence counts from here: a child that stops before its first report is silent too.
      onReady: () => (reported = { at: Date.now(), problems: [] }),
    }),
  );
  const running = () => current()?.getStatus() === "running";
  // A child that dies and is restarted over and over is "the parse stage failing".
  const dying = watchStages(supervisor.events$, () => current()?.getStatus(), {
    failingMs: o.cfg.healthStageFailingMs,
    check: CHILD_ID,
  });
  const silentAfterMs = 5_000;

  const childMetrics = async (): Promise<JsonMetrics> => {
    const actor = current();
    return actor && actor.getStatus() === "running" ? actor.metrics() : [];
  };
  return {
    pid: () => current()?.pid(),
    running,
    position: () => lastPosition,
    positions: () => lastPositions,
    problems(now) {
      const out = dying.check(now);
      const at = reported?.at;
      if (running() && at !== undefined && now - at > silentAfterMs)
        out.push({
          check: CHILD_ID,
          reason: `the ${what} has not reported its health for ${Math.round((now - at) / 1000)} s (pid ${current()?.pid() ?? "?"})`,
          since: at,
        });
      // Also while the child starts: it reports from before its stages load (it says ready only
      // once every one runs), so a stage failing meanwhile is named.
      for (const p of reported?.problems ?? [])
        out.push({ ...p, check: `${CHILD_ID}/${p.check}`, reason: `${what}: ${p.reason}` });
      return out;
    },
    ready: () => supervisor.ready(),
    mergedRegistry: (own) => new MergedRegistry(own, childMetrics),
    childMetrics,
    stop: async () => {
      dying.stop();
      await supervisor.stop();
    },
  };
}

interface ParseChildActor extends Actor<never> {
  pid(): number | undefined;
  /** The child's registry as JSON; its last answer if it does not answer within 2 s. */
  metrics(): Promise<JsonMetrics>;
}

/** Node flags that load tsx in the child when this code runs from its TypeScript sources. */
export function childExecArgv(): string[] {
  if (!import.meta.url.endsWith(".ts")) return [];
  const flags = tsxFlags();
  if (flags.some((f) => f.includes("loader"))) return flags;
  // `reco` (bin/reco.mjs) registers tsx in-process, tests run under vitest: load it explicitly.
  const loader = createRequire(import.meta.url).resolve("tsx");
  return ["--import", pathToFileURL(loader).href];
}

function createParseChildActor(
  o: ParseProcessOptions,
  kind: ChildKind,
  replies: ChildReplies<JsonMetrics>,
  hooks: {
    onPosition: (seq: number, stages?: Record<string, number>) => void;
    onStart: () => void;
    onHealth: (problems: HealthProblem[]) => void;
    onReady: () => void;
  },
): ParseChildActor {
  const ext = import.meta.url.endsWith(".ts") ? "ts" : "js";
  const entry = fileURLToPath(new URL(`./${kind.entry}.${ext}`, import.meta.url));
  const what = `${kind.label} process`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;
  const alive = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const send = (m: ToParseChild) => {
    if (alive() && child!.connected) child!.send(m, (err) => err && undefined);
  };

  const actor = createActor<never>({
    id: kind.id,
    // A stop while it was starting (the start of the app failed meanwhile) is no error of its own.
    reporter: (err) => {
      if (!/stopped while starting/.test(String(err)))
        o.log.error({ err: String(err) }, `${what} actor`);
    },
    behavior: {
      async start(ctx) {
        hooks.onStart();
        await o.spawnAfter;
        const extra = (await o.beforeSpawn?.()) ?? {};
        if (ctx.signal.aborted) throw new Error("stopped while starting");
        // SIGKILLed by the kernel when this process dies, however it dies. Its IPC channel's
        // 'disconnect' ends it too, but only once its loop gets to that event: busy catching up,
        // it went on for 1.5-9 s after the main process was SIGKILLed, processing, publishing and
        // snapshotting (bench step 6b read "-108,800 events replayed"), and the next start's
        // parse process could not open their LevelDB meanwhile. Same process: setpriv execs node.
        // A lower priority (the ingest child) is set before exec: every thread it has inherits it.
        const [command = process.execPath, ...prefix] = [
          ...(kind.nice ? ["nice", "-n", String(kind.nice)] : []),
          ...parentDeathPrefix("KILL"),
          process.execPath,
        ];
        const c = spawn(command, [...prefix, ...childExecArgv(), entry], {
          stdio: ["ignore", "inherit", "inherit", "ipc"],
          serialization: kind.serialization ?? "json",
        });
        child = c;
        exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
        return new Promise<void>((resolve, reject) => {
          let started = false;
          c.on("message", (raw: FromParseChild) => {
            if (raw.type === "position") hooks.onPosition(raw.seq, raw.stages);
            else if (raw.type === "health") hooks.onHealth(raw.problems);
            else if (raw.type === "fatal") o.onFatal?.(new ParseProcessFatalError(raw.message));
            else if (raw.type === "metrics") replies.answer(raw.id, raw.metrics);
            else if (raw.type === "ready") {
              started = true;
              hooks.onReady();
              o.log.info({ [`${kind.label}Pid`]: c.pid }, `${what} ready`);
              resolve();
            } else o.onMessage?.(raw);
          });
          const failed = (err: Error) => {
            replies.abandon();
            if (stopping) return;
            if (started) ctx.fail(err);
            else reject(err);
          };
          c.once("exit", (code, signal) =>
            failed(new ParseProcessExitedError(code, signal, kind.label)),
          );
          c.once("error", (err) => failed(err));
          // Stopped while starting: stop() below ends the child.
          ctx.signal.addEventListener("abort", () => reject(new Error("stopped while starting")));
          o.log.debug({ [`${kind.label}Pid`]: c.pid }, `${what} started`);
          send({ type: "start", cfg: o.cfg, natsUrl: o.natsUrl, ...extra });
        });
      },
      receive() {},
      async stop() {
        stopping = true;
        if (!alive()) return;
        const c = child!;
        send({ type: "stop" });
        const t = setTimeout(() => c.kill("SIGKILL"), o.graceMs ?? 15_000);
        await exited;
        clearTimeout(t);
      },
    },
  });
  return Object.assign(actor, {
    pid: () => (alive() ? child?.pid : undefined),
    metrics: () => replies.ask((id) => send({ type: "metrics", id })),
  });
}

/**
 * The main process's registry with the child's metrics merged in (prom-client's cluster
 * aggregation: counters and most gauges are summed by label set, so parse's series, which only
 * the child has, appear as they are, and process-wide ones such as CPU seconds add up).
 */
class MergedRegistry extends Registry {
  constructor(
    private readonly own: Registry,
    private readonly child: () => Promise<JsonMetrics>,
  ) {
    super();
  }

  override async metrics(): Promise<string> {
    return (await this.merged()).metrics();
  }

  /** As JSON: what a split `reco start`'s ingest process sends its parent (merged again there). */
  override async getMetricsAsJSON(): Promise<JsonMetrics> {
    return (await (await this.merged()).getMetricsAsJSON()) as JsonMetrics;
  }

  private async merged(): Promise<Registry> {
    const [mine, theirs] = await Promise.all([this.own.getMetricsAsJSON(), this.child()]);
    if (theirs.length === 0) return this.own;
    // "omit" (process_start_time_seconds) would drop the series: keep the main process's.
    const keep = (ms: JsonMetrics) =>
      ms.map((m) => (m.aggregator === "omit" ? { ...m, aggregator: "first" as const } : m));
    return AggregatorRegistry.aggregate([keep(mine), keep(theirs)]);
  }
}

/**
 * The file beside `state-parse` that lists the stages whose snapshots that store holds (JSON
 * array). Absent: parse's only (a store from before the parse process ran other stages).
 */
export const parseStagesFile = (dataDir: string) => join(dataDir, "state-parse.stages.json");

/** The instances of `stages` (parse has one, the others one per partition). */
function instancesOf(stages: Iterable<string>, partitions: number) {
  const ids: { stage: string; partition: number }[] = [];
  for (const stage of stages)
    for (let partition = 0; partition < (stage === "parse" ? 1 : partitions); partition++)
      ids.push({ stage, partition });
  return ids;
}

/**
 * Moves stage snapshots between the two stores, so that each stage's is where this start runs
 * it (`inChild`: the stages of the parse process, empty when there is none) and switching
 * PARSE_PROCESS or PARSE_PROCESS_STAGES replays nothing: into `state-parse` what the child runs
 * now, back into `state` what it ran before and runs no more. Only one of the two ever holds an
 * instance's live snapshot. `state-parse.stages.json` lists the stages `state-parse` holds (a
 * store without it holds parse's only): when it lists exactly `inChild`, a start reads nothing
 * else. Each instance is copied, then cleared where it was, and the list written last, so a crash
 * midway copies again at the next start (neither process ran the moved stages meanwhile).
 */
export async function moveParseSnapshot(
  stateDb: StateDb,
  dataDir: string,
  inChild: ReadonlySet<string>,
  partitions: number,
  opts: {
    /** Instances that come back into `stateDb` whatever their place (their plan changed). */
    bringBack?: (stage: string) => boolean;
    /** Runs once they are all in `stateDb`, before any moves into `state-parse`. */
    whileHere?: () => Promise<void>;
  } = {},
): Promise<void> {
  const bringBack = opts.bringBack ?? (() => false);
  const dir = parseStateDir(dataDir);
  const listFile = parseStagesFile(dataDir);
  const want = [...inChild].sort();
  const held = existsSync(listFile)
    ? (JSON.parse(await readFile(listFile, "utf8")) as string[])
    : existsSync(dir)
      ? ["parse"]
      : [];
  const moveOut = held.filter((s) => !inChild.has(s) || bringBack(s));
  const moveIn = want.filter((s) => !held.includes(s) || bringBack(s));
  if (moveOut.length > 0 && existsSync(dir)) {
    const db = await openUnlocked(dir);
    try {
      for (const id of instancesOf(moveOut, partitions)) {
        const from = db.instance(id.stage, id.partition);
        const snap = await from.exportRaw();
        if (Number(snap.meta.seq ?? 0) <= 0) continue;
        await stateDb.instance(id.stage, id.partition).importRaw(snap);
        await from.clear();
      }
    } finally {
      await db.close();
    }
  }
  await opts.whileHere?.();
  if (moveIn.length === 0 && moveOut.length === 0) return;
  if (want.length === 0) {
    await rm(dir, { recursive: true, force: true });
    await rm(listFile, { force: true });
    return;
  }
  // A first store is written beside and renamed: a crash midway leaves no half-filled one.
  const fresh = !existsSync(dir);
  const target = fresh ? `${dir}.tmp` : dir;
  let db: StateDb | undefined;
  const moved: { stage: string; partition: number }[] = [];
  try {
    // One at a time: a window or interest-ranking snapshot of 1M users is large.
    for (const id of instancesOf(moveIn, partitions)) {
      const snap = await stateDb.instance(id.stage, id.partition).exportRaw();
      if (Number(snap.meta.seq ?? 0) <= 0) continue;
      if (!db) {
        if (fresh) await rm(target, { recursive: true, force: true });
        db = await openUnlocked(target);
      }
      await db.instance(id.stage, id.partition).importRaw(snap);
      moved.push(id);
    }
  } finally {
    await db?.close();
  }
  if (db && fresh) await rename(target, dir);
  for (const id of moved) await stateDb.instance(id.stage, id.partition).clear();
  await writeFile(listFile, JSON.stringify(want));
}

/**
 * Opens a state directory, waiting up to `waitMs` while another process still holds its lock:
 * the child of a main process that was just SIGKILLed exits when it notices, a moment later.
 */
export async function openUnlocked(
  dir: string,
  waitMs = 10_000,
  options: StateDbOptions = {},
): Promise<StateDb> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await openStateDb(dir, options);
    } catch (err) {
      if (!isLocked(err) || Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function isLocked(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: string }).code === "LEVEL_LOCKED") return true;
    if (/\block\b/i.test(e.message)) return true;
  }
  return false;
}
