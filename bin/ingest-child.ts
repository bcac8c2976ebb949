/**
 * The ingest process of a split `reco start` (SERVE_PROCESS=1, bin/serve-app.ts): every stage
 * (and, below it, the parse process), no gRPC, JSON API or metrics listener. Its parent serves
 * those from replicas, at normal priority, and started this one at a lower one (`nice`), so
 * serving never waits behind ingest. Not meant to be started by hand: it waits for its settings
 * on the IPC channel, reports health and metrics there, and answers the parent's questions that
 * need the stages' in-process state (blended answers: `ask`).
 */
import { pino, type Logger } from "pino";
import { startApp, type App } from "./app.js";
import { childChannel } from "./child-ipc.js";
import type { AppConfig } from "./config.js";
import type { FromParseChild, ToParseChild } from "./parse-process.js";
import { StateStoreCorruptError, StateStoreOpenError } from "../state/index.js";
import { BackendUnavailableError, type RecommendOptions } from "../actors/backend.js";

const send = childChannel("bin/ingest-child.ts", "SERVE_PROCESS=1");

let log: Logger = pino({ level: "info" });
let app: App | undefined;
/** The stages' backend once the serving instances run (before every stage does: see run()). */
let serving: App["pipeline"]["backend"] | undefined;
let stopping: Promise<void> | undefined;

const cannotRun = (err: Error): void => {
  const exit = () => process.exit(1);
  setTimeout(exit, 1_000).unref();
  if (process.connected)
    process.send!({ type: "fatal", message: err.message } satisfies FromParseChild, exit);
  else exit();
};

/** The parent's questions: what the stages' state answers (bin/pipeline/split-backend.ts). */
async function answer(op: string, args: unknown[]): Promise<unknown> {
  const backend = app?.pipeline.backend ?? serving;
  if (!backend) throw new BackendUnavailableError("the ingest process is starting");
  if (op === "recommend") {
    const [user, n, given] = args as [string, number, RecommendOptions | null | undefined];
    // JSON has no undefined: an absent options argument arrives as null.
    const options = given ?? undefined;
    return (
      backend.recommendNow?.(user, n, options) ??
      (await backend.getRecommendations(user, n, AbortSignal.timeout(10_000), options))
    );
  }
  if (op === "similar" && backend.similarItems) {
    const [item, n] = args as [string, number];
    return backend.similarItems(item, n);
  }
  if (op === "recent" && backend.recentEvents) {
    const [user, n] = args as [string, number];
    return backend.recentEvents(user, n);
  }
  throw new Error(`the ingest process does not answer ${op}`);
}

process.on("message", (m: ToParseChild) => {
  if (m.type === "start") void run(m.cfg, m.natsUrl);
  else if (m.type === "ask")
    answer(m.op, m.args).then(
      (value) => send({ type: "answer", id: m.id, value }),
      (err: unknown) =>
        send({
          type: "answer",
          id: m.id,
          error:
            err instanceof Error
              ? { name: err.name, message: err.message }
              : { name: "Error", message: String(err) },
        }),
    );
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

async function run(cfg: AppConfig, natsUrl: string): Promise<void> {
  log = pino({ level: cfg.logLevel }).child({ proc: "ingest" });
  try {
    app = await startApp({ ...cfg, natsUrl }, log, {
      facade: false,
      // Answers as soon as a one-process app's gRPC would: after a SIGKILL with 1M users the
      // blend's sources run long before the last stage does (step 6: right answers came only at
      // the ready line, 21.3 s after the kill, against 7.2 s in one process).
      onServing: (b) => (serving = b),
      onFatal: (err) => cannotRun(err),
    });
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
