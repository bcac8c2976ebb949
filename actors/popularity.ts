import { decodeEnvelope, type StageHandler, type StageOutput } from "./host.js";
import type { StageState } from "../state/index.js";
import type { ParsedRecord } from "./parse.js";
import { BUCKETS, kvKeyOf } from "../connectors/nats/topology.js";
import { HOUR } from "./subjects.js";
import { sendLate, type LateCounter } from "./watermark.js";

/** One row of the popularity table (KV bucket reco_popularity, key = item). */
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

interface ItemData {
  /** hour start -> [purchases, price sum, priced purchases] */
  h: Record<string, [number, number, number]>;
  c: string;
  b: string;
}

export interface PopularityOptions {
  partition: number;
  /** Popularity horizon (DESIGN: 7 days of event time), counted in 1 h buckets. */
  horizonMs: number;
  counters?: LateCounter;
}

export interface PopularityHandler extends StageHandler {
  row(item: string): PopularityRow | undefined;
}

/** Computes an item's row at event time `now` from its hourly buckets. */
export function computeRow(
  item: string,
  d: ItemData,
  now: number,
  horizonMs: number,
): PopularityRow {
  const from = now - horizonMs;
  let n = 0;
  let sum = 0;
  let priced = 0;
  for (const [h, [k, s, p]] of Object.entries(d.h)) {
    if (Number(h) + HOUR <= from) continue;
    n += k;
    sum += s;
    priced += p;
  }
  return {
    item,
    purchases: n,
    category: d.c,
    brand: d.b,
    avgPrice: priced > 0 ? sum / priced : 0,
    wm: now,
  };
}

/**
 * KV key of the table's heartbeat: a row of no item (ids are never empty) and no purchases, whose
 * `wm` carries partition 0's progress. Every table moves its watermark on (table.wm is the
 * highest `wm` of any row it applied) even when no row changes, e.g. when only time passes, so
 * GetRecommendations reports the watermark its answer reflects.
 */
export const POPULARITY_HEARTBEAT_KEY = "wm.0";

export function heartbeatRow(wm: number): PopularityRow {
  return { item: "", purchases: 0, category: "", brand: "", avgPrice: 0, wm };
}

/**
 * popularity: purchases per product over the last 7 days of event time (1 h buckets), with main
 * category, brand and average price, kept as a small table in a KV bucket that every partition
 * (every popularity-join and fallback) watches: the broadcast side of the join. A purchase
 * already beyond the horizon when it arrives can never count: it goes to reco.late
 * (`behind_watermark:popularity`, with the watermark progress − horizon) and a counter.
 */
export function createPopularityHandler(
  state: StageState,
  out: StageOutput,
  opts: PopularityOptions,
): PopularityHandler {
  const items = state.map<ItemData>("item");
  const rows = state.map<PopularityRow>("row");
  const byHour = new Map<number, Set<string>>();
  for (const [i, d] of items.entries()) for (const h of Object.keys(d.h)) index(Number(h), i);
  let progress = Number(state.meta.progress ?? -1);
  let beat = -1; // progress of the last heartbeat row (in memory: a restart sends one again)

  function index(h: number, i: string) {
    let s = byHour.get(h);
    if (!s) byHour.set(h, (s = new Set()));
    s.add(i);
  }

  const publish = (item: string) => {
    const d = items.get(item);
    const row = d
      ? computeRow(item, d, progress, opts.horizonMs)
      : { item, purchases: 0, category: "", brand: "", avgPrice: 0, wm: progress };
    const prev = rows.get(item);
    if (
      prev &&
      prev.purchases === row.purchases &&
      prev.avgPrice === row.avgPrice &&
      prev.category === row.category &&
      prev.brand === row.brand
    )
      return;
    if (row.purchases === 0) rows.delete(item);
    else rows.set(item, row);
    out.kvPut(BUCKETS.popularity, kvKeyOf(item), row);
  };

  return {
    row: (i) => rows.get(i),
    handle(msg, lastUpTo) {
      const env = decodeEnvelope<ParsedRecord>(msg.data);
      const touched = new Set<string>();
      for (const r of env.recs) {
        if (r.s <= lastUpTo || r.t !== "purchase") continue;
        const now = Math.max(progress, r.wb);
        if (r.ts < now - opts.horizonMs) {
          // Beyond the horizon: it can never count. Kept in reco.late like any late event.
          sendLate(out, "popularity", "popularity", now - opts.horizonMs, r);
          opts.counters?.late("popularity", 1, "popularity");
          continue;
        }
        const h = r.ts - (r.ts % HOUR);
        const prev = items.get(r.i);
        const hours = { ...(prev?.h ?? {}) };
        const [k, s, p] = hours[h] ?? [0, 0, 0];
        hours[h] = [k + 1, s + (r.pr >= 0 ? r.pr : 0), p + (r.pr >= 0 ? 1 : 0)];
        items.set(r.i, { h: hours, c: r.c || prev?.c || "", b: r.b || prev?.b || "" });
        index(h, r.i);
        touched.add(r.i);
      }
      if (env.wm > progress) {
        progress = env.wm;
        state.meta.progress = progress;
      }
      const from = progress - opts.horizonMs;
      for (const [h, is] of [...byHour].sort((a, b) => a[0] - b[0])) {
        if (h + HOUR > from) break;
        byHour.delete(h);
        for (const i of is) {
          const d = items.get(i);
          if (!d) continue;
          const hours = { ...d.h };
          delete hours[h];
          if (Object.keys(hours).length === 0) items.delete(i);
          else items.set(i, { ...d, h: hours });
          touched.add(i);
        }
      }
      for (const i of touched) publish(i);
      if (opts.partition === 0 && progress > beat) {
        out.kvPut(BUCKETS.popularity, POPULARITY_HEARTBEAT_KEY, heartbeatRow(progress));
        beat = progress;
      }
      out.setProgress(progress);
    },
  };
}
