import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { sleep, startNats, tempStateDb, useCleanups } from "./helpers/harness.js";
import {
  createStageInstance,
  type PoisonLedger,
  type StageHandler,
  decodeEnvelope,
} from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";

/**
 * A hop's Nats-Msg-Id must name one content. Parse
 * touches every output subject on a tick (its progress broadcast) after the records of the same
 * input position were sent; that empty hop went out under the same id as the hop with the
 * records. When a dying NATS node lost the hop, the empty one was stored first, the hop's re-send
 * was dropped by JetStream as its duplicate, and every reader waited for it for ever (seen as
 * "hop waits ... upTo 2000, prev 2000, applied 1462" on all eight of parse's subjects).
 */

const enc = new TextEncoder();

describe("hop message ids", () => {
  const cleanups = useCleanups();

  it("never name two different hops: a touch at the position already sent is not sent", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    await jsm.streams.add({ name: "OUT", subjects: ["out.>"], storage: StorageType.File });
    const db = await tempStateDb(cleanups, "reco-hop-ids-");

    // Every publish to the output subject as it leaves the producer, before JetStream dedupes.
    const seen: { id: string; upTo: number; prev: number; recs: number }[] = [];
    const sub = nc.subscribe("out.x", {
      callback: (_err, m) => {
        const env = decodeEnvelope<unknown>(m.data);
        seen.push({
          id: m.headers?.get("Nats-Msg-Id") ?? "",
          upTo: env.upTo,
          prev: env.prev ?? 0,
          recs: env.recs.length,
        });
      },
    });
    await nc.flush();

    // Like parse: records per input, and a touch of the subject on every tick.
    const inst = createStageInstance(
      {
        stage: "probe",
        partition: 0,
        stream: "IN",
        subject: "in.>",
        input: "raw",
        batching: { maxRecords: 1000, maxDelayMs: 20 },
        tickMs: 30,
        create: (_state, out): StageHandler => ({
          handle: (msg) => out.emit("out.x", { seq: msg.seq }),
          tick: () => out.touch("out.x"),
        }),
      },
      {
        transport: natsHostTransport(nc),
        snapshots: db.instance("probe", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );
    cleanups.add(() => inst.actor.stop());
    await inst.actor.start();
    for (let i = 1; i <= 3; i++) {
      await nc.jetstream().publish("in.x", enc.encode(`${i}`));
      await sleep(200); // the records go (maxDelayMs), then ticks touch the subject
    }
    await inst.snapshotNow();
    sub.unsubscribe();

    expect(seen.reduce((n, h) => n + h.recs, 0)).toBe(3);
    // One id, one content.
    const byId = new Map<string, string>();
    for (const h of seen) {
      const content = JSON.stringify([h.upTo, h.prev, h.recs]);
      expect([h.id, byId.get(h.id) ?? content]).toEqual([h.id, content]);
      byId.set(h.id, content);
    }
    // One hop per position: the ticks' touches at a position already sent are not sent.
    expect(seen.map((h) => h.upTo)).toEqual([1, 2, 3]);
    expect(seen.map((h) => h.prev)).toEqual([0, 1, 2]);
  }, 30_000);
});
