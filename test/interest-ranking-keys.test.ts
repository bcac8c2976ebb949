import { describe, expect, it } from "vitest";
import type { Envelope } from "../actors/host/index.js";
import type { WindowOutput, WindowRecord } from "../actors/stages/index.js";
import {
  cellCodec,
  type InterestHandler,
  interestCellKey as cellKey,
  keyTail,
  parseCellKey,
} from "../actors/stages/index.js";
import { createInterestHandler, loadInterestHandler } from "../actors/plan/index.js";
import { EVENT_TYPES, MINUTE } from "../actors/contract/index.js";
import { createStageState } from "../state/store.js";
import { fakeOutput } from "./helpers/stage.js";
import { testStateDb } from "./helpers/state-db.js";

/**
 * Interest-ranking's cell keys in a compact form (window start in base 36, a
 * letter per event type) instead of JSON arrays; cells of snapshots with JSON keys still load,
 * and move to their compact keys (an upsert of such a cell replaces it, never counts it twice).
 */
const enc = new TextEncoder();
const T0 = Date.UTC(2026, 10, 23, 6, 0, 0);
const W = 5 * MINUTE;
const OPTS = { partition: 0, horizonMs: 8 * W, windowMs: W, topCategories: 3 };

const cell = (u: string, i: string, n: number, c: string, w = T0, t = "view"): WindowRecord =>
  ({ w, u, i, t, n, c, b: "", pr: -1 }) as WindowRecord;

function feed(h: InterestHandler, seq: number, wm: number, recs: WindowOutput[]) {
  const env: Envelope<WindowOutput> = { upTo: seq, wm, recs };
  h.handle(
    { seq, subject: "reco.window.0", data: enc.encode(JSON.stringify(env)), headers: {} },
    seq - 1,
  );
}

