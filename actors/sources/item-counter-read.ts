import type { ItemCounter } from "./trending.js";
import { byScoreThenId, type Scored } from "./types.js";

/**
 * Several partitions' counters read as one (the blend's TRENDING and POPULAR sources, counted per
 * user partition): an item's count is the sum of its partitions' counts at `now`, taken in
 * partition order, so the answer depends on the partitions' data alone, not on how their records
 * interleaved. The first `n` of the sums come from Fagin's threshold algorithm over the
 * partitions' own ranked lists (each best first): read deeper until the n-th best sum found is
 * above the sum of the lists' last scores, which no item not yet met can pass. One partition is
 * read as it is.
 */
export function readItemCounters(parts: readonly ItemCounter[]): ItemCounter {
  if (parts.length === 1) return parts[0]!;
  const score = (item: string, now: number) => {
    let s = 0;
    for (const p of parts) s += p.score(item, now);
    return s;
  };
  return {
    add() {
      throw new Error("counters read together are read-only: each partition counts its own");
    },
    get items() {
      let most = 0;
      for (const p of parts) most = Math.max(most, p.items);
      return most;
    },
    score,
    top(now, n, keep) {
      if (n <= 0) return [];
      const met = new Map<string, Scored>();
      for (let depth = Math.max(n, 16); ; depth *= 2) {
        let bar = 0;
        let exhausted = true;
        for (const p of parts) {
          const list = p.top(now, depth, keep);
          for (const c of list)
            if (!met.has(c.item)) met.set(c.item, { ...c, score: score(c.item, now) });
          if (list.length >= depth) {
            exhausted = false;
            bar += list[list.length - 1]!.score;
          }
        }
        const ranked = [...met.values()].sort(byScoreThenId);
        if (exhausted || (ranked.length >= n && ranked[n - 1]!.score > bar))
          return ranked.slice(0, n);
      }
    },
  };
}
