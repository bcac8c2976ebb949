import { describe, expect, it, vi } from "vitest";
import { Registry } from "prom-client";
import { createBadRatioMonitor, createBadRatioAlert } from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import type { InputMessage, StageOutput } from "../actors/host/index.js";
import { createStageState } from "../state/store.js";
import { createMetrics } from "../connectors/http/metrics.js";

/** More than 5% bad events in a minute raises an alert gauge and logs once. */

const enc = new TextEncoder();

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe("bad-ratio monitor", () => {
  it("raises the alert when more than 5% of the last minute's events are bad, once", () => {
    const c = clock();
    const onChange = vi.fn();
    const m = createBadRatioMonitor({ clock: c.now, onChange });
    for (let i = 0; i < 95; i++) m.record(false);
    for (let i = 0; i < 5; i++) m.record(true); // exactly 5%: not more than 5%
    expect(m.alerting).toBe(false);
    m.record(true); // 6 / 101
    expect(m.alerting).toBe(true);
    for (let i = 0; i < 50; i++) m.record(true);
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(onChange).toHaveBeenCalledWith(true, { total: 101, bad: 6, ratio: 6 / 101 });
  });

  it("does not flap when the ratio hovers around the threshold", () => {
    const c = clock();
    const onChange = vi.fn();
    const m = createBadRatioMonitor({ clock: c.now, onChange });
    for (let i = 0; i < 94; i++) m.record(false);
    for (let i = 0; i < 6; i++) m.record(true); // 6%: raised
    for (let k = 0; k < 40; k++) {
      c.advance(500);
      // Alternately under and over 5% of the window.
      for (let i = 0; i < 10; i++) m.record(false);
      m.record(k % 2 === 0);
    }
    expect(onChange.mock.calls.map(([a]) => a as boolean)).toEqual([true]);
  });

  it("forgets events older than a minute and clears after a whole minute under the threshold", () => {
    const c = clock();
    const onChange = vi.fn();
    const m = createBadRatioMonitor({ clock: c.now, onChange });
    for (let i = 0; i < 10; i++) m.record(true);
    expect(m.alerting).toBe(true);
    c.advance(30_000);
    for (let i = 0; i < 100; i++) m.record(false); // 10 / 110: still over, at 30 s
    expect(m.alerting).toBe(true);
    c.advance(31_000); // the bad ten slid out of the window
    expect(m.stats()).toEqual({ total: 100, bad: 0, ratio: 0 });
    expect(m.evaluate()).toBe(true); // under for only 31 s so far
    c.advance(28_000);
    expect(m.evaluate()).toBe(true);
    c.advance(1_000); // a minute since the ratio was last over (at 30 s)
    expect(m.evaluate()).toBe(false);
    expect(onChange.mock.calls.map(([a]) => a as boolean)).toEqual([true, false]);
  });

  it("clears on a quiet minute without any event", () => {
    const c = clock();
    const m = createBadRatioMonitor({ clock: c.now });
    m.record(true);
    c.advance(60_000);
    expect(m.stats().total).toBe(0);
    expect(m.evaluate()).toBe(false);
  });

  it("honours minEvents, a custom threshold and a clock that steps back", () => {
    const c = clock();
    const m = createBadRatioMonitor({ clock: c.now, minEvents: 20, threshold: 0.5 });
    for (let i = 0; i < 19; i++) m.record(true);
    expect(m.alerting).toBe(false);
    c.advance(-5_000); // counted into the newest bucket, not lost
    m.record(true);
    expect(m.stats()).toEqual({ total: 20, bad: 20, ratio: 1 });
    expect(m.alerting).toBe(true);
  });

  it("rejects a window that is not a multiple of its bucket", () => {
    expect(() => createBadRatioMonitor({ clock: () => 0, windowMs: 1500 })).toThrow(RangeError);
  });
});

describe("bad-ratio alert of parse", () => {
  const out = {
    emit: () => undefined,
    touch: () => undefined,
    setProgress: () => undefined,
    raw: () => undefined,
    kvPut: () => undefined,
    count: () => undefined,
  } as StageOutput;
  const good = (seq: number): InputMessage => {
    const id = `00000000-0000-4000-8000-${seq.toString(16).padStart(12, "0")}`;
    const e = { event_id: id, event_type: "view", event_ts: 1, user_id: "u", item_id: "i" };
    return { seq, subject: "events.view", data: enc.encode(JSON.stringify(e)), headers: {} };
  };
  const bad = (seq: number): InputMessage => ({
    seq,
    subject: "events.view",
    data: enc.encode("{oops"),
    headers: {},
  });

  it("raises reco_bad_event_ratio_alert and logs one warning for a flood, clears it a minute later", async () => {
    const c = clock();
    const metrics = createMetrics(new Registry());
    const log = vi.fn();
    const badRatio = createBadRatioAlert(metrics, { clock: c.now, log });
    const h = createParseHandler(createStageState(), out, {
      partitions: 2,
      preset: "ecommerce",
      dedupeHorizonMs: 3_600_000,
      dedupeMaxIds: 1000,
      maxEventBytes: 65536,
      broadcastEveryMs: 1000,
      clock: c.now,
      badRatio,
    });
    const gauge = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value;

    let seq = 0;
    for (let i = 0; i < 200; i++) h.handle(good(++seq), 0);
    expect(await gauge("reco_bad_event_ratio_alert")).toBe(0);
    for (let i = 0; i < 100; i++) {
      h.handle(good(++seq), 0);
      if (i % 5 === 0) h.handle(bad(++seq), 0); // 20 bad in 320: 6.25%
    }
    expect(await gauge("reco_bad_event_ratio_alert")).toBe(1);
    expect(await gauge("reco_bad_event_ratio")).toBeCloseTo(20 / 320);
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]![0]).toMatchObject({ bad: expect.any(Number), threshold: 0.05 });

    c.advance(61_000); // nothing arrives; the scrape re-evaluates
    expect(await gauge("reco_bad_event_ratio_alert")).toBe(0);
    expect(log).toHaveBeenCalledTimes(2);
  });

  it("keeps its state when the parse handler is recreated (a restart of the actor)", () => {
    const c = clock();
    const badRatio = createBadRatioAlert(undefined, { clock: c.now });
    const make = () =>
      createParseHandler(createStageState(), out, {
        partitions: 1,
        preset: "ecommerce",
        dedupeHorizonMs: 1,
        dedupeMaxIds: 1,
        maxEventBytes: 65536,
        broadcastEveryMs: 1000,
        badRatio,
      });
    make().handle(bad(1), 0);
    expect(badRatio.alerting).toBe(true);
    make().handle(good(2), 0);
    expect(badRatio.stats()).toEqual({ total: 2, bad: 1, ratio: 0.5 });
  });
});
