import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Level } from "level";
import { openStateDb, type StageStateInternal, type StateDb } from "../state/index.js";

/**
 * Plain maps' keys rewritten at every snapshot beside a large binary map: the deltas' JSON parts
 * never reached twice the whole live state, so every one stayed on disk and a restart parsed them
 * all (306k JSON entries of covisit's ~20k plain keys with 1M users, bench step 6). A plain
 * checkpoint rewrites the plain maps alone and drops the deltas' JSON parts.
 */

/** Every map of a state as sorted [map, key, value] triples. */
function contents(state: StageStateInternal): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [name, data] of state.allMaps())
    for (const [k, v] of data) out.push([name, k, structuredClone(v)]);
  return out.sort((a, b) => (a[0] + "\0" + a[1] < b[0] + "\0" + b[1] ? -1 : 1));
}

/** The instance's raw entries by kind, with the keys the JSON parts of deltas hold. */
async function layoutOf(dir: string, id: string) {
  const db = new Level<string, string>(dir, { valueEncoding: "utf8" });
  await db.open();
  const out = { jsonDeltas: 0, jsonDeltaKeys: 0, binDeltas: 0, jsonBase: 0, binBase: 0 };
  for await (const [k, v] of db
    .sublevel<string, string>(id, { valueEncoding: "utf8" })
    .iterator()) {
    if (k.startsWith("\u0003d\u0000") && k.endsWith("b")) out.binDeltas++;
    else if (k.startsWith("\u0003d\u0000")) {
      out.jsonDeltas++;
      for (const [, puts, dels] of JSON.parse(v) as [string, unknown[], string[]][])
        out.jsonDeltaKeys += puts.length / 2 + dels.length;
    } else if (k.startsWith("\u0002b\u0000")) out.jsonBase++;
    else if (k.startsWith("\u0002c\u0000")) out.binBase++;
  }
  await db.close();
  return out;
}

describe("plain checkpoints", () => {
  let dir = "";
  let db: StateDb | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
    await rm(dir, { recursive: true, force: true });
  });
  /** The store closed (LevelDB allows one opener), its raw layout read, the store reopened. */
  const reopen = async (options: Parameters<typeof openStateDb>[1], id = "covisit/0") => {
    await db?.close();
    const layout = await layoutOf(dir, id);
    db = await openStateDb(dir, options);
    return { db, layout };
  };

  it("keeps the deltas' JSON parts within twice the plain maps, the binary deltas as they are", async () => {
    // Full checkpoints out of reach: only the plain rule can drop deltas.
    const options = { checkpointMinKeys: 1_000_000, plainCheckpointMinKeys: 100 };
    dir = await mkdtemp(join(tmpdir(), "reco-plain-ckpt-"));
    db = await openStateDb(dir, options);
    const store = db.instance("covisit", 0);
    const state = await store.load();
    const users = state.map<string[]>("recent", { text: true });
    const counts = state.map<number>("mass");
    const legacy = state.map<number[]>("was-plain");
    for (let i = 0; i < 2000; i++) users.set(`u${i}`, [`i${i % 7}`]);
    for (let i = 0; i < 30; i++) legacy.set(`k${i}`, [i]);
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 50; i++) counts.set(`i${i}`, round * 100 + i);
      if (round % 5 === 0) counts.delete(`i${round % 50}`);
      for (let i = 0; i < 20; i++) users.set(`u${round * 20 + i}`, [`j${round}`]);
      state.meta = { seq: round + 1 };
      await store.write(state);
    }
    const before = contents(state);
    // 40 snapshots of 50 plain keys: 2,000 JSON entries without plain checkpoints.
    const { layout } = await reopen(options);
    expect(layout.jsonBase).toBeGreaterThan(0);
    expect(layout.jsonDeltaKeys).toBeLessThanOrEqual(2 * 80 + 50);
    expect(layout.jsonDeltas).toBeLessThan(6);
    expect(layout.binDeltas).toBe(40);
    expect(layout.binBase).toBe(0);

    // A restart loads the same state; the bookkeeping it reads back keeps the rule.
    const store2 = db!.instance("covisit", 0);
    const again = await store2.load();
    expect(contents(again)).toEqual(before);
    expect(again.meta).toEqual({ seq: 40 });
    // "was-plain" becomes a text map after the restart: its keys were only in JSON (deltas and
    // the JSON checkpoint), which the next plain checkpoint drops; the binary delta has them.
    again.map<string[]>("recent", { text: true });
    const nowText = again.map<number[]>("was-plain", { text: true });
    const mass = again.map<number>("mass");
    for (let round = 40; round < 60; round++) {
      for (let i = 0; i < 50; i++) mass.set(`i${i}`, round * 100 + i);
      if (round === 41) nowText.set("k1", [100]);
      again.meta = { seq: round + 1 };
      await store2.write(again);
    }
    const after = contents(again);
    const { db: db3, layout: layout2 } = await reopen(options);
    expect(layout2.jsonDeltaKeys).toBeLessThanOrEqual(2 * 80 + 50);
    const third = await db3.instance("covisit", 0).load();
    expect(contents(third)).toEqual(after);
    expect(third.map<number[]>("was-plain", { text: true }).get("k1")).toEqual([100]);
    expect(third.map<number[]>("was-plain", { text: true }).get("k2")).toEqual([2]);
  });

  it("keeps a large plain value rewritten at each snapshot from piling up in the deltas", async () => {
    // One key of ~100 kB (collaborative's model is ~60 MB of JSON at 1M users), rewritten at
    // each of 30 snapshots: a key count never reaches the key rule.
    const options = { checkpointMinKeys: 1_000_000, plainCheckpointMinBytes: 300_000 };
    dir = await mkdtemp(join(tmpdir(), "reco-plain-ckpt-"));
    db = await openStateDb(dir, options);
    const store = db.instance("collaborative", 0);
    const state = await store.load();
    const model = state.map<{ at: number; b64: string }>("model");
    for (let round = 0; round < 30; round++) {
      model.set("implicit", { at: round, b64: String(round % 10).repeat(100_000) });
      state.meta = { seq: round + 1 };
      await store.write(state);
    }
    const { db: db2, layout } = await reopen(options, "collaborative/0");
    // Without the byte rule: 30 deltas of ~100 kB each.
    expect(layout.jsonDeltas).toBeLessThanOrEqual(4);
    expect(layout.jsonBase).toBe(1);
    const again = await db2.instance("collaborative", 0).load();
    expect(again.map("model").get("implicit")).toEqual({ at: 29, b64: "9".repeat(100_000) });
  });
});
