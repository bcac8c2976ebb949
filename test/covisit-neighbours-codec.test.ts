import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  decodeNeighbours,
  encodeNeighbours,
  Neighbours,
  neighboursCodec,
  writeNeighbourBytes,
  createCovisit,
  ECOMMERCE,
} from "../actors/sources/index.js";
import { createStageState, openStateDb } from "../state/store.js";

/**
 * Co-visitation's neighbour lists are persisted as bytes (ids and exact
 * doubles), not JSON; snapshots written as JSON text before still load.
 */
const T0 = Date.UTC(2026, 10, 1);

function sample(ids: string[]): Neighbours {
  const m = new Neighbours();
  ids.forEach((id, x) => m.set(id, [Math.PI * (x + 1) * 1e-7 + 1 / 3, T0 + x * 1234.5]));
  return m;
}

/** The former writer (ids joined into one string, then written): the stored form. */
function referenceBytes(ids: string[], s: number[], ts: number[]): Uint8Array {
  const n = ids.length;
  const joined = ids.join("");
  const wide = /[\u0100-\uffff]/.test(joined);
  const at = 8 + 18 * n;
  const bytes = new Uint8Array(at + joined.length * (wide ? 2 : 1));
  const view = new DataView(bytes.buffer);
  bytes.set([0x4e, 0x42, 1, wide ? 1 : 0]);
  view.setUint32(4, n, true);
  for (let x = 0; x < n; x++) {
    view.setFloat64(8 + 8 * x, s[x]!, true);
    view.setFloat64(8 + 8 * (n + x), ts[x]!, true);
    view.setUint16(8 + 16 * n + 2 * x, ids[x]!.length, true);
  }
  Buffer.from(bytes.buffer).write(joined, at, wide ? "utf16le" : "latin1");
  return bytes;
}

describe("neighbour lists as bytes", () => {
  it("are written byte for byte as the stored form was (latin1 and UTF-16 ids)", () => {
    for (const ids of [
      [],
      ["a", "1004856", "", "b"],
      ["électro", "ça", "ÿ"], // latin1 beyond ASCII
      ["商品", "ok", "😀", "x"], // a wide id makes every id UTF-16
      Array.from({ length: 300 }, (_, x) => `item-${x * 7919}`), // n > 255: its four bytes
      ["x".repeat(70000)], // an id longer than 65535 code units: its length's low 16 bits
    ]) {
      const s = ids.map((_, x) => Math.PI * (x + 1) * 1e-7 - 1 / 3);
      const ts = ids.map((_, x) => T0 + x * 1234.5);
      const got = writeNeighbourBytes(
        ids.length,
        (x) => ids[x]!,
        (x) => s[x]!,
        (x) => ts[x]!,
      );
      expect(Buffer.from(got)).toEqual(Buffer.from(referenceBytes(ids, s, ts)));
    }
  });

  it("give back the same ids, doubles (bit for bit) and order, for any string ids", () => {
    for (const ids of [
      ["a", "1004856", "b", ""],
      ["électro", "ça", "x"], // latin1
      ["商品", "ok", "\ud800lone", "😀"], // UTF-16, a lone surrogate
      Array.from({ length: 150 }, (_, x) => `item-${x * 7919}`),
      [],
    ]) {
      const m = sample(ids);
      const back = decodeNeighbours(encodeNeighbours(m));
      expect([...back.keys()]).toEqual(ids);
      for (const [id, e] of m) {
        expect(Object.is(back.get(id)![0], e[0])).toBe(true);
        expect(Object.is(back.get(id)![1], e[1])).toBe(true);
      }
    }
  });

  it("decode from bytes at any offset (a pooled Buffer), and from the JSON text of older snapshots", () => {
    const m = sample(["p1", "p2", "p3"]);
    const bytes = encodeNeighbours(m);
    const shifted = new Uint8Array(bytes.length + 3).subarray(3);
    shifted.set(bytes);
    expect([...decodeNeighbours(shifted)]).toEqual([...m]);
    expect([...decodeNeighbours(JSON.stringify(m))]).toEqual([...m]);
    expect([...decodeNeighbours(JSON.parse(JSON.stringify(m)))]).toEqual([...m]);
    expect(() => decodeNeighbours(new Uint8Array([1, 2, 3, 4, 0, 0, 0, 0]))).toThrow(/unknown/);
  });

  it("are fewer bytes than the JSON they replace", () => {
    const m = new Neighbours();
    for (let x = 0; x < 150; x++) m.set(String(1_000_000 + x * 37), [Math.random() * 40, T0 + x]);
    const json = JSON.stringify(JSON.stringify(m)).length;
    const base64 = Buffer.from(encodeNeighbours(m)).toString("base64").length;
    expect(base64).toBeLessThan(json * 0.8);
  });
});

