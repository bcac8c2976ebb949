import { partitionOf } from "../contract/index.js";
import { mergeCounters, type ItemCounter } from "../sources/index.js";
import type { CovisitView, ItemCountsView } from "../stages/index.js";

/**
 * What an answer reads of the item-wide sources: co-visitation (its one stage, whose progress is
 * the clock of answers) and the item counters of every item partition read together
 * (trending.ts mergeCounters), each item's category and price from its own partition.
 */
export interface ItemWideView extends CovisitView {
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /**
   * The view as it was just before the record of `item` at EVENTS sequence `s`, as far as the
   * item counters go: the item's counts as they were, if its partition has counted it; undefined
   * when that is no longer known (see ItemCountsView.before).
   */
  before(item: string, s: number): ItemWideView | undefined;
}

/** The item-wide view over the covisit stage and the item-counts stages, by item partition. */
export function itemWideView(
  covisit: CovisitView,
  counts: readonly ItemCountsView[],
): ItemWideView {
  const Q = counts.length;
  const partOf = (item: string) => partitionOf(item, Q);
  const trending = mergeCounters(
    counts.map((c) => c.trending()),
    partOf,
  );
  const popular = mergeCounters(
    counts.map((c) => c.popular()),
    partOf,
  );
  const view: ItemWideView = {
    covisit: () => covisit.covisit(),
    progress: () => covisit.progress(),
    fed: () => covisit.fed(),
    seq: () => covisit.seq(),
    trending: () => trending,
    popular: () => popular,
    categoryOf: (item) => counts[partOf(item)]!.categoryOf(item),
    priceOf: (item) => counts[partOf(item)]!.priceOf(item),
    before(item, s) {
      const was = counts[partOf(item)]!.before(item, s);
      if (!was) return undefined;
      if (!was.trending && !was.popular) return view;
      const t = was.trending && trending.with(item, was.trending);
      const p = was.popular && popular.with(item, was.popular);
      return {
        ...view,
        ...(t ? { trending: () => t } : {}),
        ...(p ? { popular: () => p } : {}),
      };
    },
  };
  return view;
}

/**
 * The item-wide view over whatever stages are running, composed again only when one of them is
 * a new instance (a restart): undefined while covisit or any item partition's counters do not run.
 */
export function itemWideViews(
  covisit: () => CovisitView | undefined,
  counts: readonly (() => ItemCountsView | undefined)[],
): () => ItemWideView | undefined {
  let last: { parts: readonly unknown[]; view: ItemWideView } | undefined;
  return () => {
    const c = covisit();
    if (!c) return undefined;
    const k: ItemCountsView[] = [];
    for (const read of counts) {
      const v = read();
      if (!v) return undefined;
      k.push(v);
    }
    const parts = [c, ...k];
    if (last && parts.every((x, i) => x === last!.parts[i])) return last.view;
    const view = itemWideView(c, k);
    last = { parts, view };
    return view;
  };
}
