import { formatEngineReport, type EngineReport } from "./engine-report.js";
import type { ReplayFormat } from "./formats.js";

/**
 * What a replay did, as `replayFile` returns it and as `reco replay` prints it at the end: kept
 * apart from the publishing so that the report's wording can be checked without a server.
 */

export interface Rejection {
  line: number;
  reason: string;
}

export interface ReplaySummary {
  format: ReplayFormat;
  /** Data rows read (the header and blank lines not counted); what `limit` counts. */
  rows: number;
  /** Events published and acked, duplicates included. */
  sent: number;
  /**
   * Events the stream already held (same `Nats-Msg-Id` inside its duplicate window, 2 min by
   * default): a repeated row of this file, or an event of a replay that ran just before.
   */
  duplicates: number;
  /** How the events were ordered: by event time (`sorted`, `bounded`) or as in the file. */
  order: "sorted" | "bounded" | "file";
  /** Rows sent behind a later event time (only with the bounded sort of a large file). */
  outOfOrder: number;
  /** What the engine made of them, when asked (`awaitEngineMs`). */
  engine?: EngineReport;
  /** Rows that could not be turned into an event. */
  rejected: number;
  /** The first {@link MAX_REPORTED} rejections. */
  rejections: Rejection[];
  elapsedMs: number;
  /** True when stopped early by `signal` (what was read so far is sent and acked). */
  aborted: boolean;
}

/** Rejections printed and kept in the summary; the rest are only counted. */
export const MAX_REPORTED = 20;

/**
 * `read N rows: sent M events in event-time order (D already in the stream), rejected K rows, in
 * X.Xs (R events/s)`, then the engine's line when it was asked.
 */
export function formatSummary(s: ReplaySummary): string {
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? Math.round(s.sent / secs) : s.sent;
  const order =
    s.order === "sorted"
      ? "in event-time order (sorted in memory)"
      : s.order === "bounded"
        ? `in event-time order (sorted with a bound: ${s.outOfOrder} rows still out of order)`
        : "in file order";
  const lines = [
    `read ${s.rows} rows: sent ${s.sent} events ${order} ` +
      `(${s.duplicates} already in the stream), rejected ${s.rejected} rows, ` +
      `in ${secs.toFixed(1)}s (${rate} events/s)`,
  ];
  if (s.engine) lines.push(formatEngineReport(s.engine, s.sent));
  const late = s.engine ? Math.max(0, ...Object.values(s.engine.late)) : 0;
  if (s.sent > 0 && late > s.sent / 2)
    lines.push(
      `most events were late (${late} of ${s.sent} on one path): the engine's event-time clock ` +
        "was already past this log (it had seen later events), so they counted for nothing. " +
        "Replay it into an engine with a fresh DATA_DIR (e.g. DATA_DIR=./data-movies npm start) " +
        "to have them counted",
    );
  return lines.join("\n");
}
