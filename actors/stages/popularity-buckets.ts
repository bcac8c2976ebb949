import type { StateMaps } from "../../runtime/index.js";
import { HOUR } from "../contract/index.js";

/**
 * Popularity's purchases per item and hour, kept in its state one key per bucket:
 * "<hour number>|<item>" → [purchases, price sum, priced purchases], and "<item>" → [main
 * category, brand] apart. A snapshot then writes the buckets that a purchase or the horizon
 * changed. The layout before held an item's every bucket in one value (`{ h: { <hour start>:
 * [...] }, c, b }`), rewritten whole at each snapshot after a purchase of it and again as each
 * hour left the horizon: up to 168 buckets per write, ~380 B per key on a 9-day synthetic log
 * (the largest JSON part of the design stages' snapshots there, ~76 B per event).
 */
export type Bucket = [purchases: number, priceSum: number, priced: number];

/** What the layout before held per item ("item" map), moved to buckets on load. */
interface OldItem {
  h: Record<string, Bucket>;
  c: string;
  b: string;
}

export interface ItemTotals {
  purchases: number;
  priceSum: number;
  priced: number;
  category: string;
  brand: string;
}

export interface ItemBuckets {
  /** Counts a purchase (price −1: none) into the item's bucket of the hour starting at `h`. */
  add(item: string, h: number, price: number, category: string, brand: string): void;
  /** Drops the buckets of every hour that ends at or before `from`; adds their items. */
  expire(from: number, touched: Set<string>): void;
  /** The item's totals over its buckets whose hour ends after `from`; undefined: none held. */
  totals(item: string, from: number): ItemTotals | undefined;
}

const bucketKey = (h: number, item: string) => `${h / HOUR}|${item}`;

/** Inserts `h` into an ascending array (an item has at most the horizon's hours). */
function insertHour(hours: number[], h: number): void {
  let x = hours.length;
  while (x > 0 && hours[x - 1]! > h) x--;
  hours.splice(x, 0, h);
}

/** The buckets of a popularity stage's state; items of the layout before move to them now. */
export function loadItemBuckets(state: StateMaps): ItemBuckets {
  const buckets = state.map<Bucket>("bucket");
  const meta = state.map<[category: string, brand: string]>("meta");
  const old = state.map<OldItem>("item");
  for (const item of [...old.keys()]) {
    const d = old.get(item)!;
    for (const [h, b] of Object.entries(d.h)) buckets.set(bucketKey(Number(h), item), b);
    meta.set(item, [d.c, d.b]);
    old.delete(item);
  }
  /**
   * Each item's hours with a bucket, ascending: totals sum in that order, whatever order the
   * buckets came in (a restart loads them in another), so a restored row is the same number.
   */
  const hoursOf = new Map<string, number[]>();
  /** Hour start → the items with a bucket in it. */
  const byHour = new Map<number, Set<string>>();
  const held = (item: string, h: number) => {
    const hours = hoursOf.get(item);
    if (hours) insertHour(hours, h);
    else hoursOf.set(item, [h]);
    let s = byHour.get(h);
    if (!s) byHour.set(h, (s = new Set()));
    s.add(item);
  };
  for (const k of buckets.keys()) {
    const at = k.indexOf("|");
    held(k.slice(at + 1), Number(k.slice(0, at)) * HOUR);
  }

  return {
    add(item, h, price, category, brand) {
      const key = bucketKey(h, item);
      const b = buckets.get(key);
      if (!b) held(item, h);
      const [k, s, p] = b ?? [0, 0, 0];
      buckets.set(key, [k + 1, s + (price >= 0 ? price : 0), p + (price >= 0 ? 1 : 0)]);
      const m = meta.get(item);
      const c = category || m?.[0] || "";
      const br = brand || m?.[1] || "";
      if (!m || m[0] !== c || m[1] !== br) meta.set(item, [c, br]);
    },
    expire(from, touched) {
      for (const [h, items] of [...byHour].sort((a, b) => a[0] - b[0])) {
        if (h + HOUR > from) break;
        byHour.delete(h);
        for (const item of items) {
          buckets.delete(bucketKey(h, item));
          const hours = hoursOf.get(item)!;
          hours.splice(hours.indexOf(h), 1);
          if (hours.length === 0) {
            hoursOf.delete(item);
            meta.delete(item);
          }
          touched.add(item);
        }
      }
    },
    totals(item, from) {
      const hours = hoursOf.get(item);
      if (!hours) return undefined;
      let purchases = 0;
      let priceSum = 0;
      let priced = 0;
      for (const h of hours) {
        if (h + HOUR <= from) continue;
        const [k, s, p] = buckets.get(bucketKey(h, item))!;
        purchases += k;
        priceSum += s;
        priced += p;
      }
      const [category, brand] = meta.get(item) ?? ["", ""];
      return { purchases, priceSum, priced, category, brand };
    },
  };
}
