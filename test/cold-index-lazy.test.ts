import { describe, expect, it } from "vitest";
import { seededRandom } from "../actors/sources/index.js";
import { createColdIndex, type ColdIndex, type ColdSection } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

/**
 * A restart's bulk load may leave its records pending (ColdIndex.adoptAll with
 * `lazy`), each lookup placing its key's bucket first and settle() the rest later. Whatever runs
 * meanwhile (lookups, deletions, later sections adopted, a growth, a fit asked for) must see and
 * leave exactly what the eager load gives.
 */

const contents = (c: ColdIndex) =>
  new Map([...c.entries()].map(([k, v]) => [k, v.buf.toString("latin1", v.start, v.end)]));
const drain = (steps: Iterator<number>) => {
  while (steps.next().done !== true);
};
const value = (c: ColdIndex, k: string) => {
  const v = c.get(k);
  return v && v.buf.toString("latin1", v.start, v.end);
};

describe("a cold index loaded lazily", () => {
  const random = seededRandom(23);
  const key = (i: number) => (i % 13 === 0 ? `ü${i}-é` : `u${i}`);
  const sectionsOf = (count: number, keySpace: number): ColdSection[] => {
    const out: ColdSection[] = [];
    for (let s = 0; s < count; s++) {
      const keys: string[] = [];
      const values: (string | Uint8Array | undefined)[] = [];
      const n = 1 + Math.floor(random() * 500);
      for (let x = 0; x < n; x++) {
        keys.push(key(Math.floor(random() * keySpace)));
        const r = random();
        values.push(r < 0.2 ? undefined : r < 0.6 ? `{"s":${s},"x":${x}}` : new Uint8Array([s, x]));
      }
      const { buf, at } = encodeSections([{ name: "m", keys, values }]);
      out.push({ buf, start: at[0]!.start, end: at[0]!.end, count: at[0]!.count });
    }
    return out;
  };

  it("reads, deletes and adopts like the eager load while records are pending, then holds the same", () => {
    for (const [count, keySpace] of [
      [1, 40],
      [30, 2_000],
      [150, 30_000],
    ] as const) {
      const sections = sectionsOf(count, keySpace);
      const total = sections.reduce((a, s) => a + s.count, 0);
      const eager = createColdIndex();
      let steps = 0;
      for (const n of eager.adoptAll(sections)) steps += n;
      expect(steps).toBe(2 * total);
      const lazy = createColdIndex();
      steps = 0;
      for (const n of lazy.adoptAll(sections, true)) steps += n;
      // Not even partitioned: no record read, no table yet (only the sections' buffers held).
      expect(steps).toBe(0);
      expect(lazy.bytes()).toBe(lazy.bufferBytes());
      expect(lazy.pending).toBe(total);
      expect(lazy.empty).toBe(false);
      for (const c of [eager, lazy]) c.fit(); // a lazy index fits once every record is placed
      // Lookups of some keys (present and absent) place only what they need.
      for (let i = 0; i < keySpace; i += 17) {
        expect(lazy.has(key(i))).toBe(eager.has(key(i)));
        expect(value(lazy, key(i))).toBe(value(eager, key(i)));
      }
      if (total > 1_000) expect(lazy.pending).toBeGreaterThan(0);
      // Deletions, and a later section with puts and deletions, while records are pending.
      for (let i = 5; i < keySpace; i += 29) expect(lazy.delete(key(i))).toBe(eager.delete(key(i)));
      const later = encodeSections([
        {
          name: "m",
          keys: [key(1), key(2), key(3), `new-${keySpace}`],
          values: ['"later"', undefined, new Uint8Array([9]), '"n"'],
        },
      ]);
      for (const c of [eager, lazy]) c.adopt(later.buf, later.at[0]!.start, later.at[0]!.end);
      // Partly settled in the background's slices, the rest by what needs every key.
      lazy.settle(Math.floor(total / 3));
      for (let i = 0; i < keySpace; i += 7) expect(value(lazy, key(i))).toBe(value(eager, key(i)));
      expect(lazy.count).toBe(eager.count);
      expect(lazy.pending).toBe(0);
      expect(contents(lazy)).toEqual(contents(eager));
      // The same table and buffers once settled (superseded buffers dropped, the fit done; the
      // eager index, fitted before the later section, may have grown for it since).
      expect(lazy.bytes()).toBe(eager.bytes());
      expect(lazy.growths).toBeLessThanOrEqual(eager.growths);
    }
  });

  // A map no answer reads (covisit's users' last items) is partitioned in the background's
  // slices, after a restart's first answers; anything that needs a record meanwhile finishes it.
  it("partitions in settle()'s steps, and finishes the partition for a lookup that comes meanwhile", () => {
    const sections = sectionsOf(60, 8_000);
    const total = sections.reduce((a, s) => a + s.count, 0);
    const eager = createColdIndex();
    drain(eager.adoptAll(sections));
    const lazy = createColdIndex();
    drain(lazy.adoptAll(sections, true));
    // One small step sizes the table and reads one section: every record still pending.
    expect(lazy.settle(1)).toBe(total);
    // A lookup now: the partition is finished, then only its key's bucket placed.
    for (let i = 0; i < 8_000; i += 97) expect(value(lazy, key(i))).toBe(value(eager, key(i)));
    const left = lazy.pending;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(total);
    // The background's slices place the rest.
    const again = createColdIndex();
    drain(again.adoptAll(sections, true));
    let slices = 0;
    while (again.settle(500) > 0) slices++;
    expect(slices).toBeGreaterThan(sections.length / 2);
    for (const c of [lazy, again]) {
      expect(c.count).toBe(eager.count);
      expect(contents(c)).toEqual(contents(eager));
    }
    again.fit();
    eager.fit();
    expect(again.bytes()).toBe(eager.bytes());
  });

  it("grows past its reservation with pending records, and compacts them", () => {
    const sections = sectionsOf(40, 5_000);
    const eager = createColdIndex();
    drain(eager.adoptAll(sections));
    const lazy = createColdIndex();
    drain(lazy.adoptAll(sections, true));
    // Many new keys adopted at once: the table grows (placing every pending record first).
    const keys = Array.from({ length: 20_000 }, (_, i) => `g${i}`);
    const grown = encodeSections([{ name: "m", keys, values: keys.map(() => '"g"') }]);
    for (const c of [eager, lazy]) c.adopt(grown.buf, grown.at[0]!.start, grown.at[0]!.end);
    expect(lazy.pending).toBe(0);
    expect(contents(lazy)).toEqual(contents(eager));
    const again = createColdIndex();
    drain(again.adoptAll(sections, true));
    expect(again.wasteful()).toBe(false);
    const chunks = again.compact(1_000, 0);
    expect(chunks.reduce((a, c) => a + c.count, 0)).toBe(eager.count - 20_000);
    for (const c of chunks) expect(c.buf.length).toBeGreaterThan(0);
    for (let i = 0; i < 5_000; i += 3) expect(value(again, key(i))).toBe(value(eager, key(i)));
  });
});
