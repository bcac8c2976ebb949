import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, headers, type NatsConnection } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog } from "./helpers/events.js";
import { reference, type RefEvent } from "./helpers/reference.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { partitionOf } from "../actors/contract/index.js";
import { poller } from "./helpers/harness.js";

const H = 3_600_000;
const enc = new TextEncoder();
/**
 * Each partition's user path as one task up to interest-ranking (CHAINING=on, the default);
 * popularity-join, which serving answers from, starts a chain of its own.
 */
const CHAIN = "watermark+window+interest-ranking";

const eventually = poller({ ms: 30_000, everyMs: 200, keepOnError: true });

const asRef = (items: { itemId: string; score: number; source: number }[]) =>
  items.map((i) => [
    i.itemId,
    i.score.toFixed(9),
    i.source === 1 ? "PERSONALIZED" : "POPULAR_FALLBACK",
  ]);
const refItems = (ref: ReturnType<typeof reference>, u: string) =>
  ref.recommend(u, 10).map((i) => [i.itemId, i.score.toFixed(9), i.source]);

describe("failures the system recovers from by itself", () => {
  let nats: TestNats | undefined;
  let app: App | undefined;
  let nc: NatsConnection | undefined;
  let client: RecoClient | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    client?.close();
    await nc?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function start(extra: Record<string, string> = {}) {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-outage-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "4",
        SNAPSHOT_INTERVAL: "300",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: "silent",
        ...extra,
      }),
      pino({ level: "silent" }),
    );
    nc = await connect({
      servers: nats.url,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    return { app, nc, client, nats };
  }

  it("survives a nats-server restart mid-stream: nothing lost, answers served during the outage", async () => {
    // Idle markers follow wall time: an outage longer than IDLE_TIMEOUT_MS (30 s by default, as
    // on a loaded machine) would move event time past the rest of the log, which the reference
    // has no notion of.
    const { nc, client, nats } = await start({ IDLE_TIMEOUT_MS: "0" });
    const log: RefEvent[] = generateLog({
      seed: 5,
      events: 6000,
      users: 300,
      items: 120,
      categories: ["a", "b", "c", "d", "e"],
      start: Date.parse("2026-11-10T00:00:00Z"),
      spanMs: 6 * H,
      lateShare: 0.01,
      lateByMs: H,
    });
    const publish = async (part: RefEvent[]) => {
      const pub = createJetStreamPublisher(nc, { window: 512, timeoutMs: 2000, retries: 20 });
      await pub.publishMany(
        part.map((e) => ({
          subject: `events.${e.event_type}`,
          data: enc.encode(JSON.stringify(e)),
          opts: { msgId: e.event_id },
        })),
      );
      await pub.close();
    };
    await publish(log.slice(0, 3000));
    const firstHalf = reference(log.slice(0, 3000));
    const probe = [...new Set(log.slice(0, 3000).map((e) => String(e.user_id)))].sort()[0]!;
    await eventually(
      () => client.getRecommendations(probe, 10),
      (v) => JSON.stringify(asRef(v.items)) === JSON.stringify(refItems(firstHalf, probe)),
    );

    await nats.server.stop();
    // NATS is down: the façade still answers from the state it holds.
    const during = await client.getRecommendations(probe, 10);
    expect(asRef(during.items)).toEqual(refItems(firstHalf, probe));
    await nats.restart();

    await publish(log.slice(3000));
    const ref = reference(log);
    const users = [...new Set(log.map((e) => String(e.user_id)))].sort();
    for (const u of users) {
      const res = await eventually(
        () => client.getRecommendations(u, 10),
        (v) => JSON.stringify(asRef(v.items)) === JSON.stringify(refItems(ref, u)),
      );
      expect(asRef(res.items), `recommendations of ${u}`).toEqual(refItems(ref, u));
    }
  });

  it("sends a message that keeps failing to reco.dlq.poison and keeps the partition flowing", async () => {
    const { app, nc, client } = await start({ MAX_ATTEMPTS: "3" });
    const js = nc.jetstream();
    const T = Date.parse("2026-11-10T10:00:00Z");
    const ev = (u: string, i: string, type: string, min: number, n: number): RefEvent => ({
      event_id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
      event_type: type,
      event_ts: new Date(T + min * 60_000).toISOString(),
      user_id: u,
      item_id: i,
      category_code: "books.novel",
    });
    // A user in partition 0, and a hop message its user path (one chain: CHAINING=on) cannot
    // process: its first member, watermark, fails on it.
    const user = ["a", "b", "c", "d", "e", "f", "g", "h"].find((u) => partitionOf(u, 4) === 0)!;
    await js.publish("events.purchase", JSON.stringify(ev("buyer", "p1", "purchase", 0, 1)));
    await js.publish("events.view", JSON.stringify(ev(user, "p2", "view", 1, 2)));
    await eventually(
      () => client.getRecommendations(user, 5),
      (v) => v.topCategories.length === 1,
    );
    const h = headers();
    h.set("X-Test", "poison");
    await js.publish("reco.parse.0", enc.encode('{"upTo":999999999,"wm":0,"recs":null}'), {
      headers: h,
    });
    // After the poison: the partition still processes new events of that user.
    await js.publish("events.click", JSON.stringify(ev(user, "p3", "click", 2, 3)));
    const res = await eventually(
      () => client.getRecommendations(user, 5),
      (v) => Number(v.topCategories[0]?.interest ?? 0) === 2,
    );
    expect(res.topCategories.map((c) => [c.category, Number(c.interest)])).toEqual([["books", 2]]);

    // Every reader of reco.parse.0 sets its own copy aside (the sources read it too): the chain's.
    const jsm = await nc.jetstreamManager();
    const chainCopies = async () => {
      const info = await jsm.streams.info("RECO_DLQ");
      const copies = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const msg = await jsm.streams.getMessage("RECO_DLQ", { seq });
        if (msg.header.get("Reco-Stage") === CHAIN) copies.push(msg);
      }
      return copies;
    };
    const copies = await eventually(chainCopies, (c) => c.length === 1);
    expect(copies.length).toBe(1);
    const m = copies[0]!;
    expect(new TextDecoder().decode(m.data)).toBe('{"upTo":999999999,"wm":0,"recs":null}');
    expect(m.header.get("X-Test")).toBe("poison");
    expect(m.header.get("Reco-Stage")).toBe(CHAIN);
    expect(m.header.get("Reco-Subject")).toBe("reco.parse.0");
    expect(m.header.get("Reco-Error")).toMatch(/^MemberError: watermark: TypeError/);
    const metrics = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
    const chain = CHAIN.replaceAll("+", "\\+");
    expect(metrics).toMatch(
      new RegExp(`reco_dlq_poison_total\\{stage="${chain}",partition="0"\\} 1`),
    );
    expect(metrics).toMatch(
      new RegExp(`reco_stage_restarts_total\\{stage="${chain}",partition="0"\\} [3-9]`),
    );
  });
});
