import type { EventType } from "../contract/index.js";

/**
 * What the candidate sources read of an event: the normalised interaction (actors/contract/event.ts) with
 * the session id when the event had one. Pure data: sources know no NATS and no wire format.
 */
export interface SourceEvent {
  /** user id */
  u: string;
  /** item id */
  i: string;
  /** event type */
  t: EventType;
  /** event time, epoch ms */
  ts: number;
  /** main category, "" when absent */
  c: string;
  /** rating, -1 when absent */
  r: number;
  /** session id, when the event had one */
  sess?: string;
}

/** Where a served item came from (proto `Source`, DESIGN §5). */
export type SourceName =
  "HISTORY" | "SIMILAR_ITEMS" | "COLLABORATIVE" | "PERSONALIZED" | "TRENDING" | "POPULAR_FALLBACK";

export const SOURCE_NAMES: readonly SourceName[] = [
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "PERSONALIZED",
  "TRENDING",
  "POPULAR_FALLBACK",
];

/** One candidate of one source: a score (higher is better, >= 0) and a one-line explanation. */
export interface Scored {
  item: string;
  score: number;
  why: string;
}

/** Ranks by score descending, ties by item id (plain string order), so answers are stable. */
export const byScoreThenId = (
  a: Pick<Scored, "item" | "score">,
  b: Pick<Scored, "item" | "score">,
) => b.score - a.score || (a.item < b.item ? -1 : a.item > b.item ? 1 : 0);

/**
 * The first n of `list` in {@link byScoreThenId} order (the list is not changed): the n-th best
 * score is found by selection in a typed array (no comparator; a typed-array sort before), and
 * only the entries scoring at least that much are sorted by the full order. Serving ranks
 * hundreds of candidates to keep ten.
 */
export function topByScore<T extends Pick<Scored, "item" | "score">>(
  list: readonly T[],
  n: number,
): T[] {
  if (list.length <= n) return [...list].sort(byScoreThenId);
  if (n <= 0) return [];
  const scores = new Float64Array(list.length);
  for (let x = 0; x < list.length; x++) scores[x] = list[x]!.score;
  const nth = nthBest(scores, n);
  const out = list.filter((c) => c.score >= nth).sort(byScoreThenId);
  if (out.length > n) out.length = n;
  return out;
}

/**
 * The value `a.slice().sort()[a.length - n]` has (1 <= n <= a.length), as a bar to keep the
 * values at least that high: by selection (expected linear time) where that sort took
 * O(len log len); with a NaN in `a` (never a served score), by that sort. Reorders `a`.
 */
export function nthBest(a: Float64Array, n: number): number {
  for (let x = 0; x < a.length; x++) if (Number.isNaN(a[x])) return a.sort()[a.length - n]!;
  return nthLargest(a, n);
}

/**
 * The n-th largest value of `a` (1 <= n <= a.length; no NaN), reordering `a`: quickselect with
 * Hoare partitions, largest first.
 */
export function nthLargest(a: Float64Array, n: number): number {
  const target = n - 1;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else break;
  }
  return a[target]!;
}

/** 2^(-age/halfLife): the weight of something `age` ms old; 1 with an infinite half-life. */
export function decay(ageMs: number, halfLifeMs: number): number {
  if (!Number.isFinite(halfLifeMs)) return 1;
  return Math.pow(2, -ageMs / halfLifeMs);
}

/**
 * mulberry32: a small seeded PRNG (32-bit state), so a replay of the same log draws the same
 * numbers and trains the same model. Returns floats in [0, 1).
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
