/**
 * The ingest process of a split `reco start` (SERVE_PROCESS=1, bin/serve-app.ts): every stage
 * (and, below it, the parse process), no gRPC, JSON API or metrics listener. Its parent serves
 * those from replicas, at normal priority, and started this one at a lower one (`nice`), so
 * serving never waits behind ingest. Not meant to be started by hand: it waits for its settings
 * on the IPC channel, reports health and metrics there, and sends the blend's source stages'
 * changes to the parent's replica of them (pumpChanges).
 */
import { pino, type Logger } from "pino";
import { startApp, type App } from "./app.js";
import { childChannel } from "./child-ipc.js";
import type { AppConfig } from "./config.js";
import type { FromParseChild, ToParseChild } from "./parse-process.js";
import { StateStoreCorruptError, StateStoreOpenError } from "../state/index.js";
import type { ChangeFeed } from "../actors/serving/index.js";

const send = childChannel("bin/ingest-child.ts", "SERVE_PROCESS=1");

let log: Logger = pino({ level: "info" });
let app: App | undefined;
let stopping: Promise<void> | undefined;

const cannotRun = (err: Error): void => {
  const exit = () => process.exit(1);
  setTimeout(exit, 1_000).unref();
  if (process.connected)
    process.send!({ type: "fatal", message: err.message } satisfies FromParseChild, exit);
  else exit();
};

/**
 * Changes per IPC message at most, and about this many bytes of values: the serving process
 * deserialises each message in one go on the loop that answers, so each stays small.
 */
const CHUNK_KEYS = 4_000;
const CHUNK_BYTES = 256 * 1024;
/** How often the pump looks for instances due. */
const PUMP_MS = 25;
/** How often "caught up" is said while nothing is left to send. */
const IDLE_NOTE_MS = 100;
/**
 * How often a stage's changes are sent (all of them, back to back): a key changed many times
 * meanwhile goes once. A user's history is sent soon (their own events show in their next
 * answer); covisit's neighbour lists are hot (one event changes up to 30 of them, each up to a
 * few KB) and change the answers of many users a little: at most once a second.
 */
const cadenceMs = (instance: string) => (instance.startsWith("covisit/") ? 1_000 : 100);

/**
 * Sends the blend source stages' changes to the parent (its replica, actors/serving/blend-replica.ts) in
 * rounds: every instance due (its cadence passed, or its dump not yet sent) is drained, one chunk
 * at a time, the next once the last is written to the channel (the parent reading slowly holds
 * back nothing here but the changed keys); "caught up" when nothing at all is left.
 */
function pumpChanges(feed: ChangeFeed): void {
  let sending = false;
  let lastIdle = 0;
  let sentSinceIdle = true;
  const drained = new Map<string, number>();
  /** The instances of the round being sent, undefined between rounds. */
  let round: Set<string> | undefined;
  const tick = () => {
    if (sending || !process.connected) return;
    const now = Date.now();
    if (!round) {
      const due = feed
        .pending()
        .filter((x) => x.dumping || now - (drained.get(x.instance) ?? 0) >= cadenceMs(x.instance));
      if (due.length > 0) round = new Set(due.map((x) => x.instance));
    }
    const chunk = round && feed.take(CHUNK_KEYS, CHUNK_BYTES, (id) => round!.has(id));
    if (chunk) {
      sending = true;
      sentSinceIdle = true;
      process.send!({ type: "blend", chunk } satisfies FromParseChild, (err: Error | null) => {
        // The next chunk after twice this one's time: the stages (loading their state in
        // slices at a start, or ingesting) keep at least two thirds of this loop. Chained
        // with setImmediate, each of a start's load slices waited behind a chunk: with 1M
        // users the ready line came 112 s after a SIGKILL instead of ~20 s (bench step 6).
        const spent = Date.now() - now;
        setTimeout(
          () => {
            sending = false;
            if (!err) tick();
          },
          Math.max(2, 2 * spent),
        );
      });
      return;
    }
    if (round) {
      for (const id of round) drained.set(id, now);
      round = undefined;
    }
    if (feed.pending().length > 0) return;
    if (sentSinceIdle || now - lastIdle >= IDLE_NOTE_MS) {
      sentSinceIdle = false;
      lastIdle = now;
      send({ type: "blend-idle" });
    }
  };
  setInterval(tick, PUMP_MS).unref();
}

process.on("message", (m: ToParseChild) => {
  if (m.type === "start") void run(m.cfg, m.natsUrl, m.replicaBases ?? {});
  else if (m.type === "metrics")
    void (app?.registry().getMetricsAsJSON() ?? Promise.resolve([])).then(
      (metrics) => send({ type: "metrics", id: m.id, metrics }),
      () => send({ type: "metrics", id: m.id, metrics: [] }),
    );
  else if (m.type === "stop")
    stopping ??= (app?.stop() ?? Promise.resolve()).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, "ingest process: stop failed");
        process.exit(1);
      },
    );
});

async function run(
  cfg: AppConfig,
  natsUrl: string,
  replicaBases: Record<string, string>,
): Promise<void> {
  log = pino({ level: cfg.logLevel }).child({ proc: "ingest" });
  try {
    app = await startApp(
      // The source stages record their changes for the parent's replica; their first runs start
      // from the snapshots it read itself (no dump of those).
      { ...cfg, natsUrl, pipeline: { ...cfg.pipeline, replicaChanges: true, replicaBases } },
      log,
      {
        facade: false,
        // The replica's feed starts as soon as a one-process app's gRPC would answer: after a
        // SIGKILL with 1M users the blend's sources run long before the last stage does (step 6:
        // right answers came only at the ready line, 21.3 s after the kill, against 7.2 s in one
        // process).
        onServing: (_b, pipeline) => {
          if (pipeline.blendChanges) pumpChanges(pipeline.blendChanges);
        },
        onFatal: (err) => cannotRun(err),
      },
    );
  } catch (err) {
    if (err instanceof StateStoreCorruptError || err instanceof StateStoreOpenError)
      return cannotRun(err);
    // A start that failed otherwise (NATS not answering yet, say): the parent restarts us.
    log.fatal({ err: err instanceof Error ? err.message : String(err) }, "ingest process failed");
    process.exit(1);
  }
  const started = app;
  // The parent's /healthz reads the last report: it never waits for this process.
  setInterval(() => {
    const h = started.health(Date.now());
    send({
      type: "health",
      problems: h.ready
        ? h.problems
        : [...h.problems, { check: "stages", reason: "not every stage runs yet", since: 0 }],
    });
  }, 1_000).unref();
  if (stopping === undefined) send({ type: "ready" });
}
