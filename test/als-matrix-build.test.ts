import { getHeapSpaceStatistics } from "node:v8";
import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  type RatingRow,
  memStore,
  type KeyStore,
  seededRandom,
} from "../actors/sources/index.js";

/**
 * Building the matrix a training needs decodes each rating row once and drops
 * it, its entries going straight into typed arrays; it used to hold every decoded row, a tuple
 * per user and a pair per entry until the end (~150 B per user of garbage at each training,
 * which set the heap's high-water mark at bench step 7's measures). Same matrix as before.
 */

/** The matrix as the builder made it before (a sort of decoded rows): the reference. */
function reference(rows: [string, RatingRow][], items: Map<string, number>, nItems: number) {
  const byOrder = [...rows].sort((a, b) => (a[1][0] as number) - (b[1][0] as number));
  const users = byOrder.map(([u]) => u);
  const cols: number[][] = byOrder.map(([, row]) => {
    const e: [number, number][] = [];
    for (let q = 2; q < row.length; q += 2)
      e.push([items.get(row[q] as string)!, Math.fround(row[q + 1] as number)]);
    return e.sort((a, b) => a[0] - b[0]).flat();
  });
  return { users, cols, nItems };
}

/** A store whose scans decode every row afresh (as a text map's peek does). */
function textRows(): KeyStore<RatingRow> {
  const m = new Map<string, string>();
  return {
    get: (k) => (m.has(k) ? (JSON.parse(m.get(k)!) as RatingRow) : undefined),
    set: (k, v) => void m.set(k, JSON.stringify(v)),
    delete: (k) => m.delete(k),
    get size() {
      return m.size;
    },
    keys: () => m.keys(),
    *entries() {
      for (const [k, v] of m) yield [k, JSON.parse(v) as RatingRow];
    },
  };
}

function fill(n: number, seed: number) {
  const rand = seededRandom(seed);
  const rows = textRows();
  const items = memStore<number>();
  const b = createRatingsBuilder({ rows, items, marked: memStore() });
  for (let e = 0; e < n * 3; e++) {
    const u = e < n ? e : Math.floor(rand() * n);
    b.add(`user-${u}`, `item-${Math.floor(rand() * rand() * 500)}`, 1 + Math.floor(rand() * 3));
  }
  return { b, rows, items };
}

describe("the ALS matrix", () => {
  it("is the matrix the sort of decoded rows made, marked point included", () => {
    const { b, rows, items } = fill(3_000, 5);
    const check = (r: ReturnType<typeof b.build>, want: ReturnType<typeof reference>) => {
      expect(r.users).toEqual(want.users);
      expect(r.items.length).toBe(want.nItems);
      for (let u = 0; u < r.users.length; u++) {
        const got: number[] = [];
        for (let q = r.userPtr[u]!; q < r.userPtr[u + 1]!; q++)
          got.push(r.userCols[q]!, r.userVals[q]!);
        expect(got).toEqual(want.cols[u]);
      }
    };
    const itemMap = () => new Map(items.entries());
    check(b.build(), reference([...rows.entries()], itemMap(), items.size));
    b.mark(0);
    const atMark = [...rows.entries()].map(([u, r]) => [u, r.slice()] as [string, RatingRow]);
    const nItems = items.size;
    for (let e = 0; e < 2_000; e++) b.add(`user-${e % 3_500}`, `item-${600 + (e % 50)}`, 2);
    check(b.buildAt(0)!, reference(atMark, itemMap(), nItems));
  });

  it("holds no decoded row while it builds: the old space grows by the ids, not ~150 B/user", () => {
    const n = 100_000;
    const { b } = fill(n, 9);
    const old = () =>
      getHeapSpaceStatistics().find((s) => s.space_name === "old_space")!.space_used_size;
    b.build(); // warm: code and the items' map
    const before = old();
    const r = b.build();
    const grew = old() - before;
    console.log(
      `old space +${Math.round(grew / n)} B/user while building (${r.users.length} users)`,
    );
    // The users' id strings and their array (~40 B/user) are the matrix's own.
    expect(grew / n).toBeLessThan(90);
  });
});
