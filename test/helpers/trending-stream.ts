import type { InputBatch } from "../../runtime/index.js";
import { HOUR, type EventType, type ParsedRecord } from "../../actors/contract/index.js";
import type { TrendingSettings, TrendingWeights } from "../../actors/stages/index.js";

const TYPES: EventType[] = ["view", "click", "cart", "purchase"];

/** Partition 0's settings with DESIGN's out-of-orderness (2 h, 26 h). */
export function trendingSettings(
  weights: TrendingWeights,
  topK: number,
): TrendingSettings & { partition: number } {
  return {
    partition: 0,
    oneHourOutOfOrdernessMs: 2 * HOUR,
    oneDayOutOfOrdernessMs: 26 * HOUR,
    weights,
    topK,
  };
}

/** Numbers in [0, 1] from a linear congruential generator: the same for the same seed. */
export function seededRandom(seed: number): () => number {
  let x = seed;
  return () => (x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
}

/** Where a random stream is: the last record's sequence, the input position and the progress. */
export interface StreamAt {
  seq: number;
  upTo: number;
  progress: number;
}

/**
 * One input batch of a random stream for the trending stage at processing time `now`: 1 to
 * `maxRecords` records of `items` items (a few much more often than the rest), a fifth of them
 * late by up to `lateByMs`, some ratings (half stars, and with `offRate` ratings such as 0.9,
 * whose sums depend on their order), each with the progress before it as its `wb`. Moves `at` on.
 */
export function randomBatch(
  rnd: () => number,
  at: StreamAt,
  now: number,
  o: { maxRecords: number; lateByMs: number; items: number; offRate: boolean },
): InputBatch<ParsedRecord> {
  const records: ParsedRecord[] = [];
  const n = 1 + Math.floor(rnd() * o.maxRecords);
  for (let k = 0; k < n; k++) {
    const ts = rnd() < 0.2 ? now - Math.floor(rnd() * o.lateByMs) : now;
    const y = rnd();
    const rating =
      y < 0.15 ? 0.5 * (1 + Math.floor(rnd() * 10)) : o.offRate && y < 0.3 ? 0.7 + 0.1 * k : -1;
    const item = `i${Math.floor(o.items * rnd() * rnd())}`;
    const t = rating > 0 ? "rating" : TYPES[Math.floor(rnd() * 4)]!;
    const s = ++at.seq;
    records.push({
      id: `e${s}`,
      t,
      ts,
      u: "u",
      i: item,
      c: "",
      b: "",
      pr: -1,
      r: rating,
      s,
      wb: at.progress,
    });
    at.progress = Math.max(at.progress, ts);
  }
  const from = at.upTo++;
  return {
    records,
    position: { from, upTo: at.upTo },
    progress: { from: records[0]!.wb, to: at.progress },
  };
}
