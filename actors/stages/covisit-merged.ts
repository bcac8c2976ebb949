import {
  readCovisit,
  readItemCounters,
  type CovisitOptions,
  type ItemCounter,
  type SimilarItemsReads,
} from "../sources/index.js";
import type { PrequentialView } from "./prequential-scorer.js";
import type { CovisitView } from "./covisit-view.js";
import { mergePrequentialViews } from "./prequential-merged.js";

/**
 * The covisit stage runs per user partition (DESIGN §3, "Every stage on the event path scales
 * with partitions"): each instance holds the pairs, masses and counts of its own users. Serving,
 * and the prequential scorer, read every partition's data together: co-visitation and the
 * counters summed per item in partition order at read time (covisit-read.ts,
 * item-counter-read.ts), categories from the first partition that knows the item, prices summed.
 * The answer is a function of the partitions' data alone, so neither the number of workers nor
 * how the partitions' records interleaved changes it.
 *
 * A merged view is built once per set of partition views (the same handlers read the same maps
 * as they change) and kept while every view is the same object.
 */
export function createMergedViews(
  opts: CovisitOptions,
): (views: readonly CovisitView[]) => CovisitView {
  let last: { views: readonly CovisitView[]; merged: CovisitView } | undefined;
  return (views) => {
    if (views.length === 1) return views[0]!;
    if (last && last.views.length === views.length && last.views.every((v, i) => v === views[i]))
      return last.merged;
    const merged = mergeCovisitViews(opts, views);
    last = { views: [...views], merged };
    return merged;
  };
}

function mergeCovisitViews(opts: CovisitOptions, views: readonly CovisitView[]): CovisitView {
  const partOf = (v: CovisitView) => {
    const c = v.covisit();
    if (!("part" in c)) throw new Error("a covisit view read together must be one partition's");
    return c.part;
  };
  const covisit = readCovisit(
    opts,
    views.map((v) => partOf(v)),
  );
  const trending = readItemCounters(views.map((v) => v.trending()));
  const popular = readItemCounters(views.map((v) => v.popular()));
  const pricesOf = (item: string): [number, number] | undefined => {
    let out: [number, number] | undefined;
    for (const v of views) {
      const p = v.pricesOf(item);
      if (!p) continue;
      out = out ? [out[0] + p[0], out[1] + p[1]] : [p[0], p[1]];
    }
    return out;
  };
  let preq: { parts: (PrequentialView | undefined)[]; view: PrequentialView } | undefined;
  return {
    covisit: () => covisit,
    trending: () => trending,
    popular: () => popular,
    categoryOf: (item) => {
      for (const v of views) {
        const c = v.categoryOf(item);
        if (c !== undefined) return c;
      }
      return undefined;
    },
    pricesOf,
    priceOf: (item) => {
      const p = pricesOf(item);
      return p && p[1] > 0 ? p[0] / p[1] : undefined;
    },
    progress: () => {
      let p = -1;
      for (const v of views) p = Math.max(p, v.progress());
      return p;
    },
    fed: () => {
      let n = 0;
      for (const v of views) n += v.fed();
      return n;
    },
    prequential: () => {
      const parts = views.map((v) => v.prequential());
      if (parts.every((p) => p === undefined)) return undefined;
      if (!preq || parts.some((p, i) => p !== preq!.parts[i]))
        preq = { parts, view: mergePrequentialViews(parts.filter((p) => p !== undefined)) };
      return preq.view;
    },
  };
}

/** A counter that reads whichever counter `get` returns at the time (read-only). */
export function counterOf(get: () => ItemCounter): ItemCounter {
  return {
    add() {
      throw new Error("read-only counter");
    },
    get items() {
      return get().items;
    },
    score: (item, now) => get().score(item, now),
    top: (now, n, keep) => get().top(now, n, keep),
  };
}

export type { SimilarItemsReads };
