/**
 * Top-k metrics of one ranked list against a user's target items (binary relevance):
 * hit (any target in the top k), recall (targets found / min(k, targets)), NDCG.
 */
export interface Scores {
  hr: number;
  recall: number;
  ndcg: number;
}

export function scoreList(
  list: readonly string[],
  targets: ReadonlySet<string>,
  k: number,
): Scores {
  let hits = 0;
  let dcg = 0;
  const top = list.slice(0, k);
  top.forEach((item, x) => {
    if (!targets.has(item)) return;
    hits++;
    dcg += 1 / Math.log2(x + 2);
  });
  const ideal = Math.min(k, targets.size);
  let idcg = 0;
  for (let x = 0; x < ideal; x++) idcg += 1 / Math.log2(x + 2);
  return {
    hr: hits > 0 ? 1 : 0,
    recall: ideal > 0 ? hits / ideal : 0,
    ndcg: idcg > 0 ? dcg / idcg : 0,
  };
}

/** Sums of scores over cases, with the distinct items listed (for coverage). */
export interface Tally {
  cases: number;
  hr: number;
  recall: number;
  ndcg: number;
  items: Set<string>;
}

export const newTally = (): Tally => ({ cases: 0, hr: 0, recall: 0, ndcg: 0, items: new Set() });

export function addTo(t: Tally, s: Scores, list: readonly string[], k: number) {
  t.cases++;
  t.hr += s.hr;
  t.recall += s.recall;
  t.ndcg += s.ndcg;
  for (const i of list.slice(0, k)) t.items.add(i);
}

export interface MetricRow {
  cases: number;
  hr: number;
  recall: number;
  ndcg: number;
  /** Distinct items recommended / items in the catalogue. */
  coverage: number;
}

export function summarise(t: Tally, catalogue: number): MetricRow {
  const n = Math.max(1, t.cases);
  return {
    cases: t.cases,
    hr: t.hr / n,
    recall: t.recall / n,
    ndcg: t.ndcg / n,
    coverage: catalogue > 0 ? t.items.size / catalogue : 0,
  };
}

/**
 * One-sided p-value of an exact sign (McNemar) test: the chance of `a` or more of `a + b`
 * discordant cases going one way if each went either way with probability 1/2. Small: the
 * method with `a` wins is really ahead, not ahead by chance on these cases.
 */
export function signTestP(a: number, b: number): number {
  const n = a + b;
  if (a === 0) return 1;
  let p = 0;
  // C(n, x) / 2^n summed for x = a..n, in logs so large n does not overflow.
  const logHalf = n * Math.log(0.5);
  let logC = 0;
  for (let x = 0; x <= n; x++) {
    if (x > 0) logC += Math.log((n - x + 1) / x);
    if (x >= a) p += Math.exp(logC + logHalf);
  }
  return Math.min(1, p);
}
