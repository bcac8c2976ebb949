import { describe, expect, it } from "vitest";
import {
  createHistory,
  type UserHistory,
  type UserItems,
  ECOMMERCE,
  MOVIES,
  seededRandom,
  type SourceEvent,
} from "../actors/sources/index.js";

const H = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);
const ev = (u: string, i: string, t: SourceEvent["t"], ts: number, r = -1): SourceEvent => ({
  u,
  i,
  t,
  ts,
  c: "",
  r,
});

describe("history source", () => {
  it("ranks by weight decayed by event time: a cart outranks a view, recent outranks old", () => {
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: H });
    h.add(ev("u", "old-view", "view", T0));
    h.add(ev("u", "cart", "cart", T0 + H));
    h.add(ev("u", "new-view", "view", T0 + 2 * H));
    const list = h.candidates("u", T0 + 2 * H);
    expect(list.map((x) => x.item)).toEqual(["cart", "new-view", "old-view"]);
    // cart: 3 halved once = 1.5; new view 1; old view 1 halved twice = 0.25
    expect(list.map((x) => x.score)).toEqual([1.5, 1, 0.25]);
    expect(list[0]!.why).toBe("in your cart");
  });

  it("decays by the events' time, not by arrival order", () => {
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: H });
    h.add(ev("u", "a", "view", T0 + H));
    h.add(ev("u", "a", "view", T0)); // older event arriving later
    expect(h.candidates("u", T0 + H)[0]!.score).toBe(1.5);
  });

  it("leaves out an e-commerce purchase for 24 h, then serves it again", () => {
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: 1000 * H });
    h.add(ev("u", "bought", "purchase", T0));
    h.add(ev("u", "viewed", "view", T0));
    expect(h.candidates("u", T0 + H).map((x) => x.item)).toEqual(["viewed"]);
    expect(h.done("u", T0 + H)).toEqual(new Set(["bought"]));
    expect(h.candidates("u", T0 + 25 * H).map((x) => x.item)).toEqual(["bought", "viewed"]);
    // Seeds for other sources include done items.
    expect(h.seeds("u", T0 + H).map((x) => x.item)).toEqual(["bought", "viewed"]);
  });

  it("movies: a rated movie is done for good, and its rating is its weight", () => {
    const h = createHistory({ preset: MOVIES });
    h.add(ev("u", "m1", "rating", T0, 4.5));
    h.add(ev("u", "m2", "rating", T0, 2));
    expect(h.candidates("u", T0 + 1000 * 24 * H)).toEqual([]);
    expect(h.seeds("u", T0).map((x) => [x.item, x.score])).toEqual([
      ["m1", 4.5],
      ["m2", 2],
    ]);
  });

  it("ranks at most the cap (plus a quarter) of items per user, forgetting the weakest", () => {
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: H, maxItemsPerUser: 8 });
    for (let x = 0; x < 100; x++) h.add(ev("u", `i${x}`, "view", T0 + x * 60_000));
    const ranked = h.seeds("u", T0 + 100 * 60_000, 1000).map((s) => s.item);
    expect(ranked.length).toBeLessThanOrEqual(10);
    expect(ranked).toContain("i99");
    expect(ranked).not.toContain("i0");
    expect(h.recent("u", 1000).length).toBe(ranked.length);
  });

  it("keeps every item a user touched as touched beyond the cap, up to maxPastPerUser", () => {
    const h = createHistory({
      preset: ECOMMERCE,
      halfLifeMs: H,
      maxItemsPerUser: 8,
      maxPastPerUser: 50,
    });
    for (let x = 0; x < 40; x++) h.add(ev("u", `i${x}`, "view", T0 + x * 60_000));
    expect(h.touched("u").size).toBe(40);
    expect(h.why("u", "i0")).toBe("from your earlier history");
    expect(h.why("u", "i39")).toBe("you viewed it");
    expect(h.why("u", "never")).toBeUndefined();
    // Beyond maxPastPerUser past items, the ones forgotten first are dropped.
    for (let x = 40; x < 100; x++) h.add(ev("u", `i${x}`, "view", T0 + x * 60_000));
    const touched = h.touched("u");
    expect(touched.size).toBeLessThanOrEqual(50 + 10);
    expect(touched.size).toBeGreaterThanOrEqual(50 + 8);
    expect(touched.has("i0")).toBe(false);
    expect(touched.has("i99")).toBe(true);
  });

  it("never lets a heavy rater's rated movie out of done, however long the history", () => {
    const h = createHistory({ preset: MOVIES, halfLifeMs: H, maxItemsPerUser: 200 });
    // 600 ratings, the first ones the strongest (5) so the ranking forgets the later, weaker ones
    // as well as old ones.
    for (let x = 0; x < 600; x++)
      h.add(ev("u", `m${x}`, "rating", T0 + x * 60_000, x < 100 ? 5 : 0.5 + (x % 9) * 0.5));
    const now = T0 + 10_000 * 60_000;
    const done = h.done("u", now);
    expect(done.size).toBe(600);
    expect(h.touched("u").size).toBe(600);
    expect(h.candidates("u", now, 1000)).toEqual([]);
    // A forgotten movie rated again is ranked again, and still done.
    const forgotten = [...done].find((m) => !h.seeds("u", now, 1000).some((s) => s.item === m))!;
    expect(forgotten).toBeDefined();
    h.add(ev("u", forgotten, "rating", now, 5));
    expect(h.seeds("u", now, 1000).map((s) => s.item)).toContain(forgotten);
    expect(h.done("u", now).has(forgotten)).toBe(true);
    expect(h.done("u", now).size).toBe(600);
  });

  it("keeps a purchase done for its horizon after the ranking forgot the item", () => {
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: H, maxItemsPerUser: 4 });
    h.add(ev("u", "bought", "purchase", T0));
    // Stronger, later items push the purchase out of the ranking.
    for (let x = 0; x < 20; x++)
      for (const t of ["cart", "cart"] as const) h.add(ev("u", `c${x}`, t, T0 + 1000 + x));
    expect(h.seeds("u", T0 + 2000, 100).map((s) => s.item)).not.toContain("bought");
    expect(h.done("u", T0 + 3_600_000).has("bought")).toBe(true);
    expect(h.done("u", T0 + 2 * 86_400_000).has("bought")).toBe(false);
    expect(h.touched("u").has("bought")).toBe(true);
  });

  it("is deterministic: ties by item id", () => {
    const h = createHistory({ preset: ECOMMERCE });
    for (const i of ["b", "c", "a"]) h.add(ev("u", i, "view", T0));
    expect(h.candidates("u", T0).map((x) => x.item)).toEqual(["a", "b", "c"]);
  });
});

