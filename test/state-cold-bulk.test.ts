import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { seededRandom } from "../actors/sources/index.js";
import { createColdIndex, type ColdIndex, type ColdSection } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

/**
 * A restart indexes each binary-only map's sections in one pass in the order
 * of the index's slots (ColdIndex.adoptAll) instead of section by section in the records' order
 * (two cache misses per key in a 1M-key index). It must hold exactly what adopting each section
 * in turn holds: the last value of every key, deletions applied, superseded buffers dropped.
 */

const contents = (c: ColdIndex) =>
  new Map([...c.entries()].map(([k, v]) => [k, v.buf.toString("latin1", v.start, v.end)]));

describe("a cold index loaded in one pass", () => {
  const dbs = testStateDb("reco-cold-bulk-");

  it("holds what adopting each section in turn holds, and drops the same superseded buffers", () => {
    const random = seededRandom(11);
    // Non-ASCII and long keys hash and compare like the rest.
    const key = (i: number) =>
      i % 11 === 0 ? `ü${i}-é` : i % 7 === 0 ? `k${i}${"x".repeat(30)}` : `u${i}`;
    for (const [sectionCount, keySpace] of [
      [1, 50],
      [40, 3_000],
      [120, 20_000],
    ] as const) {
      const sections: ColdSection[] = [];
      for (let s = 0; s < sectionCount; s++) {
        const keys: string[] = [];
        const values: (string | Uint8Array | undefined)[] = [];
        const n = 1 + Math.floor(random() * 400);
        for (let x = 0; x < n; x++) {
          keys.push(key(Math.floor(random() * keySpace)));
          const r = random();
          values.push(
            r < 0.2 ? undefined : r < 0.6 ? `{"s":${s},"x":${x}}` : new Uint8Array([s, x & 255]),
          );
        }
        // Some sections share their entry with another map's section (copied by both paths).
        const other = { name: "other", keys: ["o"], values: ["1".repeat(random() * 4000)] };
        const list =
          random() < 0.3 ? [{ name: "m", keys, values }, other] : [{ name: "m", keys, values }];
        const { buf, at } = encodeSections(list);
        sections.push({ buf, start: at[0]!.start, end: at[0]!.end, count: at[0]!.count });
      }
      const total = sections.reduce((a, s) => a + s.count, 0);
      const one = createColdIndex();
      one.reserve(total);
      for (const s of sections) one.adopt(s.buf, s.start, s.end);
      const bulk = createColdIndex();
      let steps = 0;
      for (const n of bulk.adoptAll(sections)) steps += n;
      expect(steps).toBe(2 * total);
      expect(bulk.count).toBe(one.count);
      expect(contents(bulk)).toEqual(contents(one));
      for (let i = 0; i < keySpace; i += 97) expect(bulk.has(key(i))).toBe(one.has(key(i)));
      // The same table size and the same buffers held: every buffer whose records were all
      // superseded or deleted is gone.
      expect(bulk.bytes()).toBe(one.bytes());
      expect(bulk.growths).toBe(0);
      // And it goes on like any index: a later section replaces and deletes.
      const later = encodeSections([
        { name: "m", keys: [key(1), key(2)], values: ['"later"', undefined] },
      ]);
      for (const c of [one, bulk]) c.adopt(later.buf, later.at[0]!.start, later.at[0]!.end);
      expect(contents(bulk)).toEqual(contents(one));
    }
  });

  it("restarts to the same state from binary deltas, and from a map whose JSON entries binary ones replace", async () => {
    const db = await dbs.open({ checkpointMinKeys: 1_000_000 });
    const store = db.instance("s", 0);
    // A map written as JSON first (no form), then as a text map: its JSON delta must load
    // before the binary deltas that replace its keys.
    const first = await store.load();
    const moved = first.map<string>("moved");
    for (let i = 0; i < 50; i++) moved.set(`m${i}`, JSON.stringify({ v: [0, i] }));
    await store.write(first);
    let state = await db.instance("s", 0).load();
    const want = new Map<string, number[]>();
    const wantMoved = new Map<string, number[]>();
    for (let i = 0; i < 50; i++) wantMoved.set(`m${i}`, [0, i]);
    const random = seededRandom(5);
    for (let round = 1; round <= 6; round++) {
      const t = state.map<{ v: number[] }>("t", { text: true });
      const mv = state.map<{ v: number[] }>("moved", { text: true });
      for (let x = 0; x < 2_000; x++) {
        const k = `u${Math.floor(random() * 5_000)}`;
        if (random() < 0.25) {
          t.delete(k);
          want.delete(k);
        } else {
          t.set(k, { v: [round, x] });
          want.set(k, [round, x]);
        }
      }
      mv.set(`m${round}`, { v: [round] });
      wantMoved.set(`m${round}`, [round]);
      await store.write(state);
      if (round % 3 === 0) state = await db.instance("s", 0).load();
    }
    const loaded = await db.instance("s", 0).load();
    const t = loaded.map<{ v: number[] }>("t", { text: true });
    const mv = loaded.map<{ v: number[] }>("moved", { text: true });
    expect(t.size).toBe(want.size);
    for (const [k, v] of want) expect(t.get(k)).toEqual({ v });
    for (let i = 0; i < 5_000; i += 7) if (!want.has(`u${i}`)) expect(t.has(`u${i}`)).toBe(false);
    expect(mv.size).toBe(wantMoved.size);
    for (const [k, v] of wantMoved) expect(mv.get(k)).toEqual({ v });
    expect(loaded.coldIndexGrowths()).toBe(0);
  });
});
