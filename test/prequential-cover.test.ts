import { describe, expect, it } from "vitest";
import { COVER_CHUNKS, createPrequential } from "../actors/quality/index.js";
import { createStageState, type StageStateInternal } from "../state/index.js";

/**
 * The prequential tallies' coverage (items listed per bucket and method) is kept in at most
 * COVER_CHUNKS keys per (bucket, method), not one key per item listed: the scorer's state loads
 * with the covisit stage's, and a day of scoring listed hundreds of
 * thousands of (bucket, method, item) keys, each a JSON entry to load.
 */
const T0 = Date.UTC(2026, 10, 1);
const items = Array.from({ length: 500 }, (_, x) => `p${x}`);

/** The state as a restart loads it: every map's entries through JSON, in a fresh state. */
function reload(state: StageStateInternal): StageStateInternal {
  const fresh = createStageState();
  for (const [name, entries] of state.allMaps())
    for (const [k, v] of entries) fresh.loadMapEntry(name, k, JSON.parse(JSON.stringify(v)));
  return fresh;
}

const keysOf = (state: StageStateInternal) =>
  [...state.allMaps()].reduce((n, [, entries]) => n + [...entries].length, 0);

describe("prequential coverage in the state", () => {
  it("keeps each (bucket, method)'s listed items in at most COVER_CHUNKS keys, and counts the same after a restart", () => {
    const state = createStageState();
    const p = createPrequential(state);
    for (let x = 0; x < items.length; x += 10)
      p.score("blend", T0 + x * 100, items.slice(x, x + 10), items[x]!);
    const report = p.report(T0 + items.length * 1000, ["blend"]);
    p.seen("p0");
    expect(report.all.blend!.cases).toBe(50);
    // Two cells (the bucket and "all") of 500 items each: a tally each and their chunks.
    expect(keysOf(state)).toBeLessThanOrEqual(2 + 2 * COVER_CHUNKS + 1);
    const again = createPrequential(reload(state));
    expect(again.report(T0 + items.length * 1000, ["blend"])).toEqual(
      p.report(T0 + items.length * 1000, ["blend"]),
    );
  });

  it("reads the layout before (a key per item listed) and moves it into the chunks", () => {
    const state = createStageState();
    const old = state.map<{ c: number; h: number; g: number }>("preq");
    old.set(`all|blend`, { c: 2, h: 1, g: 1 });
    const listed = state.map<1>("preqItems");
    for (const i of ["a", "b", "c"]) listed.set(`all|blend|${i}`, 1);
    state.map<1>("preqCatalogue").set("a", 1);
    state.map<1>("preqCatalogue").set("d", 1);
    const p = createPrequential(reload(state));
    const r = p.report(T0, ["blend"]);
    expect(r.all.blend).toMatchObject({ cases: 2, hits: 1, coverage: 3 / 2 });
    // Listed again from the chunks after another restart, the old keys gone.
    const state2 = reload(state);
    const p2 = createPrequential(state2);
    expect(state2.map("preqItems").size).toBe(0);
    expect(createPrequential(reload(state2)).report(T0, ["blend"])).toEqual(
      p2.report(T0, ["blend"]),
    );
  });
});
