import type { ItemInfo, SimilarItems } from "../contract/index.js";
import type { PopularityRow, PopularityTableView } from "../stages/index.js";

/**
 * The stand-in for similar items until co-visitation (DESIGN §3.7) serves them: the most
 * purchased products of the item's main category, or of everything when the item has no
 * purchases in the horizon (its category is then unknown). The answer's `basis` says so, and
 * the co-visitation source replaces this function behind `RecoBackend.similarItems`.
 */
export function similarByCategory(
  itemId: string,
  n: number,
  table: PopularityTableView,
  row: (item: string) => PopularityRow | undefined,
): SimilarItems {
  const own = row(itemId);
  const pool = own ? table.ranked(own.category) : table.top(n + 1);
  const items: SimilarItems["items"] = [];
  for (const r of pool) {
    if (items.length >= n) break;
    if (r.item === itemId) continue;
    items.push({
      itemId: r.item,
      score: r.purchases,
      rank: items.length + 1,
      category: r.category,
      brand: r.brand,
      averagePrice: r.avgPrice,
      purchases: r.purchases,
      explanation: own
        ? `also popular in ${r.category || "(no category)"}: ${bought(r.purchases)}`
        : `one of the most bought products: ${bought(r.purchases)}`,
    });
  }
  const basis = own ? "SAME_CATEGORY_POPULAR" : "POPULAR_FALLBACK";
  return {
    itemId,
    basis,
    items,
    watermark: table.wm >= 0 ? table.wm : null,
    statusMessage:
      (own
        ? `co-visitation is not served yet: popular products of the same category (${own.category || "none"})`
        : "co-visitation is not served yet and the item has no purchases in the horizon: popular products overall") +
      (items.length === 0 ? "; no purchases seen yet" : ""),
  };
}

const bought = (n: number) => `bought ${n === 1 ? "once" : `${n} times`} in 7 days`;

/** What the popularity table knows of one item. */
export function itemInfo(row: PopularityRow | undefined): ItemInfo | undefined {
  return row
    ? {
        itemId: row.item,
        category: row.category,
        brand: row.brand,
        averagePrice: row.avgPrice,
        purchases: row.purchases,
      }
    : undefined;
}
