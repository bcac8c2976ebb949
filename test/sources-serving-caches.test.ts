import { describe, expect, it } from "vitest";
import {
  createAlsIndex,
  IMPLICIT_DEFAULTS,
  servedModel,
  trainAls,
  createCovisit,
  ECOMMERCE,
  createRecommender,
  type SourceSettings,
  createPopular,
  createTrending,
  type ItemCounter,
  byScoreThenId,
  seededRandom,
  topByScore,
  type SourceEvent,
} from "../actors/sources/index.js";
import type { EventType } from "../actors/contract/index.js";

/**
 * The serving read paths keep things between requests (neighbour lists per item, the best items
 * of the trending and popular counters, ALS top lists per user). Each must give what a source
 * that never served before gives on the same events: these tests feed one source, query it
 * between events (so its caches are warm), and compare with a fresh one fed the same prefix.
 */
const TYPES: EventType[] = ["view", "view", "view", "click", "cart", "purchase"];

function events(count: number, seed: number, o: { users: number; items: number }): SourceEvent[] {
  const rand = seededRandom(seed);
  const out: SourceEvent[] = [];
  let ts = Date.UTC(2026, 0, 1);
  for (let x = 0; x < count; x++) {
    // Skewed items (a few hot ones) and some events older than the newest: late ones do not
    // move the clock of answers, and must still change them.
    const item = Math.floor(o.items * rand() ** 3);
    ts += Math.floor(rand() * 20_000);
    out.push({
      u: `u${Math.floor(rand() * o.users)}`,
      i: `i${item}`,
      t: TYPES[Math.floor(rand() * TYPES.length)]!,
      ts: rand() < 0.2 ? ts - 600_000 : ts,
      c: `c${item % 7}`,
      r: -1,
    });
  }
  return out;
}

const SETTINGS: SourceSettings = {
  historyHalfLifeMs: 86_400_000,
  maxItemsPerUser: 40,
  covisit: { windowMs: 3_600_000, halfLifeMs: 7 * 86_400_000, k: 8, recentPerUser: 10 },
  trending: { halfLifeMs: 3_600_000, all: false },
  popularHalfLifeMs: Infinity,
  similarSeeds: 5,
  implicit: { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 3 },
};

