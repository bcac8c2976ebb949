import { Gauge, type Registry } from "prom-client";
import type { StageHandler, StageSpec } from "./host.js";
import { createDriftHandler, type DriftHandler } from "./drift.js";
import {
  DRIFT_DEFAULTS,
  DRIFT_DIMENSIONS,
  driftReport,
  type BucketCounts,
  type DriftReport,
  type DriftSettings,
} from "./drift-psi.js";
import { subjects } from "./subjects.js";

/**
 * DESIGN §7's live quality figures, wired into the pipeline: the drift stage (one instance per
 * user-path partition, beside the watermark stage on the same hops) and its gauges. The PSI is
 * computed over the partitions this process runs (all of them in one process); in a cluster each
 * worker reports its own partitions' mix.
 */
export interface QualityWiring {
  /** The drift report now (memoised for a second: scrapes and the console share it). */
  drift(): DriftReport;
}

export function qualityWiring(
  cfg: { partitions: number; drift?: Partial<DriftSettings> },
  deps: {
    stream: string;
    run: (spec: StageSpec<DriftHandler>) => void;
    /** The live handler of "<stage>/<partition>", if it runs. */
    live: (id: string) => StageHandler | undefined;
    registry?: Registry;
    now?: () => number;
  },
): QualityWiring {
  const settings: DriftSettings = { ...DRIFT_DEFAULTS, ...cfg.drift };
  for (let p = 0; p < cfg.partitions; p++)
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

  if (deps.registry) {
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
  return { drift };
}
