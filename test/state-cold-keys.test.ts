import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStateDb, type StateDb } from "../state/index.js";
import type { ValueCodec } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import { seededRandom } from "../actors/sources/index.js";
import { createColdIndex } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

/**
 * The keys of a stored-form map (text or codec) are held, between their
 * reads, as the bytes of the binary snapshot entries they were loaded from or written to
 * (state/cold-index.ts), and a load only indexes those bytes. What a stage reads must be what it
 * wrote, across deltas, checkpoints and restarts, on real LevelDB.
 */

/** A codec that counts its decodes: a value decoded at load would show. */
function countingCodec() {
  const codec = {
    decodes: 0,
    encode: (v: { n: number; s: string }) => Buffer.from(`${v.n}|${v.s}`, "utf8"),
    decode(stored: unknown) {
      codec.decodes++;
      const t = typeof stored === "string" ? stored : Buffer.from(stored as Uint8Array).toString();
      const at = t.indexOf("|");
      return { n: Number(t.slice(0, at)), s: t.slice(at + 1) };
    },
  };
  return codec satisfies ValueCodec<{ n: number; s: string }>;
}

describe("cold keys of stored-form maps", () => {
  let dir: string | undefined;
  let db: StateDb | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("give what was written after any mix of sets, deletes, reads, snapshots and restarts", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    db = await openStateDb(dir, { checkpointMinKeys: 500 });
    const random = seededRandom(7); // the same run every time
    // The reference: what every map must hold.
    const texts = new Map<string, { v: number[] }>();
    const coded = new Map<string, { n: number; s: string }>();
    const plain = new Map<string, number>();
    let store = db.instance("s", 0);
    let state = await store.load();
    let codec = countingCodec();
    const open = () => ({
      t: state.map<{ v: number[] }>("t", { text: true }),
      c: state.map("c", { codec }),
      p: state.map<number>("p"),
    });
    let m = open();
    // Keys with non-ASCII characters and of other lengths hash and compare like the rest.
    const key = (i: number) =>
      i % 13 === 0 ? `ü${i}-é` : i % 7 === 0 ? `k${i}${"x".repeat(40)}` : `u${i}`;
    for (let step = 0; step < 60; step++) {
      for (let x = 0; x < 300; x++) {
        const k = key(Math.floor(random() * 2000));
        const r = random();
        if (r < 0.5) {
          const v = { v: [step, x] };
          m.t.set(k, v);
          texts.set(k, v);
          const c = { n: step * 1000 + x, s: `s${k}` };
          m.c.set(k, c);
          coded.set(k, c);
          m.p.set(k, x);
          plain.set(k, x);
        } else if (r < 0.65) {
          m.t.delete(k);
          texts.delete(k);
          m.c.delete(k);
          coded.delete(k);
        } else {
          expect(m.t.get(k)).toEqual(texts.get(k));
          expect(m.c.get(k)).toEqual(coded.get(k));
          expect(m.t.has(k)).toBe(texts.has(k));
        }
      }
      state.meta = { seq: step };
      await store.write(state);
      if (step % 9 === 4) {
        // A restart: nothing decoded by the load, every answer the same.
        await db.close();
        db = await openStateDb(dir, { checkpointMinKeys: 500 });
        store = db.instance("s", 0);
        state = await store.load();
        codec = countingCodec();
        m = open();
        expect(codec.decodes).toBe(0);
        expect(m.t.size).toBe(texts.size);
        expect(m.c.size).toBe(coded.size);
        expect(m.p.size).toBe(plain.size);
        expect(state.meta).toEqual({ seq: step });
      }
      expect(m.t.size).toBe(texts.size);
      expect(m.c.size).toBe(coded.size);
    }
    // Every key, value and the key sets, from a fresh load.
    await db.close();
    db = await openStateDb(dir, { checkpointMinKeys: 500 });
    state = await db.instance("s", 0).load();
    codec = countingCodec();
    m = open();
    expect(new Map(m.t.entries())).toEqual(texts);
    expect(new Map(m.c.entries())).toEqual(coded);
    expect(new Map(m.p.entries())).toEqual(plain);
    expect(new Set(m.t.keys())).toEqual(new Set(texts.keys()));
    for (const [k, v] of texts) expect(m.t.peekText?.(k)).toBe(JSON.stringify(v));
    expect(state.dirtyCount()).toBe(0);
  });

  it("decode a key on its first read only, keep it decoded while it is read in every snapshot interval, and hold it as bytes once an interval passes unread", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    db = await openStateDb(dir);
    const store = db.instance("s", 0);
    const state = await store.load();
    const codec = countingCodec();
    const c = state.map("c", { codec });
    for (let i = 0; i < 10_000; i++) c.set(`u${i}`, { n: i, s: "x" });
    await store.write(state);
    await store.write(state); // the written values go back to bytes
    const reloaded = await db.instance("s", 0).load();
    const codec2 = countingCodec();
    const c2 = reloaded.map("c", { codec: codec2 });
    expect(c2.size).toBe(10_000);
    expect(codec2.decodes).toBe(0);
    expect(c2.get("u42")).toEqual({ n: 42, s: "x" });
    expect(c2.get("u42")).toBe(c2.get("u42")); // kept decoded until the next snapshot
    expect(codec2.decodes).toBe(1);
    expect(c2.has("u9999")).toBe(true);
    expect(c2.get("u10000")).toBeUndefined();
    expect(codec2.decodes).toBe(1);
    expect(reloaded.dirtyCount()).toBe(0);
    const store2 = db.instance("s", 0);
    // A key read in an interval stays decoded through the next snapshot (a user who keeps
    // asking is not decoded again every 2 s) ...
    for (let interval = 0; interval < 5; interval++) {
      await store2.write(reloaded); // nothing to write
      expect(c2.get("u42")).toEqual({ n: 42, s: "x" });
      expect(codec2.decodes).toBe(1);
    }
    // ... and one whole interval unread sends it back to bytes.
    await store2.write(reloaded);
    await store2.write(reloaded);
    expect(c2.get("u42")).toEqual({ n: 42, s: "x" });
    expect(codec2.decodes).toBe(2);
    // A kept value is what a later write or delete says, not what was kept.
    await store2.write(reloaded);
    c2.set("u42", { n: -1, s: "y" });
    expect(c2.get("u42")).toEqual({ n: -1, s: "y" });
    expect(c2.get("u7")).toEqual({ n: 7, s: "x" });
    await store2.write(reloaded);
    c2.delete("u7");
    expect(c2.get("u7")).toBeUndefined();
    expect(c2.has("u7")).toBe(false);
    expect(c2.size).toBe(9_999);
    expect(reloaded.dirtyCount()).toBe(1);
  });

  it("load a checkpoint into indexes sized once, never grown key by key", async () => {
    // Growing a map's index one doubling at a time re-inserted every key ~2
    // times over while loading (~1.2 s of a restart with 1M users); a load now sizes each index
    // from the checkpoint's key counts first.
    dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    db = await openStateDb(dir, { checkpointMinKeys: 1_000 });
    const store = db.instance("s", 0);
    const state = await store.load();
    const codec = countingCodec();
    const t = state.map<{ v: number[] }>("t", { text: true });
    const c = state.map("c", { codec });
    const N = 40_000;
    // Written three times over: the deltas then hold more than twice the live keys, so the
    // third snapshot is a checkpoint.
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < N; i++) {
        t.set(`u${i}`, { v: [round, i] });
        c.set(`u${i}`, { n: round * N + i, s: `s${i}` });
      }
      await store.write(state);
    }
    // A delta after the checkpoint: changes, deletions, new keys.
    for (let i = 0; i < 100; i++) {
      t.set(`u${i}`, { v: [9, i] });
      t.delete(`u${N - 1 - i}`);
      c.set(`new${i}`, { n: -i, s: "n" });
    }
    await store.write(state);
    const loaded = await db.instance("s", 0).load();
    expect(loaded.coldIndexGrowths()).toBe(0);
    const t2 = loaded.map<{ v: number[] }>("t", { text: true });
    const c2 = loaded.map("c", { codec: countingCodec() });
    expect(t2.size).toBe(N - 100);
    expect(c2.size).toBe(N + 100);
    expect(t2.get("u5")).toEqual({ v: [9, 5] });
    expect(t2.get("u500")).toEqual({ v: [2, 500] });
    expect(t2.get(`u${N - 1}`)).toBeUndefined();
    expect(c2.get(`u${N - 1}`)).toEqual({ n: 3 * N - 1, s: `s${N - 1}` });
    expect(c2.get("new7")).toEqual({ n: -7, s: "n" });
  });

  it("load deltas into indexes sized once, never grown key by key", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    // No checkpoint: every snapshot a delta (as after an ingest of new users).
    db = await openStateDb(dir, { checkpointMinKeys: 1_000_000 });
    const store = db.instance("s", 0);
    const state = await store.load();
    const t = state.map<{ v: number[] }>("t", { text: true });
    const N = 30_000;
    for (let i = 0; i < N; i++) t.set(`u${i}`, { v: [i] });
    await store.write(state);
    // A second map whose keys are rewritten in three deltas: reserved for 3N, kept N.
    const r = state.map<{ v: number[] }>("r", { text: true });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < N; i++) r.set(`k${i}`, { v: [round] });
      await store.write(state);
    }
    const loaded = await db.instance("s", 0).load();
    expect(loaded.coldIndexGrowths()).toBe(0);
    expect(loaded.map<{ v: number[] }>("t", { text: true }).get("u7")).toEqual({ v: [7] });
    expect(loaded.map<{ v: number[] }>("r", { text: true }).get("k7")).toEqual({ v: [2] });
  });

  it("are indexed no larger after a reservation too big and a fit than when grown key by key", () => {
    const N = 20_000;
    const keys = Array.from({ length: N }, (_, i) => `u${i}`);
    const { buf, at } = encodeSections([{ name: "t", keys, values: keys.map((k) => `"${k}"`) }]);
    const grown = createColdIndex();
    grown.adopt(buf, at[0]!.start, at[0]!.end);
    const fitted = createColdIndex();
    fitted.reserve(3 * N);
    fitted.adopt(buf, at[0]!.start, at[0]!.end);
    expect(fitted.growths).toBe(0);
    expect(fitted.bytes()).toBeGreaterThan(grown.bytes());
    fitted.fit();
    expect(fitted.bytes()).toBeLessThanOrEqual(grown.bytes());
    expect(fitted.get("u77")).toEqual(grown.get("u77"));
    expect(fitted.count).toBe(N);
  });

  it("load snapshots written as JSON (before binary entries) and move them to bytes", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    db = await openStateDb(dir);
    const store = db.instance("s", 0);
    // A fresh state with no form declared writes its values as JSON, as text maps did before.
    const old = await store.load();
    const legacy = old.map<string>("t");
    for (let i = 0; i < 100; i++) legacy.set(`u${i}`, JSON.stringify({ v: [i] }));
    await store.write(old);
    const s2 = await db.instance("s", 0).load();
    const t = s2.map<{ v: number[] }>("t", { text: true });
    expect(t.get("u5")).toEqual({ v: [5] });
    t.set("u6", { v: [60] });
    expect(await db.instance("s", 0).write(s2)).toBe(100); // every JSON-loaded key, once
    const s3 = await db.instance("s", 0).load();
    const t3 = s3.map<{ v: number[] }>("t", { text: true });
    expect(t3.get("u6")).toEqual({ v: [60] });
    expect(t3.get("u99")).toEqual({ v: [99] });
    expect(t3.size).toBe(100);
  });
});

