import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { prequentialStage, type PrequentialView } from "../actors/stages/index.js";
import { defaultBlend, defaultSourceSettings, ECOMMERCE } from "../actors/sources/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;

function setup() {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const settings = {
    preset: ECOMMERCE,
    sources: defaultSourceSettings(ECOMMERCE),
    blend: defaultBlend(ECOMMERCE),
  };
  const { ctx } = stageContext(settings, ts);
  const logic = createStageLogic(prequentialStage, ctx);
  return { ts, logic, view: logic.view as PrequentialView, batch: batchMaker<ParsedRecord>() };
}

describe("prequential stage (marbles)", () => {
  it("should score a target event against the answers just before it, and move progress on idle batches", () => {
    const { ts, logic, view, batch } = setup();
    const rec = recordMaker();
    const a = [rec("u1", "p1", T0), rec("u1", "p2", T0 + M), rec("u2", "p1", T0 + 2 * M)];
    // u2's purchase of p2: p2 was viewed together with p1, which u2 viewed; nobody had bought
    // anything, so the popular list was empty.
    const b = [rec("u2", "p2", T0 + 3 * M, "purchase")];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c", {
        a: batch(T0 + 2 * M, a),
        b: batch(T0 + 3 * M, b),
        // Progress without records (an idle marker).
        c: batch(T0 + 9 * M, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", { a: {}, b: {}, c: {} });
    });
    const all = view.report().all;
    expect(all.blend).toMatchObject({ cases: 1, hits: 1 });
    expect(all.popularity).toMatchObject({ cases: 1, hits: 0 });
    expect(view.progress()).toBe(T0 + 9 * M);
  });

  it("should score nothing for events that are not targets", () => {
    const { ts, logic, view, batch } = setup();
    const rec = recordMaker();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(T0, [rec("u1", "p1", T0), rec("u1", "p2", T0)]) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: {} });
    });
    expect(view.report().all.blend?.cases ?? 0).toBe(0);
  });
});
