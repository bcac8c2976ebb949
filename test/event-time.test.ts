import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import type { InputMessage } from "../actors/host/index.js";
import {
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  signIdleMarker,
  type ParseOptions,
} from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

/*
 * One message must not move event time for good. An event far ahead of when
 * JetStream stored it is dead-lettered (event_ts_in_future), judged against the stored time, so a
 * replay of EVENTS decides the same whenever it runs.
 */

const enc = new TextEncoder();
/** When the messages were stored (JetStream's timestamp). */
const STORED = Date.UTC(2026, 10, 22, 9, 0, 0);
let n = 0;
const uuid = () => `00000000-0000-4000-8000-${(++n).toString(16).padStart(12, "0")}`;

function msg(seq: number, eventTs: string | number, time: number | undefined = STORED) {
  const ev = {
    event_id: uuid(),
    event_type: "view",
    event_ts: eventTs,
    user_id: "u1",
    item_id: "p1",
  };
  const m: InputMessage = {
    seq,
    subject: "events.view",
    data: enc.encode(JSON.stringify(ev)),
    headers: {},
  };
  if (time !== undefined) m.time = time;
  return m;
}

function setup(opts: Partial<ParseOptions> = {}, clock = () => STORED) {
  const { out, rec } = fakeOutput();
  const bad: string[] = [];
  const h = createParseHandler(createStageState(), out, {
    partitions: 2,
    preset: "ecommerce",
    dedupeHorizonMs: 26 * HOUR,
    dedupeMaxIds: 1000,
    maxEventBytes: 65_536,
    broadcastEveryMs: 100,
    clock,
    counters: {
      accepted: () => undefined,
      duplicate: () => undefined,
      bad: (r) => void bad.push(r),
    },
    ...opts,
  });
  const reasons = () => rec.raws.map((r) => r.headers["Reco-Reason"]);
  return { h, rec, bad, reasons };
}

describe("events dated in the future of their stored time", () => {
  it("dead-letters an event dated 9999-12-31 and keeps event time where it was", () => {
    const t = setup();
    t.h.handle(msg(1, STORED - MINUTE), 0);
    t.h.handle(msg(2, "9999-12-31T23:59:59Z"), 0);
    expect(t.reasons()).toEqual(["event_ts_in_future"]);
    expect(t.rec.raws[0]!.subject).toBe("reco.dlq.parse");
    expect(t.bad).toEqual(["event_ts_in_future"]);
    expect(t.h.progress).toBe(STORED - MINUTE);
    // The next event is on time, not behind a watermark in year 9999.
    t.h.handle(msg(3, STORED), 0);
    expect(t.h.progress).toBe(STORED);
    expect(t.rec.emits.map(([, r]) => (r as { s: number }).s)).toEqual([1, 1, 3, 3]);
  });

  it("allows MAX_FUTURE_SKEW_MS (default 1 h) of clock skew, not a millisecond more", () => {
    const t = setup();
    t.h.handle(msg(1, STORED + HOUR), 0);
    t.h.handle(msg(2, STORED + HOUR + 1), 0);
    expect(t.reasons()).toEqual(["event_ts_in_future"]);
    const narrow = setup({ maxFutureSkewMs: MINUTE });
    narrow.h.handle(msg(1, STORED + MINUTE + 1), 0);
    expect(narrow.reasons()).toEqual(["event_ts_in_future"]);
  });

  it("accepts a historical log: 2019 events stored in 2026 are in the past", () => {
    const t = setup();
    t.h.handle(msg(1, "2019-10-01T00:00:00Z"), 0);
    t.h.handle(msg(2, "2019-11-30T23:59:59Z"), 0);
    expect(t.reasons()).toEqual([]);
    expect(t.h.progress).toBe(Date.UTC(2019, 10, 30, 23, 59, 59));
  });

  it("is off with MAX_FUTURE_SKEW_MS=0", () => {
    const t = setup({ maxFutureSkewMs: 0 });
    t.h.handle(msg(1, "9999-12-31T23:59:59Z"), 0);
    expect(t.reasons()).toEqual([]);
  });

  it("decides from the stored time, not the clock: a replay years later decides the same", () => {
    const log = [msg(1, STORED), msg(2, STORED + 2 * HOUR), msg(3, STORED + 30 * MINUTE)];
    const live = setup();
    for (const m of log) live.h.handle(m, 0);
    // Replayed ten years later, and with a clock far in the past: the same decisions.
    for (const clock of [() => STORED + 3650 * 24 * HOUR, () => 0]) {
      const replay = setup({}, clock);
      for (const m of log) replay.h.handle(m, 0);
      expect(replay.reasons()).toEqual(live.reasons());
      expect(replay.rec.emits).toEqual(live.rec.emits);
      expect(replay.h.progress).toBe(live.h.progress);
    }
    expect(live.reasons()).toEqual(["event_ts_in_future"]);
  });
});

describe("idle markers count only when the engine wrote them", () => {
  const key = enc.encode("the engine's own key");
  const body = (progress: number, after: number) => enc.encode(JSON.stringify({ progress, after }));
  const marker = (seq: number, data: Uint8Array, headers: Record<string, string> = {}) =>
    ({ seq, subject: IDLE_SUBJECT, data, headers, time: STORED }) satisfies InputMessage;
  const YEAR_9999 = Date.UTC(9999, 11, 31);

  it("dead-letters a forged marker (no signature) and keeps event time", () => {
    const t = setup({ markerKey: key });
    t.h.handle(msg(1, STORED), 0);
    t.h.handle(marker(2, body(YEAR_9999, 1)), 0);
    expect(t.reasons()).toEqual(["idle_marker_unsigned"]);
    expect(t.bad).toEqual(["idle_marker_unsigned"]);
    expect(t.h.progress).toBe(STORED);
  });

  it("dead-letters a marker signed with another key, or a signed body changed after", () => {
    const t = setup({ markerKey: key });
    t.h.handle(msg(1, STORED), 0);
    const other = enc.encode("a guessed key");
    const forged = body(YEAR_9999, 1);
    t.h.handle(marker(2, forged, { [IDLE_SIGNATURE_HEADER]: signIdleMarker(other, forged) }), 0);
    const sig = signIdleMarker(key, body(STORED + MINUTE, 2));
    t.h.handle(marker(3, body(YEAR_9999, 2), { [IDLE_SIGNATURE_HEADER]: sig }), 0);
    expect(t.reasons()).toEqual(["idle_marker_unsigned", "idle_marker_unsigned"]);
    expect(t.h.progress).toBe(STORED);
  });

  it("trusts no marker without a key, and applies one the engine signed", () => {
    const unkeyed = setup();
    const data = body(STORED + MINUTE, 1);
    const signed = marker(2, data, { [IDLE_SIGNATURE_HEADER]: signIdleMarker(key, data) });
    unkeyed.h.handle(msg(1, STORED), 0);
    unkeyed.h.handle(signed, 0);
    expect(unkeyed.reasons()).toEqual(["idle_marker_unsigned"]);
    const keyed = setup({ markerKey: key });
    keyed.h.handle(msg(1, STORED), 0);
    keyed.h.handle(signed, 0);
    expect(keyed.reasons()).toEqual([]);
    expect(keyed.h.progress).toBe(STORED + MINUTE);
    expect(keyed.rec.counts).toEqual({ idle_marker: 1 });
  });
});
