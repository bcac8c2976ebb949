import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { openStateDb, type StageStateInternal, type StateDb } from "../state/index.js";

/** Every map of a state as sorted [map, key, value] triples, for comparisons. */
function contents(state: StageStateInternal): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [name, data] of state.allMaps())
    for (const [k, v] of data) out.push([name, k, structuredClone(v)]);
  return out.sort((a, b) => (a[0] + "\0" + a[1] < b[0] + "\0" + b[1] ? -1 : 1));
}

/** The raw keys of one instance's sublevel. */
async function rawKeys(dir: string, stage: string, partition: number): Promise<string[]> {
  const db = new Level<string, string>(dir, { valueEncoding: "utf8" });
  await db.open();
  const keys: string[] = [];
  for await (const k of db.sublevel(`${stage}/${partition}`).keys()) keys.push(k);
  await db.close();
  return keys;
}

describe("snapshots as deltas and checkpoints", () => {
  let dir: string | undefined;
  let db: StateDb | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes one LevelDB value per snapshot however many keys changed", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const store = db.instance("window", 0);
    const state = await store.load();
    const cells = state.map<[number, string]>("cell");
    for (let i = 0; i < 5000; i++) cells.set(`k${i}`, [i, "c"]);
    state.meta = { seq: 1 };
    expect(await store.write(state)).toBe(5000);
    await db.close();
    const keys = await rawKeys(dir, "window", 0);
    expect(keys.length).toBe(2); // the metadata and one delta
    db = await openStateDb(dir);
    expect((await db.instance("window", 0).load()).map("cell").size).toBe(5000);
  });

  it("loads what was written, in order, across many deltas and checkpoints", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir, { checkpointMinKeys: 1000 });
    const store = db.instance("interest-ranking", 2);
    const state = await store.load();
    const a = state.map<{ n: number }>("a");
    const b = state.map<string>("b");
    // A small live state with much churn: checkpoints replace the deltas now and then.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 6000; i++) a.set(`k${(i * 7 + round) % 500}`, { n: round * 10_000 + i });
      for (let i = 0; i < 50; i++) b.set(`x${round}-${i}`, "v");
      for (let i = 0; i < 50; i++) b.delete(`x${round - 1}-${i}`);
      if (round % 3 === 0) a.delete("k1");
      state.meta = { seq: round + 1 };
      await store.write(state);
      if (round % 7 === 6) {
        const again = await db.instance("interest-ranking", 2).load();
        expect(contents(again)).toEqual(contents(state));
        expect(again.meta).toEqual({ seq: round + 1 });
      }
    }
    // ~24k changed keys over 40 snapshots of a ~550-key state: checkpoints kept the deltas few.
    await db.close();
    db = undefined;
    const keys = await rawKeys(dir, "interest-ranking", 2);
    expect(keys.filter((k) => k.startsWith("\u0003")).length).toBeLessThan(5);
    expect(keys.some((k) => k.startsWith("\u0002"))).toBe(true);
    db = await openStateDb(dir);
    const final = await db.instance("interest-ranking", 2).load();
    expect(contents(final)).toEqual(contents(state));
  });

  it("captures synchronously: changes made before the commit go to the next snapshot", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const store = db.instance("popularity-join", 1);
    const state = await store.load();
    const m = state.map<number>("profile");
    m.set("a", 1);
    state.meta = { seq: 1 };
    const first = store.capture(state);
    m.set("a", 2);
    m.set("b", 3);
    state.meta = { seq: 2 };
    const second = store.capture(state);
    await first.commit();
    const mid = await db.instance("popularity-join", 1).load();
    expect([...mid.map<number>("profile").entries()]).toEqual([["a", 1]]);
    expect(mid.meta).toEqual({ seq: 1 });
    await second.commit();
    const end = await db.instance("popularity-join", 1).load();
    expect(new Map(end.map<number>("profile").entries())).toEqual(
      new Map([
        ["a", 2],
        ["b", 3],
      ]),
    );
  });

  it("reads one-key entries of the earlier layout and replaces them at the first snapshot", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    // The earlier layout: JSON values, one LevelDB entry per "<map>\0<key>", and the metadata.
    const old = new Level<string, unknown>(dir, { valueEncoding: "json" });
    await old.open();
    const sub = old.sublevel<string, unknown>("trending/3", { valueEncoding: "json" });
    await sub.batch([
      { type: "put", key: "cell\u00001h|0|p1", value: [2, 1] },
      { type: "put", key: "cell\u00001h|0|p2", value: [5, 0] },
      { type: "put", key: "\u0001meta", value: { seq: 42, wm: 7 } },
    ]);
    await old.close();

    db = await openStateDb(dir);
    const store = db.instance("trending", 3);
    const state = await store.load();
    expect(state.meta).toEqual({ seq: 42, wm: 7 });
    expect([...state.map<[number, number]>("cell").entries()]).toEqual([
      ["1h|0|p1", [2, 1]],
      ["1h|0|p2", [5, 0]],
    ]);
    state.map<[number, number]>("cell").delete("1h|0|p1");
    state.meta = { seq: 43, wm: 7 };
    await store.write(state);
    expect((await store.exportRaw()).entries).toEqual([["cell\u00001h|0|p2", [5, 0]]]);
    await db.close();
    db = undefined;
    expect((await rawKeys(dir, "trending", 3)).some((k) => k.startsWith("cell"))).toBe(false);
  });

  it("exports logical entries and imports them as a checkpoint", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir);
    const from = db.instance("window", 5);
    const state = await from.load();
    state.map<number>("cell").set("k1", 1);
    state.meta = { seq: 3 };
    await from.write(state);
    state.map<number>("cell").set("k2", 2);
    state.map<number>("cell").delete("k1");
    state.meta = { seq: 4 };
    await from.write(state);
    const raw = await from.exportRaw();
    expect(raw).toEqual({ meta: { seq: 4 }, entries: [["cell\u0000k2", 2]] });
    // The sequence alone, as a takeover compares it with the archived copy's.
    expect(await from.metaSeq()).toBe(4);

    const to = db.instance("window", 6);
    expect(await to.metaSeq()).toBe(0);
    const other = await to.load();
    other.map<number>("cell").set("stale", 9);
    await to.write(other);
    await to.importRaw(raw);
    const loaded = await db.instance("window", 6).load();
    expect([...loaded.map<number>("cell").entries()]).toEqual([["k2", 2]]);
    expect(loaded.meta).toEqual({ seq: 4 });
    // Later snapshots build on the imported checkpoint.
    loaded.map<number>("cell").set("k3", 3);
    await to.write(loaded);
    expect((await to.exportRaw()).entries).toEqual([
      ["cell\u0000k2", 2],
      ["cell\u0000k3", 3],
    ]);
  });
  it("keeps a text map's values as JSON text on disk and until read, across deltas and checkpoints", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    db = await openStateDb(dir, { checkpointMinKeys: 100 });
    const store = db.instance("popularity-join", 1);
    const state = await store.load();
    // Written before text maps existed: objects on disk still load.
    state.map<{ top: string[] }>("profile").set("old", { top: ["a"] });
    state.meta = { seq: 1 };
    await store.write(state);
    const s2 = await store.load();
    const profiles = s2.map<{ top: string[] }>("profile", { text: true });
    expect(profiles.get("old")).toEqual({ top: ["a"] });
    for (let i = 0; i < 150; i++) profiles.set(`u${i}`, { top: [`c${i}`] });
    s2.meta = { seq: 2 };
    await store.write(s2); // a delta
    // Deltas over twice the live state: the third of these writes is a checkpoint.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 200; i++) profiles.set(`u${i}`, { top: [`d${round * 1000 + i}`] });
      profiles.delete("u3");
      s2.meta = { seq: 3 + round };
      await store.write(s2);
    }
    await db.close();
    expect((await rawKeys(dir, "popularity-join", 1)).some((k) => k.startsWith("\u0002"))).toBe(
      true,
    );
    db = await openStateDb(dir, { checkpointMinKeys: 100 });
    const raw = await db.instance("popularity-join", 1).exportRaw();
    const persisted = new Map(raw.entries);
    expect(persisted.get("profile\u0000u5")).toBe(JSON.stringify({ top: ["d2005"] }));
    expect(persisted.get("profile\u0000old")).toBe(JSON.stringify({ top: ["a"] }));
    expect(persisted.has("profile\u0000u3")).toBe(false);

    const store3 = db.instance("popularity-join", 1);
    const s3 = await store3.load();
    const again = s3.map<{ top: string[] }>("profile", { text: true });
    expect(again.size).toBe(200);
    expect(again.get("u5")).toEqual({ top: ["d2005"] });
    expect(again.get("u199")).toEqual({ top: ["d2199"] });
    expect(again.get("u3")).toBeUndefined();
    expect(new Map(again.entries()).get("old")).toEqual({ top: ["a"] });
    // A value read (parsed) is not a change: the next snapshot writes nothing for it.
    expect(s3.dirtyCount()).toBe(0);
    again.set("u7", { top: ["e"] });
    s3.meta = { seq: 9 };
    expect(await store3.write(s3)).toBe(1);
    const s4 = await db.instance("popularity-join", 1).load();
    expect(s4.map<{ top: string[] }>("profile", { text: true }).get("u7")).toEqual({ top: ["e"] });
    expect(s4.map<{ top: string[] }>("profile", { text: true }).get("u5")).toEqual({
      top: ["d2005"],
    });
  });
});
