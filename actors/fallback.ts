import type { Recommendations, RecommendedItem } from "../connectors/grpc/backend.js";
import type { ProfileRecord } from "./interest-ranking.js";
import type { Candidate, PopularityTableView } from "./popularity-join.js";

export interface FallbackOptions {
  /** Size of the overall popular list (DESIGN: top 10). */
  size: number;
  /** Score given to fallback items (DESIGN: 0.1). */
  score: number;
}

/**
 * fallback: completes an answer. A user with no personalised candidates, or an unknown user,
 * gets the top products by purchases overall (ties by item id) with score 0.1 and source
 * POPULAR_FALLBACK; a user with fewer than `n` personalised items gets the rest from that list.
 */
export function completeRecommendations(
  user: string,
  n: number,
  personalised: Candidate[],
  profile: ProfileRecord | undefined,
  table: PopularityTableView,
  watermark: number,
  opts: FallbackOptions,
): Recommendations {
  const items: RecommendedItem[] = [];
  const taken = new Set<string>();
  for (const c of personalised) {
    if (items.length >= n) break;
    taken.add(c.row.item);
    items.push(toItem(c.row, c.score, "PERSONALIZED", items.length + 1));
  }
  if (items.length < n) {
    // The fallback list is the overall top, recent purchases included: DESIGN §3.6 promises a
    // non-empty answer once any purchase has been seen, and excludes purchases only from the
    // personalised candidates.
    for (const row of table.top(opts.size)) {
      if (items.length >= n) break;
      if (taken.has(row.item)) continue;
      taken.add(row.item);
      items.push(toItem(row, opts.score, "POPULAR_FALLBACK", items.length + 1));
    }
  }
  let statusMessage = "";
  if (items.length === 0) statusMessage = "no purchases seen yet: nothing to recommend";
  else if (personalised.length === 0)
    statusMessage = profile
      ? "no personalised candidates: popular fallback"
      : "unknown user: popular fallback";
  return {
    userId: user,
    items,
    topCategories: (profile?.top ?? []).map(([category, interest]) => ({ category, interest })),
    watermark: watermark >= 0 ? watermark : null,
    statusMessage,
  };
}

function toItem(
  row: { item: string; category: string; brand: string; avgPrice: number; purchases: number },
  score: number,
  source: RecommendedItem["source"],
  rank: number,
): RecommendedItem {
  return {
    itemId: row.item,
    score,
    rank,
    category: row.category,
    brand: row.brand,
    averagePrice: row.avgPrice,
    source,
    purchases: row.purchases,
  };
}
