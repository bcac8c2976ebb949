import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  type Ratings,
  createAlsIndex,
  deserialiseModel,
  serialiseModel,
  trainInWorker,
  EXPLICIT_SEED_001,
  gram,
  IMPLICIT_DEFAULTS,
  servedModel,
  trainAls,
  type AlsSettings,
  seededRandom,
} from "../actors/sources/index.js";

/** Two tastes: users 0-29 like items a0-a9, users 30-59 like b0-b9; each misses some. */
function tastes() {
  const rand = seededRandom(7);
  const b = createRatingsBuilder();
  for (let u = 0; u < 60; u++) {
    const g = u < 30 ? "a" : "b";
    for (let i = 0; i < 10; i++) if (rand() < 0.6) b.add(`u${u}`, `${g}${i}`, 1 + (u % 3));
  }
  return b;
}
const twoTastes = (): Ratings => tastes().build();

const small: AlsSettings = { ...IMPLICIT_DEFAULTS, rank: 4, iterations: 10, reg: 0.1 };

describe("implicit ALS", () => {
  it("recommends a user's unseen items of their own taste first", () => {
    const b = tastes();
    const r = b.build();
    for (const solver of ["cg", "cholesky"] as const) {
      // Served as the engine serves: each user's vector solved from their row.
      const idx = createAlsIndex(servedModel(trainAls(r, { ...small, solver })), b);
      for (const [user, taste] of [
        ["u1", "a"],
        ["u40", "b"],
      ] as const) {
        const top = idx.candidates(user, 5).map((x) => x.item);
        expect(
          top.every((i) => i.startsWith(taste)),
          `${solver} ${user}: ${top}`,
        ).toBe(true);
      }
    }
  });

  it("is seeded: the same ratings and settings train the same model, bit for bit", () => {
    const a = trainAls(twoTastes(), small);
    const b = trainAls(twoTastes(), small);
    expect(Buffer.from(a.U.buffer).equals(Buffer.from(b.U.buffer))).toBe(true);
    expect(Buffer.from(a.V.buffer).equals(Buffer.from(b.V.buffer))).toBe(true);
    const c = trainAls(twoTastes(), { ...small, seed: 43 });
    expect(Buffer.from(a.U.buffer).equals(Buffer.from(c.U.buffer))).toBe(false);
  });

  it("solves short rows exactly (Woodbury) as a dense Cholesky solve does", () => {
    // Rank 16: rows of up to 8 items take the Woodbury path unless it is switched off.
    const r = twoTastes();
    const s: AlsSettings = { ...small, rank: 16, solver: "cholesky", iterations: 3 };
    const fast = trainAls(r, s);
    const dense = trainAls(r, { ...s, woodbury: false });
    expect(fast.U.length).toBe(dense.U.length);
    let worst = 0;
    for (let x = 0; x < fast.U.length; x++)
      worst = Math.max(worst, Math.abs(fast.U[x]! - dense.U[x]!));
    expect(worst).toBeLessThan(1e-4);
  });

  it("shares one factor row among single-entry users of an (item, value): the same bits as a row each", () => {
    // Many users with one entry (three values on a few items), users with several, and users
    // whose entries sum to 0 (no entries); each setting whose single rows are exact.
    const rand = seededRandom(11);
    const b = createRatingsBuilder();
    for (let u = 0; u < 400; u++) {
      if (u % 5 === 0)
        for (let i = 0; i < 2 + (u % 7); i++) b.add(`u${u}`, `i${Math.floor(rand() * 30)}`, 1);
      else b.add(`u${u}`, `i${Math.floor(rand() * 12)}`, 1 + (u % 3));
    }
    b.add("gone", "i0", 1);
    b.add("gone", "i0", -1);
    const r = b.build();
    const lengths = Array.from(
      { length: r.userPtr.length - 1 },
      (_, u) => r.userPtr[u + 1]! - r.userPtr[u]!,
    );
    const singles = lengths.filter((m) => m === 1).length;
    const several = lengths.filter((m) => m > 1).length;
    expect(singles).toBeGreaterThanOrEqual(320);
    const settings: AlsSettings[] = [
      { ...small, rank: 8 },
      { ...small, rank: 8, solver: "cholesky" },
      { ...EXPLICIT_SEED_001, rank: 6, iterations: 3 },
    ];
    for (const s of settings) {
      const stats: { userRows?: number; sharedUsers?: number; computedUsers?: number } = {};
      const shared = trainAls(r, s, undefined, undefined, { stats });
      const own = trainAls(r, s, undefined, undefined, { shareSingles: false });
      // The single-entry users, mostly on 12 items × 3 values: few rows for them.
      expect(stats.sharedUsers, s.solver).toBe(singles);
      expect(stats.userRows!, s.solver).toBeLessThanOrEqual(several + 36 + (singles - 320));
      // Implicit (Woodbury): users of 2 entries hold no row at all (3 or more hold one).
      const short = lengths.filter((m) => m === 2).length;
      expect(stats.computedUsers, s.solver).toBe(s.kind === "implicit" ? short : 0);
      const pairs = new Set<string>();
      for (let u = 0; u + 1 < r.userPtr.length; u++)
        if (lengths[u] === 1)
          pairs.add(`${r.userCols[r.userPtr[u]!]} ${r.userVals[r.userPtr[u]!]}`);
      const rowsHeld = (s.kind === "implicit" ? several - short : several) + pairs.size;
      expect(stats.userRows, s.solver).toBe(rowsHeld);
      expect(Buffer.from(shared.V.buffer).equals(Buffer.from(own.V.buffer)), s.solver).toBe(true);
      expect(Buffer.from(shared.U.buffer).equals(Buffer.from(own.U.buffer)), s.solver).toBe(true);
      // Warm from the model (its first user half-step exact): the same bits again.
      const warm = { ...s, warmIterations: 2 };
      const a = trainAls(r, warm, undefined, servedModel(own));
      const c = trainAls(r, warm, undefined, servedModel(own), { shareSingles: false });
      expect(Buffer.from(a.V.buffer).equals(Buffer.from(c.V.buffer)), s.solver).toBe(true);
    }
    // CG without Woodbury warm-starts each row from its previous vector: no sharing there.
    const stats: { userRows?: number; sharedUsers?: number } = {};
    trainAls(r, { ...small, rank: 8, woodbury: false }, undefined, undefined, { stats });
    expect(stats.sharedUsers).toBe(0);
    expect(stats.userRows).toBe(r.userPtr.length - 1);
    // userFactors: false keeps V and drops U.
    const noU = trainAls(r, { ...small, rank: 8 }, undefined, undefined, { userFactors: false });
    expect(noU.U.length).toBe(0);
    expect(
      Buffer.from(noU.V.buffer).equals(Buffer.from(trainAls(r, { ...small, rank: 8 }).V.buffer)),
    ).toBe(true);
  });

  it("solves short users again where the item half-step reads them: the same bits as a row each", () => {
    // Bench step 7's 2× point in small: every user two entries or a few; many items, so most
    // item columns are short too (the item half-step's Woodbury path) and some long (CG).
    const rand = seededRandom(5);
    const b = createRatingsBuilder();
    for (let u = 0; u < 600; u++) {
      const m = u % 9 === 0 ? 12 : u % 4 === 0 ? 3 : 2;
      for (let x = 0; x < m; x++) {
        const hot = rand() < 0.3;
        b.add(`u${u}`, hot ? `h${Math.floor(rand() * 3)}` : `i${Math.floor(rand() * 700)}`, 1);
      }
    }
    const r = b.build();
    const pairs = Array.from(
      { length: r.userPtr.length - 1 },
      (_, u) => r.userPtr[u + 1]! - r.userPtr[u]!,
    ).filter((m) => m === 2).length;
    expect(pairs).toBeGreaterThan(300);
    for (const s of [
      { ...small, rank: 16 },
      { ...small, rank: 16, solver: "cholesky" as const },
    ]) {
      const stats: { userRows?: number; computedUsers?: number } = {};
      const computed = trainAls(r, s, undefined, undefined, { stats });
      const held = trainAls(r, s, undefined, undefined, { computeShort: false });
      // Only the users of 2 entries: one of 3 or 12 costs more solved again than its row.
      expect(stats.computedUsers, s.solver).toBe(pairs);
      expect(Buffer.from(computed.V.buffer).equals(Buffer.from(held.V.buffer)), s.solver).toBe(
        true,
      );
      expect(Buffer.from(computed.U.buffer).equals(Buffer.from(held.U.buffer)), s.solver).toBe(
        true,
      );
      const noU = trainAls(r, s, undefined, undefined, { userFactors: false });
      expect(Buffer.from(noU.V.buffer).equals(Buffer.from(held.V.buffer)), s.solver).toBe(true);
      // Warm from the served model (its first user half-step exact): the same bits again.
      const warm = { ...s, warmIterations: 2 };
      const a = trainAls(r, warm, undefined, servedModel(held));
      const c = trainAls(r, warm, undefined, servedModel(held), { computeShort: false });
      expect(Buffer.from(a.V.buffer).equals(Buffer.from(c.V.buffer)), s.solver).toBe(true);
    }
  });

  it("retrains from the previous model (warm start): known rows start from it, deterministically", () => {
    const r = twoTastes();
    const first = trainAls(r, small);
    const warm = { ...small, warmIterations: 1 };
    const a = trainAls(r, warm, undefined, first);
    const b = trainAls(r, warm, undefined, first);
    expect(Array.from(a.U)).toEqual(Array.from(b.U));
    // One iteration from a converged model stays near it; one from scratch does not.
    const cold = trainAls(r, { ...small, iterations: 1 });
    const dist = (x: Float32Array) => x.reduce((acc, v, q) => acc + (v - first.U[q]!) ** 2, 0);
    expect(dist(a.U)).toBeLessThan(dist(cold.U) / 10);
  });

  it("retrains from a served model (item factors only): deterministic, and near it", () => {
    const r = twoTastes();
    const first = trainAls(r, small);
    const warm = { ...small, warmIterations: 1 };
    const a = trainAls(r, warm, undefined, servedModel(first));
    const b = trainAls(r, warm, undefined, servedModel(first));
    expect(Array.from(a.V)).toEqual(Array.from(b.V));
    const cold = trainAls(r, { ...small, iterations: 1 });
    const dist = (x: Float32Array) => x.reduce((acc, v, q) => acc + (v - first.V[q]!) ** 2, 0);
    expect(dist(a.V)).toBeLessThan(dist(cold.V) / 10);
  });

  it("folds in a user unknown to the model from their row", () => {
    const rows = tastes();
    const idx = createAlsIndex(servedModel(trainAls(rows.build(), small)), rows);
    expect(idx.vector("newcomer")).toBeUndefined();
    rows.add("newcomer", "b1", 3);
    rows.add("newcomer", "b2", 3);
    rows.add("newcomer", "b3", 2);
    const top = idx.candidates("newcomer", 5).map((x) => x.item);
    expect(top.every((i) => i.startsWith("b"))).toBe(true);
  });

  it("round-trips through bytes, in the served form (no user factors)", () => {
    const m = trainAls(twoTastes(), small);
    const bytes = serialiseModel(m);
    expect(bytes.byteLength).toBeLessThan(m.V.byteLength + 1024);
    const copy = deserialiseModel(bytes.slice(0)); // a fresh buffer, like a snapshot read
    expect(copy.users).toBe(m.users.length);
    expect(copy.items).toEqual(m.items);
    expect(copy.settings).toEqual(m.settings);
    expect(Array.from(copy.V)).toEqual(Array.from(m.V));
    expect(() => deserialiseModel(new Uint8Array(16))).toThrow(/not an ALS model/);
  });

  it("trains in a worker thread while the event loop keeps running, same model as in-thread", async () => {
    const r = twoTastes();
    const settings = { ...small, rank: 16, iterations: 20 };
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const iterations: number[] = [];
    const m = await trainInWorker(
      { ratings: r, settings },
      { onIteration: (i) => iterations.push(i) },
    );
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    expect(iterations.at(-1)).toBe(20);
    // The matrix was moved to the worker, not copied: this thread no longer holds it; the item
    // ids never left and are the model's. The model comes back served: item factors, no user's.
    expect(r.userCols.length).toBe(0);
    expect(m.users).toBe(r.users.length);
    expect(m.items).toBe(r.items);
    expect("U" in m).toBe(false);
    const local = trainAls(twoTastes(), settings);
    expect(Array.from(m.V)).toEqual(Array.from(local.V));
    // With YᵀY + λI of its V, as the fold-ins compute it (so the event loop need not).
    expect(Array.from(m.YtY!)).toEqual(Array.from(gram(local.V, settings.rank, settings.reg)));
  });

  it("a worker trains at a lower priority than the event loop's thread (Linux: nice 10)", async () => {
    if (process.platform !== "linux") return;
    /** Nice value of each thread of this process (field 19 of /proc/<pid>/task/<tid>/stat). */
    const niceOf = () =>
      new Map(
        readdirSync("/proc/self/task").flatMap((tid) => {
          let stat: string;
          try {
            stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
          } catch {
            return []; // a thread that ended between the listing and the read
          }
          return [[tid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16])] as const];
        }),
      );
    // A worker kept from an earlier training would be a thread that was there before: a
    // training aborted at once ends it (an aborted training's worker is never kept).
    const ac0 = new AbortController();
    const p0 = trainInWorker({ ratings: twoTastes(), settings: small }, { signal: ac0.signal });
    ac0.abort();
    await expect(p0).rejects.toThrow(/aborted/);
    const before = niceOf();
    const ac = new AbortController();
    let during: Map<string, number> | undefined;
    const p = trainInWorker(
      { ratings: twoTastes(), settings: { ...small, iterations: 100_000 } },
      {
        signal: ac.signal,
        onIteration: () => {
          if (during) return;
          during = niceOf();
          ac.abort();
        },
      },
    );
    await expect(p).rejects.toThrow(/aborted/);
    const mine = before.get(String(process.pid))!;
    // The worker's thread is one that was not there before, at nice 10 (or this process's own
    // nice, if that is lower still); this thread kept its own.
    const added = [...during!].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
    expect(added).toContain(Math.max(mine, 10));
    expect(during!.get(String(process.pid))).toBe(mine);
  });

  it("a worker training can be aborted", async () => {
    const ac = new AbortController();
    const p = trainInWorker(
      { ratings: twoTastes(), settings: { ...small, iterations: 100_000 } },
      { signal: ac.signal },
    );
    setTimeout(() => ac.abort(), 50);
    await expect(p).rejects.toThrow(/aborted/);
  });
});

