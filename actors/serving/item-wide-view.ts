import { partitionOf } from "../contract/index.js";
import {
  mergeCounters,
  readCovisit,
  type CovisitOptions,
  type CovisitPart,
  type ItemCounter,
  type SimilarItemsReads,
} from "../sources/index.js";
import type { CovisitView } from "../stages/index.js";

/**
 * What an answer reads of the item-keyed sources, over every item partition's covisit stage:
 * co-visitation (each item's neighbours and total from the partition holding it), the trending
 * and popular counters read together (trending.ts mergeCounters), each item's category and price
 * from its partition. Each item's data is in one partition and was summed there in EVENTS order,
 * so a read gives the bits one instance fed every event gives (DESIGN §3, "Every stage on the
 * event path scales with partitions").
 */
export interface ItemWideView {
  covisit(): SimilarItemsReads;
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** Event-time progress: the newest of the partitions' (the clock of answers). */
  progress(): number;
  /** Events fed, over the partitions. */
  fed(): number;
  /** The newest EVENTS sequence any partition has fed (-1: none). */
  seq(): number;
}

/**
 * Co-visitation parts of disjoint items (one per item partition, one numbering) as one part:
 * an item's neighbours and total come from the partition holding it.
 */
export function routedCovisitPart(parts: readonly CovisitPart[]): CovisitPart {
  const ids = parts[0]!.ids;
  if (parts.some((p) => p.ids !== ids))
    throw new Error("co-visitation partitions read together must share one item numbering");
  const Q = parts.length;
  if (Q === 1) return parts[0]!;
  /** Partition by item number (numbers only grow, an item's partition never changes). */
  const byNumber: number[] = [];
  const ofNumber = (x: number) => {
    let q = byNumber[x];
    if (q === undefined) byNumber[x] = q = partitionOf(ids.names[x]!, Q);
    return q;
  };
  return {
    ids,
    edgesOf: (item) => parts[partitionOf(item, Q)]!.edgesOf(item),
    massOf: (x) => parts[ofNumber(x)]!.massOf(x),
    version: () => {
      let v = 0;
      for (const p of parts) v += p.version();
      return v;
    },
    get items() {
      let n = 0;
      for (const p of parts) n += p.items;
      return n;
    },
  };
}

/** The item-wide view over the item partitions' covisit stages (partition q at index q). */
export function itemWideView(parts: readonly CovisitView[], options: CovisitOptions): ItemWideView {
  const Q = parts.length;
  const partOf = (item: string) => (Q === 1 ? 0 : partitionOf(item, Q));
  const covisit = readCovisit(options, [routedCovisitPart(parts.map((p) => p.covisit().part))]);
  const trending = mergeCounters(
    parts.map((p) => p.trending()),
    partOf,
  );
  const popular = mergeCounters(
    parts.map((p) => p.popular()),
    partOf,
  );
  return {
    covisit: () => covisit,
    trending: () => trending,
    popular: () => popular,
    categoryOf: (item) => parts[partOf(item)]!.categoryOf(item),
    priceOf: (item) => parts[partOf(item)]!.priceOf(item),
    progress: () => {
      let p = -1;
      for (const v of parts) p = Math.max(p, v.progress());
      return p;
    },
    fed: () => {
      let n = 0;
      for (const v of parts) n += v.fed();
      return n;
    },
    seq: () => {
      let s = -1;
      for (const v of parts) s = Math.max(s, v.seq());
      return s;
    },
  };
}

/**
 * The item-wide view over whatever stages are running, composed again only when one of them is
 * a new instance (a restart) or returns new sources: undefined while any partition's does not run
 * here.
 */
export function itemWideViews(
  reads: readonly (() => CovisitView | undefined)[],
  options: CovisitOptions,
): () => ItemWideView | undefined {
  let last: { parts: readonly unknown[]; view: ItemWideView } | undefined;
  return () => {
    const views: CovisitView[] = [];
    const parts: unknown[] = [];
    for (const read of reads) {
      const v = read();
      if (!v) return undefined;
      views.push(v);
      parts.push(v, v.covisit(), v.trending(), v.popular());
    }
    if (last && parts.length === last.parts.length && parts.every((x, i) => x === last!.parts[i]))
      return last.view;
    const view = itemWideView(views, options);
    last = { parts, view };
    return view;
  };
}
