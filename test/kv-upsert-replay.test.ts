import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { setupNats } from "./helpers/nats.js";
import { createStageInstance, type PoisonLedger, encodeEnvelope } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import type { PopularityRow } from "../actors/stages/index.js";
import { createPopularityHandler } from "../actors/plan/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { subjects } from "../actors/contract/index.js";
import { BUCKETS, ensureTopology, kvKeyOf, STREAMS } from "../connectors/nats/topology.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { openStateDb, type StateDb } from "../state/index.js";
import { sleep } from "./helpers/harness.js";

/**
 * A stage that replays
 * from its snapshot puts again the KV values it had put since. Those puts carried
 * Nats-Msg-Ids; a nats-server that restarted in between rebuilds its duplicate map from the
 * messages it still holds, and a bucket holds one per key: the newest value's id was known,
 * the older ones' were not. The replay stored the older value, and the newest was dropped as a
 * duplicate, so the bucket kept 1 purchase of an item bought twice, for good.
 */

const T0 = Date.UTC(2019, 9, 1);

function purchase(s: number, item: string): ParsedRecord {
  return {
    id: `00000000-0000-4000-8000-${String(s).padStart(12, "0")}`,
    t: "purchase",
    ts: T0 + s * 1000,
    u: `u${s}`,
    i: item,
    c: "electronics",
    b: "",
    pr: 10,
    r: 0,
    s,
    wb: T0 + (s - 1) * 1000,
  };
}

describe("KV upserts replayed after a nats-server restart", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  const popularity = (nc: NatsConnection, db: StateDb) =>
    createStageInstance(
      {
        stage: "popularity",
        partition: 0,
        stream: STREAMS.hops,
        subject: subjects.items(0),
        input: "envelope",
        batching: "per-input",
        create: (state, out) =>
          createPopularityHandler(state, out, { partition: 0, horizonMs: 7 * 86_400_000 }),
      },
      {
        transport: natsHostTransport(nc),
        snapshots: db.instance("popularity", 0),
        // No snapshot before the "crash": the next incarnation replays every input.
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );

  it("leaves the newest value in the bucket (an item bought twice keeps 2 purchases)", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const nc = await connect({
      servers: nats.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    cleanups.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await ensureTopology(nc, jsm);
    const dir = await mkdtemp(join(tmpdir(), "reco-kv-replay-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = await openStateDb(dir);
    cleanups.push(() => db.close());

    const kv = await nc.jetstream().views.kv(BUCKETS.popularity);
    const purchasesOf = async (item: string) =>
      (await kv.get(kvKeyOf(item)))?.json<PopularityRow>().purchases;
    const until = async (pred: () => Promise<boolean>, what: string) => {
      const end = Date.now() + 20_000;
      while (!(await pred().catch(() => false))) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };

    // Two hops from parse: the item is bought once in each.
    const pub = createJetStreamPublisher(nc);
    await pub.publish(subjects.items(0), encodeEnvelope(1, T0 + 1000, [purchase(1, "i1")]));
    await pub.publish(subjects.items(0), encodeEnvelope(2, T0 + 2000, [purchase(2, "i1")]));
    await pub.close();

    const first = popularity(nc, db);
    await first.actor.start();
    await until(async () => (await purchasesOf("i1")) === 2, "the first incarnation's rows");
    // A crash: the instance goes without a snapshot, and the server restarts too.
    await first.actor.stop();
    await nats.restart();

    await until(async () => (await jsm.streams.info(STREAMS.hops)).state.messages === 2, "NATS");

    const second = popularity(nc, db);
    cleanups.push(() => second.actor.stop());
    await second.actor.start();
    await until(async () => second.position() >= 2, "the replay");
    await second.snapshotNow(); // every put of the replay acknowledged
    expect(second.handler()?.row("i1")?.purchases).toBe(2);
    expect(await purchasesOf("i1")).toBe(2);
  }, 60_000);
});
