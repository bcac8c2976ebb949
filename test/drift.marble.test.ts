import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic, type StateMaps } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { driftStage, NO_CATEGORY } from "../actors/stages/index.js";
import { DRIFT_DEFAULTS, driftReport, psiOf } from "../actors/quality/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);
let seq = 0;
function ev(ts: number, c: string, i = "p1", t: EventType = "view"): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u: `u${seq % 7}`, i, c, b: "", pr: -1, r: -1, s: seq, wb: -1 };
}

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext(DRIFT_DEFAULTS, ts, state);
  const logic = createStageLogic(driftStage, ctx);
  return { ts, state, logic, batch: batchMaker<ParsedRecord>() };
}

describe("drift stage (marbles)", () => {
  it("emits nothing and counts each batch's events into 5-minute buckets by mix", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", {
        a: batch(T0 + MINUTE, [ev(T0, "books"), ev(T0 + MINUTE, "", "p2", "cart")]),
        b: batch(T0 + 6 * MINUTE, [ev(T0 + 6 * MINUTE, "books")]),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b", { a: {}, b: {} });
    });
    const b = logic.view.buckets();
    expect([...b.keys()]).toEqual([T0, T0 + 5 * MINUTE]);
    expect(b.get(T0)!.n).toBe(2);
    expect([...b.get(T0)!.category]).toEqual([
      ["books", 1],
      [NO_CATEGORY, 1],
    ]);
    expect([...b.get(T0)!.event_type]).toEqual([
      ["view", 1],
      ["cart", 1],
    ]);
    expect(b.get(T0 + 5 * MINUTE)!.item_popularity.get("p1")).toBe(1);
    expect(logic.view.progress()).toBe(T0 + 6 * MINUTE);
  });

  it("drops buckets older than both windows once progress passes them, and restores the rest from state", () => {
    const state = createStageState();
    const { ts, logic, batch } = setup(state);
    const late = T0 + 26 * HOUR;
    ts.run(({ cold, expectObservable }) => {
      const input = cold("ab", {
        a: batch(T0, [ev(T0, "books")]),
        b: batch(late, [ev(late, "toys"), ev(T0 + 5 * MINUTE, "books")]),
      });
      expectObservable(input.pipe(logic.operator)).toBe("ab", { a: {}, b: {} });
    });
    // T0's bucket is 26 h behind: gone; the record 25h55m behind was never counted.
    expect([...logic.view.buckets().keys()]).toEqual([late]);
    expect([...state.map<number>("count").keys()].every((k) => k.startsWith(`${late}|`))).toBe(
      true,
    );
    const again = createStageLogic(driftStage, stageContext(DRIFT_DEFAULTS, ts, state).ctx);
    expect(again.view.buckets()).toEqual(logic.view.buckets());
  });
});

describe("drift stage state writes", () => {
  it("writes each count it changed once per batch, not once per record, with the bucket's total", () => {
    const state = createStageState();
    const sets: string[] = [];
    // The stage's state with every set of its count map recorded.
    const spied: StateMaps = {
      map<V>(name: string, options?: { text?: boolean }) {
        const m = state.map<V>(name, options);
        return Object.assign(Object.create(m) as typeof m, {
          get: (k: string) => m.get(k),
          set: (k: string, v: V) => {
            sets.push(k);
            m.set(k, v);
          },
        });
      },
      value: (name) => state.value(name),
    };
    const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    const logic = createStageLogic(driftStage, stageContext(DRIFT_DEFAULTS, ts, spied).ctx);
    const batch = batchMaker<ParsedRecord>();
    const records = Array.from({ length: 200 }, () => ev(T0, "books"));
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a", { a: batch(T0, records) }).pipe(logic.operator)).toBe("a", {
        a: {},
      });
    });
    // n, one category, one event type, one item: four counts of 200.
    expect(sets).toHaveLength(4);
    expect(sets.map((k) => state.map<number>("count").get(k))).toEqual([200, 200, 200, 200]);
    expect(logic.view.buckets().get(T0)!.n).toBe(200);
  });
});

describe("PSI", () => {
  const m = (o: Record<string, number>) => new Map(Object.entries(o));
  const s = { topBins: 20, epsilon: 1e-4 };
  it("is 0 for the same mix and for an empty side, and grows with the shift", () => {
    expect(psiOf(m({ a: 10, b: 30 }), m({ a: 100, b: 300 }), s).psi).toBeCloseTo(0, 12);
    expect(psiOf(m({}), m({ a: 1 }), s).psi).toBe(0);
    const small = psiOf(m({ a: 45, b: 55 }), m({ a: 50, b: 50 }), s).psi;
    const large = psiOf(m({ a: 90, b: 10 }), m({ a: 50, b: 50 }), s).psi;
    // (0.45-0.5)ln(0.9) + (0.55-0.5)ln(1.1) = 0.0100
    expect(small).toBeCloseTo(0.05 * Math.log(1.1) - 0.05 * Math.log(0.9), 10);
    expect(large).toBeGreaterThan(0.25);
    expect(small).toBeLessThan(0.1);
  });

  it("bins all but the top values of either side into one", () => {
    const recent = m({ a: 5, b: 1, c: 1, d: 1 });
    const ref = m({ a: 5, b: 2, c: 1, e: 1 });
    const r = psiOf(recent, ref, { topBins: 1, epsilon: 1e-4 });
    expect(r.bins.map((x) => x.value).sort()).toEqual(["(other)", "a"]);
  });

  it("reads the last hour against the 24 h before it", () => {
    const { ts, logic, batch } = setup();
    const now = T0 + 30 * HOUR;
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", {
        a: batch(now, [
          ev(now - 2 * HOUR, "books"),
          ev(now - 3 * HOUR, "toys"),
          ev(now - 30 * MINUTE, "toys"),
          ev(now, "toys"),
        ]),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: {} });
    });
    const r = driftReport(logic.view.buckets(), now);
    expect(r.events).toEqual({ recent: 2, reference: 2 });
    // toys 1.0 against 0.5, books 0 (floored) against 0.5.
    const expected = 0.5 * Math.log(2) + (1e-4 - 0.5) * Math.log(1e-4 / 0.5);
    expect(r.psi.category).toBeCloseTo(expected, 10);
    expect(r.psi.event_type).toBeCloseTo(0, 12);
  });
});
