/**
 * The app step 4 serves from: in this process (startApp), or with BENCH_SERVE_PROCESS=1 as
 * `reco start` runs it, this process serving and the stages in a child (bench/serve-split.ts).
 */
import { join } from "node:path";
import { pino } from "pino";
import type { App } from "../../bin/app.js";
import type { JsonMetrics } from "../../bin/parse-process.js";
import { ensureEventsStream, EVENTS_STREAM } from "../../connectors/nats/streams.js";
import type { OutgoingMessage } from "../../connectors/nats/publisher.js";
import type { EmbeddedNats } from "../../connectors/nats/embedded-server.js";
import { appConfig, connect, parsePosition, publishAll } from "../in-process.js";
import { env, INGEST_TIMEOUT_MS, SETTLE_MS } from "../options.js";
import { startSplitServing, type SplitServing } from "../serve-split.js";

/** What step 4 reads of either app. */
export interface ServedApp {
  grpcPort: number;
  metricsPort: number;
  parseProcess?: { childMetrics(): Promise<JsonMetrics> };
  parsed(): Promise<number>;
  stop(): Promise<void>;
}
export function servedApp(app: App | SplitServing): ServedApp {
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
export async function ingestSplit(nats: EmbeddedNats, dir: string, msgs: OutgoingMessage[]) {
  const nc = await connect(nats);
  await ensureEventsStream(await nc.jetstreamManager());
  await publishAll(nc, msgs);
  msgs.length = 0; // as `ingest`: the app's heap without the publisher's messages
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
