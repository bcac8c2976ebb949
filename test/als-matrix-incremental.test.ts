import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  ratingsFromStores,
  type RatingRow,
  type RatingsStores,
  memStore,
  type KeyStore,
  seededRandom,
} from "../actors/sources/index.js";

/**
 * The ALS matrix is kept up to date as rows change (als-matrix-rows.ts), not built from every
 * stored row at each training. After any mix of summed and replaced values, new users and items,
 * rows that outgrow their slots, marks and restores, it must be the matrix built from the stored
 * rows alone, bit for bit (the model is state: a replay must train the same one).
 */

/**
 * Stores whose rows count full scans (a build from the stored rows reads every row) and reads of
 * their size (a lazily indexed map's size indexes every key).
 */
function countingStores(from?: RatingsStores) {
  const rows = new Map<string, RatingRow>();
  for (const [u, r] of from?.rows.entries() ?? []) rows.set(u, r.slice());
  const scans = { n: 0, sizes: 0 };
  const counted: KeyStore<RatingRow> = {
    get: (k) => rows.get(k),
    set: (k, v) => void rows.set(k, v),
    delete: (k) => rows.delete(k),
    get size() {
      scans.sizes++;
      return rows.size;
    },
    keys: () => rows.keys(),
    entries: () => {
      scans.n++;
      return rows.entries();
    },
  };
  const items = memStore<number>();
  for (const [i, x] of from?.items.entries() ?? []) items.set(i, x);
  const marked = memStore<RatingRow | { users: number; items: number }>();
  for (const [k, v] of from?.marked?.entries() ?? [])
    marked.set(k, Array.isArray(v) ? v.slice() : { ...v });
  const stores: RatingsStores = { rows: counted, items, marked };
  return { stores, scans };
}

/** Adds that grow rows past their slots (a few heavy users), sum and replace, new ids. */
function adder(seed: number) {
  const random = seededRandom(seed);
  let at = 0;
  return (b: ReturnType<typeof createRatingsBuilder>, n: number, users: number, items: number) => {
    for (let e = 0; e < n; e++) {
      const heavy = random() < 0.2;
      const u = heavy ? Math.floor(random() * 5) : Math.floor(random() * users);
      const i = Math.floor(random() * (heavy ? 1 : random()) * items);
      const v = random() < 0.5 ? 1 + Math.floor(random() * 5) : Math.floor(random() * 10) / 3;
      b.add(`u${u}`, `i${i}`, v, random() < 0.3, ++at);
    }
  };
}

describe("the incrementally kept ALS matrix", () => {
  it("equals the matrix built from the stored rows, across adds, marks and a restore", () => {
    const { stores, scans } = countingStores();
    const b = createRatingsBuilder(stores);
    const add = adder(11);
    const same = (x: ReturnType<typeof createRatingsBuilder>, s: RatingsStores) => {
      const before = scans.n;
      const built = x.build();
      const marked = x.marks().map((c) => x.buildAt(c));
      const scanned = scans.n - before;
      expect(built).toEqual(ratingsFromStores(s));
      expect(marked).toEqual(x.marks().map((c) => ratingsFromStores(s, c)));
      expect(x.nnz).toBe(built.userCols.length);
      return scanned;
    };
    add(b, 3_000, 400, 300);
    expect(same(b, stores)).toBe(0); // no stored row read: the matrix was kept as they changed
    b.mark(0);
    add(b, 2_000, 500, 400); // rows changed after the point: their marked copies count
    b.mark(1);
    add(b, 1_000, 520, 420); // and after a second mark: each mark's matrix is its own
    expect(b.marks()).toEqual([0, 1]);
    expect(same(b, stores)).toBe(0);

    // Restored from a snapshot of the stores (a mark pending): its first build reads the rows
    // once, then it keeps its matrix as the original does.
    const restored = countingStores(stores);
    const r = createRatingsBuilder(restored.stores);
    expect(r.build()).toEqual(b.build());
    expect(restored.scans.n).toBe(1);
    const addB = adder(12);
    const addR = adder(12);
    for (let step = 0; step < 6; step++) {
      addB(b, 700, 600 + step * 50, 450);
      addR(r, 700, 600 + step * 50, 450);
      if (step === 2) {
        b.dropBefore(1);
        r.dropBefore(1);
      }
      if (step === 3) {
        b.dropBefore(Infinity);
        r.dropBefore(Infinity);
      }
      if (step >= 4) {
        b.mark(step);
        r.mark(step);
      }
      expect(same(b, stores)).toBe(0);
      const scansBefore = restored.scans.n;
      expect(r.build()).toEqual(b.build());
      expect(r.marks()).toEqual(b.marks());
      for (const c of b.marks()) expect(r.buildAt(c)).toEqual(b.buildAt(c));
      expect(restored.scans.n).toBe(scansBefore);
      expect(ratingsFromStores(restored.stores)).toEqual(ratingsFromStores(stores));
    }
    // The heavy users' rows outgrew their slots many times over (moves and compactions).
    expect(Math.max(...[0, 1, 2, 3, 4].map((u) => b.row(`u${u}`)!.size))).toBeGreaterThan(128);
  });

  it("a restored builder does not count its rows when created (a lazily indexed map's size indexes every key)", () => {
    const { stores } = countingStores();
    const b = createRatingsBuilder(stores);
    adder(13)(b, 500, 100, 80);
    const restored = countingStores(stores);
    const r = createRatingsBuilder(restored.stores);
    expect(restored.scans.sizes).toBe(0);
    // Nothing lost by not asking: its first build reads the stored rows, as before.
    expect(r.build()).toEqual(b.build());
    // A builder on empty stores still keeps its matrix from its first add (no row is read).
    const fresh = countingStores();
    const f = createRatingsBuilder(fresh.stores);
    adder(14)(f, 300, 50, 40);
    const built = f.build();
    expect(fresh.scans.n).toBe(0);
    expect(built).toEqual(ratingsFromStores(fresh.stores));
  });

  it("builds from the stored rows when their first-seen orders are not 0..n-1", () => {
    const rows = memStore<RatingRow>();
    rows.set("a", [5, 1, "x", 2]);
    rows.set("b", [2, 2, "y", 1, "x", 3]);
    const items = memStore<number>();
    items.set("x", 0);
    items.set("y", 1);
    const b = createRatingsBuilder({ rows, items, marked: memStore() });
    b.add("c", "z", 4, false, 3);
    b.add("a", "y", 1, false, 4);
    const r = b.build();
    expect(r).toEqual(ratingsFromStores({ rows, items }));
    expect(r.users).toEqual(["b", "c", "a"]);
  });
});