describe("serving caches answer as a fresh source does", () => {
  it("topByScore is the first n of a full sort, ties by id included", () => {
    const rand = seededRandom(1);
    for (let round = 0; round < 200; round++) {
      const len = Math.floor(rand() * 300);
      // Few distinct scores: many ties at the cut.
      const list = Array.from({ length: len }, (_, x) => ({
        item: `i${Math.floor(rand() * 1000)}-${x}`,
        score: Math.floor(rand() * 8) / 4,
      }));
      const n = Math.floor(rand() * 40);
      expect(topByScore(list, n)).toEqual([...list].sort(byScoreThenId).slice(0, n));
    }
  });

  it("trending and popular: the kept best items are the full ranking's, after every event", () => {
    const evs = events(6000, 3, { users: 50, items: 3000 });
    // More items than the counter keeps ranked (1024), and filters that skip most of them.
    const counters = [createTrending(), createPopular((e) => e.t !== "view", 1_800_000)];
    const odd = (i: string) => Number(i.slice(1)) % 2 === 1;
    const rare = (i: string) => Number(i.slice(1)) > 900;
    const seen = new Set<string>();
    /** The definition: every item's count at `now`, best first (ties by id), filtered, n. */
    const bruteForce = (c: ItemCounter, now: number, n: number, keep?: (i: string) => boolean) =>
      [...seen]
        .map((item) => ({ item, score: c.score(item, now) }))
        .filter((x) => x.score > 0 && (!keep || keep(x.item)))
        .sort(byScoreThenId)
        .slice(0, n)
        .map((x) => [x.item, x.score]);
    let checked = 0;
    evs.forEach((e, x) => {
      seen.add(e.i);
      for (const c of counters) c.add(e);
      if (x % 250 !== 249) {
        for (const c of counters) c.top(e.ts, 10);
        return;
      }
      for (const c of counters)
        for (const [n, keep] of [
          [10, undefined],
          [200, odd],
          [50, rare],
        ] as const) {
          const got = c.top(e.ts, n, keep).map((x) => [x.item, x.score]);
          expect(got).toEqual(bruteForce(c, e.ts, n, keep));
          checked++;
        }
    });
    expect(checked).toBe(144);
  });

  it("co-visitation: an event changes the neighbours at once, even one that does not move the clock", () => {
    const evs = events(3000, 5, { users: 30, items: 200 });
    const opts = { preset: ECOMMERCE, k: 8, recentPerUser: 10 };
    const warm = createCovisit(opts);
    const now = evs.reduce((m, e) => Math.max(m, e.ts), 0) + 1;
    let changed = 0;
    evs.forEach((e, x) => {
      const before = warm.similar(e.i, now, 20);
      warm.candidates([{ item: e.i, score: 1, why: "" }], now, 20);
      warm.add(e);
      const after = warm.similar(e.i, now, 20);
      if (JSON.stringify(after) !== JSON.stringify(before)) changed++;
      if (x % 300 !== 299) return;
      const fresh = createCovisit(opts);
      for (const p of evs.slice(0, x + 1)) fresh.add(p);
      const seeds = [
        { item: e.i, score: 3, why: "" },
        { item: "i0", score: 2, why: "" },
        { item: "i1", score: 1, why: "" },
      ];
      expect(after).toEqual(fresh.similar(e.i, now, 20));
      expect(warm.candidates(seeds, now, 30)).toEqual(fresh.candidates(seeds, now, 30));
    });
    // Same `now` throughout: only the events can have changed the lists.
    expect(changed).toBeGreaterThan(1000);
  });

  it("the recommender's lists after each event and each new model equal a fresh recommender's", () => {
    const evs = events(2400, 9, { users: 40, items: 300 });
    const warm = createRecommender(ECOMMERCE, SETTINGS);
    let now = -1;
    let models = 0;
    evs.forEach((e, x) => {
      warm.add(e);
      now = Math.max(now, e.ts);
      for (const u of ["u1", "u2", "u3"]) warm.lists(u, now, 20);
      if (x % 600 === 599) {
        // A new model replaces the per-user ALS lists: the next answer comes from it.
        warm.setImplicit(trainAls(warm.implicitRatings(), SETTINGS.implicit!));
        models++;
      }
      if (x % 400 !== 399) return;
      // The same events and the same model at the same input point (users with events after it
      // are folded in), with nothing asked before.
      const fresh = createRecommender(ECOMMERCE, SETTINGS);
      const point = models * 600;
      for (const p of evs.slice(0, point)) fresh.add(p);
      if (models > 0) fresh.setImplicit(trainAls(fresh.implicitRatings(), SETTINGS.implicit!));
      for (const p of evs.slice(point, x + 1)) fresh.add(p);
      for (const u of ["u1", "u2", "u3", "u17", "nobody"]) {
        const skip = new Set(["i0", "i1", "i2"]);
        expect({ u, l: warm.lists(u, now, 20) }).toEqual({ u, l: fresh.lists(u, now, 20) });
        expect({ u, l: warm.lists(u, now, 20, skip) }).toEqual({
          u,
          l: fresh.lists(u, now, 20, skip),
        });
      }
    });
    expect(models).toBe(4);
  });

  it("a new ALS model changes a cached user's candidates", () => {
    const evs = events(2000, 13, { users: 40, items: 300 });
    const rec = createRecommender(ECOMMERCE, SETTINGS);
    for (const e of evs.slice(0, 1000)) rec.add(e);
    const first = trainAls(rec.implicitRatings(), SETTINGS.implicit!);
    rec.setImplicit(first);
    const now = evs[999]!.ts;
    const before = rec.lists("u1", now, 20).COLLABORATIVE;
    expect(rec.lists("u1", now, 20).COLLABORATIVE).toEqual(before);
    for (const e of evs.slice(1000)) rec.add(e);
    const second = trainAls(rec.implicitRatings(), SETTINGS.implicit!);
    rec.setImplicit(second);
    const after = rec.lists("u1", now, 20).COLLABORATIVE;
    expect(after).not.toEqual(before);
    // The served model keeps no user factors: u1's vector is solved from their row (item →
    // summed weight, in first-seen order as the matrix keeps it) against the new item factors.
    const row = new Map<string, number>();
    for (const e of evs) {
      const w = ECOMMERCE.weight(e);
      if (e.u === "u1" && w > 0) row.set(e.i, (row.get(e.i) ?? 0) + w);
    }
    const index = createAlsIndex(servedModel(second), { changedAt: () => 0, row: () => row });
    expect(after).toEqual(index.candidates("u1", 20));
  });
});
