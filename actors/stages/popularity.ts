import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import { HOUR } from "../contract/index.js";
import type { LateCounter } from "./watermark.js";
import type { AdaptedHandler } from "../host/index.js";
import { loadItemBuckets, type ItemBuckets } from "./popularity-buckets.js";

/** One row of the popularity table (an upsert keyed by item). */
export interface PopularityRow {
  item: string;
  /** Purchases over the horizon; 0 means the item left the table. */
  purchases: number;
  category: string;
  brand: string;
  /** Average price of those purchases (0 when none had a price). */
  avgPrice: number;
  /** Event-time progress the row reflects. */
  wm: number;
}

export interface PopularitySettings {
  /** Popularity horizon (DESIGN: 7 days of event time), counted in 1 h buckets. */
  horizonMs: number;
  /** Whether this instance puts the table's heartbeat row (partition 0's does). */
  heartbeat: boolean;
}

export interface PopularityOptions {
  partition: number;
  horizonMs: number;
  counters?: LateCounter;
}

export interface PopularityView {
  row(item: string): PopularityRow | undefined;
}

export type PopularityHandler = AdaptedHandler<PopularityView>;

/** A purchase that can never count, with the watermark it was behind (progress − horizon). */
export interface LatePurchase {
  watermark: number;
  event: ParsedRecord;
}

/** An item's row at event time `now` from its hourly buckets (purchases 0: none left). */
function rowOf(item: string, buckets: ItemBuckets, now: number, horizonMs: number): PopularityRow {
  const t = buckets.totals(item, now - horizonMs);
  if (!t) return { item, purchases: 0, category: "", brand: "", avgPrice: 0, wm: now };
  return {
    item,
    purchases: t.purchases,
    category: t.category,
    brand: t.brand,
    avgPrice: t.priced > 0 ? t.priceSum / t.priced : 0,
    wm: now,
  };
}

/**
 * A row as the state holds it: [purchases, avgPrice, category, brand, wm], its item the key.
 * The object wrote its item and five names again at each snapshot that changed it (~100 B where
 * this is ~45). Snapshots from before hold objects: still read.
 */
type StoredRow = [purchases: number, avgPrice: number, category: string, brand: string, wm: number];
const rowFrom = (item: string, v: StoredRow | PopularityRow | undefined) =>
  v === undefined || !Array.isArray(v)
    ? v
    : { item, purchases: v[0], category: v[2], brand: v[3], avgPrice: v[1], wm: v[4] };

/** The table's heartbeat: a row of no item (ids are never empty) and no purchases. */
export function heartbeatRow(wm: number): PopularityRow {
  return { item: "", purchases: 0, category: "", brand: "", avgPrice: 0, wm };
}

/**
 * popularity: purchases per product over the last 7 days of event time (1 h buckets), with main
 * category, brand and average price, kept as a small table (a KV bucket in the topology) that
 * every partition (every popularity-join and fallback) watches: the broadcast side of the join.
 * A purchase already beyond the horizon when it arrives can never count: it goes to the `late`
 * port with the watermark progress − horizon.
 */
export const popularityStage = defineStage({
  name: "popularity",
  input: port<ParsedRecord>(),
  ports: {
    table: port<PopularityRow>(),
    heartbeat: port<PopularityRow>(),
    late: port<LatePurchase>(),
  },
  create(ctx: StageContext<PopularitySettings>) {
    const { horizonMs } = ctx.settings;
    const buckets = loadItemBuckets(ctx.state);
    const rows = ctx.state.map<StoredRow | PopularityRow>("row");
    let beat = -1; // progress of the last heartbeat row (in memory: a restart sends one again)

    /** Counts the batch's new purchases into hourly buckets: the items touched, the late ones. */
    const countPurchases = ({ records, position, progress }: InputBatch<ParsedRecord>) => {
      const touched = new Set<string>();
      const late: LatePurchase[] = [];
      for (const r of records) {
        if (r.s <= position.from || r.t !== "purchase") continue; // seen before a restart
        const now = Math.max(progress.from, r.wb);
        if (r.ts < now - horizonMs) {
          late.push({ watermark: now - horizonMs, event: r });
          continue;
        }
        buckets.add(r.i, r.ts - (r.ts % HOUR), r.pr, r.c, r.b);
        touched.add(r.i);
      }
      return { touched, late };
    };

    /** Drops the hourly buckets that left the horizon at `progress`; adds their items. */
    const expire = (progress: number, touched: Set<string>): Set<string> => {
      buckets.expire(progress - horizonMs, touched);
      return touched;
    };

    /** The rows of `touched` items that changed (purchases 0: the item left the table). */
    const changedRows = (touched: Set<string>, progress: number): PopularityRow[] => {
      const changed: PopularityRow[] = [];
      for (const item of touched) {
        const row = rowOf(item, buckets, progress, horizonMs);
        const prev = rowFrom(item, rows.get(item));
        if (
          prev &&
          prev.purchases === row.purchases &&
          prev.avgPrice === row.avgPrice &&
          prev.category === row.category &&
          prev.brand === row.brand
        )
          continue;
        if (row.purchases === 0) rows.delete(item);
        else rows.set(item, [row.purchases, row.avgPrice, row.category, row.brand, row.wm]);
        changed.push(row);
      }
      return changed;
    };

    /** The heartbeat row when progress moved since the last one (if this instance beats). */
    const heartbeat = (progress: number): PopularityRow[] => {
      if (!ctx.settings.heartbeat || progress <= beat) return [];
      beat = progress;
      return [heartbeatRow(progress)];
    };

    return {
      view: { row: (i) => rowFrom(i, rows.get(i)) } satisfies PopularityView,
      operator: (batches$) =>
        batches$.pipe(
          map((batch) => ({ progress: batch.progress.to, ...countPurchases(batch) })),
          map(({ progress, touched, late }) => ({
            table: changedRows(expire(progress, touched), progress),
            heartbeat: heartbeat(progress),
            late,
          })),
        ),
    };
  },
});
