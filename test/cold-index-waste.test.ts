import { describe, expect, it } from "vitest";
import { createColdIndex, WASTE_FACTOR } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";

/**
 * A map's cold-key buffers keep superseded values until a compaction, which
 * wasteful() asks for; keys rewritten often (a Zipf of users, as real traffic) kept the buffers
 * at up to twice their live records. Now at most 1.5 times (plus 256 KiB), checked after every
 * snapshot's delta as state/stage-state.ts adopts it.
 */
describe("the cold-key buffers' superseded values", () => {
  it("stay under 1.5x the live records after every delta, with Zipf rewrites", () => {
    expect(WASTE_FACTOR).toBeLessThanOrEqual(1.5);
    const idx = createColdIndex();
    const keys = 20_000;
    const value = new Uint8Array(30).fill(7);
    let seed = 3;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let pending: string[] = [];
    let worst = 0;
    let compactions = 0;
    const flush = () => {
      const { buf, at } = encodeSections([
        { name: "m", keys: pending, values: pending.map(() => value) },
      ]);
      idx.adopt(buf, at[0]!.start, at[0]!.end);
      if (idx.wasteful()) {
        idx.compact(10_000, 0);
        compactions++;
      }
      pending = [];
      worst = Math.max(worst, idx.bufferBytes() - 1.5 * idx.liveBytes());
    };
    for (let n = 0; n < keys + 200_000; n++) {
      pending.push(`u${n < keys ? n : Math.floor(keys * rand() ** 3)}`);
      if (pending.length === 1_000) flush();
    }
    expect(idx.count).toBe(keys);
    expect(compactions).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(1 << 18);
    // A compaction leaves only live records.
    idx.compact(10_000, 0);
    expect(idx.bufferBytes()).toBe(idx.liveBytes());
  });
});
