import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { StageOutput } from "../host/index.js";
import type { ParsedRecord } from "../contract/index.js";
import { subjects } from "../contract/index.js";
import type { AdaptedHandler } from "../host/index.js";

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

export interface WatermarkSettings {
  /** Allowed out-of-orderness of the user path (DESIGN: 10 min). */
  outOfOrdernessMs: number;
}

export interface WatermarkView {
  /** Event-time watermark of the user path: progress − out-of-orderness; -Infinity before data. */
  readonly watermark: number;
}

/**
 * watermark: the user path's event-time clock for one partition. Progress (max event time over
 * the input) comes from parse with every record (`wb`) and batch; an event whose time is behind
 * its progress − out-of-orderness is late: it goes to the `late` port (reco.late and a counter),
 * never silently. On-time events pass on to the window stage with the progress; a batch with
 * nothing late or seen before passes on as it came (the same array: the host forwards its bytes).
 */
export const watermarkStage = defineStage({
  name: "watermark",
  input: port<ParsedRecord>(),
  ports: { window: port<ParsedRecord>(), late: port<LateRecord>() },
  create(ctx: StageContext<WatermarkSettings>) {
    const ooo = ctx.settings.outOfOrdernessMs;
    let progress = -1;
    const isLate = (r: ParsedRecord) => r.wb >= 0 && r.ts < r.wb - ooo;
    /** The batch split into on-time and late records; records seen before a restart dropped. */
    const split = ({ records, position }: InputBatch<ParsedRecord>) => {
      let asIs = true;
      for (const r of records)
        if (r.s <= position.from || isLate(r)) {
          asIs = false;
          break;
        }
      if (asIs) return { window: records };
      const window: ParsedRecord[] = [];
      const late: LateRecord[] = [];
      for (const r of records) {
        if (r.s <= position.from) continue; // already seen before a restart of parse
        if (isLate(r))
          late.push({
            stage: "watermark",
            reason: "behind_watermark:user",
            watermark: r.wb - ooo,
            event: r,
          });
        else window.push(r);
      }
      return { window, late };
    };
    return {
      view: {
        get watermark() {
          return progress < 0 ? -Infinity : progress - ooo;
        },
      } satisfies WatermarkView,
      operator: (batches$) =>
        batches$.pipe(
          tap((b) => (progress = b.progress.to)),
          map(split),
        ),
    };
  },
});

export type WatermarkHandler = AdaptedHandler<WatermarkView>;
