import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import { covisitStage, type CovisitView } from "../actors/stages/index.js";
import { ECOMMERCE, defaultSourceSettings, createCovisit } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker, reloaded } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;
const sources = {
  ...defaultSourceSettings(ECOMMERCE),
  covisit: { ...defaultSourceSettings(ECOMMERCE).covisit, k: 2 },
};
const settings = { preset: ECOMMERCE, sources };

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext(settings, ts, state);
  return { ts, state, logic: createStageLogic(covisitStage, ctx) };
}

describe("covisit stage (marbles)", () => {
  it("should pair items touched together and count trending and popular items", () => {
    const { ts, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ReturnType<typeof rec>>();
    const a = [
      rec("u1", "p1", T0, "view", "electronics"),
      rec("u1", "p2", T0 + M),
      rec("u2", "p1", T0 + 2 * M),
    ];
    const b = [rec("u2", "p2", T0 + 3 * M, "purchase"), rec("u3", "p9", T0 + 3 * M)];
    ts.run(({ cold, expectObservable }) => {
      // c: progress moves on without records (an idle marker).
      const input = cold("a-b-c", {
        a: batch(T0 + 2 * M, a),
        b: batch(T0 + 3 * M, b),
        c: batch(T0 + 9 * M, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", { a: {}, b: {}, c: {} });
    });
    const v = logic.view as CovisitView;
    const now = T0 + 9 * M;
    expect(
      v
        .covisit()
        .similar("p1", now, 5)
        .map((x) => x.item),
    ).toEqual(["p2"]);
    expect(v.covisit().similar("p9", now, 5)).toEqual([]);
    expect(
      v
        .popular()
        .top(now, 5)
        .map((x) => x.item),
    ).toEqual(["p2"]);
    expect(
      v
        .trending()
        .top(now, 1)
        .map((x) => x.item),
    ).toEqual(["p1"]);
    expect(v.categoryOf("p1")).toBe("electronics");
    expect(v.progress()).toBe(now);
    expect(v.fed()).toBe(5);
  });

  it("should keep at most 3K neighbours per item and answer from a restored snapshot as live", () => {
    const { ts, state, logic } = setup();
    const rec = recordMaker();
    const batch = batchMaker<ReturnType<typeof rec>>();
    // One user touches p0 then 10 others within the hour: p0 gets 10 candidate neighbours.
    const recs = [rec("u1", "p0", T0)];
    for (let x = 1; x <= 10; x++) recs.push(rec(`u${x % 3}`, `p${x}`, T0 + x * M));
    for (let x = 1; x <= 10; x++) recs.push(rec("u1", `p${x}`, T0 + (10 + x) * M));
    ts.run(({ cold, expectObservable }) => {
      expectObservable(cold("a", { a: batch(T0, recs) }).pipe(logic.operator)).toBe("a", {
        a: {},
      });
    });
    const ref = createCovisit({ preset: ECOMMERCE, ...sources.covisit });
    for (const r of recs) ref.add({ u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r });
    const now = T0 + 30 * M;
    const live = (logic.view as CovisitView).covisit();
    expect(live.similar("p0", now, 100)).toEqual(ref.similar("p0", now, 100));
    for (let x = 0; x <= 10; x++)
      expect(live.similar(`p${x}`, now, 100).length).toBeLessThan(3 * sources.covisit.k);
    const restored = (setup(reloaded(state)).logic.view as CovisitView).covisit();
    for (let x = 0; x <= 10; x++)
      expect(restored.similar(`p${x}`, now, 100)).toEqual(live.similar(`p${x}`, now, 100));
    // And it goes on from there as the live one does.
    const more = [rec("u1", "p0", T0 + 31 * M), rec("u1", "p5", T0 + 32 * M)];
    const again = setup(reloaded(state));
    const b2 = batchMaker<ReturnType<typeof rec>>();
    for (const l of [logic, again.logic])
      again.ts.run(({ cold, expectObservable }) => {
        expectObservable(cold("a", { a: b2(T0, more) }).pipe(l.operator)).toBe("a", { a: {} });
      });
    const later = T0 + 40 * M;
    expect((again.logic.view as CovisitView).covisit().similar("p0", later, 100)).toEqual(
      live.similar("p0", later, 100),
    );
  });
});
