import { describe, expect, it } from "vitest";
import type { StageStateInternal } from "../state/index.js";
import { testStateDb } from "./helpers/state-db.js";

/** Every map of a state as sorted [map, key, value] triples. */
function contents(state: StageStateInternal): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [name, data] of state.allMaps())
    for (const [k, v] of data) out.push([name, k, structuredClone(v)]);
  return out.sort((a, b) => (a[0] + "\0" + a[1] < b[0] + "\0" + b[1] ? -1 : 1));
}

/**
 * A snapshot read ahead of its load (load-turns.ts: while the load before it runs) gives the
 * load what a read at load time gives, and never bytes older than a write begun meanwhile.
 */
describe("a snapshot read ahead of its load", () => {
  const dbs = testStateDb("reco-read-ahead-");

  const fill = async (store: Awaited<ReturnType<typeof dbs.open>>, round: number) => {
    const s = store.instance("history", 3);
    const state = await s.load();
    const users = state.map<string[]>("users", { text: true });
    const plain = state.map<number>("clock");
    for (let i = 0; i < 300; i++) users.set(`u${i}`, [`i${round}-${i}`]);
    plain.set("t", round);
    state.meta = { seq: round };
    await s.write(state);
    return state;
  };

  it("loads what a load without it loads", async () => {
    const db = await dbs.open();
    const written = await fill(db, 1);
    const store = db.instance("history", 3);
    store.readAhead?.();
    const loaded = await store.load();
    expect(contents(loaded)).toEqual(contents(written));
    expect(loaded.meta).toEqual({ seq: 1 });
    // The bookkeeping of what is on disk came with it: later snapshots still load right.
    const users = loaded.map<string[]>("users", { text: true });
    users.set("u7", ["later"]);
    loaded.meta = { seq: 2 };
    await store.write(loaded);
    const again = await db.instance("history", 3).load();
    expect(again.map<string[]>("users", { text: true }).get("u7")).toEqual(["later"]);
    expect(contents(again)).toEqual(contents(loaded));
  });

  it("is dropped when a snapshot is written after it began", async () => {
    const db = await dbs.open();
    await fill(db, 1);
    const store = db.instance("history", 3);
    const state = await store.load();
    store.readAhead?.();
    state.map<number>("clock").set("t", 99);
    state.meta = { seq: 9 };
    await store.write(state);
    const loaded = await store.load();
    expect(loaded.map<number>("clock").get("t")).toBe(99);
    expect(loaded.meta).toEqual({ seq: 9 });
    // And a read ahead begun while a write is under way is never taken.
    state.map<number>("clock").set("t", 100);
    state.meta = { seq: 10 };
    const batch = store.capture(state);
    const committed = batch.commit();
    store.readAhead?.();
    await committed;
    expect((await store.load()).meta).toEqual({ seq: 10 });
  });
});