describe("a stage map with the neighbours codec", () => {
  it("snapshots bytes, loads them back, and loads the JSON text an older snapshot wrote (LevelDB)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-nb-"));
    try {
      const db = await openStateDb(join(dir, "state"));
      const store = db.instance("covisit", 0);
      // An older snapshot: the edges map was a text map (values: JSON text of the entries).
      const old = createStageState();
      const oldEdges = old.map<Neighbours>("edges", { text: true });
      const covisitOld = createCovisit(
        { preset: ECOMMERCE },
        { edges: oldEdges, mass: old.map("mass"), recent: old.map("recent", { text: true }) },
      );
      const ev = (u: string, i: string, ts: number) => ({
        u,
        i,
        t: "view" as const,
        ts,
        c: "",
        r: -1,
      });
      covisitOld.add(ev("u1", "a", T0));
      covisitOld.add(ev("u1", "b", T0 + 1000));
      covisitOld.add(ev("u2", "a", T0 + 2000));
      covisitOld.add(ev("u2", "c", T0 + 3000));
      await store.write(old);
      const want = covisitOld.similar("a", T0 + 5000);

      // Loaded with the codec: the text still reads, and the next snapshot writes bytes.
      const st = await store.load();
      const edges = st.map("edges", { codec: neighboursCodec });
      const covisit = createCovisit(
        { preset: ECOMMERCE },
        { edges, mass: st.map("mass"), recent: st.map("recent", { text: true }) },
      );
      expect(covisit.similar("a", T0 + 5000)).toEqual(want);
      covisit.add(ev("u3", "a", T0 + 6000));
      covisit.add(ev("u3", "c", T0 + 7000));
      // Written back through LevelDB (as bytes: base64 inside the JSON) and loaded again.
      await store.write(st);
      const raw = new Map((await store.exportRaw()).entries);
      expect(String(raw.get("edges\u0000a")).startsWith("\u0000b64:")).toBe(true);
      expect(raw.get("edges\u0000b")).toMatch(/^\[\[/); // unchanged since: the old text
      const want2 = covisit.similar("a", T0 + 8000);
      const st2 = await store.load();
      const covisit2 = createCovisit(
        { preset: ECOMMERCE },
        {
          edges: st2.map("edges", { codec: neighboursCodec }),
          mass: st2.map("mass"),
          recent: st2.map("recent", { text: true }),
        },
      );
      expect(covisit2.similar("a", T0 + 8000)).toEqual(want2);
      expect(want2.length).toBeGreaterThan(0);
      await db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("round-trips through a checkpoint (the whole state in chunks) as well as a delta", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-nb-"));
    try {
      // checkpointMinKeys 1: a checkpoint once the deltas hold more than twice the live keys.
      const db = await openStateDb(join(dir, "state"), { checkpointMinKeys: 1 });
      const store = db.instance("covisit", 0);
      const st = createStageState();
      const edges = st.map("edges", { codec: neighboursCodec });
      edges.set("a", sample(["x", "y", "商品"]));
      edges.set("b", sample(["a"]));
      // "b" stays unwritten: held as bytes when the checkpoint reads it; "c" is a live Map.
      for (let n = 0; n < 10; n++) {
        edges.set("c", sample(["a", "b", `z${n}`]));
        await store.write(st);
      }
      const back = (await store.load()).map("edges", { codec: neighboursCodec });
      for (const k of ["a", "b", "c"]) expect([...back.get(k)!]).toEqual([...edges.get(k)!]);
      await db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps clean values as bytes after a snapshot, and decodes them when read", () => {
    const st = createStageState();
    const edges = st.map("edges", { codec: neighboursCodec });
    const m = sample(["x", "y"]);
    edges.set("a", m);
    st.takeDelta();
    expect(edges.get("a")).toBe(m); // written since the last snapshot: still the Map
    st.takeDelta(); // unwritten since: back to bytes
    const read = edges.get("a")!;
    expect(read).not.toBe(m);
    expect([...read]).toEqual([...m]);
    expect(st.dirtyCount()).toBe(0);
  });
});
