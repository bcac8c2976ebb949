import { Gauge, type Registry } from "prom-client";
import type { StageHandler, StageSpec } from "../host/index.js";
import {
  COLLABORATIVE_TRAINER,
  createDriftHandler,
  type DriftHandler,
  type HistoryView,
  scoredMethods,
  type PrequentialSettings,
  type PrequentialView,
} from "../stages/index.js";
import {
  DRIFT_DEFAULTS,
  DRIFT_DIMENSIONS,
  driftReport,
  type BucketCounts,
  type DriftReport,
  type DriftSettings,
  createArms,
  type Arm,
  WINDOW_NAMES,
  wilson,
  type MethodFigures,
  mergeReports,
  type PrequentialParts,
  type PrequentialReport,
  type WindowName,
} from "../quality/index.js";
import { subjects } from "../contract/index.js";
import type { Preset } from "../contract/index.js";
import type { CollaborativeView } from "../stages/index.js";
import { defaultBlend, presetNamed } from "../sources/index.js";

/**
 * DESIGN §7's live quality figures, wired into the pipeline: the drift stage (one instance per
 * user-path partition, beside the watermark stage on the same hops) and its gauges. The PSI is
 * computed over the partitions this process runs (all of them in one process); in a cluster each
 * worker reports its own partitions' mix.
 */
export interface QualityWiring {
  /** The drift report now (memoised for a second: scrapes and the console share it). */
  drift(): DriftReport;
  /** Whether an arm blends (the source stages must run whatever RANKER says). */
  readonly blendArm: boolean;
  /**
   * The prequential scorer's settings when online quality scores (RANKER=blend or A/B arms, and
   * QUALITY not off): the recommender wiring runs it in each history stage, over the serving
   * path's sources (HistoryStageSettings.scorer).
   */
  readonly scorer?: () => PrequentialSettings;
  /** The user's A/B arm (absent: no ARMS). */
  armOf?(user: string): Arm;
  /**
   * The prequential figures of the scorers of the partitions running here, merged; undefined
   * while none runs.
   */
  prequential(): { report: PrequentialReport; methods: readonly string[] } | undefined;
  /** The arms' live figures (all windows), with Wilson 95% intervals. */
  arms(): ArmFigures[];
}

export interface ArmFigures {
  arm: string;
  ranker: string;
  share: number;
  window: WindowName;
  cases: number;
  hits: number;
  hitRate: number;
  lower: number;
  upper: number;
}

