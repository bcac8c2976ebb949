import { parsePrometheusText, type MetricsSource, type Sample } from "./api-pipeline.js";

/**
 * `/v1/quality` (DESIGN §7): the live quality figures — prequential HR@10, NDCG@10 and coverage
 * per method and window, the A/B arms with their Wilson 95% intervals, and the drift PSI — read
 * from the process's Prometheus registry, so the console and Prometheus never disagree.
 */
/**
 * The fewest cases a quality figure needs before the console shows it as a number (docs/CONSOLE.md):
 * below these a hit rate is mostly noise (with 7 users one hit moves HR@10 by 14 points).
 * Served in `/v1/quality` as `minimums`; each figure says whether it reaches its minimum.
 */
export const MIN_CASES = {
  /** Users with a held-out entry behind a model version's offline HR@10 / NDCG@10. */
  heldOutUsers: 30,
  /** Scored target events behind a prequential row or an A/B arm. */
  scoredEvents: 100,
  /** Events in each drift window (the last hour and the 24 h before it). */
  driftEvents: 100,
} as const;

/** Whether a figure resting on `cases` cases reaches `min` (counts that are not numbers do not). */
export const reaches = (cases: number, min: number): boolean =>
  Number.isFinite(cases) && cases >= min;

export interface QualityView {
  /** The fewest cases each kind of figure needs to be shown as a number. */
  minimums: typeof MIN_CASES;
  prequential: {
    method: string;
    window: string;
    cases: number;
    hitRate: number;
    ndcg: number;
    coverage: number;
    /** cases ≥ minimums.scoredEvents. */
    enough: boolean;
  }[];
  arms: {
    arm: string;
    window: string;
    cases: number;
    hits: number;
    hitRate: number;
    lower: number;
    upper: number;
    /** cases ≥ minimums.scoredEvents. */
    enough: boolean;
  }[];
  drift: {
    psi: Record<string, number>;
    events: Record<string, number>;
    /** Both windows hold at least minimums.driftEvents events. */
    enough: boolean;
  };
  /** Kept ALS model versions, newest first. */
  models: {
    kind: string;
    version: number;
    dataPosition: number;
    trainedAt: string;
    /** HR@10, NDCG@10 on a held-out slice of its training data (absent: not computed). */
    offline?: { hitRate: number; ndcg: number; users: number; enough: boolean };
  }[];
}

export async function readQuality(source: MetricsSource): Promise<QualityView> {
  const samples = parsePrometheusText(await source.metrics());
  const of = (name: string) => samples.filter((s) => s.name === name);
  const key = (s: Sample, a: string, b: string) => `${s.labels[a]}\u0000${s.labels[b]}`;
  const index = (name: string, a: string, b: string) =>
    new Map(of(name).map((s) => [key(s, a, b), s.value]));

  const ndcg = index("reco_prequential_ndcg", "method", "window");
  const coverage = index("reco_prequential_coverage", "method", "window");
  const cases = index("reco_prequential_cases", "method", "window");
  const prequential = of("reco_prequential_hit_rate").map((s) => {
    const k = key(s, "method", "window");
    return {
      method: s.labels.method ?? "",
      window: s.labels.window ?? "",
      cases: cases.get(k) ?? 0,
      hitRate: s.value,
      ndcg: ndcg.get(k) ?? 0,
      coverage: coverage.get(k) ?? 0,
      enough: reaches(cases.get(k) ?? 0, MIN_CASES.scoredEvents),
    };
  });
  const armCases = index("reco_arm_cases", "arm", "window");
  const armHits = index("reco_arm_hits", "arm", "window");
  const lower = index("reco_arm_hit_rate_lower", "arm", "window");
  const upper = index("reco_arm_hit_rate_upper", "arm", "window");
  const arms = of("reco_arm_hit_rate").map((s) => {
    const k = key(s, "arm", "window");
    return {
      arm: s.labels.arm ?? "",
      window: s.labels.window ?? "",
      cases: armCases.get(k) ?? 0,
      hits: armHits.get(k) ?? 0,
      hitRate: s.value,
      lower: lower.get(k) ?? 0,
      upper: upper.get(k) ?? 0,
      enough: reaches(armCases.get(k) ?? 0, MIN_CASES.scoredEvents),
    };
  });
  const events: Record<string, number> = Object.fromEntries(
    of("reco_drift_events").map((s) => [s.labels.window, s.value]),
  );
  const drift = {
    psi: Object.fromEntries(of("reco_drift_psi").map((s) => [s.labels.dimension, s.value])),
    events,
    enough:
      reaches(events.recent ?? 0, MIN_CASES.driftEvents) &&
      reaches(events.reference ?? 0, MIN_CASES.driftEvents),
  };
  const offline = new Map<string, Record<string, number>>();
  for (const s of of("reco_model_offline")) {
    const k = key(s, "kind", "version");
    offline.set(k, { ...offline.get(k), [s.labels.metric ?? ""]: s.value });
  }
  const models = of("reco_model_history")
    .map((s) => {
      const o = offline.get(key(s, "kind", "version"));
      return {
        kind: s.labels.kind ?? "",
        version: Number(s.labels.version),
        dataPosition: Number(s.labels.data_position),
        trainedAt: new Date(s.value * 1000).toISOString(),
        ...(o
          ? {
              offline: {
                hitRate: o.hit_rate ?? 0,
                ndcg: o.ndcg ?? 0,
                users: o.users ?? 0,
                enough: reaches(o.users ?? 0, MIN_CASES.heldOutUsers),
              },
            }
          : {}),
      };
    })
    .sort((a, b) => b.trainedAt.localeCompare(a.trainedAt) || b.version - a.version);
  return { minimums: MIN_CASES, prequential, arms, drift, models };
}
