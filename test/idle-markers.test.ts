import { describe, expect, it } from "vitest";
import type { ConsumerView } from "../actors/stages/index.js";
import { answered, enc, markerMsg, setup, T0, TIMEOUT } from "./helpers/idle-parse.js";

/*
 * When the whole input goes quiet, parse moves event time on
 * with idle markers written into EVENTS, decided from the server's view of its consumer (pending
 * count, delivered and acknowledged sequences, a waiting pull) and never from a timer alone. Unit
 * tests of the parse handler with an injected clock and a fake probe (test/helpers/idle-parse.ts):
 * when it appends a marker, and never while its consumer is backlogged. Markers read back from the
 * log: test/idle-markers-log.test.ts; the probe against nats-server: test/idle-probe.test.ts; the
 * whole app: test/idle-app.test.ts.
 */

describe("idle markers: caught up and quiet", () => {
  it("appends a marker to EVENTS after IDLE_TIMEOUT_MS without events, with progress + the quiet time", async () => {
    const t = setup();
    t.event(T0);
    t.event(T0 + 5_000);
    await t.pass(TIMEOUT - 1_000);
    expect(t.markers()).toEqual([]);
    await t.pass(1_500);
    const [m, ...more] = t.markers();
    expect(more).toEqual([]);
    expect(m!.subject).toBe("events._idle");
    // Decided after the last message of the stream (sequence 2): valid only at sequence 3.
    expect(m!.msgId).toBe("idle.2");
    expect(m!.body.after).toBe(2);
    // Event time followed processing time from the last event on.
    expect(m!.body.progress).toBeGreaterThanOrEqual(T0 + 5_000 + TIMEOUT);
    expect(m!.body.progress).toBeLessThanOrEqual(T0 + 5_000 + TIMEOUT + 500);
    // Progress moves only when parse reads it back, in log order.
    expect(t.h.progress).toBe(T0 + 5_000);
    t.rec.touches.length = 0;
    t.input(markerMsg(m!, 3));
    expect(t.h.progress).toBe(m!.body.progress);
    expect(t.state.meta.progress).toBe(m!.body.progress);
    expect(t.rec.progress.at(-1)).toBe(m!.body.progress);
    // ... and reaches every partition of both paths, whether it had records or not.
    expect([...new Set(t.rec.touches)].sort()).toEqual([
      "reco.items.0",
      "reco.items.1",
      "reco.parse.0",
      "reco.parse.1",
    ]);
    // Every user partition's next hop says where event time jumped, and to what.
    expect(t.rec.idles).toEqual([
      ["reco.parse.0", [3, m!.body.progress]],
      ["reco.parse.1", [3, m!.body.progress]],
    ]);
    expect(t.rec.counts).toEqual({ idle_marker: 1 });
  });

  it("keeps event time following processing time, one marker per IDLE_TIMEOUT_MS", async () => {
    const t = setup();
    t.event(T0);
    const values: number[] = [];
    for (let k = 0; k < 4; k++) {
      const before = t.markers().length;
      const start = t.now();
      while (t.markers().length === before) await t.pass(100);
      const m = t.markers().at(-1)!;
      expect(m.msgId).toBe(`idle.${t.seq}`);
      if (k > 0) expect(t.now() - start).toBeGreaterThanOrEqual(TIMEOUT - 1_000);
      values.push(m.body.progress);
      t.input(markerMsg(m, t.seq + 1));
    }
    // About TIMEOUT apart in event time, as in processing time.
    for (let k = 1; k < values.length; k++) {
      expect(values[k]! - values[k - 1]!).toBeGreaterThanOrEqual(TIMEOUT);
      expect(values[k]! - values[k - 1]!).toBeLessThan(TIMEOUT + 1_500);
    }
    expect(t.h.progress).toBe(values.at(-1));
    // A new event anchors event time again.
    t.event(values.at(-1)! + 1);
    await t.pass(TIMEOUT - 500);
    expect(t.markers()).toHaveLength(4);
  });

  it("asks the server only once input has been quiet for half the timeout", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT / 2 - 200);
    expect(t.probes).toBe(0);
    await t.pass(1_500);
    expect(t.probes).toBeGreaterThan(0);
  });

  it("never appends a marker before the first event, or with IDLE_TIMEOUT_MS 0", async () => {
    const t = setup();
    await t.pass(3 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    const off = setup({ idle: { timeoutMs: 0, probe: () => Promise.reject(new Error("no")) } });
    off.event(T0);
    await off.pass(3 * TIMEOUT);
    expect(off.markers()).toEqual([]);
  });
});

describe("idle markers: a backlogged consumer is never taken for idle", () => {
  it("never while the server holds messages not yet delivered (num_pending > 0), however long", async () => {
    const t = setup();
    t.event(T0);
    t.server({ pending: 5 });
    await t.pass(10 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    expect(t.probes).toBeGreaterThan(100);
  });

  it("never while delivered messages wait unprocessed in the client (a slow stage)", async () => {
    const t = setup();
    t.event(T0);
    t.server({ pending: 0, delivered: t.seq + 300, ackFloor: t.seq });
    await t.pass(10 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    // Once they are processed (the server acks up to them at a snapshot), it may.
    t.server({ pending: 0, delivered: t.seq + 300, ackFloor: t.seq + 300 });
    await t.pass(2_000);
    expect(t.markers().map((m) => m.msgId)).toEqual([`idle.${t.seq + 300}`]);
  });

  it("never without a sign of life: no answer, no waiting pull, or an answer older than the last input", async () => {
    const t = setup();
    t.event(T0);
    t.server(new Error("timeout"));
    await t.pass(3 * TIMEOUT);
    t.server({ waiting: 0 });
    await t.pass(3 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    // The connection comes back: markers again.
    t.server({});
    await t.pass(2_000);
    expect(t.markers()).toHaveLength(1);
  });

  it("never on a timer alone: a probe that never answers blocks it", async () => {
    const t = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => new Promise<ConsumerView>(() => undefined) },
    });
    t.event(T0);
    await t.pass(5 * TIMEOUT);
    expect(t.markers()).toEqual([]);
  });

  it("never on an answer the server gave before the last input arrived", async () => {
    const pending: ((v: ConsumerView) => void)[] = [];
    const t = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => new Promise((r) => pending.push(r)) },
    });
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    expect(pending.length).toBe(1); // one question at a time
    // A bad message arrives after the question: not an event, but input all the same.
    t.input({ subject: "events.view", data: enc.encode("{"), headers: {} });
    pending.shift()!({ pending: 0, delivered: 1, ackFloor: 1, waiting: 1 });
    await answered();
    await t.pass(100);
    expect(t.markers()).toEqual([]);
    // The next answer postdates it.
    await t.pass(1_000);
    pending.shift()!({ pending: 0, delivered: 2, ackFloor: 1, waiting: 1 });
    await answered();
    await t.pass(100);
    expect(t.markers().map((m) => m.msgId)).toEqual(["idle.2"]);
  });

  it("waits for its marker to come back before deciding again", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    expect(t.markers()).toHaveLength(1);
    // The marker is stored but not yet delivered: pending 1.
    t.server({ pending: 1 });
    await t.pass(1.5 * TIMEOUT);
    expect(t.markers()).toHaveLength(1);
  });
});
