import type { StageOutput } from "../../actors/host.js";

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
    touch: (subject) => void rec.touches.push(subject),
    setProgress: (wm) => void rec.progress.push(wm),
    raw: (subject, data, headers, msgId) => void rec.raws.push({ subject, data, headers, msgId }),
    kvPut: (bucket, key, value) => void rec.kvPuts.push([bucket, key, value]),
    count: (name, n = 1) => void (rec.counts[name] = (rec.counts[name] ?? 0) + n),
  };
  return { out, rec };
}
