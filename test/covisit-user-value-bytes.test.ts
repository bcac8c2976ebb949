import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  createCovisit,
  createHistory,
  UserItems,
  ECOMMERCE,
  userStores,
  type UserValue,
  decodeUserValue,
  encodeUserValue,
  userValueCodec,
  type StoredUserValue,
  createItemIds,
  recentItems,
  encodeHistory,
} from "../actors/sources/index.js";
import { createStageState, openStateDb } from "../state/store.js";
import { Packr } from "msgpackr";

/**
 * The covisit stage's per-user value (recent items and the scorer's history)
 * is stored as bytes, not JSON text; values written as JSON text before still load.
 */
const T0 = Date.UTC(2026, 10, 1);

const value = (ids: string[], sess: (x: number) => string | null): UserValue => {
  const h = new UserItems();
  ids.forEach((id, x) =>
    h.set(id, [Math.PI * (x + 1) * 1e-7 + 1 / 3, T0 + x * 1234.5, 2.5, "view", x + 1, -1]),
  );
  return { r: ids.map((id, x) => [id, T0 + x, 1 + (x % 3), sess(x)]), h };
};

/** Every number of both values the same bits (Object.is: -0 and NaN too), in the same order. */
const same = (a: StoredUserValue, b: StoredUserValue) => {
  const flat = (v: StoredUserValue) =>
    Array.isArray(v)
      ? [v]
      : [v.r ?? null, v.h ? [...(v.h instanceof Map ? v.h : new UserItems(v.h))] : null];
  const walk = (x: unknown, y: unknown): boolean =>
    Array.isArray(x)
      ? Array.isArray(y) && x.length === y.length && x.every((e, i) => walk(e, y[i]))
      : Object.is(x, y);
  return walk(flat(a), flat(b));
};

