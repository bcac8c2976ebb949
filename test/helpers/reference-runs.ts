import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { kvEntries, setupNats } from "./nats.js";
import type { RefEvent } from "./reference.js";
import {
  finalsFromKv,
  round,
  type Answers,
  type Finals,
  type PopRow,
  type RecAnswer,
  type TrendingPart,
} from "./reference-scenario.js";
import { poller, sleep } from "./harness.js";
import { loadConfig } from "../../bin/config.js";
import { startApp } from "../../bin/app.js";
import { createRecoClient, type RecoClient } from "../../connectors/grpc/index.js";
import { createJetStreamPublisher } from "../../connectors/nats/publisher.js";
import { Source } from "../../proto/gen/reco/v1/reco_pb.js";

/*
 * The reference comparisons on NATS (test/reference-compare-*.test.ts) run the whole app on its
 * own nats-server, publish a log and read back what the pipeline made of it in the reference's
 * terms (reference-scenario.ts): the answers over gRPC, the popularity table and the final
 * trending windows from their KV buckets, the messages of reco.late. An observation is polled
 * until it equals the reference's or a time limit passes.
 */

/**
 * How long the pipeline may take to settle after a phase is published: a deadline on a
 * condition (an observation returns as soon as two in a row equal the reference), so it costs a
 * passing run nothing. On 2 cores shared with other suites (load average ~20) the unchained
 * 1-partition run took over 20 s to catch up; under the tests' 60 s limit with the publish.
 */
export const SETTLE_MS = 45_000;

export async function observeAnswers(client: RecoClient, users: string[]): Promise<Answers> {
  const answers: RecAnswer[] = [];
  for (let k = 0; k < users.length; k += 32) {
    const chunk = await Promise.all(
      users.slice(k, k + 32).map(async (u): Promise<RecAnswer> => {
        const res = await client.getRecommendations(u, 10);
        return {
          items: res.items.map((i) => [
            i.itemId,
            round(i.score),
            i.source === Source.PERSONALIZED ? "PERSONALIZED" : "POPULAR_FALLBACK",
            Number(i.purchases),
            i.category,
            i.brand,
            round(i.averagePrice),
          ]),
          top: res.topCategories.map((c) => [c.category, Number(c.interest)]),
        };
      }),
    );
    answers.push(...chunk);
  }
  // In the order of `users`, as the expected answers are: the comparison is of JSON text.
  return Object.fromEntries(users.map((u, k) => [u, answers[k]!]));
}

/** Current values of a KV bucket, by key. */
export async function readKv<T>(nc: NatsConnection, bucket: string): Promise<Map<string, T>> {
  const out = new Map<string, T>();
  for (const [k, e] of await kvEntries(nc, bucket)) if (e.length > 0) out.set(k, e.json<T>());
  return out;
}

export async function observePopularity(nc: NatsConnection): Promise<PopRow[]> {
  interface Row {
    item: string;
    purchases: number;
    category: string;
    brand: string;
    avgPrice: number;
  }
  const rows = [...(await readKv<Row>(nc, "reco_popularity")).values()];
  return rows
    .filter((r) => r.purchases > 0)
    .map((r): PopRow => [r.item, r.purchases, r.category, r.brand, round(r.avgPrice)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** Final trending windows as the partitions left them in reco_trending (finalsFromKv). */
export async function observeKvFinals(nc: NatsConnection): Promise<Finals> {
  return finalsFromKv(await readKv<TrendingPart>(nc, "reco_trending"));
}

/** Messages of RECO_LATE as "<reason> <event id> <watermark>", sorted. */
export async function observeLate(nc: NatsConnection): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("RECO_LATE");
  const out: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const m = await jsm.streams.getMessage("RECO_LATE", { seq });
    const body = m.json<{ event: { id: string } }>();
    out.push(`${m.header.get("Reco-Reason")} ${body.event.id} ${m.header.get("Reco-Watermark")}`);
  }
  return out.sort();
}

/**
 * Polls `observe` until two observations in a row equal `expected` (the answers stopped changing
 * and are right) or `ms` pass; returns the last observation for the assertion.
 */
export async function settle<T>(
  observe: () => Promise<T>,
  expected: T,
  ms = SETTLE_MS,
): Promise<T> {
  const want = JSON.stringify(expected);
  const until = Date.now() + ms;
  let hits = 0;
  for (;;) {
    // An observation that does not answer fails here, naming itself, while the test still has
    // time to say so, rather than at the test's timeout with nothing to show.
    const v = await answersWithin(observe(), Math.max(until - Date.now(), 0) + 10_000);
    hits = JSON.stringify(v) === want ? hits + 1 : 0;
    if (hits >= 2 || Date.now() > until) return v;
    await sleep(150);
  }
}

async function answersWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`an observation gave no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `observe` until `ok` holds or `ms` pass; returns the last observation. */
export const settleWith = poller({ ms: SETTLE_MS, everyMs: 150 });

export async function startTestApp(partitions: number, env: Record<string, string> = {}) {
  const nats = await setupNats();
  const dataDir = await mkdtemp(join(tmpdir(), "reco-refcmp-"));
  const app = await startApp(
    loadConfig({
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      GRPC_PORT: "0",
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: String(partitions),
      TRENDING_TRIGGER: "100",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "silent",
      // Idle markers move event time with the wall clock, which the reference does not model
      // (test/idle-*.test.ts cover them): a slow phase must not change the answers.
      IDLE_TIMEOUT_MS: "0",
      ...env,
    }),
    pino({ level: "silent" }),
  );
  const nc = await connect({ servers: nats.url });
  const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  return {
    nats,
    app,
    nc,
    client,
    async stop() {
      client.close();
      await nc.close();
      await app.stop();
      await nats.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
export type TestApp = Awaited<ReturnType<typeof startTestApp>>;

/** Publishes events in order, as one ordered stream of JetStream publishes. */
export async function publish(nc: NatsConnection, events: RefEvent[]) {
  const pub = createJetStreamPublisher(nc, { window: 256, timeoutMs: 30_000 });
  const enc = new TextEncoder();
  await pub.publishMany(
    events.map((e) => ({ subject: `events.${e.event_type}`, data: enc.encode(JSON.stringify(e)) })),
  );
  await pub.close();
}
