import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import { historyStage, type HistoryView } from "../actors/stages/index.js";
import { ECOMMERCE, createHistory } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker, reloaded } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;
const settings = { preset: ECOMMERCE, halfLifeMs: 86_400_000, maxItemsPerUser: 4 };

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext(settings, ts, state);
  return { ts, state, logic: createStageLogic(historyStage, ctx) };
}

describe("history stage (marbles)", () => {
  it("should keep each user's items from their partition's hops, one output per batch", () => {
    const { ts, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ReturnType<typeof rec>>();
    const a = [rec("u1", "p1", T0), rec("u1", "p2", T0 + M, "cart"), rec("u2", "p1", T0 + M)];
    const b = [rec("u1", "p1", T0 + 2 * M), rec("u1", "p3", T0 + 3 * M, "purchase")];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", { a: batch(T0 + M, a), b: batch(T0 + 3 * M, b) });
      expectObservable(input.pipe(logic.operator)).toBe("a-b", { a: {}, b: {} });
    });
    const h = (logic.view as HistoryView).history();
    const now = T0 + 3 * M;
    // The same as the source fed the same events (the stage adds nothing of its own).
    const ref = createHistory(settings);
    for (const r of [...a, ...b]) ref.add({ u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r });
    expect(h.candidates("u1", now)).toEqual(ref.candidates("u1", now));
    expect(h.candidates("u1", now).map((x) => x.item)).toEqual(["p2", "p1"]); // p3: bought
    expect([...h.done("u1", now)]).toEqual(["p3"]);
    expect(h.recent("u2", 5)).toEqual([{ item: "p1", type: "view", ts: T0 + M, count: 1 }]);
  });

  it("should drop records at or below the batch's position (re-sent after parse's restart)", () => {
    const { ts, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ReturnType<typeof rec>>();
    const first = [rec("u1", "p1", T0), rec("u1", "p1", T0 + M)];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("ab", {
        a: { ...batch(T0 + M, first), position: { from: 0, upTo: 2 } },
        // Parse restarted and sent the same records again in a hop that goes further.
        b: {
          ...batch(T0 + M, [...first, rec("u1", "p2", T0 + 2 * M)]),
          position: { from: 2, upTo: 3 },
        },
      });
      expectObservable(input.pipe(logic.operator)).toBe("ab", { a: {}, b: {} });
    });
    const recent = (logic.view as HistoryView).history().recent("u1", 5);
    expect(recent.find((x) => x.item === "p1")?.count).toBe(2);
    expect(recent.map((x) => x.item)).toEqual(["p2", "p1"]);
  });

  it("should answer from a restored snapshot as the live stage does, bounded per user", () => {
    const { ts, state, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ReturnType<typeof rec>>();
    const recs = Array.from({ length: 12 }, (_, x) => rec("u1", `p${x}`, T0 + x * M));
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a", { a: batch(T0, recs) }).pipe(logic.operator)).toBe("a", { a: {} });
    });
    const again = setup(reloaded(state));
    const now = T0 + 20 * M;
    const live = (logic.view as HistoryView).history();
    const restored = (again.logic.view as HistoryView).history();
    expect(restored.candidates("u1", now)).toEqual(live.candidates("u1", now));
    // At most maxItemsPerUser × 1.25 items kept: state grows with users, not with events.
    expect(live.recent("u1", 100).length).toBeLessThanOrEqual(5);
    expect(state.keyCount()).toBe(1);
  });
});
