import type { BlendSettings, BlendWeights } from "../../actors/sources/blend.js";
import type { SourceName } from "../../actors/sources/types.js";
import type { Case, Mode } from "./run.js";
import { score } from "./run.js";

/**
 * Chooses blend weights on validation cases (cuts earlier than the test cuts, so the test
 * targets are never looked at): a grid over each weighted source's weight and both
 * normalisations, ranked by HR@k in the preset's mode, then NDCG, then the fewest sources (ties
 * go to the simpler blend). Coarse on purpose: a finer grid fits the noise of a few hundred cases.
 */
const GRID = [0, 0.25, 1, 4];
const SOURCES: SourceName[] = ["HISTORY", "SIMILAR_ITEMS", "COLLABORATIVE", "TRENDING"];

export function chooseWeights(
  cases: readonly Case[],
  cuts: readonly number[],
  mode: Mode,
  k: number,
): { chosen: BlendSettings; hr: number; cases: number } {
  let best: { s: BlendSettings; hr: number; ndcg: number; used: number } | undefined;
  const combos: BlendWeights[] = [{}];
  for (const source of SOURCES) {
    const next: BlendWeights[] = [];
    for (const c of combos) for (const w of GRID) next.push({ ...c, [source]: w });
    combos.splice(0, combos.length, ...next);
  }
  let n = 0;
  for (const mode_ of ["score", "rank"] as const)
    for (const weights of combos) {
      const used = Object.values(weights).filter((w) => (w ?? 0) > 0).length;
      if (used === 0) continue;
      const s: BlendSettings = { mode: mode_, weights };
      const { rows } = score(cases, cuts, s, k, 1, ["blend"]);
      const r = rows.blend![mode];
      n = r.cases;
      const better =
        !best ||
        r.hr > best.hr + 1e-9 ||
        (Math.abs(r.hr - best.hr) <= 1e-9 &&
          (r.ndcg > best.ndcg + 1e-9 ||
            (Math.abs(r.ndcg - best.ndcg) <= 1e-9 && used < best.used)));
      if (better) best = { s, hr: r.hr, ndcg: r.ndcg, used };
    }
  return { chosen: best!.s, hr: best!.hr, cases: n };
}
