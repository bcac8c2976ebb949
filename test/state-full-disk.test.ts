import { afterAll, describe, expect, it } from "vitest";
import { join } from "node:path";
import { openStateDb, type StateDb } from "../state/index.js";
import { mountSmallFs, type SmallFs } from "./helpers/small-fs.js";

/*
 * A full disk, then space again: LevelDB keeps the error of a compaction that hit the full disk
 * for the life of its handle, so every write kept failing after the space came back until the
 * process restarted. The store reopens itself on such an error, and the next snapshot lands.
 */

let fs: SmallFs | undefined;
let db: StateDb | undefined;
afterAll(async () => {
  await db?.close().catch(() => undefined);
  await fs?.cleanup();
});

const big = (seed: number) => `${seed}:${Math.random().toString(36).repeat(3000)}`;

describe("the state store on a full disk", () => {
  it("fails writes while the disk is full, and writes again once space is back", async () => {
    fs = await mountSmallFs(8);
    db = await openStateDb(join(fs.dir, "state"));
    // One instance's store, as a stage instance has: it loads again after a failed write.
    const store = db.instance("window", 0);
    const first = await store.load();
    for (let k = 0; k < 10; k++) first.map<string>("cell").set(`pre${k}`, big(k));
    first.meta = { seq: 10 };
    await store.write(first);

    await fs.fill();
    const failures: string[] = [];
    for (let k = 0; k < 30; k++) {
      try {
        const s = await store.load();
        s.map<string>("cell").set(`full${k}`, big(k));
        s.meta = { seq: 100 + k };
        await store.write(s);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
    // Each says why: a store that cannot be opened again while the disk is full says the disk.
    expect(failures.filter((f) => !/No space left on device/.test(f))).toEqual([]);
    // A compaction on the full disk: the error LevelDB keeps.
    await db.compact().catch(() => undefined);
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]).toMatch(/^cannot write to the state store .*No space left on device/);

    await fs.free();
    expect(await fs.available()).toBeGreaterThan(4 << 20);
    // As a restarting stage does: load the last snapshot, write the next one; a few tries.
    let written = -1;
    const errors: string[] = [];
    for (let attempt = 0; attempt < 20 && written < 0; attempt++) {
      try {
        const s = await store.load();
        s.map<string>("cell").set("after", "space is back");
        s.meta = { seq: 1000 };
        await store.write(s);
        written = attempt;
      } catch (err) {
        errors.push((err as Error).message.slice(0, 100));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect({ written: written >= 0, errors: errors.slice(-1) }).toEqual({
      written: true,
      errors: errors.slice(-1),
    });
    expect(written).toBeLessThan(5);
    const back = await db.instance("window", 0).load();
    expect(back.meta).toEqual({ seq: 1000 });
    expect(back.map<string>("cell").get("after")).toBe("space is back");
    expect(back.map<string>("cell").get("pre3")).toBe(first.map<string>("cell").get("pre3"));
  });
});
