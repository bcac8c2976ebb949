import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
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
      help: "Input records processed: events for parse, the records of the hop batches for the other stages",
      labelNames: labels,
      registers: [registry],
    }),
    messagesIn: new Counter({
      name: "reco_stage_messages_in_total",
      help: "Input messages processed: one per event for parse, one per hop batch for the other stages",
      labelNames: labels,
      registers: [registry],
    }),
    eventsOut: new Counter({
      name: "reco_stage_records_out_total",
      help: "Records a stage emitted: hop records, table upserts (KV puts), late and dead letters",
      labelNames: labels,
      registers: [registry],
    }),
    busySeconds: new Counter({
      name: "reco_stage_busy_seconds_total",
      help: "Seconds of its process's event loop a stage instance spent handling its messages (input hops, flushes, ticks, snapshot captures): its share of that process's main thread",
      labelNames: labels,
      registers: [registry],
    }),
    busyLongest: new Gauge({
      name: "reco_stage_busy_longest_seconds",
      help: "The longest a stage instance held its process's event loop with one message since it started (a hop of many records, a snapshot capture): what a request waits for at most behind it",
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
    restoreSeconds: new Gauge({
      name: "reco_stage_restore_seconds",
      help: "How long the stage instance's last start took to restore its state, by part: `state` reads its snapshot (LevelDB, the cold index), `handler` builds the stage's in-memory structures from it. Starts restore one instance at a time, on the event loop that serves",
      labelNames: [...labels, "part"] as const,
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
      help: "Events read by parse: accepted + dead-lettered + duplicates (see actors/stages/parse.ts)",
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
    buildInfo: new Gauge({
      name: "reco_build_info",
      help: "1, labelled with the version (package.json), git commit and Node.js version running",
      labelNames: ["version", "commit", "node"] as const,
      registers: [registry],
      // The parse process has it too: merged, it must stay 1, not add up.
      aggregator: "first",
    }),
    /**
     * The labelled series of one stage instance, at 0 (counters) from its start: a series that
     * appears only at its first increment leaves rate() and increase() empty until then, and
     * dashboards and alerts blind.
     */
    initStage(stage: string, partition: number): void {
      const l = { stage, partition: String(partition) };
      for (const c of [
        m.eventsIn,
        m.messagesIn,
        m.eventsOut,
        m.busySeconds,
        m.errors,
        m.restarts,
        m.poison,
        m.duplicateBatches,
        m.snapshotKeys,
      ])
        c.inc(l, 0);
      m.lag.set(l, 0);
      m.mailbox.set(l, 0);
    },
  };
  // Known label sets of the event counters, at 0 from the start (see initStage).
  for (const stage of LATE_STAGES) m.late.inc({ stage }, 0);
  for (const reason of KNOWN_BAD_REASONS) m.bad.inc({ reason }, 0);
  m.accepted.inc(0);
  m.duplicates.inc(0);
  m.received.inc(0);
  m.buildInfo.set(BUILD_INFO, 1);
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The stages that send events to reco.late (label `stage` of reco_events_late_total). */
export const LATE_STAGES = ["watermark", "trending", "popularity"] as const;

/**
 * Dead-letter reasons given a series from the start; other reasons (`missing_field:<f>`,
 * `invalid_field:<f>`, …) appear at their first dead letter.
 */
export const KNOWN_BAD_REASONS = ["bad_json", "bad_protobuf", "event_too_large"] as const;

/** reco_build_info's labels: package version, git commit (RECO_COMMIT or .git), Node.js. */
export const BUILD_INFO = buildInfo();

function buildInfo(): { version: string; commit: string; node: string } {
  // The package's folder: the nearest one up with its package.json (this module runs from
  // connectors/http/ under tsx, and from a bundle in dist/ otherwise).
  let root = dirname(fileURLToPath(import.meta.url));
  let version = "unknown";
  for (let up = 0; up < 6; up++, root = dirname(root)) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
        name?: string;
        version: string;
      };
      if (pkg.name !== "reco-stream") continue;
      version = pkg.version;
      break;
    } catch {
      // not here
    }
  }
  return {
    version,
    commit: process.env.RECO_COMMIT || gitCommit(root),
    node: process.versions.node,
  };
}

/** HEAD's commit read from .git (no git binary needed; a worktree too); "unknown" elsewhere. */
function gitCommit(root: string): string {
  try {
    let gitDir = join(root, ".git");
    if (statSync(gitDir).isFile())
      gitDir = resolve(
        root,
        readFileSync(gitDir, "utf8")
          .replace(/^gitdir:\s*/, "")
          .trim(),
      );
    // A worktree keeps its HEAD and shares the refs of the main repository (commondir).
    let common = gitDir;
    try {
      common = resolve(gitDir, readFileSync(join(gitDir, "commondir"), "utf8").trim());
    } catch {
      // not a worktree
    }
    const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return head.slice(0, 12);
    const ref = head.slice(5);
    for (const dir of [gitDir, common]) {
      try {
        return readFileSync(join(dir, ref), "utf8").trim().slice(0, 12);
      } catch {
        // packed, or in the other directory
      }
    }
    const packed = readFileSync(join(common, "packed-refs"), "utf8");
    const line = packed.split("\n").find((l) => l.endsWith(` ${ref}`));
    return line ? line.slice(0, 12) : "unknown";
  } catch {
    return "unknown";
  }
}

/** What the bad-ratio gauges show. */
export interface BadRatioReading {
  ratio: number;
  alerting: boolean;
}
