import { setTimeout as sleep } from "node:timers/promises";
import { createChildReplies } from "./child-replies.js";
import type { Registry } from "prom-client";
import { createSupervisor } from "../runtime/index.js";
import { watchStages, type HealthProblem } from "./health.js";
import type { JsonMetrics } from "./parse-process-messages.js";
import {
  createParseChildActor,
  PARSE_CHILD,
  type ParseChildActor,
  type ParseProcessOptions,
} from "./parse-process-child.js";
import { MergedRegistry } from "./parse-process-metrics.js";

// The parse process's messages, its child and its store, for importers of this module.
export type { FromParseChild, JsonMetrics, ToParseChild } from "./parse-process-messages.js";
export {
  childExecArgv,
  PARSE_CHILD,
  ParseProcessExitedError,
  ParseProcessFatalError,
  type ChildKind,
  type ParseProcessOptions,
} from "./parse-process-child.js";
export {
  moveParseSnapshot,
  openUnlocked,
  parseStagesFile,
  parseStateDir,
} from "./parse-process-stores.js";

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
