import type { OfflineMetrics } from "./als-served.js";
import type { Ratings } from "./als-matrix-rows.js";
import { choleskySolve } from "./als-cholesky.js";
import type { AlsModel } from "./als-served.js";
import { addObservation, gram } from "./als-solve.js";
import { seededRandom } from "./types.js";

export function evaluateAls(
  r: Ratings,
  model: Pick<AlsModel, "settings" | "V">,
  /** `YtY`: gram(V, rank, reg) of an implicit model when already computed (the same bits). */
  o: { users?: number; k?: number; minItemUsers?: number; YtY?: Float64Array } = {},
): OfflineMetrics {
  const t0 = performance.now();
  const want = o.users ?? 500;
  const topK = o.k ?? 10;
  const s = model.settings;
  const k = s.rank;
  const V = model.V;
  const nUsers = r.userPtr.length - 1;
  const nItems = V.length / k;
  const minUsers = o.minItemUsers ?? 5;
  const eligible = (from: number, to: number, e: number) => {
    const j = r.userCols[e]!;
    return (
      to - from >= 2 &&
      r.itemPtr[j + 1]! - r.itemPtr[j]! >= minUsers &&
      (s.kind === "implicit" ? r.userVals[e]! > 0 : r.userVals[e]! >= 4)
    );
  };
  // Users in a seeded order (a partial Fisher-Yates: only as many draws as needed).
  const rand = seededRandom(s.seed ^ 0x5eed);
  const order = Int32Array.from({ length: nUsers }, (_, x) => x);
  const YtY = s.kind === "implicit" ? (o.YtY ?? gram(V, k, s.reg)) : undefined;
  const A = new Float64Array(k * k);
  const b = new Float64Array(k);
  const x = new Float64Array(k);
  let users = 0;
  let hits = 0;
  let gain = 0;
  for (let n = 0; n < nUsers && users < want; n++) {
    const pick = n + Math.floor(rand() * (nUsers - n));
    const u = order[pick]!;
    order[pick] = order[n]!;
    order[n] = u;
    const from = r.userPtr[u]!;
    const to = r.userPtr[u + 1]!;
    const candidates: number[] = [];
    for (let e = from; e < to; e++) if (eligible(from, to, e)) candidates.push(e);
    if (candidates.length === 0) continue;
    const held = candidates[Math.floor(rand() * candidates.length)]!;
    // The user's vector from the rest of the row (as als-model.ts folds a user in).
    if (YtY) A.set(YtY);
    else A.fill(0);
    b.fill(0);
    let rows = 0;
    for (let e = from; e < to; e++) {
      const v = r.userVals[e]!;
      if (e === held || v <= 0) continue;
      rows++;
      addObservation(A, b, V, r.userCols[e]!, v, s);
    }
    if (rows === 0) continue;
    if (s.kind === "explicit") for (let f = 0; f < k; f++) A[f * k + f]! += s.reg * rows;
    choleskySolve(A, b, k, x);
    const score = (j: number) => {
      let acc = 0;
      for (let f = 0; f < k; f++) acc += x[f]! * V[j * k + f]!;
      return acc;
    };
    const own = new Set<number>();
    for (let e = from; e < to; e++) if (e !== held) own.add(r.userCols[e]!);
    const target = r.userCols[held]!;
    const t = score(target);
    // Rank: items scoring above the held-out one (ties: lower index first, as a stable sort).
    let rank = 0;
    for (let j = 0; j < nItems && rank < topK; j++) {
      if (j === target || own.has(j)) continue;
      const sj = score(j);
      if (sj > t || (sj === t && j < target)) rank++;
    }
    users++;
    if (rank < topK) {
      hits++;
      gain += 1 / Math.log2(rank + 2);
    }
  }
  return {
    users,
    k: topK,
    hitRate: users > 0 ? hits / users : 0,
    ndcg: users > 0 ? gain / users : 0,
    ms: performance.now() - t0,
  };
}
