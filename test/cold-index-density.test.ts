import { describe, expect, it } from "vitest";
import { createColdIndex, grownSize, TAG_BYTES } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

/**
 * The cold-key index's table is 10 B a slot (it was 12 with each key's whole
 * 32-bit hash); sized in powers of two it was 3/8 to 3/4 full (125k keys, a 1M-user
 * partition of bench step 7, in 262,144 slots: 25 B of index per key). Any size now, 0.6 to 0.8
 * full, with the same keys and values found.
 */
const section = (keys: string[], values: (Uint8Array | undefined)[]) => {
  const { buf, at } = encodeSections([{ name: "m", keys, values }]);
  return { buf, start: at[0]!.start, end: at[0]!.end, count: keys.length };
};
const indexBytes = (idx: ReturnType<typeof createColdIndex>) => idx.bytes() - idx.bufferBytes();

describe("the cold-key index's table", () => {
  it("holds 125k keys in at most 17 B of index per key, grown or loaded", () => {
    const n = 125_000;
    const keys = Array.from({ length: n }, (_, x) => `u${100_000 + x}`);
    const v = new Uint8Array([1, 2, 3]);
    const grown = createColdIndex();
    for (let x = 0; x < n; x += 2_000) {
      const s = section(
        keys.slice(x, x + 2_000),
        keys.slice(x, x + 2_000).map(() => v),
      );
      grown.adopt(s.buf, s.start, s.end);
    }
    expect(grown.count).toBe(n);
    expect(indexBytes(grown) / n).toBeLessThanOrEqual(17);
    const loaded = createColdIndex();
    const steps = loaded.adoptAll([
      section(
        keys,
        keys.map(() => v),
      ),
    ]);
    while (!steps.next().done);
    loaded.fit();
    expect(indexBytes(loaded)).toBeLessThanOrEqual(indexBytes(grown));
    expect(indexBytes(loaded) / n).toBeLessThanOrEqual(17);
    expect(grownSize(n) * 10).toBe(indexBytes(grown));
  });

  it("finds what a Map finds after random puts, deletes, compactions and loads, at every size", () => {
    let seed = 9;
    const rand = (m: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % m) >>> 0;
    const model = new Map<string, number>();
    const idx = createColdIndex();
    const all: ReturnType<typeof section>[] = [];
    const valueOf = (c: { tag: number; buf: Buffer; start: number }) =>
      c.tag === TAG_BYTES ? c.buf[c.start]! : -1;
    for (let round = 0; round < 300; round++) {
      const keys: string[] = [];
      const values: (Uint8Array | undefined)[] = [];
      const range = 50 + round * 40;
      for (let x = 0; x < 200; x++) {
        const k = `k${rand(range)}${rand(7) === 0 ? "é" : ""}`;
        const del = rand(5) === 0;
        keys.push(k);
        values.push(del ? undefined : new Uint8Array([round & 0xff]));
        if (del) model.delete(k);
        else model.set(k, round & 0xff);
      }
      const s = section(keys, values);
      all.push(s);
      idx.adopt(s.buf, s.start, s.end);
      if (round % 37 === 36) idx.compact(1_000, 0);
      if (round % 50 === 49)
        for (const k of [...model.keys()].slice(0, 30)) {
          idx.delete(k);
          model.delete(k);
          const d = section([k], [undefined]);
          all.push(d);
        }
      expect(idx.count).toBe(model.size);
    }
    for (const [k, v] of model) expect(valueOf(idx.get(k)!), k).toBe(v);
    expect(idx.get("absent")).toBeUndefined();
    expect(new Set(idx.keys())).toEqual(new Set(model.keys()));
    // The same records loaded at once (a restart) give the same map.
    const loaded = createColdIndex();
    const steps = loaded.adoptAll(all);
    while (!steps.next().done);
    loaded.fit();
    expect(loaded.count).toBe(model.size);
    for (const [k, v] of model) expect(valueOf(loaded.get(k)!), k).toBe(v);
  });
});
