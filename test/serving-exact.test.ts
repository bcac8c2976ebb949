import { describe, expect, it } from "vitest";
import {
  createAlsIndex,
  memStore,
  createTrending,
  mergeCounters,
  type ItemCounter,
  choleskySolve,
  IMPLICIT_DEFAULTS,
  type AlsModel,
  byScoreThenId,
  nthBest,
  nthLargest,
  seededRandom,
  topByScore,
} from "../actors/sources/index.js";

const T0 = Date.UTC(2024, 0, 1);

/**
 * The catalogue scan as it was before scores were computed two items at a time and selected
 * with a quickselect (als-model.ts at e624a65), kept here as the definition the scan must
 * match bit for bit: the same items in the same order with the same scores, ties included.
 */
function scanBefore(model: AlsModel, u: Float32Array, n: number, keep?: (i: string) => boolean) {
  const k = model.settings.rank;
  const V = Float64Array.from(model.V);
  const items = model.items;
  const uv = Float64Array.from(u);
  const k4 = k - (k % 4);
  const idx = new Int32Array(n);
  const val = new Float64Array(n);
  let size = 0;
  for (let j = 0; j < items.length; j++) {
    const o = j * k;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let f = 0;
    for (; f < k4; f += 4) {
      s0 += uv[f]! * V[o + f]!;
      s1 += uv[f + 1]! * V[o + f + 1]!;
      s2 += uv[f + 2]! * V[o + f + 2]!;
      s3 += uv[f + 3]! * V[o + f + 3]!;
    }
    for (; f < k; f++) s0 += uv[f]! * V[o + f]!;
    const s = s0 + s1 + (s2 + s3);
    if (size === n && (s < val[n - 1]! || (s === val[n - 1]! && items[j]! > items[idx[n - 1]!]!)))
      continue;
    if (keep && !keep(items[j]!)) continue;
    let at = size < n ? size++ : n - 1;
    while (
      at > 0 &&
      (s > val[at - 1]! || (s === val[at - 1]! && items[j]! < items[idx[at - 1]!]!))
    ) {
      idx[at] = idx[at - 1]!;
      val[at] = val[at - 1]!;
      at--;
    }
    idx[at] = j;
    val[at] = s;
  }
  return Array.from({ length: size }, (_, x) => ({ item: items[idx[x]!]!, score: val[x]! }));
}

/**
 * A model with `items` items at rank `rank`: random factors, and many exact ties: every third
 * item repeats an earlier item's factors (the same score for every user), some items are all
 * zero, and item ids are shuffled so ties must be broken by id, not by position.
 */
function tiedModel(items: number, rank: number, users: number, seed: number): AlsModel {
  const rand = seededRandom(seed);
  const V = new Float32Array(items * rank);
  for (let j = 0; j < items; j++)
    for (let f = 0; f < rank; f++) {
      if (j % 3 === 2) V[j * rank + f] = V[Math.floor(rand() * j) * rank + f]!;
      else if (j % 17 === 5) V[j * rank + f] = 0;
      else V[j * rank + f] = rand() - 0.3;
    }
  const U = new Float32Array(users * rank);
  for (let x = 0; x < U.length; x++) U[x] = rand() - 0.3;
  // Zero users score every item 0: the whole catalogue ties.
  U.fill(0, 0, rank);
  const ids = Array.from({ length: items }, (_, j) => `i${(j * 7919) % (items * 3)}`);
  return {
    settings: { ...IMPLICIT_DEFAULTS, rank },
    users: Array.from({ length: users }, (_, x) => `u${x}`),
    items: ids,
    U,
    V,
  };
}

const bits = (list: { item: string; score: number }[]) =>
  list.map((c) => `${c.item}:${new Uint8Array(new Float64Array([c.score]).buffer).join(".")}`);

