import { combineLatest, map, type Observable } from "rxjs";
import type {
  ItemInfo,
  RecoBackend,
  RecommendedItem,
  Recommendations,
  RecommendOptions,
  SimilarItem,
  SimilarItems,
  TrendingEntry,
  TrendingSnapshot,
  TrendingWindowName,
  CatalogueItem,
  ExplicitFields,
} from "../contract/index.js";
import type { CatalogueTable } from "./catalogue-table.js";

/**
 * Every answer of `backend` through the item catalogue: titles and labels beside the ids, brand
 * and price where the catalogue knows them, and hidden items left out of every list.
 *
 * Hidden items are filtered before a list is cut to its length: recommendations ask the rankers
 * with the hidden ids as excluded items (the rankers' own option, applied before they cut to
 * `n`), similar items ask for as many more as are hidden, and trending lists (kept at 100 per
 * window) are filtered again whenever the hidden set changes, so an open stream drops or regains
 * an item at once. With nothing hidden the rankers are asked exactly as before: their answers
 * stay those of the reference.
 *
 * Brand and price: an upserted value wins; otherwise the answer's own (the design's purchase
 * averages, which the reference checks) stays, and the catalogue fills only where it has none.
 */
export function withCatalogue(backend: RecoBackend, catalogue: CatalogueTable): RecoBackend {
  const hiddenIn = (options: RecommendOptions | undefined): RecommendOptions | undefined => {
    const hidden = catalogue.hidden;
    if (hidden.size === 0) return options;
    // The live set itself when the request excludes nothing: no copy per request. It changes only
    // between tasks (a watch delivery), never while an answer is computed.
    if (!options?.exclude?.size) return { ...(options ?? {}), exclude: hidden };
    const exclude = new Set(hidden);
    for (const id of options.exclude) exclude.add(id);
    return { ...options, exclude };
  };
  // Described items per answer items array: a memoised answer comes back with the same array,
  // and the gRPC codec keeps its encoded bytes per array (connectors/grpc/codec.ts), so the same
  // array must come out again while the catalogue has not changed.
  const describedItems = new WeakMap<
    RecommendedItem[],
    { version: number; items: RecommendedItem[] }
  >();
  const answer = (r: Recommendations): Recommendations => {
    const kept = describedItems.get(r.items);
    if (kept !== undefined && kept.version === catalogue.version)
      return { ...r, items: kept.items };
    const hidden = catalogue.hidden;
    const items = hidden.size === 0 ? r.items : r.items.filter((i) => !hidden.has(i.itemId));
    const out = items.map((i, k) => described(k + 1 === i.rank ? i : { ...i, rank: k + 1 }));
    describedItems.set(r.items, { version: catalogue.version, items: out });
    return { ...r, items: out };
  };
  const described = <T extends RecommendedItem | SimilarItem>(i: T): T => {
    const c = catalogue.get(i.itemId);
    return c ? { ...i, ...fields(c, catalogue.explicit(i.itemId), i.brand, i.averagePrice) } : i;
  };
  const trendingEntry = (e: TrendingEntry): TrendingEntry => {
    const c = catalogue.get(e.itemId);
    return c && (c.title !== "" || c.labels.length > 0)
      ? { ...e, title: c.title, labels: c.labels }
      : e;
  };
  // Described trending lists per snapshot items array, at the catalogue version and hidden set
  // they were described at: the hub's repeated 24 h finals (trending-hub.ts) share the items of
  // the final they repeat, so a catch-up over years of event time describes each list once
  // instead of once per hour (22% of the main process's sampled allocations over a catch-up of
  // 40,000 MovieLens ratings).
  const describedTrending = new WeakMap<
    readonly TrendingEntry[],
    { version: number; hidden: ReadonlySet<string>; items: TrendingEntry[] }
  >();
  const trendingItems = (
    items: readonly TrendingEntry[],
    hidden: ReadonlySet<string>,
  ): TrendingEntry[] => {
    const kept = describedTrending.get(items);
    if (kept !== undefined && kept.version === catalogue.version && kept.hidden === hidden)
      return kept.items;
    const out = (hidden.size === 0 ? items : items.filter((e) => !hidden.has(e.itemId))).map(
      trendingEntry,
    );
    describedTrending.set(items, { version: catalogue.version, hidden, items: out });
    return out;
  };
  const recommendNow = backend.recommendNow;
  const similarItems = backend.similarItems;
  const item = backend.item;
  return {
    ...backend,
    async getRecommendations(userId, n, signal, options) {
      return answer(await backend.getRecommendations(userId, n, signal, hiddenIn(options)));
    },
    ...(recommendNow
      ? {
          recommendNow(userId: string, n: number, options?: RecommendOptions) {
            const o = hiddenIn(options);
            const r =
              o === undefined
                ? recommendNow.call(backend, userId, n)
                : recommendNow.call(backend, userId, n, o);
            return r === undefined ? r : answer(r);
          },
        }
      : {}),
    trending(window: TrendingWindowName): Observable<TrendingSnapshot> {
      return combineLatest([backend.trending(window), catalogue.hidden$]).pipe(
        map(([s, hidden]) => ({ ...s, items: trendingItems(s.items, hidden) })),
      );
    },
    ...(similarItems
      ? {
          async similarItems(itemId: string, n: number): Promise<SimilarItems> {
            const hidden = catalogue.hidden;
            const r = await similarItems.call(backend, itemId, n + Math.min(hidden.size, 100));
            const items = r.items.filter((i) => !hidden.has(i.itemId)).slice(0, n);
            return { ...r, items: items.map((i, k) => described({ ...i, rank: k + 1 })) };
          },
        }
      : {}),
    item(itemId: string): ItemInfo | undefined {
      const info = item?.call(backend, itemId);
      const c = catalogue.get(itemId);
      if (!c) return info;
      const f = fields(c, catalogue.explicit(itemId), info?.brand ?? "", info?.averagePrice ?? 0);
      return {
        itemId,
        category: info?.category || (c.categories[0] ?? ""),
        brand: f.brand,
        averagePrice: f.averagePrice,
        purchases: info?.purchases ?? 0,
        catalogue: c,
      };
    },
  };
}

/** An answer item's catalogue fields (see withCatalogue for which brand and price win). */
function fields(
  c: CatalogueItem,
  x: ExplicitFields | undefined,
  brand: string,
  averagePrice: number,
): { title: string; labels: string[]; brand: string; averagePrice: number } {
  return {
    title: c.title,
    labels: c.labels,
    brand: x?.brand ?? (brand === "" ? c.brand : brand),
    averagePrice: x?.price ?? (averagePrice > 0 || c.price === null ? averagePrice : c.price),
  };
}