export function qualityWiring(
  cfg: {
    partitions: number;
    drift?: Partial<DriftSettings>;
    preset: Preset;
    ranker?: "blend" | "design";
    arms?: readonly Arm[];
    /** QUALITY=off: no prequential scorer. */
    quality?: boolean;
    /** QUALITY_SAMPLE: share of users scored (default 1). */
    qualitySample?: number;
  },
  deps: {
    stream: string;
    run: (spec: StageSpec<StageHandler>) => void;
    /** The live handler of "<stage>/<partition>", if it runs. */
    live: (id: string) => StageHandler | undefined;
    registry?: Registry;
    now?: () => number;
    /**
     * The design ranking's top `n` for a user as the fallback stage serves it (an arm ranks by
     * the design) just before the case `event`; undefined while that stage does not answer here,
     * "taken" while its answer may already count the event (PrequentialSettings.design).
     */
    design?: PrequentialSettings["design"];
  },
): QualityWiring {
  const settings: DriftSettings = { ...DRIFT_DEFAULTS, ...cfg.drift };
  for (let p = 0; p < (cfg.quality === false ? 0 : cfg.partitions); p++)
    deps.run({
      stage: "drift",
      partition: p,
      stream: deps.stream,
      subject: subjects.parse(p),
      input: "envelope",
      batching: "per-input",
      create: (state) => createDriftHandler(state, settings),
    });

  const clock = deps.now ?? Date.now;
  let memo: { at: number; report: DriftReport } | undefined;
  const drift = (): DriftReport => {
    if (memo && clock() - memo.at < 1000) return memo.report;
    const all: [number, BucketCounts][] = [];
    let at = -1;
    for (let p = 0; p < cfg.partitions; p++) {
      const h = deps.live(`drift/${p}`) as DriftHandler | undefined;
      if (!h) continue;
      at = Math.max(at, h.progress());
      for (const e of h.buckets()) all.push(e);
    }
    const report = driftReport(all, at, settings);
    memo = { at: clock(), report };
    return report;
  };

  // --- prequential scoring (in each history stage) and A/B arms ---
  const arms = cfg.arms && cfg.arms.length > 0 ? createArms(cfg.arms) : undefined;
  const runs =
    cfg.quality !== false && ((cfg.ranker ?? "design") === "blend" || arms !== undefined);
  const preset = presetNamed(cfg.preset);
  const blendArm = arms?.arms.some((a) => a.ranker === "blend") ?? false;
  const scorerSettings = (): PrequentialSettings => ({
    preset,
    blend: defaultBlend(preset),
    ...(arms ? { arms } : {}),
    ...(deps.design ? { design: deps.design } : {}),
    ...(cfg.qualitySample !== undefined ? { sample: cfg.qualitySample } : {}),
  });
  // The methods scored, known before the stages run (so every series exists from the start).
  const scored = scoredMethods(arms);
  const methods = scored.filter((m) => !m.startsWith("arm:"));
  const historyIds = Array.from({ length: cfg.partitions }, (_, p) => `history/${p}`);
  /** The scorers of the history stages running here. */
  const scorers = () => {
    const views: PrequentialView[] = [];
    for (const id of historyIds) {
      const v = (deps.live(id) as (StageHandler & HistoryView) | undefined)?.prequential();
      if (v) views.push(v);
    }
    return views;
  };
  let preqMemo: { at: number; report: PrequentialReport } | undefined;
  const prequential = () => {
    if (!runs) return undefined;
    if (!preqMemo || clock() - preqMemo.at >= 1000) {
      const views = scorers();
      if (views.length === 0) return undefined;
      // One clock for every partition's windows: the newest progress among them.
      const now = Math.max(...views.map((v) => v.progress()));
      const parts: PrequentialParts[] = views.map((v) => v.parts(now));
      preqMemo = { at: clock(), report: mergeReports(parts, scored) };
    }
    return { report: preqMemo.report, methods: scored };
  };
  const armFigures = (): ArmFigures[] => {
    if (!arms) return [];
    const r = prequential()?.report;
    return arms.arms.flatMap((a) =>
      WINDOW_NAMES.map((window) => {
        const f = r?.[window][`arm:${a.name}`];
        const cases = f?.cases ?? 0;
        const hits = f?.hits ?? 0;
        return {
          arm: a.name,
          ranker: a.ranker,
          share: a.share,
          window,
          cases,
          hits,
          hitRate: cases > 0 ? hits / cases : 0,
          ...wilson(hits, cases),
        };
      }),
    );
  };

  if (deps.registry) {
    new Gauge({
      name: "reco_prequential_sample",
      help: "Share of users the prequential scorer scores (QUALITY_SAMPLE; chosen by a hash of the user id), 0 when it does not run",
      registers: [deps.registry],
      // The parse child's registry has this gauge too (bin/parse-process-metrics.ts sums them).
      aggregator: "max",
      collect() {
        this.set(runs ? (cfg.qualitySample ?? 1) : 0);
      },
    });
    new Gauge({
      name: "reco_prequential_unscored",
      help: "Target events of sampled users not scored: covisit had already taken the event (an answer would hold it), or a source the serving path composes (covisit; the design's fallback, with a design arm) did not run in this process",
      registers: [deps.registry],
      collect() {
        this.set(scorers().reduce((n, v) => n + v.unscored(), 0));
      },
    });
    const figureGauge = (name: string, help: string, pick: (f: MethodFigures) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["method", "window"] as const,
        registers: [deps.registry!],
        collect() {
          const r = prequential()?.report;
          for (const window of WINDOW_NAMES)
            for (const method of methods) {
              const f = r?.[window][method];
              this.set({ method, window }, f ? pick(f) : 0);
            }
        },
      });
    figureGauge(
      "reco_prequential_hit_rate",
      "Prequential HitRate@10: share of target events (cart, purchase; rating 4+) whose item was in the method's top 10 just before, by window of event time (1h, 24h, all)",
      (f) => f.hitRate,
    );
    figureGauge(
      "reco_prequential_ndcg",
      "Prequential NDCG@10 of the target events, by method and window",
      (f) => f.ndcg,
    );
    figureGauge(
      "reco_prequential_coverage",
      "Distinct items in the method's top-10 lists scored in the window / distinct items seen",
      (f) => f.coverage,
    );
    figureGauge("reco_prequential_cases", "Target events scored in the window", (f) => f.cases);
    {
      const armGauge = (name: string, help: string, pick: (f: ArmFigures) => number) =>
        new Gauge({
          name,
          help,
          labelNames: ["arm", "window"] as const,
          registers: [deps.registry!],
          collect() {
            for (const f of armFigures()) this.set({ arm: f.arm, window: f.window }, pick(f));
          },
        });
      armGauge(
        "reco_arm_cases",
        "A/B arm: its users' target events scored in the window",
        (f) => f.cases,
      );
      armGauge(
        "reco_arm_hits",
        "A/B arm: target events whose item was in the arm's top 10 just before",
        (f) => f.hits,
      );
      armGauge(
        "reco_arm_hit_rate",
        "A/B arm: prequential HitRate@10 of the arm's ranker on its users",
        (f) => f.hitRate,
      );
      armGauge(
        "reco_arm_hit_rate_lower",
        "A/B arm: lower bound of the hit rate's Wilson 95% interval",
        (f) => f.lower,
      );
      armGauge(
        "reco_arm_hit_rate_upper",
        "A/B arm: upper bound of the hit rate's Wilson 95% interval",
        (f) => f.upper,
      );
    }
  }

  if (deps.registry) {
    // Model versions, kept in the collaborative stage's state.
    const versions = () =>
      (
        deps.live(COLLABORATIVE_TRAINER) as (StageHandler & CollaborativeView) | undefined
      )?.versions() ?? [];
    const kinds = cfg.preset === "movies" ? ["implicit", "explicit"] : ["implicit"];
    new Gauge({
      name: "reco_model",
      help: "The newest ALS model per kind: version, data_position (input point, events), event_time_ms of that point, train_seconds (submitted to served, wall clock), trained_at_seconds (epoch), offline_hit_rate and offline_ndcg (HR@10, NDCG@10 on a held-out slice of its training data) and offline_users (users held out)",
      labelNames: ["kind", "name"] as const,
      registers: [deps.registry],
      collect() {
        const all = versions();
        for (const kind of kinds) {
          const v = all.find((x) => x.kind === kind);
          this.set({ kind, name: "version" }, v?.version ?? 0);
          this.set({ kind, name: "data_position" }, v?.dataPosition ?? 0);
          this.set({ kind, name: "event_time_ms" }, v ? Math.max(0, v.eventTime) : 0);
          this.set(
            { kind, name: "train_seconds" },
            v && v.submittedAt > 0 ? (v.trainedAt - v.submittedAt) / 1000 : 0,
          );
          this.set({ kind, name: "trained_at_seconds" }, v ? v.trainedAt / 1000 : 0);
          this.set({ kind, name: "offline_hit_rate" }, v?.offline?.hitRate ?? 0);
          this.set({ kind, name: "offline_ndcg" }, v?.offline?.ndcg ?? 0);
          this.set({ kind, name: "offline_users" }, v?.offline?.users ?? 0);
        }
      },
    });
    new Gauge({
      name: "reco_model_offline",
      help: "Each kept ALS model version's offline metrics on a held-out slice of its training data (computed in the training worker): metric hit_rate (HR@10), ndcg (NDCG@10), users (held-out users)",
      labelNames: ["kind", "version", "metric"] as const,
      registers: [deps.registry],
      collect() {
        this.reset();
        for (const v of versions()) {
          if (!v.offline) continue;
          const at = { kind: v.kind, version: String(v.version) };
          this.set({ ...at, metric: "hit_rate" }, v.offline.hitRate);
          this.set({ ...at, metric: "ndcg" }, v.offline.ndcg);
          this.set({ ...at, metric: "users" }, v.offline.users);
        }
      },
    });
    new Gauge({
      name: "reco_model_history",
      help: "Each kept ALS model version (the newest 50 per kind): value = when it was served (epoch seconds), labels its version and data position",
      labelNames: ["kind", "version", "data_position"] as const,
      registers: [deps.registry],
      collect() {
        this.reset();
        for (const v of versions())
          this.set(
            { kind: v.kind, version: String(v.version), data_position: String(v.dataPosition) },
            v.trainedAt / 1000,
          );
      },
    });
    new Gauge({
      name: "reco_drift_psi",
      help: "Population stability index of the last hour of event time against the 24 h before it, by mix: category, event_type, item_popularity (0 until both windows have events)",
      labelNames: ["dimension"] as const,
      registers: [deps.registry],
      collect() {
        const r = drift();
        for (const d of DRIFT_DIMENSIONS) this.set({ dimension: d }, r.psi[d]);
      },
    });
    new Gauge({
      name: "reco_drift_events",
      help: "Events in the drift windows: recent (last hour of event time), reference (the 24 h before it)",
      labelNames: ["window"] as const,
      registers: [deps.registry],
      collect() {
        const r = drift();
        this.set({ window: "recent" }, r.events.recent);
        this.set({ window: "reference" }, r.events.reference);
      },
    });
  }
  return {
    drift,
    blendArm,
    ...(runs ? { scorer: scorerSettings } : {}),
    ...(arms ? { armOf: (user: string) => arms.armOf(user) } : {}),
    prequential,
    arms: armFigures,
  };
}