describe("interest-ranking's cell keys", () => {
  it("give back their parts, in either form, for any ids, types and window starts", () => {
    const ids = ["u1", "", "a,b", "line\nbreak", '"q"', "[x]", "商品😀", "-", "x".repeat(128)];
    const ws = [T0, 0, -W, 2 ** 53 + 2, 1.5, T0 + 0.25];
    for (const w of ws)
      for (const t of [...EVENT_TYPES, "other"])
        for (const u of ids)
          for (const i of ids) {
            const k = cellKey(w, t, u, i);
            expect(parseCellKey(k)).toEqual({ w, t, u, i });
            // A window's index keeps the tail; the JSON form's starts with a quote, only it.
            expect(keyTail(k).startsWith('"')).toBe(k.startsWith("["));
            // The JSON form is the one of snapshots written before.
            const json = JSON.stringify([w, t, u, i]);
            expect(parseCellKey(json)).toEqual({ w, t, u, i });
          }
    // An ordinary cell: 24 characters where the JSON array had 40.
    const w = Date.UTC(2026, 10, 23, 7, 0);
    const k = cellKey(w, "view", "u123456", "i1234");
    expect(k).toBe(`${w.toString(36)},v,u123456,i1234`);
    expect(k.length).toBe(24);
    expect(JSON.stringify([w, "view", "u123456", "i1234"]).length).toBe(40);
  });

  it("hold a cold cell in under 70 B of records and index (JSON keys: ~77 B)", () => {
    const state = createStageState();
    const h = createInterestHandler(state, fakeOutput().out, OPTS);
    const n = 20_000;
    const recs: WindowOutput[] = [];
    for (let x = 0; x < n; x++) recs.push(cell(`u${100_000 + x}`, `i${x % 5000}`, 1, "sports"));
    feed(h, 1, T0, recs);
    state.takeDelta();
    expect(state.coldBytes() / n).toBeLessThan(70);
    expect(h.profile("u100007")?.top).toEqual([["sports", 1]]);
  });

  const dbs = testStateDb("reco-interest-keys-");

  it("load cells a snapshot stored under JSON keys, move them, and upsert them in place (LevelDB)", async () => {
    const db = await dbs.open();
    const store = db.instance("interest-ranking", 0);
    // The layout before: the same codec map, cells under JSON keys, cold after two snapshots.
    const old = await store.load();
    const cells = old.map<[number, string]>("cell", { codec: cellCodec });
    const before: WindowRecord[] = [
      cell("u1", "p1", 2, "books"),
      cell("u1", "p2", 1, "toys", T0 + W, "purchase"),
      cell("u,2", "p1", 3, "books"), // a comma: stays a JSON key
      cell("u3", "p3", 4, "games", T0 - 2 * W),
    ];
    for (const r of before) cells.set(JSON.stringify([r.w, r.t, r.u, r.i]), [r.n, r.c]);
    old.meta = { seq: 1 };
    await store.write(old);
    await store.write(old);

    const st = await store.load();
    const h = await loadInterestHandler(st, fakeOutput().out, OPTS);
    expect(h.profile("u1")?.top).toEqual([
      ["books", 2],
      ["toys", 1],
    ]);
    expect(h.profile("u1")?.pur).toEqual([["p2", T0 + 2 * W]]);
    expect(h.profile("u,2")?.top).toEqual([["books", 3]]);
    // The same cells again with new counts: upserts of the moved cells, not new ones.
    feed(h, 2, T0 + W, [cell("u1", "p1", 5, "books"), cell("u,2", "p1", 1, "books")]);
    expect(h.profile("u1")?.top).toEqual([
      ["books", 5],
      ["toys", 1],
    ]);
    expect(h.profile("u,2")?.top).toEqual([["books", 1]]);
    st.meta = { ...st.meta, seq: 2 };
    await store.write(st);
    const keys = (await store.exportRaw()).entries
      .map(([k]) => String(k))
      .filter((k) => k.startsWith("cell\u0000"))
      .map((k) => k.slice(5))
      .sort();
    expect(keys).toEqual(
      [
        cellKey(T0, "view", "u1", "p1"),
        cellKey(T0 + W, "purchase", "u1", "p2"),
        JSON.stringify([T0, "view", "u,2", "p1"]),
        cellKey(T0 - 2 * W, "view", "u3", "p3"),
      ].sort(),
    );
    // Restarted again, then the windows leave the horizon: the moved cells go too.
    const again = await loadInterestHandler(await store.load(), fakeOutput().out, OPTS);
    expect(again.profile("u3")?.top).toEqual([["games", 4]]);
    feed(again, 3, T0 + 10 * W, []);
    for (const u of ["u1", "u,2", "u3"]) expect(again.profile(u)).toBeUndefined();
  });
});

describe("interest-ranking's cell values", () => {
  /** The hand-written layout of snapshots before MessagePack: form byte, count, category. */
  const oldBytes = (n: number, c: string) => {
    const small = Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
    const at = small ? 5 : 9;
    const b = Buffer.alloc(at + Buffer.byteLength(c));
    b[0] = small ? 0 : 1;
    if (small) b.writeUInt32LE(n, 1);
    else b.writeDoubleLE(n, 1);
    b.write(c, at, "utf8");
    return new Uint8Array(b);
  };
  it("are MessagePack pairs, and the bytes of the layout before still load", () => {
    for (const [n, c] of [
      [1, "electronics"],
      [0, ""],
      [2 ** 21 + 3, "ça"],
      [2 ** 40, "商品😀"],
      [0.1 + 0.2, "x"],
      [-3, "neg"],
    ] as [number, string][]) {
      const bytes = cellCodec.encode([n, c]);
      expect(bytes[0]).toBe(0x92);
      expect(cellCodec.decode(bytes)).toEqual([n, c]);
      expect(cellCodec.decode(oldBytes(n, c))).toEqual([n, c]);
      expect(cellCodec.decode(JSON.stringify([n, c]))).toEqual([n, c]);
    }
    // A small count: 3 B and the category (the layout before: 5 B and the category).
    expect(cellCodec.encode([4, "electronics"]).length).toBe(3 + "electronics".length);
  });
});
