import { describe, expect, it } from "vitest";
import { COVER_CHUNKS, coverCodec, createPrequential } from "../actors/quality/index.js";
import { createStageState, type StageStateInternal } from "../state/index.js";
import { testStateDb } from "./helpers/state-db.js";

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

describe("prequential cover lists on disk", () => {
  const dbs = testStateDb("reco-preq-cover-");
  const at = T0 + items.length * 1000;

  it("are MessagePack, smaller than their JSON text, and a list written as JSON text decodes", () => {
    const bytes = coverCodec.encode(items.slice(0, 40));
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(coverCodec.decode(bytes)).toEqual(items.slice(0, 40));
    expect(coverCodec.decode(JSON.stringify(items.slice(0, 40)))).toEqual(items.slice(0, 40));
    expect((bytes as Uint8Array).length).toBeLessThan(JSON.stringify(items.slice(0, 40)).length);
  });

  it("come back from LevelDB with the same coverage, also when an earlier version wrote them as text", async () => {
    const db = await dbs.open();
    const state = createStageState();
    const p = createPrequential(state);
    for (let x = 0; x < items.length; x += 10)
      p.score("blend", T0 + x * 100, items.slice(x, x + 10), items[x]!);
    const store = db.instance("history", 0);
    await store.write(state);
    const loaded = createPrequential(await (await dbs.open()).instance("history", 0).load());
    expect(loaded.report(at, ["blend"])).toEqual(p.report(at, ["blend"]));
    expect(loaded.report(at, ["blend"]).all.blend!.coverage).toBeGreaterThan(0);

    // The same lists as JSON text (what the map held before it had a codec).
    const old = createStageState();
    old.map("preq").set("all|blend", { c: 1, h: 0, g: 0 });
    old.map<string[]>("preqCover", { text: true }).set("all|blend|0", ["a", "b", "c"]);
    const db2 = await dbs.open();
    await db2.instance("old", 0).write(old);
    const fromText = createPrequential(await (await dbs.open()).instance("old", 0).load());
    expect(fromText.report(at, ["blend"]).all.blend).toMatchObject({ cases: 1, hits: 0 });
    fromText.seen("a");
    expect(fromText.report(at, ["blend"]).all.blend!.coverage).toBe(3);
  });
});
