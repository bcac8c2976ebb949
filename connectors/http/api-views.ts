import type {
  ItemInfo,
  Recommendations,
  RecommendedItem,
  SimilarItems,
  TrendingSnapshot,
} from "../../actors/contract/index.js";

/**
 * JSON shapes of the API. Field names follow the proto3 JSON mapping of `reco.v1` (lowerCamelCase,
 * timestamps as RFC 3339 strings, enums by name), so an answer reads the same over gRPC and HTTP.
 */
const iso = (ms: number | null | undefined): string | null =>
  ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0
    ? null
    : new Date(ms).toISOString();

/** "bought 11 times in 7 days": the shop's purchases, never the user's own. */
const bought = (n: number) => `bought ${n === 1 ? "once" : `${n} times`} in 7 days`;

/** What the backend did not explain itself, explained from the design's own rules (§3.5, §3.6). */
export function explain(item: RecommendedItem): string {
  if (item.explanation) return item.explanation;
  if (item.source === "PERSONALIZED")
    return `popular in your top category ${item.category || "(none)"}: ${bought(item.purchases)}`;
  return `one of the most bought products overall: ${bought(item.purchases)}`;
}

/**
 * Prices to the cent and scores without float noise, for people reading JSON: an average of
 * 254.82 and 254.82 is 254.81999999999996 in binary floating point.
 */
export const cents = (n: number): number => Math.round(n * 100) / 100;
export const tidy = (n: number): number => Number(n.toPrecision(12));

/**
 * The catalogue's title and labels beside an id, left out when empty as proto3's JSON mapping
 * leaves out default values (an answer of items the catalogue does not know reads as before).
 */
const described = (i: { title?: string; labels?: string[] }) => ({
  ...(i.title ? { title: i.title } : {}),
  ...(i.labels && i.labels.length > 0 ? { labels: i.labels } : {}),
});

export function recommendationsJson(recs: Recommendations) {
  return {
    userId: recs.userId,
    items: recs.items.map((i) => ({
      rank: i.rank,
      itemId: i.itemId,
      ...described(i),
      score: tidy(i.score),
      source: i.source,
      explanation: explain(i),
      category: i.category,
      brand: i.brand,
      averagePrice: cents(i.averagePrice),
      purchases: i.purchases,
    })),
    topCategories: recs.topCategories.map((c) => ({ category: c.category, interest: c.interest })),
    watermark: iso(recs.watermark),
    statusMessage: recs.statusMessage,
    stalenessMs: Math.round(recs.stalenessMs ?? 0),
    ...(recs.arm !== undefined ? { arm: recs.arm } : {}),
  };
}

export function trendingJson(s: TrendingSnapshot, k: number) {
  return {
    window: s.window,
    windowStart: iso(s.windowStart),
    windowEnd: iso(s.windowEnd),
    final: s.final,
    watermark: iso(s.watermark),
    items: s.items.slice(0, k).map((e, i) => ({
      rank: i + 1,
      itemId: e.itemId,
      ...described(e),
      score: tidy(e.score),
      views: e.views,
      clicks: e.clicks,
      // Counted only when TRENDING_WEIGHTS lists carts or purchases.
      ...(e.carts !== undefined ? { carts: e.carts } : {}),
      ...(e.purchases !== undefined ? { purchases: e.purchases } : {}),
    })),
    ...(s.weights ? { weights: s.weights } : {}),
  };
}

export function similarJson(s: SimilarItems) {
  return {
    itemId: s.itemId,
    basis: s.basis,
    // Averages over many events carry float noise (130.95000000000002): to the cent.
    items: s.items.map((i) => ({
      itemId: i.itemId,
      ...described(i),
      score: i.score,
      rank: i.rank,
      category: i.category,
      brand: i.brand,
      averagePrice: cents(i.averagePrice),
      purchases: i.purchases,
      explanation: i.explanation,
    })),
    watermark: iso(s.watermark),
    statusMessage: s.statusMessage,
  };
}

/** An item page: what the popularity table knows, and its place in the current trending lists. */
export function itemJson(
  itemId: string,
  info: ItemInfo | undefined,
  trending: readonly (TrendingSnapshot | undefined)[],
) {
  return {
    itemId,
    popularity:
      info && info.purchases > 0
        ? {
            purchases: info.purchases,
            category: info.category,
            brand: info.brand,
            averagePrice: cents(info.averagePrice),
          }
        : null,
    trending: trending.flatMap((s) => {
      if (!s) return [];
      const at = s.items.findIndex((e) => e.itemId === itemId);
      const e = s.items[at];
      return [
        {
          window: s.window,
          windowStart: iso(s.windowStart),
          rank: e ? at + 1 : null,
          score: e?.score ?? 0,
          views: e?.views ?? 0,
          clicks: e?.clicks ?? 0,
        },
      ];
    }),
  };
}

export const isoTime = iso;
