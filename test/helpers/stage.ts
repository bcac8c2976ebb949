import type { SchedulerLike } from "rxjs";
import type { StageOutput } from "../../actors/host/index.js";
import type { InputBatch, StageContext, StateMaps } from "../../runtime/index.js";
import { createStageState } from "../../state/store.js";

/** One call of StageOutput.raw, as the fake output records it. */
export interface RawCall {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  msgId: string;
}

/** A StageOutput that records every call, for unit tests of stage handlers. */
export function fakeOutput() {
  const rec = {
    emits: [] as [string, unknown][],
    /** StageOutput.forward calls (their records are in `emits` too). */
    forwards: [] as [string, Uint8Array][],
    touches: [] as string[],
    /** Idle markers a touch carried (StageOutput.touch's `ix`), by subject. */
    idles: [] as [string, readonly number[]][],
    raws: [] as RawCall[],
    kvPuts: [] as [string, string, unknown][],
    counts: {} as Record<string, number>,
    progress: [] as number[],
  };
  const out: StageOutput = {
    emit: (subject, record) => void rec.emits.push([subject, record]),
    forward: (subject, data, recs) => {
      rec.forwards.push([subject, data]);
      for (const r of recs) rec.emits.push([subject, r]);
    },
    touch: (subject, ix) => {
      rec.touches.push(subject);
      if (ix !== undefined) rec.idles.push([subject, ix]);
    },
    setProgress: (wm) => void rec.progress.push(wm),
    raw: (subject, data, headers, msgId) => void rec.raws.push({ subject, data, headers, msgId }),
    kvPut: (bucket, key, value) => void rec.kvPuts.push([bucket, key, value]),
    count: (name, n = 1) => void (rec.counts[name] = (rec.counts[name] ?? 0) + n),
  };
  return { out, rec };
}

/** A stage context on an in-memory state, for marble tests of a stage's operator. */
export function stageContext<S>(
  settings: S,
  scheduler: SchedulerLike,
  state: StateMaps = createStageState(),
) {
  const counts: Record<string, number> = {};
  const ctx: StageContext<S> = {
    name: "test",
    state,
    settings,
    scheduler,
    count: (name, n = 1) => void (counts[name] = (counts[name] ?? 0) + n),
  };
  return { ctx, counts };
}

/**
 * Input batches as the host hands them over: positions 1, 2, ... and progress kept as the host
 * keeps it (the highest seen, never back). Call in input order.
 */
export function batchMaker<R>() {
  let upTo = 0;
  let progress = -1;
  return (wm: number, records: R[], from = upTo): InputBatch<R> => {
    const before = progress;
    progress = Math.max(progress, wm);
    upTo++;
    return { records, position: { from, upTo }, progress: { from: before, to: progress } };
  };
}