describe("the ALS catalogue scan", () => {
  for (const [items, rank] of [
    [401, 8],
    [400, 10],
    [257, 64],
    [3, 5],
    [1, 4],
  ] as const)
    it(`gives the same list, bit for bit, as the one-at-a-time scan (${items} items, rank ${rank})`, () => {
      const model = tiedModel(items, rank, 12, items + rank);
      const idx = createAlsIndex(model);
      for (let x = 0; x < 12; x++) {
        const user = `u${x}`;
        const u = idx.vector(user)!;
        // Every depth the index asks for (the cache's 128, a request's 10 or 200), and a
        // filter that leaves out most of the best items.
        const best = new Set(scanBefore(model, u, 60).map((c) => c.item));
        const keep = (i: string) => !best.has(i) || i.endsWith("3");
        for (const n of [1, 10, 128, 200, items, items + 5]) {
          expect(bits(idx.candidates(user, n))).toEqual(bits(scanBefore(model, u, n)));
          expect(bits(idx.candidates(user, n, keep))).toEqual(bits(scanBefore(model, u, n, keep)));
        }
      }
    });

  it("finds the n-th largest value as a full sort does", () => {
    const rand = seededRandom(3);
    for (let round = 0; round < 200; round++) {
      const len = 1 + Math.floor(rand() * 300);
      // Few distinct values in half the rounds: long runs of ties around the pivot.
      const distinct = round % 2 === 0 ? 4 : 1e9;
      const a = Float64Array.from({ length: len }, () => Math.floor(rand() * distinct) - 2);
      const sorted = Float64Array.from(a).sort().reverse();
      const n = 1 + Math.floor(rand() * len);
      expect(nthLargest(Float64Array.from(a), n)).toBe(sorted[n - 1]);
    }
  });
});

/** The Cholesky solve one row at a time (als.ts at e624a65): the definition it must match. */
function choleskyBefore(A: Float64Array, b: Float64Array, k: number, x: Float64Array) {
  for (let j = 0; j < k; j++) {
    let d = A[j * k + j]!;
    for (let m = 0; m < j; m++) d -= A[j * k + m]! * A[j * k + m]!;
    const l = Math.sqrt(Math.max(d, 1e-12));
    A[j * k + j] = l;
    for (let i = j + 1; i < k; i++) {
      let s = A[i * k + j]!;
      for (let m = 0; m < j; m++) s -= A[i * k + m]! * A[j * k + m]!;
      A[i * k + j] = s / l;
    }
  }
  for (let i = 0; i < k; i++) {
    let s = b[i]!;
    for (let m = 0; m < i; m++) s -= A[i * k + m]! * x[m]!;
    x[i] = s / A[i * k + i]!;
  }
  for (let i = k - 1; i >= 0; i--) {
    let s = x[i]!;
    for (let m = i + 1; m < k; m++) s -= A[m * k + i]! * x[m]!;
    x[i] = s / A[i * k + i]!;
  }
}

describe("the fold-in's Cholesky solve", () => {
  it("gives the same factor and solution, bit for bit, as one row at a time", () => {
    const rand = seededRandom(5);
    // Every remainder of rows left after groups of four, the fold-in's rank 64 among them.
    for (const k of [1, 2, 3, 4, 5, 6, 7, 10, 63, 64]) {
      for (let round = 0; round < 5; round++) {
        const B = Float64Array.from({ length: k * k }, () => rand() - 0.5);
        const A = new Float64Array(k * k);
        for (let i = 0; i < k; i++)
          for (let j = 0; j < k; j++) {
            let s = i === j ? 0.1 : 0;
            for (let m = 0; m < k; m++) s += B[i * k + m]! * B[j * k + m]!;
            A[i * k + j] = s;
          }
        const b = Float64Array.from({ length: k }, () => rand());
        const [A1, A2] = [A.slice(), A.slice()];
        const [x1, x2] = [new Float64Array(k), new Float64Array(k)];
        choleskySolve(A1, b, k, x1);
        choleskyBefore(A2, b, k, x2);
        expect([...x1].map((v) => v.toString(16))).toEqual([...x2].map((v) => v.toString(16)));
        expect(A1).toEqual(A2);
      }
    }
  });
});

