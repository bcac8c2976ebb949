import { describe, expect, it } from "vitest";
import {
  createCovisit,
  type SimilarItemsSource,
  ECOMMERCE,
  byScoreThenId,
  seededRandom,
  type Scored,
} from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";

const T0 = Date.UTC(2024, 0, 1);
const K = 50;

/**
 * A user's co-visitation candidates as they were computed before (covisit.ts at e624a65): each
 * seed's first K neighbours as `similar` ranks them, summed into a Map by item, ranked, the
 * first n explained. The definition the faster path must match bit for bit.
 */
function candidatesBefore(c: SimilarItemsSource, seeds: Scored[], now: number, n: number) {
  const top = seeds[0]?.score ?? 0;
  if (top <= 0) return [];
  const acc = new Map<string, { item: string; score: number; best: number; from: string }>();
  for (const seed of seeds) {
    const sw = seed.score / top;
    for (const nb of c.similar(seed.item, now, K)) {
      const v = sw * nb.score;
      const a = acc.get(nb.item);
      if (!a) acc.set(nb.item, { item: nb.item, score: v, best: v, from: seed.item });
      else {
        a.score += v;
        if (v > a.best) {
          a.best = v;
          a.from = seed.item;
        }
      }
    }
  }
  return [...acc.values()]
    .sort(byScoreThenId)
    .slice(0, n)
    .map((a) => ({ item: a.item, score: a.score, why: `viewed together with ${a.from}` }));
}

/**
 * Random sessions, and two hubs: 80 users each touched "hub" and one of t0..t79 at one instant,
 * 80 others "hub2" and the same t's, so each hub has 80 neighbours of one score (50 kept, by id)
 * and the two hubs give each t the same share (the first seed explains it).
 */
function events(seed: number): SourceEvent[] {
  const rand = seededRandom(seed);
  const out: SourceEvent[] = [];
  const types = ["view", "view", "view", "click", "cart", "purchase"] as const;
  let ts = T0;
  for (let x = 0; x < 6000; x++) {
    ts += Math.floor(rand() * 20_000);
    const item = Math.floor(Math.pow(rand(), 2) * 400);
    out.push({
      u: `u${Math.floor(rand() * 150)}`,
      i: `i${item}`,
      t: types[Math.floor(rand() * types.length)]!,
      ts,
      c: "",
      r: -1,
    });
  }
  for (let x = 0; x < 80; x++)
    for (const hub of ["hub", "hub2"]) {
      out.push({ u: `${hub}-${x}`, i: hub, t: "view", ts, c: "", r: -1 });
      out.push({ u: `${hub}-${x}`, i: `t${x}`, t: "view", ts, c: "", r: -1 });
    }
  return out;
}

const bits = (list: Scored[]) =>
  list.map((c) => `${c.item}|${c.why}|${new Float64Array([c.score])[0]!.toString(16)}`);

describe("co-visitation candidates", () => {
  it("are the same, bit for bit, as summing each seed's ranked list (ties included)", () => {
    for (const seed of [1, 2]) {
      const evs = events(seed);
      const now = evs[evs.length - 1]!.ts + 60_000;
      const mine = createCovisit({ preset: ECOMMERCE });
      const theirs = createCovisit({ preset: ECOMMERCE });
      for (const e of evs) {
        mine.add(e);
        theirs.add(e);
      }
      const rand = seededRandom(seed + 10);
      const seedSets: Scored[][] = [
        // The tied hubs, alone and with t's as seeds.
        [
          { item: "hub", score: 2, why: "" },
          { item: "hub2", score: 2, why: "" },
        ],
        [
          { item: "hub2", score: 3, why: "" },
          { item: "t3", score: 2, why: "" },
          { item: "hub", score: 1, why: "" },
        ],
      ];
      for (let s = 0; s < 40; s++)
        seedSets.push(
          Array.from({ length: 1 + Math.floor(rand() * 20) }, (_, x) => ({
            item: `i${Math.floor(rand() * 60)}`,
            score: 20 - x + (x % 3 === 0 ? 0 : 0.5),
            why: "",
          })).filter((v, x, a) => a.findIndex((w) => w.item === v.item) === x),
        );
      for (const seeds of seedSets)
        for (const n of [1, 10, 100, 1000]) {
          const want = bits(candidatesBefore(theirs, seeds, now, n));
          // Twice: computed, then from what the first call kept.
          expect(bits(mine.candidates(seeds, now, n))).toEqual(want);
          expect(bits(mine.candidates(seeds, now, n))).toEqual(want);
        }
      // Ranked lists kept by `similar` (GetSimilarItems) are read as they are.
      for (const seeds of seedSets) {
        for (const s of seeds) mine.similar(s.item, now + 1, K);
        expect(bits(mine.candidates(seeds, now + 1, 100))).toEqual(
          bits(candidatesBefore(theirs, seeds, now + 1, 100)),
        );
      }
      // A new event changes the graph: nothing kept is read after it.
      const late = { u: "u1", i: "i1", t: "cart" as const, ts: now, c: "", r: -1 };
      mine.add(late);
      theirs.add(late);
      expect(bits(mine.candidates(seedSets[3]!, now + 1, 100))).toEqual(
        bits(candidatesBefore(theirs, seedSets[3]!, now + 1, 100)),
      );
    }
  });
});
