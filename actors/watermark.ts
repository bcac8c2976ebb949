import { decodeEnvelope, type StageHandler, type StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { ParsedRecord } from "./parse.js";
import { subjects } from "./subjects.js";

export interface WatermarkOptions {
  partition: number;
  /** Allowed out-of-orderness of the user path (DESIGN: 10 min). */
  outOfOrdernessMs: number;
  counters?: LateCounter;
}

/**
 * Counts late events: `stage` is the stage that found them late, `path` the clock they were late
 * for (`user`, `1h`, `24h`, `popularity`), as in their reco.late reason `behind_watermark:<path>`.
 */
export interface LateCounter {
  late(stage: string, n: number, path?: string): void;
}

export interface WatermarkHandler extends StageHandler {
  /** Event-time watermark of the user path: progress − out-of-orderness; -Infinity before data. */
  readonly watermark: number;
}

/** A late event as kept in reco.late. */
export interface LateRecord {
  stage: string;
  reason: string;
  /** The watermark the event was behind. */
  watermark: number;
  event: ParsedRecord;
}

const enc = new TextEncoder();

/** Routes an event behind the watermark to reco.late, with the reason and the watermark. */
export function sendLate(
  out: StageOutput,
  stage: string,
  path: string,
  watermark: number,
  rec: ParsedRecord,
) {
  const late: LateRecord = { stage, reason: `behind_watermark:${path}`, watermark, event: rec };
  out.raw(
    subjects.late,
    enc.encode(JSON.stringify(late)),
    { "Reco-Reason": late.reason, "Reco-Watermark": String(watermark), "Reco-Stage": stage },
    `late.${stage}.${path}.${rec.s}`,
  );
}

/**
 * watermark: the user path's event-time clock for one partition. Progress (max event time over
 * the input) comes from parse with every record (`wb`) and batch (`wm`); an event whose time is
 * behind progress − out-of-orderness is late: it goes to reco.late and a counter, never silently.
 * On-time events pass on to the window stage with the progress.
 */
export function createWatermarkHandler(
  state: StageState,
  out: StageOutput,
  opts: WatermarkOptions,
): WatermarkHandler {
  let progress = Number(state.meta.progress ?? -1);
  const target = subjects.watermark(opts.partition);
  return {
    get watermark() {
      return progress < 0 ? -Infinity : progress - opts.outOfOrdernessMs;
    },
    handle(msg, lastUpTo) {
      const env = decodeEnvelope<ParsedRecord>(msg.data);
      const ooo = opts.outOfOrdernessMs;
      let asIs = out.forward !== undefined;
      for (const r of env.recs)
        if (r.s <= lastUpTo || (r.wb >= 0 && r.ts < r.wb - ooo)) {
          asIs = false;
          break;
        }
      let late = 0;
      // Nothing late, nothing seen before: the batch goes on as it came, not encoded again.
      if (asIs) out.forward!(target, msg.data, env.recs);
      else
        for (const r of env.recs) {
          if (r.s <= lastUpTo) continue; // already seen before a restart of parse
          if (r.wb >= 0 && r.ts < r.wb - opts.outOfOrdernessMs) {
            sendLate(out, "watermark", "user", r.wb - opts.outOfOrdernessMs, r);
            late++;
          } else out.emit(target, r);
        }
      if (late > 0) opts.counters?.late("watermark", late, "user");
      if (env.wm > progress) {
        progress = env.wm;
        state.meta.progress = progress;
      }
      out.setProgress(progress);
      out.touch(target);
    },
  };
}
