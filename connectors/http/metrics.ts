import { Counter, Gauge, Histogram, collectDefaultMetrics, Registry } from "prom-client";

/**
 * The process's Prometheus metrics (DESIGN.md §6). Per stage and partition: events in and out,
 * errors, restarts, mailbox depth, consumer lag, watermark progress, snapshot time; DLQ, late
 * and duplicate counts. gRPC metrics are registered by the gRPC connector on the same registry.
 */
export function createMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry });
  let badRatioProbe: (() => BadRatioReading) | undefined;
  const labels = ["stage", "partition"] as const;
  const m = {
    registry,
    eventsIn: new Counter({
      name: "reco_stage_events_in_total",
      help: "Input messages processed",
      labelNames: labels,
      registers: [registry],
    }),
    eventsOut: new Counter({
      name: "reco_stage_records_out_total",
      help: "Records emitted on hops",
      labelNames: labels,
      registers: [registry],
    }),
    errors: new Counter({
      name: "reco_stage_errors_total",
      help: "Failures of a stage instance",
      labelNames: labels,
      registers: [registry],
    }),
    restarts: new Counter({
      name: "reco_stage_restarts_total",
      help: "Restarts by the supervisor",
      labelNames: labels,
      registers: [registry],
    }),
    lag: new Gauge({
      name: "reco_stage_consumer_lag",
      help: "Messages pending on the stage's consumer",
      labelNames: labels,
      registers: [registry],
    }),
    mailbox: new Gauge({
      name: "reco_stage_mailbox_depth",
      help: "Messages waiting in the actor mailbox",
      labelNames: labels,
      registers: [registry],
    }),
    snapshotSeconds: new Histogram({
      name: "reco_stage_snapshot_seconds",
      help: "Time to flush outputs and write a snapshot",
      labelNames: labels,
      registers: [registry],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    }),
    snapshotKeys: new Counter({
      name: "reco_stage_snapshot_keys_total",
      help: "Keys written by snapshots",
      labelNames: labels,
      registers: [registry],
    }),
    poison: new Counter({
      name: "reco_dlq_poison_total",
      help: "Messages sent to reco.dlq.poison",
      labelNames: labels,
      registers: [registry],
    }),
    duplicateBatches: new Counter({
      name: "reco_stage_duplicate_batches_total",
      help: "Hop batches dropped as already seen",
      labelNames: labels,
      registers: [registry],
    }),
    accepted: new Counter({
      name: "reco_events_accepted_total",
      help: "Events accepted by parse",
      registers: [registry],
    }),
    duplicates: new Counter({
      name: "reco_events_duplicate_total",
      help: "Events dropped as duplicate event_id",
      registers: [registry],
    }),
    bad: new Counter({
      name: "reco_events_dead_lettered_total",
      help: "Events sent to reco.dlq.parse",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    late: new Counter({
      name: "reco_events_late_total",
      help: "Events behind the watermark (sent to reco.late)",
      labelNames: ["stage"] as const,
      registers: [registry],
    }),
    received: new Counter({
      name: "reco_events_in_total",
      help: "Events read by parse: accepted + dead-lettered + duplicates (see actors/parse.ts)",
      registers: [registry],
    }),
    badRatio: new Gauge({
      name: "reco_bad_event_ratio",
      help: "Share of bad (dead-lettered) events among the events of the last minute",
      registers: [registry],
      collect() {
        const r = badRatioProbe?.();
        if (r) this.set(r.ratio);
      },
    }),
    badRatioAlert: new Gauge({
      name: "reco_bad_event_ratio_alert",
      help: "1 while more than 5% of the last minute's events are bad, else 0",
      registers: [registry],
      collect() {
        const r = badRatioProbe?.();
        if (r) this.set(r.alerting ? 1 : 0);
      },
    }),
    /**
     * Sets what the bad-ratio gauges read at each scrape; the probe re-evaluates the alert, so a
     * quiet minute clears it even when no event arrives to do so.
     */
    watchBadRatio(probe: () => BadRatioReading): void {
      badRatioProbe = probe;
    },
    progress: new Gauge({
      name: "reco_event_time_progress_ms",
      help: "Max event time seen by parse (epoch ms)",
      registers: [registry],
    }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What the bad-ratio gauges show. */
export interface BadRatioReading {
  ratio: number;
  alerting: boolean;
}