describe("the covisit stage's per-user value as bytes", () => {
  it("gives back the same items, doubles (bit for bit), sessions and order, for any string ids", () => {
    for (const ids of [
      ["a", "1004856", "b", ""],
      ["électro", "ça", "x"], // latin1
      ["商品", "ok", "😀"], // beyond latin1, a surrogate pair (parse refuses lone surrogates)
      Array.from({ length: 200 }, (_, x) => `item-${x * 7919}`),
      ["x".repeat(300)], // longer than MessagePack's short strings
      [],
    ]) {
      const v = value(ids, (x) => (x % 2 ? null : `s-${x}-商`));
      const back = decodeUserValue(encodeUserValue(v));
      expect(same(back, v)).toBe(true);
      expect(same(back, JSON.parse(JSON.stringify(v)) as UserValue)).toBe(true);
    }
    // Doubles bit for bit; -0 comes back as 0, as it did from the JSON text.
    const neg: UserValue = { r: [["a", -1.5e-300, 0.1 + 0.2, null]] };
    expect(same(decodeUserValue(encodeUserValue(neg)), neg)).toBe(true);
    const zero = decodeUserValue(encodeUserValue({ r: [["a", -0, 1, null]] })) as {
      r: [string, number, number, string | null][];
    };
    expect(Object.is(zero.r[0]![1], 0)).toBe(true);
  });

  it("writes the bytes of the plain form, value after value (reused rows: pack-rows.ts)", () => {
    // The plain form packed by a fresh Packr: arrays of fresh entries, as before the reused rows.
    const plain = new Packr({ useRecords: false });
    const ids = createItemIds();
    // A long value, then shorter ones: a row left over from a longer value must not be written.
    for (const n of [40, 3, 17, 0, 1, 40]) {
      const v = value(
        Array.from({ length: n }, (_, x) => `i${(x * 31) % 97}-${n}`),
        (x) => (x % 3 ? null : `s${x}`),
      );
      const live = recentItems(v.r, ids, 64);
      const h = v.h as UserItems;
      const expected = plain.pack({ r: v.r, h: [...h] });
      expect(Buffer.from(encodeUserValue({ r: live, h }))).toEqual(Buffer.from(expected));
      expect(Buffer.from(encodeUserValue(live))).toEqual(Buffer.from(plain.pack(v.r)));
      expect(Buffer.from(encodeUserValue({ h }))).toEqual(Buffer.from(plain.pack({ h: [...h] })));
      expect(Buffer.from(encodeHistory(h))).toEqual(Buffer.from(plain.pack([...h])));
    }
  });

  it("keeps which parts a value has: recent only, history only, or a bare recent list", () => {
    const v = value(["a", "b"], () => null);
    const r = decodeUserValue(encodeUserValue({ r: v.r! }));
    expect(Array.isArray(r)).toBe(false);
    expect(r).toEqual({ r: v.r });
    const h = decodeUserValue(encodeUserValue({ h: v.h! })) as UserValue;
    expect(h.r).toBeUndefined();
    expect([...(h.h as UserItems)]).toEqual([...(v.h as UserItems)]);
    const bare = decodeUserValue(encodeUserValue(v.r!));
    expect(bare).toEqual(v.r);
    // A history stored as entries (a value loaded from JSON) writes the same bytes as its Map.
    const entries = { r: v.r!, h: [...(v.h as UserItems)] };
    expect(encodeUserValue(entries)).toEqual(encodeUserValue(v));
  });

  it("decodes from bytes at any offset, and from the JSON text of older snapshots", () => {
    const v = value(["p1", "p2", "p3"], (x) => `s${x}`);
    const bytes = encodeUserValue(v);
    const shifted = new Uint8Array(bytes.length + 3).subarray(3);
    shifted.set(bytes);
    expect(same(decodeUserValue(shifted), v)).toBe(true);
    expect(same(decodeUserValue(JSON.stringify(v)), v)).toBe(true);
    expect(() => decodeUserValue(new Uint8Array([1, 2, 3, 4]))).toThrow(/unknown/);
  });

  it("loads what a snapshot with JSON text values wrote, and writes bytes from then on (LevelDB)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-uv-"));
    try {
      const db = await openStateDb(join(dir, "state"));
      const store = db.instance("covisit", 0);
      const ev = (u: string, i: string, ts: number) => ({
        u,
        i,
        t: "view" as const,
        ts,
        c: "",
        r: -1,
      });
      const sources = (
        recent: ReturnType<typeof userStores>,
        st: ReturnType<typeof createStageState>,
      ) => ({
        covisit: createCovisit(
          { preset: ECOMMERCE },
          { edges: st.map("edges"), mass: st.map("mass"), recent: recent.recent },
        ),
        history: createHistory({ preset: ECOMMERCE }, recent.history),
      });
      // An older snapshot: "recent" was a text map (values: JSON text of { r, h }).
      const old = createStageState();
      const a = sources(userStores(old.map<UserValue>("recent", { text: true })), old);
      for (const [u, i, dt] of [
        ["u1", "a", 0],
        ["u1", "b", 1000],
        ["u2", "a", 2000],
        ["u2", "c", 3000],
      ] as const) {
        a.covisit.add(ev(u, i, T0 + dt));
        a.history.add(ev(u, i, T0 + dt));
      }
      await store.write(old);
      const raw0 = new Map((await store.exportRaw()).entries);
      expect(raw0.get("recent\u0000u1")).toMatch(/^\{"r":/);
      const want = [a.covisit.similar("a", T0 + 5000), a.history.seeds("u1", T0 + 5000)];

      // Loaded with the codec: the text still reads, and the next snapshot writes bytes.
      const st = await store.load();
      const b = sources(userStores(st.map("recent", { codec: userValueCodec })), st);
      expect([b.covisit.similar("a", T0 + 5000), b.history.seeds("u1", T0 + 5000)]).toEqual(want);
      b.covisit.add(ev("u3", "a", T0 + 6000));
      b.covisit.add(ev("u1", "c", T0 + 7000));
      b.history.add(ev("u1", "c", T0 + 7000));
      await store.write(st);
      const raw = new Map((await store.exportRaw()).entries);
      expect(String(raw.get("recent\u0000u1")).startsWith("\u0000b64:")).toBe(true);
      expect(raw.get("recent\u0000u2")).toMatch(/^\{"r":/); // unchanged since: the old text
      const want2 = [b.covisit.similar("c", T0 + 8000), b.history.seeds("u1", T0 + 8000)];
      const st2 = await store.load();
      const c = sources(userStores(st2.map("recent", { codec: userValueCodec })), st2);
      expect([c.covisit.similar("c", T0 + 8000), c.history.seeds("u1", T0 + 8000)]).toEqual(want2);
      expect(want2[0]!.length).toBeGreaterThan(0);
      await db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
