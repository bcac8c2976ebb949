import { describe, expect, it } from "vitest";
import { createRatingsBuilder } from "../actors/sources/als-matrix.js";
import { createAlsIndex, type AlsIndex } from "../actors/sources/als-model.js";
import { IMPLICIT_DEFAULTS, trainAls } from "../actors/sources/als.js";
import { byScoreThenId, seededRandom } from "../actors/sources/types.js";

/** 400 items, 80 users with random tastes: more items than the index keeps per user (128). */
function model() {
  const rand = seededRandom(11);
  const b = createRatingsBuilder();
  for (let u = 0; u < 80; u++)
    for (let n = 0; n < 25; n++) b.add(`u${u}`, `i${Math.floor(rand() * 400)}`, 1 + (n % 4));
  return trainAls(b.build(), { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 5 });
}

/** The definition: every item scored, best first (ties by id), filtered, the first n. */
function bruteForce(idx: AlsIndex, user: string, n: number, keep?: (i: string) => boolean) {
  const u = idx.vector(user)!;
  const k = idx.model.settings.rank;
  return idx.model.items
    .map((item, j) => {
      let score = 0;
      for (let f = 0; f < k; f++) score += u[f]! * idx.model.V[j * k + f]!;
      return { item, score, why: "" };
    })
    .filter((c) => !keep || keep(c.item))
    .sort(byScoreThenId)
    .slice(0, n)
    .map((c) => c.item);
}

describe("ALS candidates from the per-user cache", () => {
  const idx = createAlsIndex(model());
  const items = (user: string, n: number, keep?: (i: string) => boolean) =>
    idx.candidates(user, n, keep).map((c) => c.item);

  it("answers a repeated request as a full scan does, with and without a filter", () => {
    for (const user of ["u1", "u2", "u50"]) {
      const best = bruteForce(idx, user, 400);
      // Leaves out 100 of the user's best 110: the cached 128 still hold 10 allowed ones.
      const most = new Set(best.slice(0, 110).filter((_, x) => x % 11 !== 0));
      const keepFew = (i: string) => !most.has(i);
      // Leaves out all of the best 128 but one: the cache cannot answer, a scan must.
      const top128 = new Set(best.slice(1, 128));
      const keepNone = (i: string) => !top128.has(i);
      for (let round = 0; round < 2; round++) {
        expect(items(user, 10)).toEqual(bruteForce(idx, user, 10));
        expect(items(user, 128)).toEqual(bruteForce(idx, user, 128));
        expect(items(user, 200)).toEqual(bruteForce(idx, user, 200));
        expect(items(user, 10, keepFew)).toEqual(bruteForce(idx, user, 10, keepFew));
        expect(items(user, 10, keepNone)).toEqual(bruteForce(idx, user, 10, keepNone));
      }
    }
  });

  it("forgets a user's list when the user is folded in again", () => {
    const before = items("u3", 10);
    idx.foldIn(
      "u3",
      new Map(idx.model.items.slice(200, 230).map((i) => [i, 4] as [string, number])),
    );
    const after = items("u3", 10);
    expect(after).toEqual(bruteForce(idx, "u3", 10));
    expect(after).not.toEqual(before);
  });
});
