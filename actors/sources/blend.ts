import { topByScore, type Scored, type SourceName } from "./types.js";

/** An item's blended score so far, and the source that contributed most. */
interface Acc {
  item: string;
  score: number;
  best: number;
  source: SourceName;
  why: string;
}

/**
 * The blend (DESIGN §3.7): one ranked list from the candidate sources. Each source's list is
 * normalised — by its best score ("score") or by rank (weighted reciprocal rank fusion, "rank")
 * — and weighted; an item's score is the sum over the sources that list it, and it is served
 * with the source that contributed most and that source's explanation. POPULAR_FALLBACK may
 * have a weight like any source, and also fills what the weighted sources leave empty, so an
 * answer is never empty once any item is popular.
 */
export type BlendWeights = Partial<Record<SourceName, number>>;

export interface BlendSettings {
  weights: BlendWeights;
  /** "score": w · score / best score of the list; "rank": w / (rrfK + rank). */
  mode: "score" | "rank";
  /** Rank offset of reciprocal rank fusion (60 in the original paper). */
  rrfK?: number;
}

export interface BlendRequest {
  n: number;
  /** Only items of this main category (needs `categoryOf`). */
  category?: string;
  categoryOf?: (item: string) => string | undefined;
  /** Items never to return. */
  exclude?: ReadonlySet<string>;
  /** The user's touched items, left out when `excludeTouched`. */
  touched?: ReadonlySet<string>;
  excludeTouched?: boolean;
  /**
   * What the user did with an item they touched: such an item is served as HISTORY with this
   * explanation, whichever source ranked it ("you viewed it", not "viewed together with").
   */
  touchedWhy?: (item: string) => string | undefined;
}

export interface BlendedItem {
  item: string;
  score: number;
  rank: number;
  source: SourceName;
  explanation: string;
}

export type SourceLists = Partial<Record<SourceName, readonly Scored[]>>;

/** Whether the request allows `item` (category filter, exclusions). */
export function allowedBy(req: BlendRequest): (item: string) => boolean {
  return (item) =>
    !req.exclude?.has(item) &&
    !(req.excludeTouched && req.touched?.has(item)) &&
    (req.category === undefined || req.categoryOf?.(item) === req.category);
}

export function blend(lists: SourceLists, s: BlendSettings, req: BlendRequest): BlendedItem[] {
  const ok = allowedBy(req);
  const rrfK = s.rrfK ?? 60;
  const acc = new Map<string, Acc>();
  for (const [source, list] of Object.entries(lists) as [SourceName, readonly Scored[]][]) {
    const w = s.weights[source] ?? 0;
    if (w <= 0 || list.length === 0) continue;
    // The request's filter once per candidate (it is asked twice below).
    const allowed = list.map((c) => ok(c.item));
    let top = 0;
    for (let x = 0; x < list.length; x++)
      if (allowed[x] && list[x]!.score > top) top = list[x]!.score;
    let rank = 0;
    for (let x = 0; x < list.length; x++) {
      if (!allowed[x]) continue;
      const c = list[x]!;
      rank++;
      const v = s.mode === "rank" ? w / (rrfK + rank) : top > 0 ? (w * c.score) / top : 0;
      if (v <= 0) continue;
      const a = acc.get(c.item);
      if (!a) acc.set(c.item, { item: c.item, score: v, best: v, source, why: c.why });
      else {
        a.score += v;
        if (v > a.best) {
          a.best = v;
          a.source = source;
          a.why = c.why;
        }
      }
    }
  }
  const ranked = topByScore([...acc.values()], req.n);
  const out: BlendedItem[] = ranked.map((a, x) => {
    const own = a.source === "HISTORY" ? undefined : req.touchedWhy?.(a.item);
    return {
      item: a.item,
      score: a.score,
      rank: x + 1,
      source: own === undefined ? a.source : "HISTORY",
      explanation: own ?? a.why,
    };
  });
  if (out.length < req.n) {
    const listed = new Set(out.map((x) => x.item));
    for (const c of lists.POPULAR_FALLBACK ?? []) {
      if (out.length >= req.n) break;
      if (listed.has(c.item) || !ok(c.item)) continue;
      listed.add(c.item);
      const own = req.touchedWhy?.(c.item);
      out.push({
        item: c.item,
        score: 0,
        rank: out.length + 1,
        source: own === undefined ? "POPULAR_FALLBACK" : "HISTORY",
        explanation: own ?? c.why,
      });
    }
  }
  return out;
}