describe("history's reads of a loaded value", () => {
  /** Entries as a text map decodes them, counting how often they are read whole. */
  class Counted extends Array<[string, [number, number, number, string, number, number] | number]> {
    static reads = 0;
    override [Symbol.iterator]() {
      Counted.reads++;
      return super[Symbol.iterator]();
    }
  }

  it("convert it once for every read of an answer, and an event after converts its own copy", () => {
    const users = new Map<string, UserHistory>();
    const h = createHistory({ preset: ECOMMERCE }, users);
    const t0 = Date.UTC(2026, 0, 1);
    h.add({ u: "u", i: "a", t: "view", ts: t0, c: "", r: -1 });
    h.add({ u: "u", i: "b", t: "purchase", ts: t0 + 1_000, c: "", r: -1 });
    // As loaded from a snapshot: the entries (UserItems.toJSON), not the live Map.
    const loaded = new Counted(...(users.get("u") as UserItems).toJSON());
    users.set("u", loaded);
    const now = t0 + 60_000;
    Counted.reads = 0;
    const first = [h.seeds("u", now), h.candidates("u", now), h.done("u", now), h.touched("u")];
    for (let x = 0; x < 3; x++)
      expect([h.seeds("u", now), h.candidates("u", now), h.done("u", now), h.touched("u")]).toEqual(
        first,
      );
    // Read once whole, not once per read (16 before).
    expect(Counted.reads).toBe(1);
    // An event changes the user's own converted copy: the loaded value stays as it was.
    h.add({ u: "u", i: "c", t: "view", ts: now, c: "", r: -1 });
    expect([...h.touched("u")].sort()).toEqual(["a", "b", "c"]);
    expect(loaded.map(([i]) => i).sort()).toEqual(["a", "b"]);
  });
});

describe("history's ranked lists", () => {
  it("are the first n of every item sorted by score, then id (ties included), for any n", () => {
    const rand = seededRandom(3);
    const h = createHistory({ preset: ECOMMERCE, halfLifeMs: H });
    const types: SourceEvent["t"][] = ["view", "view", "click", "cart", "purchase"];
    // 300 events of one user on 120 items, at few distinct times: many equal scores.
    for (let x = 0; x < 300; x++)
      h.add(ev("u", `i${Math.floor(rand() * 120)}`, types[x % 5]!, T0 + 60_000 * (x % 4)));
    const now = T0 + H;
    const full = h.candidates("u", now, 1_000);
    expect(full.length).toBeGreaterThan(50);
    // Equal scores, ordered by id.
    expect(new Set(full.map((c) => c.score)).size).toBeLessThan(full.length);
    const sorted = [...full].sort(
      (a, b) => b.score - a.score || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0),
    );
    expect(full).toEqual(sorted);
    for (const n of [0, 1, 7, 20, 100]) {
      expect(h.candidates("u", now, n)).toEqual(sorted.slice(0, n));
      expect(h.seeds("u", now, n).length).toBe(Math.min(n, h.seeds("u", now, 1_000).length));
    }
  });
});
