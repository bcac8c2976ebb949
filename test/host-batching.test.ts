import { describe, expect, it } from "vitest";
import { VirtualAction, VirtualTimeScheduler } from "rxjs";
import {
  createHostOutputs,
  type PoisonLedger,
  startBatchTimer,
  envelopeCodec,
  decodeEnvelope,
} from "../actors/host/index.js";
import type { HopPublisher } from "../actors/host/index.js";

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
  let poke: (flushed?: boolean) => void = () => undefined;
  const outputs = createHostOutputs({
    stage: "s",
    partition: 0,
    maxRecords: B,
    codec: envelopeCodec(),
    publisher: () => publisher,
    maxPayload: () => 1 << 20,
    position: () => position,
    now: () => scheduler.now(),
    // As the host wires it: the outputs arm the timer, a flush it asked for is handled at once.
    buffering: () => poke(),
    ledger: new Map() as PoisonLedger,
  });
  const batch = startBatchTimer({
    maxDelayMs: T,
    scheduler,
    buffered: () => outputs.buffered(),
    backlogged: () => backlogged,
    flush: () => {
      outputs.flush();
      poke(true);
    },
  });
  poke = batch.poke;
  const timer = batch.subscription;
  /** Runs the virtual clock up to `t`. */
  const until = (t: number) => {
    // An action at t, so that the clock reads t afterwards even with no timer due before it.
    scheduler.schedule(() => undefined, t - scheduler.now());
    scheduler.maxFrames = t;
    scheduler.flush();
  };
  /** Runs the virtual clock up to `t`, then one input at `seq` emitting `recs`. */
  const at = (t: number, seq: number, recs: number[]) => {
    until(t);
    position = seq;
    for (const r of recs) outputs.out.emit("out", r);
    if (outputs.hasFull()) outputs.flushFull();
  };
  /** One input at position `seq` emitting `recs` to "out" (the host flushes full subjects). */
  const input = (seq: number, recs: number[]) => {
    position = seq;
    for (const r of recs) outputs.out.emit("out", r);
    if (outputs.hasFull()) outputs.flushFull();
  };
  return { hops, until, input, at, timer, scheduler };
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

  it("should send a record T after it was buffered, whatever the phase of the clock", () => {
    // A check every T/2 sent these at 1.5 T and 3 T (each waited up to T/2 more than T).
    const { hops, at, until, timer } = setup();
    at(T / 2 + 1, 1, [10]);
    until(T / 2 + T);
    expect(hops).toEqual([]);
    until(T / 2 + 1 + T);
    expect(hops.map((h) => [h.at, h.recs])).toEqual([[T / 2 + 1 + T, [10]]]);
    // The next record arms it again, from its own time.
    at(2 * T + 7, 2, [11]);
    until(4 * T);
    expect(hops.map((h) => [h.at, h.recs])).toEqual([
      [T / 2 + 1 + T, [10]],
      [3 * T + 7, [11]],
    ]);
    timer.unsubscribe();
  });

  it("should send what is buffered after a flush at T of its own first record", () => {
    // Records that came after the timer was armed for an earlier batch (sent at B meanwhile).
    const { hops, at, until, timer } = setup();
    at(0, 1, [1]);
    at(10, 2, [2, 3]); // B: sent now; the timer armed for T finds nothing
    at(T - 10, 3, [4]);
    until(2 * T);
    expect(hops.map((h) => [h.at, h.recs])).toEqual([
      [10, [1, 2, 3]],
      [2 * T - 10, [4]],
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
