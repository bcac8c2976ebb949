import { describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { Level } from "level";
import type { StageStateInternal, StateDbOptions } from "../state/index.js";
import { testStateDb } from "./helpers/state-db.js";
import { modelOf } from "./helpers/raw-kill-writer.js";

/**
 * A plain map's large byte value (collaborative's trained model) was written as
 * base64 inside the JSON snapshot parts, 1.37x its bytes, again by every checkpoint of the plain
 * maps (up to ~3 copies on disk), and a restart parsed and decoded every copy (~0.5 s of the main
 * thread with a model of 300k users). It is now a LevelDB entry of its own (state/raw-values.ts),
 * written once per value, and a snapshot stays one atomic batch.
 */

const RAW = "\u0002a\u0000";
const ID = "collaborative/0";
const bytesOf = (n: number, seed: number) => {
  const b = new Uint8Array(n);
  for (let j = 0; j < n; j++) b[j] = (seed * 131 + j * 17 + (j >> 8)) & 255;
  return b;
};

/** Every map of a state as sorted [map, key, value] triples (byte values as plain arrays). */
function contents(state: StageStateInternal): [string, string, unknown][] {
  const out: [string, string, unknown][] = [];
  for (const [name, data] of state.allMaps())
    for (const [k, v] of data)
      out.push([name, k, v instanceof Uint8Array ? Array.from(v) : structuredClone(v)]);
  return out.sort((a, b) => (a[0] + "\0" + a[1] < b[0] + "\0" + b[1] ? -1 : 1));
}

/** The instance's LevelDB entries, values as bytes (the store must be closed). */
async function diskOf(dir: string): Promise<[string, Buffer][]> {
  const db = new Level<string, Buffer>(dir, { valueEncoding: "buffer" });
  await db.open();
  const out: [string, Buffer][] = [];
  for await (const [k, v] of db
    .sublevel<string, Buffer>(ID, { valueEncoding: "buffer" })
    .iterator())
    out.push([k, v]);
  await db.close();
  return out;
}

/** Keys of the entries whose value is `bytes` exactly, and whether any value holds its base64. */
function copiesOf(disk: [string, Buffer][], bytes: Uint8Array) {
  const b64 = Buffer.from(bytes.subarray(1000, 1048)).toString("base64");
  return {
    raw: disk.filter(([, v]) => v.equals(bytes)).map(([k]) => k),
    base64: disk.some(([, v]) => v.toString("latin1").includes(b64)),
  };
}

describe("large byte values as raw entries", () => {
  const dbs = testStateDb("reco-raw-values-");
  /** The store reopened (a restart on the same files), its entries read while it was closed. */
  const restart = async (options: StateDbOptions = {}) => {
    const disk = await diskOf(await dbs.close());
    return { db: await dbs.open(options), disk };
  };

  it("writes a model once, as a raw entry, through deltas, plain and full checkpoints", async () => {
    // Plain checkpoints first, then full ones (the plain rule off).
    const plainFirst = { plainCheckpointMinKeys: 3, checkpointMinKeys: 1e6 };
    const fullThen = { plainCheckpointMinKeys: 1e6, checkpointMinKeys: 4 };
    let options: StateDbOptions = plainFirst;
    let db = await dbs.open(options);
    const state = await db.instance("collaborative", 0).load();
    const model = bytesOf(100_000, 1);
    state.map("model").set("implicit", model);
    state.map("points").set("t", 1);
    await db.instance("collaborative", 0).write(state);
    let { db: db2, disk } = await restart(options);
    db = db2;
    const first = copiesOf(disk, model);
    expect(first).toEqual({ raw: [expect.any(String)], base64: false });
    expect(first.raw[0]!.startsWith(RAW)).toBe(true);
    // Snapshots of other keys, each after a restart: plain checkpoints, then full ones, rewrite
    // the plain maps.
    const checkpoints = [0, 0];
    for (let i = 2; i < 16; i++) {
      if (i === 9) options = fullThen;
      const store = db.instance("collaborative", 0);
      const loaded = await store.load();
      loaded.map("points").set("t", i);
      loaded.map("items").set(`i${i % 2}`, i);
      await store.write(loaded);
      const want = contents(loaded);
      ({ db: db2, disk } = await restart(options));
      db = db2;
      if (!disk.some(([k]) => k.startsWith("\u0003d\u0000"))) checkpoints[i < 9 ? 0 : 1]!++;
      // The same entry, never written again, and no other copy.
      expect(copiesOf(disk, model)).toEqual(first);
      expect(contents(await db.instance("collaborative", 0).load())).toEqual(want);
    }
    expect(checkpoints[0]).toBeGreaterThan(0);
    expect(checkpoints[1]).toBeGreaterThan(0);
  });

  it("restores what each snapshot held, with no entry left of a value superseded or deleted", async () => {
    const options = { plainCheckpointMinKeys: 4, checkpointMinKeys: 10 };
    let db = await dbs.open(options);
    let store = db.instance("collaborative", 0);
    let state = await store.load();
    const steps: ((s: StageStateInternal) => void)[] = [
      (s) => s.map("model").set("implicit", bytesOf(200_000, 1)),
      (s) => s.map("model").set("explicit", bytesOf(150_000, 2)),
      (s) => s.map("model").set("implicit", bytesOf(210_000, 3)), // replaced
      (s) => s.map("model").delete("explicit"),
      (s) => s.map("model").set("implicit", bytesOf(100, 4)), // small: base64 as before
      (s) => s.map("model").set("implicit", bytesOf(220_000, 5)),
      (s) => s.map("other").set("x", bytesOf(90_000, 6)),
      (s) => s.map("model").set("implicit", { at: 3, b64: "AAAA" }), // no longer bytes
      (s) => s.map("model").set("implicit", bytesOf(230_000, 7)),
      (s) => s.map("model").set("explicit", bytesOf(120_000, 8)),
      (s) => s.map("other").delete("x"),
      (s) => s.map("model").set("explicit", bytesOf(130_000, 9)),
    ];
    for (const [n, step] of steps.entries()) {
      step(state);
      state.map("points").set("t", n);
      await store.write(state);
      const want = contents(state);
      const { db: reopened, disk } = await restart(options);
      db = reopened;
      // One raw entry per large value held, none for what was superseded or deleted.
      const large = want.filter(([, , v]) => Array.isArray(v) && v.length >= 64 << 10);
      expect(disk.filter(([k]) => k.startsWith(RAW)).length).toBe(large.length);
      store = db.instance("collaborative", 0);
      state = await store.load();
      expect(contents(state)).toEqual(want);
    }
  });

  it("restores state written with the model as base64 in the JSON, then moves it to a raw entry", async () => {
    // rawMinBytes Infinity writes the layout before raw entries.
    let db = await dbs.open({ rawMinBytes: Infinity });
    const state = await db.instance("collaborative", 0).load();
    const model = bytesOf(300_000, 3);
    state.map("model").set("implicit", model);
    state.map("points").set("t", 1);
    await db.instance("collaborative", 0).write(state);
    const before = await restart({ plainCheckpointMinKeys: 2 });
    expect(copiesOf(before.disk, model)).toEqual({ raw: [], base64: true });
    db = before.db;
    const loaded = await db.instance("collaborative", 0).load();
    expect(contents(loaded)).toEqual(contents(state));
    // Snapshots after it: a plain checkpoint rewrites the model as a raw entry, base64 goes.
    const store = db.instance("collaborative", 0);
    for (let i = 2; i < 6; i++) {
      loaded.map("points").set("t", i);
      await store.write(loaded);
    }
    const after = await restart();
    expect(copiesOf(after.disk, model)).toEqual({ raw: [expect.any(String)], base64: false });
    expect(contents(await after.db.instance("collaborative", 0).load())).toEqual(contents(loaded));
  });

  it("restores the last snapshot written, model and all, after a SIGKILL in any write", async () => {
    const script = resolve(import.meta.dirname, "helpers/raw-kill-writer.ts");
    // Kills in deltas, plain and full checkpoints (small thresholds in the writer), each run
    // going on from the state the one before left.
    const kills = [
      [2, "plain"],
      [5, "plain"],
      [3, "full"],
      [6, "full"],
    ] as const;
    for (const [killAt, mode] of kills) {
      await dbs.open();
      const dir = await dbs.close();
      const code = await new Promise<string | null>((done, fail) => {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", script, dir, String(killAt), mode],
          {
            stdio: ["ignore", "ignore", "inherit"],
          },
        );
        child.on("error", fail);
        child.on("exit", (_, signal) => done(signal));
      });
      expect(code).toBe("SIGKILL");
      const db = await dbs.open();
      const state = await db.instance("collaborative", 0).load();
      const t = state.map<number>("points").get("t")!;
      // The batch being written when the kill came is there whole or not at all.
      expect([killAt - 1, killAt]).toContain(t);
      expect(Array.from(state.map<Uint8Array>("model").get("implicit")!)).toEqual(
        Array.from(modelOf(t)),
      );
      await dbs.close();
      const disk = await diskOf(dir);
      expect(disk.filter(([k]) => k.startsWith(RAW)).length).toBe(1);
      await dbs.open(); // closed again, directory removed, by the helper
    }
  }, 60_000);
});
