import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { createStageState } from "../state/index.js";
import type { ValueCodec } from "../runtime/index.js";

/**
 * A load that leaves some maps out (SnapshotStore.load skipMaps: the split's blend replica reads
 * the sources' snapshots without the maps no answer reads): the other maps hold what a full load
 * gives, whatever the parts they are on disk in (a checkpoint, binary and JSON deltas, a shared
 * delta entry), and the skipped ones hold nothing.
 */
const codec: ValueCodec<number[]> = {
  encode: (v) => new Uint8Array(v),
  decode: (s) => [...(s as Uint8Array)],
};

describe("a load without some maps", () => {
  const dbs = testStateDb("reco-skip-maps-");

  it("holds every other map as a full load does, and nothing of the skipped ones", async () => {
    const db = await dbs.open({ checkpointMinKeys: 50 });
    const store = db.instance("covisit", 0);
    const state = createStageState();
    const maps = {
      rows: state.map("rows", { text: true }),
      recent: state.map("recent", { codec }),
      edges: state.map("edges", { codec }),
      mass: state.map<number>("mass"),
      marked: state.map<number>("marked"),
    };
    // Several snapshots: a checkpoint (more than 50 keys changed), then deltas with deletions.
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < (round === 0 ? 80 : 15); i++) {
        const k = `k${(i * 7 + round) % 90}`;
        maps.rows.set(k, { r: round, i });
        maps.recent.set(k, [round, i]);
        maps.edges.set(k, [i, round]);
        maps.mass.set(k, round * 100 + i);
        maps.marked.set(k, i);
      }
      for (const m of Object.values(maps)) m.delete(`k${round * 3}`);
      await store.write(state);
    }
    const full = await store.load();
    const some = await store.load({ skipMaps: new Set(["recent", "marked"]) });
    const dump = (s: typeof full, name: string, options?: object) =>
      new Map([...s.map<unknown>(name, options).entries()]);
    expect(dump(full, "rows", { text: true }).size).toBeGreaterThan(50);
    expect(dump(some, "rows", { text: true })).toEqual(dump(full, "rows", { text: true }));
    expect(dump(some, "edges", { codec })).toEqual(dump(full, "edges", { codec }));
    expect(dump(some, "mass")).toEqual(dump(full, "mass"));
    expect(dump(full, "recent", { codec }).size).toBeGreaterThan(50);
    expect(some.map("recent", { codec }).size).toBe(0);
    expect(some.map("marked").size).toBe(0);
    expect(some.map("marked").get("k5")).toBeUndefined();
    expect(some.keyCount()).toBe(full.keyCount() - 2 * dump(full, "mass").size);
  });
});
