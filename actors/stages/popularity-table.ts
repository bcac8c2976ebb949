import type { PopularityRow } from "./popularity.js";
import { byItemId, type PopularityTableView } from "./popularity-join.js";

export interface PopularityTable extends PopularityTableView {
  /** True once the watch has delivered the bucket's current content. */
  readonly initialised: boolean;
  /** Changes of the rows (not of the watermark): an answer made of rows is the same until it moves. */
  readonly version: number;
  /** Applies one row (also used by tests of pure logic). */
  apply(row: PopularityRow): void;
  /** The row of one item (purchases > 0), if any. */
  row(item: string): PopularityRow | undefined;
}

/** Whether a ranks before b: purchases descending, ties by item id. */
const ranksBefore = (a: PopularityRow, b: PopularityRow) =>
  a.purchases > b.purchases || (a.purchases === b.purchases && a.item < b.item);

/**
 * The first `k` rows of `rows` in rank order, in one pass: each row is compared with the last
 * kept, and only the few that beat it are inserted. A full sort of the table for every top list
 * was most of the fallback's work at 10k events/s: a purchase changes the table, and the next
 * answer sorted all of its rows again.
 */
export function topRows(rows: Iterable<PopularityRow>, k: number): PopularityRow[] {
  const top: PopularityRow[] = [];
  if (k <= 0) return top;
  for (const row of rows) {
    if (top.length === k && !ranksBefore(row, top[k - 1]!)) continue;
    let at = top.length < k ? top.length : k - 1;
    while (at > 0 && ranksBefore(row, top[at - 1]!)) {
      top[at] = top[at - 1]!;
      at--;
    }
    top[at] = row;
  }
  return top;
}

/** The in-memory popularity table: rows by item and by category, top list cached. */
export function createPopularityTable(): PopularityTable {
  const rows = new Map<string, PopularityRow>();
  const byCategory = new Map<string, Map<string, PopularityRow>>();
  // The first `topCache.length` rows (at least the `n` asked for), valid until a row changes.
  let topCache: PopularityRow[] | undefined;
  let topComplete = false; // topCache holds every row
  const rankedCache = new Map<string, PopularityRow[]>();
  const rank = (rows: Iterable<PopularityRow>) =>
    [...rows].sort((a, b) => b.purchases - a.purchases || byItemId(a.item, b.item));
  let wm = -1;
  let version = 0;
  const table: PopularityTable & { initialised: boolean } = {
    initialised: false,
    get size() {
      return rows.size;
    },
    get wm() {
      return wm;
    },
    get version() {
      return version;
    },
    category: (c) => byCategory.get(c)?.values() ?? [],
    row: (item) => rows.get(item),
    ranked(c) {
      let r = rankedCache.get(c);
      if (!r) rankedCache.set(c, (r = rank(byCategory.get(c)?.values() ?? [])));
      return r;
    },
    top(n) {
      if (topCache === undefined || (n > topCache.length && !topComplete)) {
        const k = Math.max(n, 16);
        topCache = topRows(rows.values(), k);
        topComplete = topCache.length < k;
      }
      return topCache.slice(0, n);
    },
    apply(row) {
      const prev = rows.get(row.item);
      // Heartbeats (no item, no purchases) move only the watermark: the rows stay the same.
      if (prev || row.purchases > 0) version++;
      if (prev) {
        byCategory.get(prev.category)?.delete(row.item);
        rankedCache.delete(prev.category);
      }
      rankedCache.delete(row.category);
      if (row.purchases > 0) {
        rows.set(row.item, row);
        let m = byCategory.get(row.category);
        if (!m) byCategory.set(row.category, (m = new Map()));
        m.set(row.item, row);
      } else rows.delete(row.item);
      if (row.wm > wm) wm = row.wm;
      topCache = undefined;
    },
  };
  return table;
}
