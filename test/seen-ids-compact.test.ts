import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { createStageState, openStateDb } from "../state/store.js";
import { createSeenIds, SEG } from "../actors/stages/index.js";

/**
 * Parse's dedupe memory holds 64-bit hashes in typed arrays, persisted as a few
 * binary segments, so its state grows with segments of ids, not one LevelDB key (and ~200 bytes
 * of heap) per event. Which ids it forgets stays a function of the input: least (time, hash)
 * first (the property test of dedupe-reload.test.ts covers restarts).
 */
describe("compact seen ids", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("holds 10,000 ids in a handful of state keys and recognises every one after a reload", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-seen-"));
    const db = await openStateDb(dir);
    try {
      const store = db.instance("parse", 0);
      const state = createStageState();
      const seen = createSeenIds(state.map("seen"), 1_000_000);
      for (let k = 0; k < 10_000; k++) expect(seen.add(`id-${k}`, 1000 + k)).toBe(true);
      // One key per event before (10,000); now the segments and a head.
      expect(state.keyCount()).toBe(Math.ceil(10_000 / SEG) + 1);
      await store.write(state);

      const back = createSeenIds((await store.load()).map("seen"), 1_000_000);
      expect(back.size).toBe(10_000);
      for (let k = 0; k < 10_000; k++) expect(back.has(`id-${k}`)).toBe(true);
      expect(back.has("id-10000")).toBe(false);
      // Expiry is by time and frees whole segments' keys.
      back.expireBefore(1000 + 9_000);
      expect(back.size).toBe(1_000);
      expect(back.has("id-8999")).toBe(false);
      expect(back.has("id-9000")).toBe(true);
      expect(back.add("id-8999", 20_000)).toBe(true);
    } finally {
      await db.close();
    }
  });

  it("takes over the earlier layout (one key per id) and forgets in the same order", () => {
    // The earlier layout: key = id, value = time; ties at one time were forgotten by id.
    const state = createStageState();
    for (const [id, ts] of [
      ["c", 3],
      ["a", 1],
      ["b", 2],
    ] as const)
      state.loadMapEntry("seen", id, ts);
    const seen = createSeenIds(state.map("seen"), 3);
    expect(seen.size).toBe(3);
    expect([...state.map("seen").keys()].some((k) => ["a", "b", "c"].includes(k))).toBe(false);
    seen.add("d", 4); // four > 3: the oldest (a) goes
    expect(seen.has("a")).toBe(false);
    expect(seen.has("b") && seen.has("c") && seen.has("d")).toBe(true);
    seen.expireBefore(3); // b goes
    expect(seen.has("b")).toBe(false);
    expect(seen.size).toBe(2);
  });

  it("answers as a Set of the ids held would (property, with the size bound and expiry)", () => {
    const op = fc.oneof(
      fc.record({ add: fc.integer({ min: 0, max: 3000 }), dt: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ expire: fc.integer({ min: 0, max: 40 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 400 }),
        fc.integer({ min: 1, max: 5000 }),
        (ops, max) => {
          const seen = createSeenIds(createStageState().map("seen"), max);
          // The model: ids with their time, in arrival order (times never decrease).
          let model: { id: string; ts: number }[] = [];
          let t = 0;
          for (const o of ops) {
            if ("add" in o) {
              t += o.dt;
              const id = `e${o.add}`;
              const fresh = !model.some((m) => m.id === id);
              expect(seen.add(id, t)).toBe(fresh);
              if (fresh) model.push({ id, ts: t });
              // Over the bound: some of the oldest time go (which ones: by hash).
              while (model.length > max) {
                const oldest = model[0]!.ts;
                const gone = model.find((m) => m.ts === oldest && !seen.has(m.id));
                expect(gone).toBeDefined();
                model = model.filter((m) => m !== gone);
              }
            } else {
              const horizon = t - o.expire;
              seen.expireBefore(horizon);
              model = model.filter((m) => m.ts >= horizon);
            }
            expect(seen.size).toBe(model.length);
          }
          for (const m of model) expect(seen.has(m.id)).toBe(true);
        },
      ),
      { seed: 16, numRuns: 200 },
    );
  });

  it("holds 1M ids in ~24 bytes each: 16 in the log, 8 in the hash set of positions", () => {
    // The hash set held the 64-bit hashes themselves before: 16 B a slot, 32 B per id here
    // (bench step 7's parse process at 1M users: 32 MiB of array buffers).
    const seen = createSeenIds(createStageState().map("seen"), 2_000_000);
    for (let k = 0; k < 1_000_000; k++) seen.add(`e${k}`, k);
    expect(seen.size).toBe(1_000_000);
    expect(seen.bytes).toBeLessThanOrEqual(1_000_000 * 16 + SEG * 16 + 2 ** 21 * 4);
    expect(seen.bytes / seen.size).toBeLessThan(25);
    for (let k = 0; k < 1_000_000; k += 9_973) expect(seen.has(`e${k}`)).toBe(true);
    expect(seen.has("e1000000")).toBe(false);
  });

  it("stays exact through many adds and removals (hash set growth, shrink, backward shift)", () => {
    const seen = createSeenIds(createStageState().map("seen"), 50_000);
    for (let round = 0; round < 4; round++) {
      for (let k = 0; k < 40_000; k++) seen.add(`r${round}-${k}`, round * 100_000 + k);
      seen.expireBefore(round * 100_000 + 39_000);
      expect(seen.size).toBe(1_000);
      for (let k = 38_990; k < 39_010; k++) expect(seen.has(`r${round}-${k}`)).toBe(k >= 39_000);
    }
  });
});
