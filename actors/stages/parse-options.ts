import type { StageHandler, IdleOptions } from "../host/index.js";
import type { BadRatioMonitor } from "./bad-ratio.js";
import type { Preset } from "../contract/index.js";

/** What parse takes and gives: its record, settings, accounting and view. */

export interface ParseOptions {
  partitions: number;
  preset: Preset;
  /** Seen ids are forgotten once their event time is this far behind the progress. */
  dedupeHorizonMs: number;
  /** And at most this many are kept (oldest event time first out, ties by id). */
  dedupeMaxIds: number;
  maxEventBytes: number;
  /**
   * MAX_FUTURE_SKEW_MS: an event whose time is more than this ahead of when JetStream stored it
   * is dead-lettered as `event_ts_in_future` (one event dated 9999 would otherwise make every
   * later event late, for good: it stays in EVENTS). The stored time is part of the log, so a
   * replay decides the same. 0: off. Default 1 h.
   */
  maxFutureSkewMs?: number;
  /** Progress is broadcast to idle partitions at most this often (ms of processing time). */
  broadcastEveryMs: number;
  /**
   * A slower cadence for small moves: progress that moved less than `belowMs` of event time
   * since the last broadcast waits until `everyMs` of processing time have passed. Under live
   * traffic event time creeps with the clock and nothing downstream needs it sooner (windows
   * close minutes of event time later); a replay's or an idle marker's jumps still go at
   * `broadcastEveryMs`. Absent: every move at `broadcastEveryMs`.
   */
  slowBroadcast?: { everyMs: number; belowMs: number };
  counters?: ParseCounters;
  /** Event time moves on while the whole input is quiet (DESIGN §3.2); absent: never. */
  idle?: IdleOptions;
  /**
   * The engine's key for idle markers (connectors/nats/engine-key.ts): parse signs the markers
   * it writes, and a message on {@link IDLE_SUBJECT} counts as a marker only with a valid
   * signature; one without is dead-lettered as `idle_marker_unsigned`. Absent: parse writes no
   * markers and trusts none.
   */
  markerKey?: Uint8Array;
  /**
   * The movies preset's catalogue: movie id -> category (first genre of MovieLens `movies.csv`,
   * lowercased; see {@link loadMoviesCatalog}). An event without `category_code` gets its
   * movie's category. Used only with preset `movies`.
   */
  genres?: ReadonlyMap<string, string>;
  /**
   * The bad-event ratio alert (actors/stages/bad-ratio.ts), told of every input message, good or bad.
   * Created outside the handler (createBadRatioAlert in actors/stages/parse-metrics.ts), so an alert
   * survives a restart of the parse actor; whoever reads the alert re-evaluates it, so a quiet
   * minute clears it. If it has `progress` (createBadRatioAlert's does: the gauge
   * reco_event_time_progress_ms), it is told the event-time progress whenever it moves, and at
   * start the progress restored from the snapshot.
   */
  badRatio?: BadRatioMonitor & { progress?(ms: number): void };
  clock?: () => number;
}

/**
 * The accounting of parse. Every input message parse handles is counted once by
 * `received` and, unless `handle` throws, once by exactly one of `accepted`, `duplicate` or
 * `bad`, so for parse:
 *
 *     in = accepted + dead-lettered + duplicates
 *
 * (reco_events_in_total = reco_events_accepted_total + sum(reco_events_dead_lettered_total)
 * + reco_events_duplicate_total). A `handle` that throws leaves `in` ahead by one: such an
 * attempt is a parse failure (reco_stage_errors_total{stage="parse"}), and a message that fails
 * `MAX_ATTEMPTS` times goes to reco.dlq.poison (reco_dlq_poison_total) without reaching parse
 * again. After a restart parse replays from its snapshot and the Prometheus counters count the
 * replayed messages again, in every term alike, so the identity still holds over the life of a
 * process; counts kept in the snapshot (StageOutput.count, reco_stage_count) are exact.
 *
 * Late events are not a fourth outcome of parse: lateness is decided downstream, per path, and
 * a late event has already been counted as accepted here. On the user path every accepted event
 * reaches exactly one watermark partition, so accepted = on time + reco_events_late_total{stage=
 * "watermark"}, and the accounting "in = accepted + dead-lettered + duplicates + late" reads, with
 * accepted meaning "accepted and on time on the user path":
 *
 *     in = (accepted − late{watermark}) + late{watermark} + dead-lettered + duplicates
 *
 * The item path decides lateness per consumer (trending counts views and clicks once per window
 * kind they are late for; popularity counts purchases beyond its 7-day horizon), so its late
 * counts are subsets of accepted, not terms of this sum.
 */
export interface ParseCounters {
  /** An input message reached parse (before any decision). */
  received?(n: number): void;
  accepted(n: number): void;
  duplicate(n: number): void;
  bad(reason: string): void;
}

export interface ParseView {
  /** Event-time progress: the highest event time accepted or moved to by an idle marker. */
  readonly progress: number;
  /** Whether progress moved since it was last broadcast (a broadcast is still to come). */
  readonly broadcastPending: boolean;
}

export type ParseHandler = StageHandler & ParseView & { tick(): void };

/** The stage's settings: ParseOptions but the clock (the context's scheduler). */
export type ParseSettings = Omit<ParseOptions, "clock">;
