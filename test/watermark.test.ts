import { describe, it, expect } from "vitest";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import type { LateRecord } from "../actors/stages/index.js";
import { createWatermarkHandler } from "../actors/plan/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const OOO = 10 * MINUTE;
/** An arbitrary progress well past T0, so wb − 10 min is also past T0. */
const HOUR_ISH = 61 * MINUTE;

function rec(s: number, ts: number, wb: number, extra: Partial<ParsedRecord> = {}): ParsedRecord {
  return {
    id: `id-${s}`,
    t: "view",
    ts,
    u: "u1",
    i: "p1",
    c: "",
    b: "",
    pr: -1,
    r: -1,
    s,
    wb,
    ...extra,
  };
}

function batch(seq: number, env: Envelope<ParsedRecord>): InputMessage {
  return { seq, subject: "reco.parse.3", data: enc.encode(JSON.stringify(env)), headers: {} };
}

function setup() {
  const { out, rec: calls } = fakeOutput();
  const late: [string, number][] = [];
  const paths: (string | undefined)[] = [];
  const h = createWatermarkHandler(createStageState(), out, {
    partition: 3,
    outOfOrdernessMs: OOO,
    counters: {
      late: (stage, n, path) => {
        late.push([stage, n]);
        paths.push(path);
      },
    },
  });
  return { h, calls, late, paths };
}

describe("watermark", () => {
  it("should pass an on-time event to reco.watermark.<p>", () => {
    const { h, calls } = setup();
    const r = rec(1, T0, T0);
    h.handle(batch(1, { upTo: 1, wm: T0, recs: [r] }), 0);
    expect(calls.emits).toEqual([["reco.watermark.3", r]]);
    expect(calls.raws).toEqual([]);
  });

  it("should send an event older than wb − 10 min to reco.late with the reason and watermark", () => {
    const { h, calls, late } = setup();
    const wb = T0 + HOUR_ISH;
    const r = rec(9, wb - OOO - 1, wb);
    h.handle(batch(4, { upTo: 9, wm: wb, recs: [r] }), 0);
    expect(calls.emits).toEqual([]);
    expect(calls.raws).toHaveLength(1);
    const raw = calls.raws[0]!;
    expect(raw.subject).toBe("reco.late");
    expect(raw.msgId).toBe("late.watermark.user.9");
    expect(raw.headers["Reco-Reason"]).toBe("behind_watermark:user");
    expect(raw.headers["Reco-Watermark"]).toBe(String(wb - OOO));
    const body = JSON.parse(dec.decode(raw.data)) as LateRecord;
    expect(body).toEqual({
      stage: "watermark",
      reason: "behind_watermark:user",
      watermark: wb - OOO,
      event: r,
    });
    expect(late).toEqual([["watermark", 1]]);
  });

  it("should count late events with their path, user", () => {
    const { h, paths } = setup();
    const wb = T0 + HOUR_ISH;
    h.handle(batch(1, { upTo: 2, wm: wb, recs: [rec(1, wb, wb), rec(2, wb - OOO - 1, wb)] }), 0);
    expect(paths).toEqual(["user"]);
  });

  it("should keep an event exactly at wb − 10 min on time (late means strictly behind)", () => {
    const { h, calls, late } = setup();
    const wb = T0 + HOUR_ISH;
    const r = rec(2, wb - OOO, wb);
    h.handle(batch(1, { upTo: 2, wm: wb, recs: [r] }), 0);
    expect(calls.emits).toEqual([["reco.watermark.3", r]]);
    expect(late).toEqual([]);
  });

  it("should never call the first event (wb = -1) late", () => {
    const { h, calls } = setup();
    h.handle(batch(1, { upTo: 1, wm: 5, recs: [rec(1, 5, -1)] }), 0);
    expect(calls.emits).toHaveLength(1);
    expect(calls.raws).toEqual([]);
  });

  it("should count late events per batch and pass the on-time ones in order", () => {
    const { h, calls, late } = setup();
    const wb = T0 + HOUR_ISH;
    const recs = [
      rec(1, wb, wb),
      rec(2, wb - OOO - MINUTE, wb),
      rec(3, wb - MINUTE, wb),
      rec(4, wb - 2 * OOO, wb),
    ];
    h.handle(batch(1, { upTo: 4, wm: wb, recs }), 0);
    expect(calls.emits.map(([, r]) => (r as ParsedRecord).s)).toEqual([1, 3]);
    expect(calls.raws.map((r) => r.msgId)).toEqual([
      "late.watermark.user.2",
      "late.watermark.user.4",
    ]);
    expect(late).toEqual([["watermark", 2]]);
  });

  it("should skip records with s <= lastUpTo (seen before a restart of parse)", () => {
    const { h, calls } = setup();
    const recs = [rec(4, T0, T0), rec(5, T0, T0), rec(6, T0, T0)];
    h.handle(batch(1, { upTo: 6, wm: T0, recs }), 5);
    expect(calls.emits.map(([, r]) => (r as ParsedRecord).s)).toEqual([6]);
  });

  it("should take progress from the envelope wm and never move it back", () => {
    const { h, calls } = setup();
    expect(h.watermark).toBe(-Infinity);
    h.handle(batch(1, { upTo: 1, wm: T0 + 30 * MINUTE, recs: [] }), 0);
    expect(h.watermark).toBe(T0 + 30 * MINUTE - OOO);
    h.handle(batch(2, { upTo: 2, wm: T0, recs: [] }), 0);
    expect(h.watermark).toBe(T0 + 30 * MINUTE - OOO);
    expect(calls.progress).toEqual([T0 + 30 * MINUTE, T0 + 30 * MINUTE]);
  });

  it("should pass a batch with nothing late or seen on as it came, and any other record by record", () => {
    const { h, calls } = setup();
    const onTime = batch(1, { upTo: 2, wm: T0, recs: [rec(1, T0, T0), rec(2, T0, T0)] });
    h.handle(onTime, 0);
    expect(calls.forwards).toEqual([["reco.watermark.3", onTime.data]]);
    // A late record: the others go one by one, without it.
    const w = T0 + HOUR_ISH;
    h.handle(batch(2, { upTo: 4, wm: w, recs: [rec(3, w, w), rec(4, T0, w)] }), 2);
    // A record seen before a restart of parse: not forwarded either.
    h.handle(batch(3, { upTo: 6, wm: w, recs: [rec(5, w, w), rec(6, w, w)] }), 5);
    expect(calls.forwards.length).toBe(1);
    expect(calls.emits.map(([, r]) => (r as ParsedRecord).s)).toEqual([1, 2, 3, 6]);
  });

  it("should touch its output subject on every batch, so empty batches carry progress", () => {
    const { h, calls } = setup();
    h.handle(batch(1, { upTo: 1, wm: T0, recs: [] }), 0);
    expect(calls.touches).toEqual(["reco.watermark.3"]);
    expect(calls.emits).toEqual([]);
  });
});