describe("selection of the best scores", () => {
  it("finds the bar a full typed-array sort finds, with ties, zeros of both signs and NaN", () => {
    const rand = seededRandom(9);
    for (let round = 0; round < 300; round++) {
      const len = 1 + Math.floor(rand() * 200);
      const a = Float64Array.from({ length: len }, () => {
        const r = rand();
        return r < 0.1 ? 0 : r < 0.2 ? -0 : r < 0.22 && round % 3 === 0 ? NaN : Math.floor(r * 9);
      });
      const n = 1 + Math.floor(rand() * len);
      const want = a.slice().sort()[len - n]!;
      const got = nthBest(a.slice(), n);
      // The bar keeps the same values (0 and -0 keep the same ones).
      if (Number.isNaN(want)) expect(got).toBeNaN();
      else expect(got === want).toBe(true);
    }
  });

  it("keeps the same first n as a full sort, ties by id", () => {
    const rand = seededRandom(13);
    for (let round = 0; round < 100; round++) {
      const list = Array.from({ length: 1 + Math.floor(rand() * 150) }, (_, x) => ({
        item: `i${Math.floor(rand() * 1e6)}-${x}`,
        score: Math.floor(rand() * 6) / 2,
      }));
      const n = 1 + Math.floor(rand() * 40);
      expect(topByScore(list, n)).toEqual([...list].sort(byScoreThenId).slice(0, n));
    }
  });
});

describe("trending and popular top lists", () => {
  it("score each item as its stored count does, through rebases and a load of the store", () => {
    const rand = seededRandom(21);
    const raw = memStore<number>();
    const anchors = memStore<number>();
    const store = { raw, anchors, anchorKey: "trending" };
    const live = createTrending({ halfLifeMs: 60_000, store });
    let ts = T0;
    const check = (c: ItemCounter, now: number) => {
      for (const n of [1, 10, 100, 2000]) {
        const got = c.top(now, n);
        expect(got.length).toBe(Math.min(n, c.items));
        for (const x of got) expect(Object.is(x.score, c.score(x.item, now))).toBe(true);
      }
    };
    for (let x = 0; x < 20_000; x++) {
      // Jumps of up to 200 half-lives now and then: rebases (every raw count rescaled).
      ts += x % 2000 === 1999 ? Math.floor(rand() * 12_000_000) : Math.floor(rand() * 500);
      live.add({
        u: "u",
        i: `i${Math.floor(Math.pow(rand(), 3) * 1500)}`,
        t: rand() < 0.7 ? "view" : "click",
        ts,
        c: "",
        r: -1,
      });
      if (x % 997 === 0) check(live, ts + 1000);
    }
    check(live, ts);
    // A counter over a loaded store (a restart, a replica) ranks from the stored counts.
    check(createTrending({ halfLifeMs: 60_000, store }), ts + 5);
  });

  it("split over item partitions and read together, give one counter's lists and scores, bit for bit", () => {
    for (const [halfLifeMs, seed] of [
      [60_000, 5],
      [Infinity, 6],
    ] as const) {
      const rand = seededRandom(seed);
      const P = 4;
      const one = createTrending({ halfLifeMs });
      const parts = Array.from({ length: P }, () => createTrending({ halfLifeMs }));
      const partOf = (item: string) => Number(item.slice(1)) % P;
      const merged = mergeCounters(parts, partOf);
      let ts = T0;
      const check = (now: number) => {
        for (const n of [1, 10, 100, 3000]) {
          const a = one.top(now, n);
          const b = merged.top(now, n);
          expect(b.map((x) => x.item)).toEqual(a.map((x) => x.item));
          b.forEach((x, k) => expect(Object.is(x.score, a[k]!.score)).toBe(true));
          const odd = (item: string) => item.endsWith("7");
          expect(merged.top(now, n, odd)).toEqual(one.top(now, n, odd));
        }
        for (let k = 0; k < 50; k++) {
          const item = `i${Math.floor(rand() * 1600)}`;
          expect(Object.is(merged.score(item, now), one.score(item, now))).toBe(true);
        }
        expect(merged.items).toBe(one.items);
      };
      for (let x = 0; x < 20_000; x++) {
        // Jumps of up to 700 half-lives now and then (the anchor moves on by one or more lattice
        // steps, in some partitions later than in others), and events up to 8 half-lives late.
        ts += x % 1500 === 1499 ? Math.floor(rand() * 42_000_000) : Math.floor(rand() * 500);
        const e = {
          u: "u",
          i: `i${Math.floor(Math.pow(rand(), 3) * 1500)}`,
          t: rand() < 0.7 ? ("view" as const) : ("click" as const),
          ts: rand() < 0.1 ? ts - Math.floor(rand() * 480_000) : ts,
          c: "",
          r: -1,
        };
        one.add(e);
        parts[partOf(e.i)]!.add(e);
        if (x % 997 === 0) check(ts + 1000);
      }
      check(ts);
      check(ts + 3_600_000);
    }
  });
});
