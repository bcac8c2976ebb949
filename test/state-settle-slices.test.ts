import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";

/**
 * A binary map loaded from a snapshot keeps its keys' bytes unindexed until something needs
 * them (cold-index.ts, lazy adoptAll); a walk of every key indexes all of them in one go, which
 * held a restarted process's loop for ~300 ms per partition of 1M users. `settle(n)` indexes
 * them in slices: a restore that walks a large map calls it first, between turns of the loop.
 */
describe("a lazily loaded map, indexed in slices", () => {
  const dbs = testStateDb("reco-settle-slices-");

  it("settle(n) indexes at most about n keys a call until none is left, and loses none", async () => {
    const db = await dbs.open();
    const store = db.instance("stage", 0);
    const first = await store.load();
    const written = first.map<{ v: number }>("cells", { text: true });
    const n = 20_000;
    for (let i = 0; i < n; i++) written.set(`u${i}`, { v: i });
    await store.write(first);

    const loaded = (await store.load()).map<{ v: number }>("cells", { text: true });
    const left: number[] = [];
    for (let l = loaded.settle!(2_000); l > 0; l = loaded.settle!(2_000)) left.push(l);
    // Many slices, none leaving more keys than the one before, down to none (the first steps
    // copy and sort the keys' records before any is placed).
    expect(left.length).toBeGreaterThan(5);
    for (let k = 1; k < left.length; k++) expect(left[k]).toBeLessThanOrEqual(left[k - 1]!);
    expect(left[left.length - 1]).toBeLessThan(left[0]!);
    expect(left[0]).toBeGreaterThan(n / 2);
    expect(loaded.settle!(2_000)).toBe(0);
    expect(loaded.size).toBe(n);
    expect(new Set(loaded.keys()).size).toBe(n);
    expect([loaded.get("u0"), loaded.get(`u${n - 1}`), loaded.get("none")]).toEqual([
      { v: 0 },
      { v: n - 1 },
      undefined,
    ]);
  });

  it("a map held in memory has nothing to index", async () => {
    const db = await dbs.open();
    const state = await db.instance("stage", 0).load();
    const m = state.map<number>("plain");
    m.set("a", 1);
    expect(m.settle?.(10) ?? 0).toBe(0);
    expect([...m.keys()]).toEqual(["a"]);
  });
});
