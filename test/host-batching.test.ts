import { describe, expect, it } from "vitest";
import { VirtualAction, VirtualTimeScheduler } from "rxjs";
import { createHostOutputs, type PoisonLedger } from "../actors/host-outputs.js";
import { startBatchTimer } from "../actors/host-batching.js";
import { envelopeCodec } from "../actors/host-codec.js";
import { decodeEnvelope } from "../actors/envelope.js";
import type { HopPublisher } from "../actors/host-transport.js";

/*
 * The stage host's output batching, "B records or T ms", on a virtual clock: the timer and the
 * outputs run on an RxJS VirtualTimeScheduler, so T passes without sleeping.
 */

const B = 3;
const T = 100;

function setup(backlogged = false) {
  const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
  const hops: { subject: string; at: number; recs: unknown[]; upTo: number; id: string }[] = [];
  const publisher: HopPublisher = {
    publish(subject, data, opts) {
      const env = decodeEnvelope<unknown>(data);
      hops.push({ subject, at: scheduler.now(), recs: env.recs, upTo: env.upTo, id: opts!.msgId! });
      return Promise.resolve();
    },
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  let position = 0;
  const outputs = createHostOutputs({
    stage: "s",
    partition: 0,
    maxRecords: B,
    codec: envelopeCodec(),
    publisher: () => publisher,
    maxPayload: () => 1 << 20,
    position: () => position,
    now: () => scheduler.now(),
    ledger: new Map() as PoisonLedger,
  });
  const timer = startBatchTimer({
    maxDelayMs: T,
    scheduler,
    buffered: () => outputs.buffered(),
    backlogged: () => backlogged,
    flush: () => outputs.flush(),
  });
  /** Runs the virtual clock up to `t`. */
  const until = (t: number) => {
    scheduler.maxFrames = t;
    scheduler.flush();
  };
  /** One input at position `seq` emitting `recs` to "out" (the host flushes full subjects). */
  const input = (seq: number, recs: number[]) => {
    position = seq;
    for (const r of recs) outputs.out.emit("out", r);
    if (outputs.hasFull()) outputs.flushFull();
  };
  return { hops, until, input, timer, scheduler };
}

describe("the host's output batching", () => {
  it("should send a record once it has waited T, not before", () => {
    const { hops, until, input, timer } = setup();
    input(1, [10]);
    until(T - 1);
    expect(hops).toEqual([]);
    until(T);
    expect(hops).toEqual([{ subject: "out", at: T, recs: [10], upTo: 1, id: "s.0.0-1.out" }]);
    timer.unsubscribe();
  });

  it("should send B records at once, with the input position they cover", () => {
    const { hops, until, input, timer } = setup();
    input(1, [1, 2]);
    input(2, [3, 4]);
    // B reached with input 2: that hop goes now; the fourth record waits for T.
    expect(hops.map((h) => [h.at, h.recs, h.upTo])).toEqual([[0, [1, 2, 3, 4], 2]]);
    until(3 * T);
    expect(hops).toHaveLength(1);
    input(3, [5]);
    until(4 * T);
    expect(hops.map((h) => [h.at, h.recs, h.upTo])).toEqual([
      [0, [1, 2, 3, 4], 2],
      [4 * T, [5], 3],
    ]);
    timer.unsubscribe();
  });

  it("should hold records for B or 10 T while the input is backlogged", () => {
    const { hops, until, input, timer } = setup(true);
    input(1, [1]);
    until(9 * T);
    expect(hops).toEqual([]);
    until(10 * T);
    expect(hops.map((h) => [h.at, h.recs])).toEqual([[10 * T, [1]]]);
    timer.unsubscribe();
  });
});
