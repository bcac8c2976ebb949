import { describe, expect, it } from "vitest";
import type { NatsConnection } from "nats";
import { sleep, startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import {
  createStageInstance,
  type PoisonLedger,
  decodeEnvelope,
  encodeEnvelope,
  peekHead,
  withHead,
  createHopOrder,
} from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { createPopularityHandler, createWatermarkHandler } from "../actors/plan/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { subjects } from "../actors/contract/index.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import type { StateDb } from "../state/index.js";

/**
 * A hop lost in flight and re-sent after newer ones (a publish retried after a
 * timeout, a connection lost with a dying node) was dropped as covered by them, and its records
 * lost. Each hop now carries the position its subject's previous hop covered (`prev`), and a
 * reader applies a hop only once it follows on from what it applied.
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

describe("hop order", () => {
  it("applies a hop that follows on, keeps one that does not until the missing one came", () => {
    const o = createHopOrder<string>(() => 0);
    expect(o.offer("b", 11, 200, 100, 0)).toBe("wait");
    expect(o.offer("c", 12, 300, 200, 0)).toBe("wait");
    expect(o.next(0).hop).toBeUndefined();
    expect(o.firstSeq()).toBe(11);
    expect(o.offer("a", 13, 100, 0, 0)).toBe("apply");
    expect(o.next(100).hop?.item).toBe("b");
    expect(o.next(200).hop?.item).toBe("c");
    expect(o.size).toBe(0);
    expect(o.offer("a again", 14, 100, 0, 300)).toBe("duplicate");
  });

  it("lets a restarted producer's chain (on from its snapshot) through, dropping what it covers", () => {
    const o = createHopOrder<string>(() => 0);
    expect(o.offer("old", 5, 300, 250, 200)).toBe("wait");
    // The restarted producer's first hop follows on from its snapshot (150): applied.
    expect(o.offer("new", 6, 400, 150, 200)).toBe("apply");
    expect(o.next(400)).toEqual({ hop: undefined, duplicates: 1 });
  });

  it("writes prev in the head, reads it back without a parse, and keeps it in withHead", () => {
    const data = encodeEnvelope(9, 5, [{ a: 1 }, { a: 2 }], 4);
    expect(peekHead(data)).toEqual({ upTo: 9, prev: 4 });
    expect(decodeEnvelope(data)).toEqual({ upTo: 9, prev: 4, wm: 5, recs: [{ a: 1 }, { a: 2 }] });
    const moved = withHead(data, 12, 7, 9)!;
    expect(decodeEnvelope(moved)).toEqual({ upTo: 12, prev: 9, wm: 7, recs: [{ a: 1 }, { a: 2 }] });
    // Written before prev existed: follows on from anything.
    expect(peekHead(encodeEnvelope(9, 5, []))).toEqual({ upTo: 9, prev: 0 });
  });
});

describe("a hop dropped in flight and re-sent after newer ones", () => {
  const cleanups = useCleanups();

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
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );

  it("is applied in its place: nothing lost, also across a restart while newer ones wait", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await ensureTopology(nc, jsm);
    const db = await tempStateDb(cleanups, "reco-hop-order-");
    const pub = createJetStreamPublisher(nc);
    const hop = (upTo: number, prev: number) =>
      pub.publish(
        subjects.items(0),
        encodeEnvelope(upTo, T0 + upTo * 1000, [purchase(upTo, "i1")], prev),
      );

    // Parse sent hops 1, 2, 3 (each a purchase of i1); hop 1 was lost and comes after the others.
    await hop(2, 1);
    await hop(3, 2);
    const first = popularity(nc, db);
    await first.actor.start();
    await waitFor(() => first.position() >= 2, "hops 2 and 3 read");
    await sleep(200);
    // Neither is applied: each follows a hop not seen yet.
    expect(first.handler()?.row("i1")).toBeUndefined();
    // A snapshot while they wait, then a restart: they must be read again, not skipped.
    await first.snapshotNow();
    await first.actor.stop();

    const second = popularity(nc, db);
    cleanups.add(() => second.actor.stop());
    await second.actor.start();
    await waitFor(() => second.position() >= 2, "hops 2 and 3 read again");
    expect(second.handler()?.row("i1")).toBeUndefined();
    await hop(1, 0); // the re-sent one
    await waitFor(() => second.handler()?.row("i1")?.purchases === 3, "three purchases");
    await pub.close();
  }, 60_000);

  it("is chained by the producer: each hop's prev is the previous hop's upTo on its subject", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await ensureTopology(nc, jsm);
    const db = await tempStateDb(cleanups, "reco-hop-chain-");
    const watermark = () =>
      createStageInstance(
        {
          stage: "watermark",
          partition: 0,
          stream: STREAMS.hops,
          subject: subjects.parse(0),
          input: "envelope",
          batching: "per-input",
          create: (state, out) =>
            createWatermarkHandler(state, out, { partition: 0, outOfOrdernessMs: 600_000 }),
        },
        {
          transport: natsHostTransport(nc),
          snapshots: db.instance("watermark", 0),
          snapshotIntervalMs: 600_000,
          snapshotEveryMessages: 1_000_000,
          maxAttempts: 3,
        },
        new Map() as PoisonLedger,
      );
    const pub = createJetStreamPublisher(nc);
    for (let s = 1; s <= 3; s++)
      await pub.publish(subjects.parse(0), encodeEnvelope(s, T0 + s, [purchase(s, "i1")], s - 1));
    const w = watermark();
    await w.actor.start();
    await waitFor(() => w.position() >= 3, "three hops read");
    await w.snapshotNow(); // `sent` kept with the snapshot
    await w.actor.stop();
    // Restarted: its next hop follows on from the last one it sent.
    await pub.publish(subjects.parse(0), encodeEnvelope(4, T0 + 4, [purchase(4, "i1")], 3));
    const w2 = watermark();
    cleanups.add(() => w2.actor.stop());
    await w2.actor.start();
    await waitFor(() => w2.position() >= 7, "seven hops read");
    await w2.snapshotNow();
    await pub.close();
    const heads: { upTo: number; prev: number }[] = [];
    const info = await jsm.streams.info(STREAMS.hops);
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.hops, { seq });
      if (m.subject === subjects.watermark(0)) heads.push(peekHead(m.data));
    }
    // Outputs are stamped with the watermark stage's input sequence: parse's hops are stream
    // messages 1-3 and 7 (4-6 are the first incarnation's outputs).
    expect(heads).toEqual([
      { upTo: 1, prev: 0 },
      { upTo: 2, prev: 1 },
      { upTo: 3, prev: 2 },
      { upTo: 7, prev: 3 },
    ]);
  }, 60_000);
});
