/** One row of the results table. */
export interface Row {
  step: string;
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
}

/** What a step writes into: rows of the table, notes under it, and failures (exit code 1). */
export interface Report {
  row(r: Partial<Row> & Pick<Row, "step" | "figure" | "value">): void;
  note(text: string): void;
  /** A failed check: the run still completes, but exits non-zero. */
  fail(): void;
  /** Progress on stderr, with the time since the run started. */
  log(msg: string): void;
}

export const ratio = (a: number, b: number) =>
  Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a";
export const verdict = (ok: boolean) => (ok ? "met" : "NOT met");

/**
 * The targets of DESIGN §8 the bench checks (docs/DESIGN.md, "Targets"; the shared
 * DESIGN adds the 0.2× of raw consume, the 1 KB per user and the scale-out ratio). test/bench-targets.test.ts reads
 * them back from docs/DESIGN.md.
 */
export const TARGETS = {
  /** Where they come from, for the table's header. */
  section: "DESIGN §8",
  /** End-to-end ingest, events/s on 2 cores ... */
  ingestEventsPerSec: 50_000,
  /** ... and at least this share of raw JetStream consume in the same run. */
  ingestShareOfRawConsume: 0.2,
  /** Freshness p99 (ms) at this rate (events/s). */
  freshnessP99Ms: 100,
  freshnessRate: 10_000,
  /** GetRecommendations at 64 calls: share of the echo's req/s, p99 at most this × the echo's. */
  servingShareOfEcho: 0.7,
  servingP99OfEcho: 1.5,
  /** Serving again after a SIGKILL with 1M users of state (ms). */
  recoveryMs: 3_000,
  /** Two workers pinned to a core each ingest at least this × one worker pinned to one. */
  scaleOutRatio: 1.7,
  /** RSS per active user at 1M users (bytes). */
  bytesPerUserAt1M: 1024,
} as const;
