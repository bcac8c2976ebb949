import { describe, expect, it } from "vitest";
import {
  createCovisit,
  createItemIds,
  ECOMMERCE,
  RecentItems,
  recentItems,
  type Recent,
  seededRandom,
  type SourceEvent,
  encodeUserValue,
} from "../actors/sources/index.js";

/**
 * Co-visitation keeps each user's recent items in a live form of typed arrays
 * (actors/sources/recent-items.ts) instead of one `[id, ts, w, sess]` array per item. What it
 * stores must be what the arrays were: the same items, order, doubles and sessions.
 */
const T0 = Date.UTC(2026, 10, 1);

describe("co-visitation's recent items (live form)", () => {
  it("holds, per user and event, what the list of arrays held (its stored form)", () => {
    const rnd = seededRandom(5);
    const recent = new Map<string, Recent[] | RecentItems>();
    const cap = 6;
    const windowMs = 3_600_000;
    const c = createCovisit(
      { preset: ECOMMERCE, recentPerUser: cap, windowMs },
      { edges: new Map(), mass: new Map(), recent },
    );
    // The list of arrays as `add` kept it before (splice the item, push it, drop the oldest).
    const model = new Map<string, Recent[]>();
    const types = ["view", "click", "cart", "purchase"] as const;
    let ts = T0;
    for (let x = 0; x < 3000; x++) {
      ts += Math.floor(rnd() * 400_000) - 100_000; // some disorder
      const e: SourceEvent & { sess?: string } = {
        u: `u${Math.floor(rnd() * 12)}`,
        i: `p${Math.floor(rnd() * 15)}`,
        t: types[Math.floor(rnd() * types.length)]!,
        ts,
        c: "",
        r: -1,
      };
      if (rnd() < 0.5) e.sess = `s${Math.floor(rnd() * 3)}`;
      c.add(e);
      const w = ECOMMERCE.weight(e);
      const list = model.get(e.u) ?? [];
      const at = list.findIndex((r) => r[0] === e.i);
      if (at >= 0) list.splice(at, 1);
      list.push([e.i, e.ts, w, e.sess ?? null]);
      if (list.length > cap) list.shift();
      model.set(e.u, list);
      const live = recent.get(e.u);
      expect(live).toBeInstanceOf(RecentItems);
      expect(JSON.parse(JSON.stringify(live))).toEqual(list);
    }
  });

  it("is stored as the arrays' bytes, and read back from them", () => {
    const ids = createItemIds();
    const arrays: Recent[] = [
      ["a", T0 + 0.5, 1, null],
      ["商品", T0 + 1234.25, 2.5, "s-1"],
      ["", T0 - 7, 5, ""],
    ];
    const live = recentItems(arrays, ids, 4);
    expect(live.size).toBe(3);
    expect(live.toJSON()).toEqual(arrays);
    expect([...encodeUserValue(live)]).toEqual([...encodeUserValue(arrays)]);
    expect([...encodeUserValue({ r: live })]).toEqual([...encodeUserValue({ r: arrays })]);
    // Another numbering's live list is converted (the numbers are per instance), not reused.
    const other = recentItems(live, createItemIds(), 4);
    expect(other).not.toBe(live);
    expect(other.toJSON()).toEqual(arrays);
    // Its own is reused while it has room for one more.
    expect(recentItems(live, ids, 4)).toBe(live);
    live.remove(1);
    expect(live.toJSON()).toEqual([arrays[0], arrays[2]]);
  });
});