describe("explicit ALS (seed 001's settings)", () => {
  it("predicts ratings: a user's liked genre scores above the disliked one", () => {
    const b = createRatingsBuilder();
    for (let u = 0; u < 20; u++)
      for (let i = 0; i < 6; i++) {
        if ((u + i) % 3 === 0) continue; // each user misses a third
        b.add(`u${u}`, `good${i}`, u < 10 ? 5 : 1, true);
        b.add(`u${u}`, `bad${i}`, u < 10 ? 1 : 5, true);
      }
    const m = trainAls(b.build(), EXPLICIT_SEED_001);
    expect(m.settings).toMatchObject({ rank: 10, reg: 0.01, iterations: 10 });
    const top = createAlsIndex(m)
      .candidates("u0", 3)
      .map((x) => x.item);
    expect(top.every((i) => i.startsWith("good"))).toBe(true);
  });

  it("the latest rating of a pair replaces the earlier one", () => {
    const b = createRatingsBuilder();
    b.add("u", "m", 1, true);
    b.add("u", "m", 4, true);
    b.add("u", "n", 1);
    b.add("u", "n", 2);
    const r = b.build();
    expect(Array.from(r.userVals)).toEqual([4, 3]);
    expect(Array.from(r.itemVals)).toEqual([4, 3]);
  });
});
