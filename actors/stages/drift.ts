import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { StageState } from "../../state/index.js";
import {
  DRIFT_DIMENSIONS,
  emptyBucket,
  type BucketCounts,
  type DriftDimension,
  type DriftSettings,
} from "../quality/index.js";
import type { ParsedRecord } from "../contract/index.js";
import { createStageHandler, NO_OUTPUT, type AdaptedHandler } from "../host/index.js";

/**
 * drift (DESIGN §7): per partition of the user path, counts of events per time bucket of event
 * time (5 min) by main category, event type and item, over the last 25 h of event-time progress;
 * actors/quality/drift-psi.ts turns them into PSI values (summed over the partitions by the wiring).
 *
 * State: one number per (bucket, mix, value) — `<bucket>|<mix>|<value>`, mix `n` (all events,
 * value ""), `c`, `t` or `i` — so a batch writes a few numbers, never a copy of a bucket, and the
 * host snapshots them with the input position like any stage's: a restart counts exactly what a
 * run without it counts. Buckets older than the windows are dropped as progress passes them.
 */
export interface DriftView {
  /** The counts by bucket start (read between batches only). */
  buckets(): ReadonlyMap<number, BucketCounts>;
  /** Event-time progress of this partition (epoch ms), -1 before any. */
  progress(): number;
}

const MIX: Record<string, DriftDimension | "n"> = {
  n: "n",
  c: "category",
  t: "event_type",
  i: "item_popularity",
};
const KEY_OF: Record<DriftDimension, string> = {
  category: "c",
  event_type: "t",
  item_popularity: "i",
};
/** A record without a category counts in this bin of the category mix. */
export const NO_CATEGORY = "(none)";

export const driftStage = defineStage({
  name: "drift",
  input: port<ParsedRecord>(),
  ports: {},
  create(ctx: StageContext<DriftSettings>) {
    const s = ctx.settings;
    const counts = ctx.state.map<number>("count");
    const buckets = new Map<number, BucketCounts>();
    let progress = -1;
    const into = (start: number) => {
      let b = buckets.get(start);
      if (!b) buckets.set(start, (b = emptyBucket()));
      return b;
    };
    // The in-memory index, rebuilt from the state.
    for (const [k, v] of counts.entries()) {
      const a = k.indexOf("|");
      const start = Number(k.slice(0, a));
      const mix = MIX[k.slice(a + 1, a + 2)];
      const value = k.slice(a + 3);
      const b = into(start);
      if (mix === "n") b.n = v;
      else if (mix) b[mix].set(value, v);
    }
    const horizon = s.recentMs + s.referenceMs;
    const count = ({ records, progress: p }: InputBatch<ParsedRecord>) => {
      progress = Math.max(progress, p.to);
      // The values each bucket counted in this batch, by dimension: their counts go to the state
      // once each after the batch (snapshots come between batches). A key built, read and set
      // per record and dimension was most of the stage's CPU; the buckets hold the same counts.
      const changed = new Map<number, Set<string>[]>();
      for (const r of records) {
        const at = Math.max(progress, r.ts);
        if (r.ts <= at - horizon - s.bucketMs) continue; // older than both windows: never read
        const start = r.ts - (r.ts % s.bucketMs);
        const b = into(start);
        b.n++;
        let values = changed.get(start);
        if (!values) changed.set(start, (values = DRIFT_DIMENSIONS.map(() => new Set<string>())));
        const cat = r.c === "" ? NO_CATEGORY : r.c;
        for (let x = 0; x < DRIFT_DIMENSIONS.length; x++) {
          const d = DRIFT_DIMENSIONS[x]!;
          const value = d === "category" ? cat : d === "event_type" ? r.t : r.i;
          b[d].set(value, (b[d].get(value) ?? 0) + 1);
          values[x]!.add(value);
        }
      }
      for (const [start, values] of changed) {
        const b = buckets.get(start)!;
        counts.set(`${start}|n|`, b.n);
        for (let x = 0; x < DRIFT_DIMENSIONS.length; x++) {
          const d = DRIFT_DIMENSIONS[x]!;
          for (const v of values[x]!) counts.set(`${start}|${KEY_OF[d]}|${v}`, b[d].get(v)!);
        }
      }
      // Drop the buckets no window reads any more.
      const oldest = progress - (progress % s.bucketMs) - horizon;
      for (const [start, b] of buckets) {
        if (start > oldest) continue;
        counts.delete(`${start}|n|`);
        for (const d of DRIFT_DIMENSIONS)
          for (const v of b[d].keys()) counts.delete(`${start}|${KEY_OF[d]}|${v}`);
        buckets.delete(start);
      }
    };
    const view: DriftView = { buckets: () => buckets, progress: () => progress };
    return {
      view,
      operator: (batches$) =>
        batches$.pipe(
          map((b) => {
            count(b);
            return {};
          }),
        ),
    };
  },
});

export type DriftHandler = AdaptedHandler<DriftView>;

export function createDriftHandler(state: StageState, settings: DriftSettings): DriftHandler {
  return createStageHandler(driftStage, state, NO_OUTPUT, { settings, topology: {} });
}
