import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStateDb, type StateDb } from "../state/index.js";

describe("the LevelDB state store", () => {
  let dir: string | undefined;
  let db: StateDb | undefined;
  afterEach(async () => {
    await db?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("round-trips a snapshot: dirty keys and metadata, deletions included", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const store = db.instance("window", 3);
    const state = await store.load();
    const m = state.map<{ n: number }>("cell");
    m.set("a", { n: 1 });
    m.set("b", { n: 2 });
    state.meta = { seq: 10, wm: 5 };
    expect(await store.write(state)).toBe(2);
    m.delete("a");
    m.set("c", { n: 3 });
    state.meta = { seq: 12, wm: 7 };
    expect(state.dirtyCount()).toBe(2);
    await store.write(state);

    const again = await db.instance("window", 3).load();
    expect([...again.map<{ n: number }>("cell").entries()]).toEqual([
      ["b", { n: 2 }],
      ["c", { n: 3 }],
    ]);
    expect(again.meta).toEqual({ seq: 12, wm: 7 });
    // Another instance's sublevel is separate.
    expect((await db.instance("window", 4).load()).map("cell").size).toBe(0);
  });

  it("writes nothing for a key created and removed between two snapshots, and the deletion of one it had", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const store = db.instance("window", 1);
    const state = await store.load();
    const m = state.map<number>("cell");
    m.set("kept", 1);
    m.set("held", 2);
    expect(await store.write(state)).toBe(2);
    m.set("transient", 3);
    m.set("transient", 4);
    m.delete("transient");
    m.delete("held");
    m.set("held", 5); // held at the last snapshot, removed, back: a put
    m.delete("held"); // ... and gone again: a deletion
    m.set("new", 6);
    expect(state.dirtyCount()).toBe(3);
    // "held" deleted, "new" put; "transient" was never written, so it is not deleted either.
    expect(await store.write(state)).toBe(2);
    const again = await db.instance("window", 1).load();
    expect([...again.map<number>("cell").entries()].sort()).toEqual([
      ["kept", 1],
      ["new", 6],
    ]);
    // Removed since the last snapshot and created again: a put, as always.
    m.delete("kept");
    m.set("kept", 7);
    expect(state.takeDirty()).toEqual({ puts: [["cell\u0000kept", 7]], dels: [] });
  });

  it("gives disk back after keys are deleted and the store is compacted", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const store = db.instance("parse", 0);
    const state = await store.load();
    const seen = state.map<string>("seen");
    const value = "x".repeat(200);
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 20_000; i++) seen.set(`${round}-${i}`, value);
      await store.write(state);
    }
    await db.compact();
    const full = await db.sizeBytes();
    for (const k of [...seen.keys()]) seen.delete(k);
    await store.write(state);
    await db.compact();
    const empty = await db.sizeBytes();
    // 100k keys of ~200 bytes: compression makes it smaller, deletion must make it far smaller.
    expect(full).toBeGreaterThan(200_000);
    expect(empty).toBeLessThan(full / 5);
  });
});
