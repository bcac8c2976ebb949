import { describe, it, expect } from "vitest";
import { of } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { watermarkStage, type LateRecord, type WatermarkView } from "../actors/stages/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const OOO = 10 * MINUTE;

/** A parsed record at input position `s`, event time `ts`, parse's progress before it `wb`. */
const ev = (s: number, ts: number, wb: number): ParsedRecord => ({
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
});
const late = (r: ParsedRecord): LateRecord => ({
  stage: "watermark",
  reason: "behind_watermark:user",
  watermark: r.wb - OOO,
  event: r,
});

function setup() {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext({ outOfOrdernessMs: OOO }, ts);
  const logic = createStageLogic(watermarkStage, ctx);
  return { ts, logic, view: logic.view as WatermarkView, batch: batchMaker<ParsedRecord>() };
}

describe("watermark stage (marbles)", () => {
  it("should pass on-time records on, and send those behind progress − 10 min to late", () => {
    const { ts, logic, batch } = setup();
    const w = T0 + 60 * MINUTE;
    const a = [ev(1, T0, -1), ev(2, T0 + MINUTE, T0)];
    const b = [ev(3, w, T0 + MINUTE), ev(4, T0, w), ev(5, w - OOO, w), ev(6, w - OOO - 1, w)];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", { a: batch(T0 + MINUTE, a), b: batch(w, b) });
      expectObservable(input.pipe(logic.operator)).toBe("a-b", {
        // Nothing late: the batch goes on as it came.
        a: { window: a },
        // Late means strictly behind wb − 10 min: 4 and 6 are, 5 (exactly at it) is not.
        b: { window: [b[0], b[2]], late: [late(b[1]!), late(b[3]!)] },
      });
    });
  });

  it("should pass the input batch itself on when nothing is late (its bytes are forwarded)", () => {
    const { logic, batch } = setup();
    const records = [ev(1, T0, T0), ev(2, T0, T0)];
    const outputs: unknown[] = [];
    const input = batch(T0, records);
    of(input)
      .pipe(logic.operator)
      .subscribe((o) => outputs.push(o));
    // The same array, not a copy.
    expect((outputs[0] as { window: unknown }).window).toBe(input.records);
  });

  it("should drop records processed before a restart of parse (duplicates by position)", () => {
    const { ts, logic, batch } = setup();
    const recs = [ev(4, T0, T0), ev(5, T0, T0), ev(6, T0, T0)];
    ts.run(({ cold, expectObservable }) => {
      // The host read up to position 5 before the restart: 4 and 5 went on then.
      const input = cold("a", { a: batch(T0, recs, 5) });
      expectObservable(input.pipe(logic.operator)).toBe("a", {
        a: { window: [recs[2]], late: [] },
      });
    });
  });

  it("should move the watermark on idle batches, never back, over virtual minutes", () => {
    const { ts, logic, view, batch } = setup();
    const seen: number[] = [];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 5m b 5m c", {
        a: batch(T0, []),
        b: batch(T0 + 30 * MINUTE, []),
        c: batch(T0, []), // an older progress does not move it back
      });
      const out = input.pipe(logic.operator);
      out.subscribe(() => seen.push(view.watermark));
      expectObservable(out).toBe("a 5m b 5m c", {
        a: { window: [] },
        b: { window: [] },
        c: { window: [] },
      });
    });
    expect(seen).toEqual([T0 - OOO, T0 + 20 * MINUTE, T0 + 20 * MINUTE]);
  });
});
