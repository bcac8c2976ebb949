import { parsePrometheusText, type MetricsSource, type Sample } from "./api-pipeline.js";

/**
 * `/v1/quality` (DESIGN §7): the live quality figures — prequential HR@10, NDCG@10 and coverage
 * per method and window, the A/B arms with their Wilson 95% intervals, and the drift PSI — read
 * from the process's Prometheus registry, so the console and Prometheus never disagree.
 */
export interface QualityView {
  prequential: {
    method: string;
    window: string;
    cases: number;
    hitRate: number;
    ndcg: number;
    coverage: number;
  }[];
  arms: {
    arm: string;
    window: string;
    cases: number;
    hits: number;
    hitRate: number;
    lower: number;
    upper: number;
  }[];
  drift: {
    psi: Record<string, number>;
    events: Record<string, number>;
  };
  /** Kept ALS model versions, newest first. */
  models: {
    kind: string;
    version: number;
    dataPosition: number;
    trainedAt: string;
    /** HR@10, NDCG@10 on a held-out slice of its training data (absent: not computed). */
    offline?: { hitRate: number; ndcg: number; users: number };
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
    };
  });
  const drift = {
    psi: Object.fromEntries(of("reco_drift_psi").map((s) => [s.labels.dimension, s.value])),
    events: Object.fromEntries(of("reco_drift_events").map((s) => [s.labels.window, s.value])),
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
          ? { offline: { hitRate: o.hit_rate ?? 0, ndcg: o.ndcg ?? 0, users: o.users ?? 0 } }
          : {}),
      };
    })
    .sort((a, b) => b.trainedAt.localeCompare(a.trainedAt) || b.version - a.version);
  return { prequential, arms, drift, models };
}