describe("peek", () => {
  it("reads a cold value without keeping it decoded, and a hot one as it is", async () => {
    // A training scans every rating row; with get each would stay decoded.
    const dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    const db = await openStateDb(dir);
    try {
      const state = await db.instance("s", 0).load();
      const c = state.map("c", { codec: countingCodec() });
      for (let i = 0; i < 100; i++) c.set(`u${i}`, { n: i, s: "x" });
      await db.instance("s", 0).write(state);
      const loaded = await db.instance("s", 0).load();
      const codec = countingCodec();
      const m = loaded.map("c", { codec });
      expect(m.peek?.("u7")).toEqual({ n: 7, s: "x" });
      expect(m.peek?.("u7")).toEqual({ n: 7, s: "x" });
      expect(codec.decodes).toBe(2); // not kept: decoded at each peek
      expect(m.peek?.("u100")).toBeUndefined();
      const hot = m.get("u8")!;
      expect(m.peek?.("u8")).toBe(hot); // a decoded value is the one peeked
      expect(codec.decodes).toBe(3);
      const t = loaded.map<{ v: number }>("t", { text: true });
      t.set("a", { v: 1 });
      expect(t.peek?.("a")).toEqual({ v: 1 });
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("cold keys' memory", () => {
  it("stays near the live values' bytes when a key is rewritten at every snapshot beside new ones", () => {
    const state = createStageState();
    const m = state.map<{ s: string }>("m", { text: true });
    const big = "x".repeat(5000);
    for (let i = 0; i < 500; i++) {
      m.set(`u${i}`, { s: "y" }); // kept: its buffer stays alive
      m.set("hot", { s: big + i }); // superseded at the next snapshot
      state.takeDelta();
    }
    state.takeDelta();
    // 500 small keys and one 5 KB value live; 2.5 MB were written.
    expect(state.coldBytes()).toBeLessThan(400_000);
    expect(m.get("hot")).toEqual({ s: big + 499 });
    expect(m.get("u0")).toEqual({ s: "y" });
    expect(m.size).toBe(501);
  });
});

describe("a scan of cold keys", () => {
  it("reads each key's value as it goes, deleting and writing some, and sees every key once", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-cold-"));
    const db = await openStateDb(dir);
    try {
      const store = db.instance("s", 0);
      const state = await store.load();
      const t = state.map<{ n: number }>("t", { text: true });
      for (let i = 0; i < 3000; i++) t.set(`u${i}`, { n: i });
      await store.write(state);
      // One store per instance, as the host has: it knows the deltas on disk from its load.
      const store2 = db.instance("s", 0);
      const loaded = await store2.load();
      const m = loaded.map<{ n: number }>("t", { text: true });
      const seen = new Set<string>();
      for (const k of m.keys()) {
        expect(seen.has(k)).toBe(false);
        seen.add(k);
        const n = Number(k.slice(1));
        expect(m.peekText?.(k)).toBe(JSON.stringify({ n }));
        if (n % 3 === 0) {
          m.delete(k);
          expect(m.get(k)).toBeUndefined();
          expect(m.peekText?.(k)).toBeUndefined();
        } else if (n % 3 === 1) {
          m.set(`new${n}`, { n: -n }); // a new key during the scan
          expect(m.get(k)).toEqual({ n });
        }
      }
      expect(seen.size).toBeGreaterThanOrEqual(3000);
      for (let i = 0; i < 3000; i++) expect(seen.has(`u${i}`)).toBe(true);
      expect(m.size).toBe(3000 - 1000 + 1000);
      await store2.write(loaded);
      const again = (await db.instance("s", 0).load()).map<{ n: number }>("t", { text: true });
      expect(again.get("u3")).toBeUndefined();
      expect(again.get("u4")).toEqual({ n: 4 });
      expect(again.get("new4")).toEqual({ n: -4 });
      expect(again.size).toBe(3000);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
