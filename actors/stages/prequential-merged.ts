import type { MethodFigures, PrequentialReport } from "../quality/index.js";
import type { PrequentialView } from "./prequential-scorer.js";

/**
 * The prequential figures of every user partition's scorer as one report (the scorer runs in
 * each partition's covisit stage and scores that partition's users): cases and hits summed, the
 * hit rate and NDCG over all cases (NDCG weighted by each partition's cases). Coverage is a share
 * of each partition's own catalogue; the report gives the largest, a lower bound on the share
 * the partitions' lists cover together.
 */
export function mergePrequentialViews(parts: readonly PrequentialView[]): PrequentialView {
  if (parts.length === 1) return parts[0]!;
  return {
    methods: parts[0]?.methods ?? [],
    progress: () => {
      let p = -1;
      for (const v of parts) p = Math.max(p, v.progress());
      return p;
    },
    report: () => {
      const reports = parts.map((p) => p.report());
      const out = {} as PrequentialReport;
      for (const window of Object.keys(reports[0] ?? {}) as (keyof PrequentialReport)[]) {
        const methods: Record<string, MethodFigures> = {};
        for (const r of reports)
          for (const [m, f] of Object.entries(r[window] ?? {})) {
            const a = methods[m];
            if (!a) {
              methods[m] = { ...f, ndcg: f.ndcg * f.cases };
              continue;
            }
            a.cases += f.cases;
            a.hits += f.hits;
            a.ndcg += f.ndcg * f.cases;
            a.coverage = Math.max(a.coverage, f.coverage);
          }
        for (const f of Object.values(methods)) {
          f.hitRate = f.cases > 0 ? f.hits / f.cases : 0;
          f.ndcg = f.cases > 0 ? f.ndcg / f.cases : 0;
        }
        out[window] = methods;
      }
      return out;
    },
  };
}
