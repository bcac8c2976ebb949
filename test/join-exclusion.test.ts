import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { joinCandidates, createPopularityTable } from "../actors/stages/index.js";

describe("joinCandidates excludes recent purchases the same way for any purchase order", () => {
  it("gives the same candidates for a purchases list sorted by item (binary search) and shuffled", () => {
    const cats = ["a", "b", "c"];
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            item: fc.stringMatching(/^p[0-9]{1,2}$/),
            category: fc.constantFrom(...cats),
            purchases: fc.integer({ min: 1, max: 6 }),
          }),
          { maxLength: 80 },
        ),
        fc.uniqueArray(fc.stringMatching(/^p[0-9]{1,2}$/), { minLength: 5, maxLength: 40 }),
        fc.array(fc.integer({ min: 500, max: 1500 }), { minLength: 40, maxLength: 40 }),
        fc.integer({ min: 1, max: 12 }),
        (rows, bought, ends, limit) => {
          const table = createPopularityTable();
          for (const r of rows) table.apply({ ...r, brand: "", avgPrice: 0, wm: 0 });
          const pur = bought.map((i, k) => [i, ends[k]!] as [string, number]);
          const sorted = [...pur].sort((x, y) => (x[0] < y[0] ? -1 : 1));
          const shuffled = [...sorted.slice(1), sorted[0]!];
          const top: [string, number][] = [
            ["a", 3],
            ["b", 2],
            ["c", 1],
          ];
          const run = (p: [string, number][], l?: number) =>
            joinCandidates({ u: "u", top, pur: p, wm: 1000 }, table, 1000, 300, l).map((c) => [
              c.row.item,
              c.score,
            ]);
          expect(run(sorted)).toEqual(run(shuffled));
          expect(run(sorted, limit).slice(0, limit)).toEqual(run(shuffled).slice(0, limit));
          // Nothing bought after now - 300 is offered.
          const recent = new Set(pur.filter(([, end]) => end > 700).map(([i]) => i));
          expect(run(sorted).some(([i]) => recent.has(i as string))).toBe(false);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
});
