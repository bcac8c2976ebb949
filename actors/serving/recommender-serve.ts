import {
  MAX_COUNT,
  type RecommendOptions,
  type Recommendations,
  type SimilarItems,
} from "../contract/index.js";
import type { PopularityRow } from "../stages/index.js";
import { blend, type BlendSettings } from "../sources/index.js";
import type { RecommenderView } from "./recommender-view.js";

/**
 * Answers from the recommender stage's sources (RANKER=blend): the blend of their lists at the
 * stage's event-time progress, the user's done items and the request's exclusions left out,
 * each item with the source that contributed most and its explanation. Item details (brand,
 * price, purchases) come from the popularity table, as for the design ranking. Read-only and
 * synchronous: it runs between the stage's batches, on the serving call's own task.
 */
export function blendAnswer(
  view: RecommenderView,
  bs: BlendSettings,
  row: (item: string) => PopularityRow | undefined,
  userId: string,
  n: number,
  options: RecommendOptions | undefined,
): Recommendations {
  const rec = view.recommender();
  const now = view.progress();
  const touched = view.touched(userId);
  const excluded = options?.exclude;
  // Enough candidates per source for the request's own exclusions to leave n.
  const per = Math.min(MAX_COUNT * 2, Math.max(MAX_COUNT, n + (excluded?.size ?? 0)));
  const done = rec.done(userId, now);
  // What is never served takes no place in a source's list: the done items (a heavy rater's
  // hundreds of films would otherwise fill the top of every catalogue-wide list), or all the
  // touched ones when the request leaves them out.
  const lists = rec.lists(userId, now, per, options?.excludeTouched && touched ? touched : done);
  if (excluded) for (const i of excluded) done.add(i);
  const items = blend(lists, bs, {
    n,
    exclude: done,
    ...(touched ? { touched, touchedWhy: (i: string) => rec.why(userId, i) } : {}),
    ...(options?.excludeTouched ? { excludeTouched: true } : {}),
    ...(options?.category !== undefined
      ? { category: options.category, categoryOf: (i: string) => view.categoryOf(i) }
      : {}),
  });
  return {
    userId,
    items: items.map((x) => {
      const r = row(x.item);
      return {
        itemId: x.item,
        score: x.score,
        rank: x.rank,
        category: view.categoryOf(x.item) ?? r?.category ?? "",
        brand: r?.brand ?? "",
        averagePrice: priceOf(view, r, x.item),
        source: x.source,
        purchases: r?.purchases ?? 0,
        explanation: x.explanation,
      };
    }),
    topCategories: [],
    watermark: now >= 0 ? now : null,
    statusMessage:
      items.length === 0
        ? now < 0
          ? "no events yet"
          : "nothing to recommend with these options"
        : touched === undefined
          ? "unknown user: popular and trending items"
          : "",
  };
}

/** Similar items from co-visitation; undefined when it knows no neighbour of the item. */
export function covisitSimilar(
  view: RecommenderView,
  row: (item: string) => PopularityRow | undefined,
  itemId: string,
  n: number,
): SimilarItems | undefined {
  const now = view.progress();
  const list = view.recommender().similar(itemId, now, n);
  if (list.length === 0) return undefined;
  return {
    itemId,
    basis: "CO_VISITATION",
    items: list.slice(0, n).map((c, x) => {
      const r = row(c.item);
      return {
        itemId: c.item,
        score: c.score,
        rank: x + 1,
        category: view.categoryOf(c.item) ?? r?.category ?? "",
        brand: r?.brand ?? "",
        averagePrice: priceOf(view, r, c.item),
        purchases: r?.purchases ?? 0,
        explanation: c.why,
      };
    }),
    watermark: now >= 0 ? now : null,
    statusMessage: "",
  };
}

/**
 * The design ranking with the request's options: its answer for the most items it gives,
 * filtered by category and exclusions and ranked again. (`excludeTouched` needs the history the
 * blend keeps: the design ranking already leaves out what the user bought.)
 */
export function filterDesign<E>(
  recs: Recommendations | E,
  n: number,
  options: RecommendOptions,
): Recommendations | E {
  if (!isRecommendations(recs)) return recs;
  const items = recs.items
    .filter(
      (i) =>
        !options.exclude?.has(i.itemId) &&
        (options.category === undefined || i.category === options.category),
    )
    .slice(0, n)
    .map((i, x) => ({ ...i, rank: x + 1 }));
  return { ...recs, items };
}

const isRecommendations = (r: unknown): r is Recommendations =>
  typeof r === "object" && r !== null && "items" in r && "userId" in r;

/**
 * An item's average price: over every event of the item that carried one (covisit keeps it), else
 * over its purchases in the popularity horizon; 0 when no event of the item carried a price.
 */
export function priceOf(
  view: Pick<RecommenderView, "priceOf">,
  row: Pick<PopularityRow, "avgPrice"> | undefined,
  item: string,
): number {
  return view.priceOf?.(item) ?? (row && row.avgPrice > 0 ? row.avgPrice : 0);
}
