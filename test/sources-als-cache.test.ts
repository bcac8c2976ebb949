import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  CACHE_USERS,
  createAlsIndex,
  type AlsIndex,
  IMPLICIT_DEFAULTS,
  servedModel,
  trainAls,
  byScoreThenId,
  seededRandom,
} from "../actors/sources/index.js";

/** 400 items, 80 users with random tastes: more items than the index keeps per user (128). */
function model() {
  const rand = seededRandom(11);
  const b = createRatingsBuilder();
  for (let u = 0; u < 80; u++)
    for (let n = 0; n < 25; n++) b.add(`u${u}`, `i${Math.floor(rand() * 400)}`, 1 + (n % 4));
  return { rows: b, model: trainAls(b.build(), { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 5 }) };
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
  const { rows, model: m } = model();
  // Served as the engine serves it: each user's vector solved from their row when first asked.
  const idx = createAlsIndex(servedModel(m), rows);
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

  it("forgets a user's list when the user's row changes (solved again)", () => {
    const before = items("u3", 10);
    const solved = idx.solved;
    expect(items("u3", 10)).toEqual(before);
    expect(idx.solved).toBe(solved);
    // New events at a later input point: the row's stamp moves.
    for (const i of idx.model.items.slice(200, 230)) rows.add("u3", i, 4, false, 1);
    const after = items("u3", 10);
    expect(idx.solved).toBe(solved + 1);
    expect(after).toEqual(bruteForce(idx, "u3", 10));
    expect(after).not.toEqual(before);
  });
});

describe("ALS user vectors and top lists: a bounded LRU", () => {
  it(`keeps at most its bound of users (${CACHE_USERS} by default: under 43 MB at rank 64), ~2.5 KB each, and answers an evicted user as before`, async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    // A smaller bound than the default (the test's time); the bytes per user are the same.
    const bound = 4_096;
    const rank = 64;
    const nItems = 300;
    const rand = seededRandom(5);
    const V = Float32Array.from({ length: nItems * rank }, () => rand() - 0.5);
    const items = Array.from({ length: nItems }, (_, j) => `i${j}`);
    const model = { settings: { ...IMPLICIT_DEFAULTS, rank }, items, V, users: 0 };
    const users = Array.from({ length: 2 * bound }, (_, u) => `user-${u}`);
    const rows = createRatingsBuilder();
    users.forEach((u, x) => {
      for (let n = 0; n < 4; n++) rows.add(u, items[(x * 7 + n * 31) % nItems]!, 1 + n, false, 1);
    });
    const idx = createAlsIndex(model, rows, { cacheUsers: bound });
    const first = idx.candidates(users[0]!, 10);
    // Collected, and the freed array buffers swept (V8 frees their memory after the collection).
    const used = async () => {
      gc();
      await new Promise((r) => setTimeout(r, 20));
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = await used();
    for (const u of users.slice(1, bound)) idx.candidates(u, 10);
    const full = await used();
    expect(idx.cached().users).toBe(bound);
    const perUser = (full - before) / (bound - 1);
    expect(perUser).toBeLessThan(2_600);
    expect(perUser * CACHE_USERS).toBeLessThan(43e6);
    // The typed arrays: a vector (256 B) and a top list of 128 (1.5 KB) per user.
    expect(idx.cached().bytes).toBe(bound * (rank * 4 + 128 * 12));
    // Twice as many users: the LRU holds the bound, memory stays where it was.
    for (const u of users.slice(bound)) idx.candidates(u, 10);
    expect(idx.cached().users).toBe(bound);
    expect((await used()) - full).toBeLessThan(bound * 256);
    expect(idx.solved).toBe(2 * bound);
    // The first user was evicted: solved again from the same row, the same answer, bit for bit.
    expect(idx.candidates(users[0]!, 10)).toEqual(first);
    expect(idx.solved).toBe(2 * bound + 1);
  });
});
