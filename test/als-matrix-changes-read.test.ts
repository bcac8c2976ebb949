import { describe, expect, it } from "vitest";
import { createRatingsBuilder, type KeyStore, type RatingRow } from "../actors/sources/index.js";

/**
 * A crossing reads the rows changed since the one before, to send them to the trainer. In a
 * stage's map a `get` keeps what it decodes until two snapshots have passed; after a quiet spell
 * every changed row is cold, so a crossing read that way held a partition's whole matrix of
 * changed rows decoded (bench step 7's heap at rest). It reads them with `peek`.
 */

/** Rows stored as JSON text, counting the reads that would keep a decoded value. */
function countingRows(): KeyStore<RatingRow> & { gets: number } {
  const m = new Map<string, string>();
  const decode = (k: string) => (m.has(k) ? (JSON.parse(m.get(k)!) as RatingRow) : undefined);
  const store = {
    gets: 0,
    get: (k: string) => {
      store.gets++;
      return decode(k);
    },
    peek: decode,
    set: (k: string, v: RatingRow) => void m.set(k, JSON.stringify(v)),
    delete: (k: string) => void m.delete(k),
    get size() {
      return m.size;
    },
    keys: () => m.keys(),
    *entries(): IterableIterator<[string, RatingRow]> {
      for (const k of m.keys()) yield [k, decode(k)!];
    },
  };
  return store;
}

describe("the rows a crossing sends", () => {
  it("are read without keeping them decoded, and are the same rows", () => {
    const rows = countingRows();
    const counted = createRatingsBuilder(
      { rows, items: new Map() },
      { hold: false, changesSince: 0 },
    );
    const plain = createRatingsBuilder(undefined, { hold: false, changesSince: 0 });
    const feed = (n: number, at: number) => {
      for (let u = 0; u < n; u++)
        for (const b of [counted, plain]) b.add(`u${u}`, `i${(u * 7 + at) % 13}`, 1, false, at);
    };
    feed(50, 1);
    expect(counted.takeChanges()).toEqual(plain.takeChanges());
    feed(30, 2);
    const gets = rows.gets;
    const delta = counted.takeChanges();
    expect(delta.users.length).toBe(30);
    expect(delta).toEqual(plain.takeChanges());
    expect(rows.gets - gets).toBe(0);
  });
});
