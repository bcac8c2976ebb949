import { allowedBy, type BlendSettings, type BlendWeights } from "../../actors/sources/index.js";
import type { SourceName } from "../../actors/sources/index.js";
import type { Case, Mode } from "./run.js";
import { score } from "./run.js";

/**
 * Chooses blend weights on validation cases (cuts earlier than the test cuts, so the test
 * targets are never looked at): a grid over each source's weight and both normalisations,
 * ranked by HR@k in the preset's mode, then NDCG, then the fewest sources (ties go to the
 * simpler blend). Coarse on purpose: a finer grid fits the noise of a few hundred cases.
 *
 * Each case's normalised contributions are computed once (what `blend` computes per call), so
 * a grid point costs a weighted sum and a top-k per case; the chosen point is then scored again
 * through `blend` itself.
 */
const GRID = [0, 0.25, 1, 4];
const SOURCES: SourceName[] = [
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "TRENDING",
  "POPULAR_FALLBACK",
];

interface Prepared {
  items: string[];
  /** [mode score | rank][source] → contribution per item (before the weight). */
  v: Record<"score" | "rank", Float64Array[]>;
  hit: Uint8Array;
  targets: number;
  /** Popular items allowed, in order (the fill), as indexes into `items`. */
  fill: number[];
  cut: number;
}

function prepare(c: Case, mode: Mode, rrfK: number): Prepared | undefined {
  const targets = mode === "new" ? c.newTargets : c.targets;
  if (targets.size === 0) return undefined;
  const lists = mode === "new" ? c.listsNew : c.lists;
  const ok = allowedBy({
    n: 0,
    exclude: c.done,
    touched: c.touched,
    excludeTouched: mode === "new",
  });
  const index = new Map<string, number>();
  const items: string[] = [];
  const at = (i: string) => {
    let x = index.get(i);
    if (x === undefined) {
      index.set(i, (x = items.length));
      items.push(i);
    }
    return x;
  };
  const raw = SOURCES.map((s) => (lists[s] ?? []).filter((c) => ok(c.item)));
  for (const l of raw) for (const c of l) at(c.item);
  const v = { score: [] as Float64Array[], rank: [] as Float64Array[] };
  for (const l of raw) {
    const sv = new Float64Array(items.length);
    const rv = new Float64Array(items.length);
    let top = 0;
    for (const c of l) if (c.score > top) top = c.score;
    l.forEach((c, r) => {
      sv[index.get(c.item)!] = top > 0 ? c.score / top : 0;
      rv[index.get(c.item)!] = 1 / (rrfK + r + 1);
    });
    v.score.push(sv);
    v.rank.push(rv);
  }
  const hit = new Uint8Array(items.length);
  items.forEach((i, x) => (hit[x] = targets.has(i) ? 1 : 0));
  const fill = raw[SOURCES.indexOf("POPULAR_FALLBACK")]!.map((c) => index.get(c.item)!);
  return { items, v, hit, targets: targets.size, fill, cut: c.cut };
}

/** HR and NDCG of one case for one weighting (the blend's ranking: score desc, ties by id). */
function evaluate(p: Prepared, vs: Float64Array[], w: number[], k: number): [number, number] {
  const n = p.items.length;
  const s = new Float64Array(n);
  for (let q = 0; q < w.length; q++) {
    const wq = w[q]!;
    if (wq === 0) continue;
    const v = vs[q]!;
    for (let x = 0; x < n; x++) s[x]! += wq * v[x]!;
  }
  const order: number[] = [];
  for (let x = 0; x < n; x++) if (s[x]! > 0) order.push(x);
  order.sort((a, b) => s[b]! - s[a]! || (p.items[a]! < p.items[b]! ? -1 : 1));
  const top = order.slice(0, k);
  for (const x of p.fill) {
    if (top.length >= k) break;
    if (!top.includes(x)) top.push(x);
  }
  let hits = 0;
  let dcg = 0;
  top.forEach((x, r) => {
    if (p.hit[x]) {
      hits++;
      dcg += 1 / Math.log2(r + 2);
    }
  });
  let idcg = 0;
  for (let r = 0; r < Math.min(k, p.targets); r++) idcg += 1 / Math.log2(r + 2);
  return [hits > 0 ? 1 : 0, dcg / idcg];
}

/** One grid point: the normalisation, a weight per source (SOURCES order) and its HR and NDCG. */
export interface GridPoint {
  m: "score" | "rank";
  w: number[];
  hr: number;
  ndcg: number;
  used: number;
  rrfK: number;
  /** HR per cut (the cuts in order). */
  perCut: number[];
}

/** Every grid point's HR and NDCG (means over the cases of `cuts` with a target in `mode`). */
export function gridScores(
  cases: readonly Case[],
  cuts: readonly number[],
  mode: Mode,
  k: number,
  rrfK = 60,
): { points: GridPoint[]; cases: number } {
  const inCuts = new Set(cuts);
  const prepared = cases
    .filter((c) => inCuts.has(c.cut))
    .map((c) => prepare(c, mode, rrfK))
    .filter((p): p is Prepared => p !== undefined);
  let combos: number[][] = [[]];
  for (let s = 0; s < SOURCES.length; s++)
    combos = combos.flatMap((c) => GRID.map((w) => [...c, w]));
  const points: GridPoint[] = [];
  const n = Math.max(1, prepared.length);
  const cutIndex = new Map([...cuts].sort((a, b) => a - b).map((c, x) => [c, x]));
  const perCutCases = new Array<number>(cutIndex.size).fill(0);
  for (const p of prepared) perCutCases[cutIndex.get(p.cut)!]!++;
  for (const m of ["score", "rank"] as const)
    for (const w of combos) {
      const used = w.filter((x) => x > 0).length;
      if (used === 0) continue;
      let hr = 0;
      let ndcg = 0;
      const perCut = new Array<number>(cutIndex.size).fill(0);
      for (const p of prepared) {
        const [h, d] = evaluate(p, p.v[m], w, k);
        hr += h;
        ndcg += d;
        perCut[cutIndex.get(p.cut)!]! += h;
      }
      perCut.forEach((h, x) => (perCut[x] = h / Math.max(1, perCutCases[x]!)));
      points.push({ m, w, hr: hr / n, ndcg: ndcg / n, used, rrfK, perCut });
    }
  return { points, cases: prepared.length };
}

/** The blend settings of a grid point. */
export function settingsOf(p: GridPoint, rrfK = 60): BlendSettings {
  const weights: BlendWeights = {};
  SOURCES.forEach((s, q) => {
    if (p.w[q]! > 0) weights[s] = p.w[q]!;
  });
  return { mode: p.m, weights, rrfK };
}

export function chooseWeights(
  cases: readonly Case[],
  cuts: readonly number[],
  mode: Mode,
  k: number,
): { chosen: BlendSettings; hr: number; gridHr: number; cases: number } {
  const { points } = gridScores(cases, cuts, mode, k);
  let best: GridPoint | undefined;
  for (const p of points) {
    const better =
      !best ||
      p.hr > best.hr + 1e-9 ||
      (Math.abs(p.hr - best.hr) <= 1e-9 &&
        (p.ndcg > best.ndcg + 1e-9 ||
          (Math.abs(p.ndcg - best.ndcg) <= 1e-9 && p.used < best.used)));
    if (better) best = p;
  }
  const chosen = settingsOf(best!);
  // Scored again through blend() itself: the figure reported is the real blend's.
  const r = score(cases, cuts, chosen, k, 1, ["blend"]).rows.blend![mode];
  return { chosen, hr: r.hr, gridHr: best!.hr, cases: r.cases };
}
