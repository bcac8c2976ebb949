import { describe, expect, it } from "vitest";
import { StorageType, type NatsConnection } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import {
  createStageInstance,
  type PoisonLedger,
  decodeEnvelope,
  encodeEnvelope,
  createHopOrder,
} from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import type { StateDb } from "../state/index.js";

/**
 * A snapshot taken while a hop waits for a missing one (hop-order.ts) covers input only up to
 * before the waiting hop, but it records the position of the hops it has sent (`sent`), the
 * upstream position applied (`upTo`) and the state of hops applied after the waiting one: a
 * restarted producer's chain applies while its old chain's next hop waits. The question is whether
 * a restart from such a snapshot loses or counts twice. It does neither (host.ts, capture): the
 * hops input after the snapshot's position are either still waiting (nothing of them applied or
 * sent) or applied and then dropped on replay as covered by the recorded `upTo`, and what they
 * emitted was published and acked before the snapshot was written. This test kills the instance
 * between that publish and the next snapshot and compares what a reader applies with an
 * uninterrupted run.
 */

interface Rec {
  s: number;
}

const hop = (prev: number, upTo: number) =>
  encodeEnvelope(
    upTo,
    upTo,
    Array.from({ length: upTo - prev }, (_, i) => ({ s: prev + 1 + i })),
    prev,
  );

describe("a snapshot taken while a hop waits for a missing one", () => {
  const cleanups = useCleanups();

  const stage = (nc: NatsConnection, db: StateDb, stream: string) =>
    createStageInstance(
      {
        stage: "copy",
        partition: 0,
        stream,
        subject: `${stream.toLowerCase()}.in`,
        input: "envelope",
        batching: "per-input",
        // Emits each record not applied before (the parse-fed stages' `r.s > before`).
        create: (_state, out) => ({
          handle(msg, before) {
            const env = decodeEnvelope<Rec>(msg.data);
            for (const r of env.recs) if (r.s > before) out.emit(`${stream.toLowerCase()}.out`, r);
            out.setProgress(env.wm);
          },
        }),
      },
      {
        transport: natsHostTransport(nc),
        snapshots: db.instance("copy", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );

  /** What a reader of the output applies, in order (dedupe and order by upTo and prev). */
  const applied = async (nc: NatsConnection, stream: string) => {
    const jsm = await nc.jetstreamManager();
    const info = await jsm.streams.info(stream);
    const order = createHopOrder<Rec[]>();
    let upTo = 0;
    const recs: number[] = [];
    const take = (rs: Rec[], u: number) => {
      for (const r of rs) recs.push(r.s);
      upTo = u;
    };
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      const env = decodeEnvelope<Rec>(m.data);
      const prev = (env as { prev?: number }).prev ?? 0;
      if (order.offer(env.recs, seq, env.upTo, prev, upTo) !== "apply") continue;
      take(env.recs, env.upTo);
      for (let h = order.next(upTo).hop; h; h = order.next(upTo).hop) take(h.item, h.upTo);
    }
    return recs;
  };

  const run = async (kill: boolean) => {
    const { nc, jsm } = await startNats(cleanups);
    const stream = kill ? "KILLED" : "WHOLE";
    const lower = stream.toLowerCase();
    await jsm.streams.add({ name: stream, subjects: [`${lower}.in`], storage: StorageType.File });
    await jsm.streams.add({
      name: `${stream}_OUT`,
      subjects: [`${lower}.out`],
      storage: StorageType.File,
    });
    const db = await tempStateDb(cleanups, `reco-waiting-${lower}-`);
    const js = nc.jetstream();
    const input = (data: Uint8Array) => js.publish(`${lower}.in`, data);
    let inst = stage(nc, db, stream);
    cleanups.add(() => inst.actor.stop());
    await inst.actor.start();
    await input(hop(0, 10)); // seq 1
    await input(hop(27, 30)); // seq 2: an old chain's hop; (10, 27] not here yet: it waits
    await input(hop(10, 25)); // seq 3: the producer restarted at 10: applies, seq 2 still waits
    await waitFor(() => inst.position() === 3, "the three hops");
    // Covers input up to 1 (seq 2 waits), records applied up to 25, hops sent at 3.
    await inst.snapshotNow();
    const meta = (await db.instance("copy", 0).exportRaw()).meta;
    expect(meta.seq).toBe(1);
    expect(meta.upTo).toBe(25);
    // Beyond its own input position: what seq 3 emitted went out in a hop at 3.
    expect(meta.sent).toEqual({ [`${lower}.out`]: 3 });
    await input(hop(25, 27)); // seq 4: the missing part: it and seq 2 apply
    await waitFor(() => inst.position() === 4, "the fourth hop");
    if (kill) {
      // Published (the reader has them), not in a snapshot: the instance dies now.
      await inst.actor.stop();
      inst = stage(nc, db, stream);
      await inst.actor.start();
      await waitFor(() => inst.position() === 4, "the replay");
    }
    await input(hop(30, 33)); // seq 5
    await waitFor(() => inst.position() === 5, "the last hop");
    await inst.snapshotNow();
    return applied(nc, `${stream}_OUT`);
  };

  it("loses nothing and counts nothing twice after a kill between publish and snapshot", async () => {
    const whole = await run(false);
    expect(whole).toEqual(Array.from({ length: 33 }, (_, i) => i + 1));
    expect(await run(true)).toEqual(whole);
  }, 60_000);
});
