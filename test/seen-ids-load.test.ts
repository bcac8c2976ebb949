import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStageState, openStateDb, type SnapshotStore } from "../state/store.js";
import { createSeenIds, SEG, type SeenIds } from "../actors/stages/index.js";

/**
 * A restart's load of parse's dedupe memory: its hash set is sized once for the ids loaded (grown
 * by doubling, the load re-inserted ~2M positions for 1M ids, each rehash reading every hash from
 * the log), and what it holds and forgets next is what it would have without the restart
 * (replay determinism).
 */
describe("seen ids at a load", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("sizes its hash set once for the ids it loads", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-seen-load-"));
    const db = await openStateDb(dir);
    try {
      const store = db.instance("parse", 0);
      const state = createStageState();
      const seen = createSeenIds(state.map("seen"), 1_000_000);
      for (let k = 0; k < 50_000; k++) seen.add(`id-${k}`, k);
      expect(seen.growths).toBeGreaterThan(0);
      await store.write(state);

      const back = createSeenIds((await store.load()).map("seen"), 1_000_000);
      expect(back.size).toBe(50_000);
      expect(back.growths).toBe(0);
      // The table a run without the restart grew to: at most half full.
      expect(back.bytes).toBe(seen.bytes);
      for (let k = 0; k < 50_000; k += 97) expect(back.has(`id-${k}`)).toBe(true);
      expect(back.has("id-50000")).toBe(false);
      // It grows from there as ids are added.
      for (let k = 50_000; k < 70_000; k++) back.add(`id-${k}`, k);
      expect(back.growths).toBe(1);
    } finally {
      await db.close();
    }
  });

  it("holds and forgets the same ids, in the same order, with restarts as without", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-seen-load-"));
    const db = await openStateDb(dir);
    // Ids arrive with many at one time (the size bound then forgets among them by hash, leaving
    // holes in the log) and are expired by time now and then; a run spans several segments.
    const MAX = 700;
    const ops: ({ id: string; ts: number } | { horizon: number })[] = [];
    let t = 0;
    for (let k = 0; k < 3 * SEG; k++) {
      if (k % 5 === 0) t++;
      ops.push({ id: `e${k % 4 === 3 ? k - 601 : k}`, ts: t });
      if (k % 1500 === 1499) ops.push({ horizon: t - 100 });
    }
    /** Each op's answer and the ids it made the memory forget, in the order they went. */
    const run = async (
      restartAfter: ReadonlySet<number>,
      store?: SnapshotStore,
    ): Promise<string[]> => {
      let state = createStageState();
      let seen: SeenIds = createSeenIds(state.map("seen"), MAX);
      const held = new Set<string>();
      const log: string[] = [];
      for (let x = 0; x < ops.length; x++) {
        const op = ops[x]!;
        if ("id" in op) {
          const added = seen.add(op.id, op.ts);
          log.push(`${op.id}:${added}`);
          if (added) held.add(op.id);
        } else seen.expireBefore(op.horizon);
        for (const id of held)
          if (!seen.has(id)) {
            held.delete(id);
            log.push(`-${id}`);
          }
        expect(seen.size).toBe(held.size);
        if (store && restartAfter.has(x)) {
          await store.write(state);
          state = await store.load();
          seen = createSeenIds(state.map("seen"), MAX);
          expect(seen.size).toBe(held.size);
        }
      }
      return log;
    };
    try {
      const plain = await run(new Set());
      // Both bounds bit, and repeated ids were both held and forgotten: the test means something.
      expect(plain.filter((e) => e.startsWith("-")).length).toBeGreaterThan(2 * SEG);
      expect(plain.some((e) => e.endsWith(":false"))).toBe(true);
      const added = plain.filter((e) => e.endsWith(":true"));
      expect(new Set(added).size).toBeLessThan(added.length);
      const restarts = new Set([1, 700, 701, 2047, 2048, 2500, 4000, 5000, 6100]);
      expect(await run(restarts, db.instance("parse", 0))).toEqual(plain);
    } finally {
      await db.close();
    }
  });
});
