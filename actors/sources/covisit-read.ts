import type { ItemEdges, ItemIds } from "./item-edges.js";
import type { Edge } from "./neighbours.js";
import type { SourcePreset } from "./preset.js";
import { byScoreThenId, decay, nthBest, type Scored } from "./types.js";

/**
 * Reading co-visitation (DESIGN §3.7): an item's neighbours and a user's candidates, over the
 * data of one or more partitions. Co-visitation is fed per user partition (a pair is two items
 * of one user), so each partition holds the pair weights and item masses of its own users; a
 * pair's weight is the sum over partitions and so is an item's mass. The sums are taken here, at
 * read time, in partition order: what a reader answers depends on the partitions' data alone,
 * never on how their records interleaved or on which worker fed them (DESIGN §3, "Every stage on
 * the event path scales with partitions"). With one partition every sum has one term, so the
 * scores are the bits a single instance computes.
 *
 * Every partition numbers items through the same {@link ItemIds}, so a neighbour's number is the
 * same in every partition's list and the sums are kept in typed arrays by that number.
 */
export interface CovisitPart {
  readonly ids: ItemIds;
  /** The item's stored neighbours in this partition (a read never marks a key changed). */
  edgesOf(item: string): ItemEdges | undefined;
  /** Decayed total weight of item number x in this partition, as stored ([weight, as of]). */
  massOf(x: number): Edge | undefined;
  /** Moves on whenever the partition's edges or masses change. */
  version(): number;
  /** Items with neighbours in this partition. */
  readonly items: number;
}

export interface CovisitReadOptions {
  preset: SourcePreset;
  halfLifeMs: number;
  /** Neighbours per item a user's candidates draw on. */
  k: number;
  normalise: boolean;
}

/** A ranked neighbour (serving's copy: scores at one `now`). */
export interface Neighbour {
  item: string;
  score: number;
}

export interface CovisitReader {
  /** The item's neighbours, best first (what GetSimilarItems serves). */
  similar(item: string, now: number, n?: number): Scored[];
  /** A user's candidates from their seed items: see SimilarItemsSource.candidates. */
  candidates(seeds: readonly Scored[], now: number, n?: number): Scored[];
  /** Items with neighbours (the largest partition's count: a figure, not a union). */
  readonly items: number;
}

/** A seed's first neighbours: item numbers and scores, `size` of them, in no order. */
interface Firsts {
  keys: Int32Array;
  scores: Float64Array;
  size: number;
}
const NO_FIRSTS: Firsts = { keys: new Int32Array(0), scores: new Float64Array(0), size: 0 };
const NONE: Neighbour[] = [];
/** Neighbour lists kept for serving at most (a bound on memory, not a tuning knob). */
const MAX_RANKED = 50_000;

/** Typed arrays by item number, `gen[x] === round` marking a value set in this round. */
interface Sums {
  gen: Int32Array;
  a: Float64Array;
  b: Float64Array;
  c: Int32Array;
}
const newSums = (n: number): Sums => ({
  gen: new Int32Array(n),
  a: new Float64Array(n),
  b: new Float64Array(n),
  c: new Int32Array(n),
});
function grown(s: Sums, min: number): Sums {
  const n = Math.max(min, 2 * s.gen.length, 1024);
  const t = newSums(n);
  t.gen.set(s.gen);
  t.a.set(s.a);
  t.b.set(s.b);
  t.c.set(s.c);
  return t;
}

export function createCovisitReader(
  opts: CovisitReadOptions,
  parts: readonly CovisitPart[],
): CovisitReader {
  const { halfLifeMs: halfLife, k, normalise } = opts;
  const ids = parts[0]!.ids;
  if (parts.some((p) => p.ids !== ids))
    throw new Error("co-visitation partitions read together must share one item numbering");
  const names = ids.names;
  const at = (x: Edge, now: number) => x[0] * decay(Math.max(0, now - x[1]), halfLife);
  const atOf = (s: number, ts: number, now: number) => s * decay(Math.max(0, now - ts), halfLife);
  /** The partitions' versions summed: each only grows, so the sum moves when any one changes. */
  const versionNow = () => {
    let v = 0;
    for (const p of parts) v += p.version();
    return v;
  };

  /**
   * Items' masses at one (`now`, version), by item number: a user's seeds share many neighbours,
   * whose masses were looked up and decayed once per list. 1 for an item without one (as a
   * single instance scores it).
   */
  let gen = 0;
  let genNow = NaN;
  let genVersion = -1;
  let massGen = new Int32Array(1024);
  let massVal = new Float64Array(1024);
  const massAtOf = (x: number, now: number, version: number): number => {
    if (now !== genNow || version !== genVersion) {
      gen++;
      genNow = now;
      genVersion = version;
    }
    if (x >= massGen.length) {
      const c = Math.max(2 * massGen.length, x + 1);
      const g = new Int32Array(c);
      g.set(massGen);
      const v = new Float64Array(c);
      v.set(massVal);
      massGen = g;
      massVal = v;
    }
    if (massGen[x] === gen) return massVal[x]!;
    let v = 0;
    let any = false;
    for (const p of parts) {
      const m = p.massOf(x);
      if (!m) continue;
      // The first term assigned, not added to 0: one partition gives a single instance's bits.
      v = any ? v + at(m, now) : at(m, now);
      any = true;
    }
    if (!any) v = 1;
    massGen[x] = gen;
    massVal[x] = v;
    return v;
  };

  /** Pair weights summed over the partitions for one item, by neighbour number. */
  let sums = newSums(1024);
  let round = 0;
  /**
   * The score at `now` (cosine or raw) of each neighbour of `item` over every partition, as
   * item numbers and scores in the order first met (undefined: no partition has any).
   */
  const scoresOf = (
    item: string,
    now: number,
    version: number,
  ): { keys: Int32Array; scores: Float64Array } | undefined => {
    const lists: ItemEdges[] = [];
    let total = 0;
    for (const p of parts) {
      const m = p.edgesOf(item);
      if (m && m.size > 0) {
        lists.push(m);
        total += m.size;
      }
    }
    if (lists.length === 0) return undefined;
    const keys = new Int32Array(total);
    let n = 0;
    if (lists.length === 1) {
      const m = lists[0]!;
      for (let x = 0; x < m.size; x++) keys[n++] = m.keyOf(x);
    }
    const raws = new Float64Array(total);
    if (lists.length === 1) {
      const m = lists[0]!;
      for (let x = 0; x < m.size; x++) raws[x] = atOf(m.sOf(x), m.tsOf(x), now);
    } else {
      const g = ++round;
      for (const m of lists)
        for (let x = 0; x < m.size; x++) {
          const b = m.keyOf(x);
          const w = atOf(m.sOf(x), m.tsOf(x), now);
          if (b >= sums.gen.length) sums = grown(sums, b + 1);
          if (sums.gen[b] !== g) {
            sums.gen[b] = g;
            sums.c[b] = n;
            keys[n] = b;
            raws[n++] = w;
          } else {
            const at = sums.c[b]!;
            raws[at] = raws[at]! + w;
          }
        }
    }
    const scores = raws.subarray(0, n);
    const out = keys.subarray(0, n);
    if (normalise) {
      const maAt = massAtOf(ids.idOf(item), now, version);
      for (let x = 0; x < n; x++) {
        const d = Math.sqrt(maAt * massAtOf(out[x]!, now, version));
        scores[x] = d > 0 ? scores[x]! / d : 0;
      }
    }
    return { keys: out, scores };
  };

  /**
   * Neighbour lists at one (`now`, version): a list computed then is the one a new computation
   * would give, so it is reused (serving asks for the same seeds' neighbours again and again
   * between events). A list computed for its first `top` entries only is `whole: false`.
   */
  const ranked = new Map<
    string,
    { now: number; version: number; list: Neighbour[]; whole: boolean }
  >();

  /** The item's neighbours at `now`, best first, ties by id: the first `top` of them. */
  const neighbours = (item: string, now: number, top = Infinity): Neighbour[] => {
    const version = versionNow();
    const hit = ranked.get(item);
    if (hit && hit.now === now && hit.version === version && (hit.whole || hit.list.length >= top))
      return hit.list;
    const s = scoresOf(item, now, version);
    if (!s) return NONE;
    const { keys, scores } = s;
    const n = keys.length;
    const whole = n <= top;
    const least = whole ? -Infinity : nthBest(scores.slice(), top);
    const list: Neighbour[] = [];
    for (let x = 0; x < n; x++)
      if (scores[x]! >= least) list.push({ item: names[keys[x]!]!, score: scores[x]! });
    list.sort(byScoreThenId);
    if (list.length > top) list.length = top;
    if (ranked.size >= MAX_RANKED) ranked.clear();
    ranked.set(item, { now, version, list, whole });
    return list;
  };

  /**
   * A seed's first `top` neighbours at `now` as `neighbours` ranks them, as item numbers and
   * scores in no particular order (candidates sum them: the order within one seed's list does
   * not matter), without an object per neighbour and a comparator sort of them. Kept per (now,
   * version) as ranked lists are; a ranked list already kept for them is read instead.
   */
  const firsts = new Map<string, Firsts & { now: number; version: number; top: number }>();
  const firstOf = (item: string, now: number, top: number): Firsts => {
    const version = versionNow();
    const hit = ranked.get(item);
    if (
      hit &&
      hit.now === now &&
      hit.version === version &&
      (hit.whole || hit.list.length >= top)
    ) {
      const size = Math.min(top, hit.list.length);
      const keys = new Int32Array(size);
      const scores = new Float64Array(size);
      for (let x = 0; x < size; x++) {
        keys[x] = ids.idOf(hit.list[x]!.item);
        scores[x] = hit.list[x]!.score;
      }
      return { keys, scores, size };
    }
    const kept = firsts.get(item);
    if (kept && kept.now === now && kept.version === version && kept.top === top) return kept;
    const s = scoresOf(item, now, version);
    if (!s) return NO_FIRSTS;
    const { keys: allKeys, scores: all } = s;
    const n = allKeys.length;
    const size = Math.min(n, top);
    const keys = new Int32Array(size);
    const scores = new Float64Array(size);
    let got = 0;
    if (n <= top) {
      keys.set(allKeys);
      scores.set(all);
      got = n;
    } else {
      const least = nthBest(all.slice(), top);
      // Every entry above the bar, then of those at it the smallest ids (byScoreThenId's ties).
      const ties: number[] = [];
      for (let x = 0; x < n; x++) {
        const sc = all[x]!;
        if (sc > least) {
          keys[got] = allKeys[x]!;
          scores[got++] = sc;
        } else if (sc === least) ties.push(x);
      }
      if (ties.length > 0) {
        ties.sort((a, b) => {
          const na = names[allKeys[a]!]!;
          const nb = names[allKeys[b]!]!;
          return na < nb ? -1 : na > nb ? 1 : 0;
        });
        for (let t = 0; t < ties.length && got < top; t++) {
          keys[got] = allKeys[ties[t]!]!;
          scores[got++] = all[ties[t]!]!;
        }
      }
    }
    const out = { now, version, top, keys, scores, size: got };
    if (firsts.size >= MAX_RANKED) firsts.clear();
    firsts.set(item, out);
    return out;
  };

  let acc = newSums(0);
  let accRound = 0;
  const verb = opts.preset.verb;
  return {
    get items() {
      let most = 0;
      for (const p of parts) most = Math.max(most, p.items);
      return most;
    },
    similar(item, now, n = k) {
      const why = `${verb} together with ${item}`;
      return neighbours(item, now, n)
        .slice(0, n)
        .map((c) => ({ item: c.item, score: c.score, why }));
    },
    candidates(seeds, now, n = 100) {
      const top = seeds[0]?.score ?? 0;
      if (top <= 0) return [];
      // Sums by item number (a: the sum, b: the best single term, c: the seed it came from).
      const g = ++accRound;
      if (acc.gen.length < names.length) acc = grown(acc, names.length);
      const summed: number[] = [];
      for (let si = 0; si < seeds.length; si++) {
        const seed = seeds[si]!;
        const sw = seed.score / top;
        const { keys, scores, size } = firstOf(seed.item, now, k);
        // Within one seed's first k, the order does not change a sum (each item once).
        for (let x = 0; x < size; x++) {
          const i = keys[x]!;
          const c = sw * scores[x]!;
          if (i >= acc.gen.length) acc = grown(acc, i + 1);
          if (acc.gen[i] !== g) {
            acc.gen[i] = g;
            acc.a[i] = c;
            acc.b[i] = c;
            acc.c[i] = si;
            summed.push(i);
          } else {
            acc.a[i] = acc.a[i]! + c;
            if (c > acc.b[i]!) {
              acc.b[i] = c;
              acc.c[i] = si;
            }
          }
        }
      }
      // Ranked first (only those at or above the n-th best sum become objects), explained
      // after: only the n served get their sentence.
      let bar = -Infinity;
      if (summed.length > n) {
        const all = new Float64Array(summed.length);
        for (let x = 0; x < summed.length; x++) all[x] = acc.a[summed[x]!]!;
        bar = n > 0 ? nthBest(all, n) : Infinity;
      }
      const chosen: { item: string; score: number; from: number }[] = [];
      for (const i of summed)
        if (acc.a[i]! >= bar) chosen.push({ item: names[i]!, score: acc.a[i]!, from: acc.c[i]! });
      chosen.sort(byScoreThenId);
      if (chosen.length > n) chosen.length = n;
      return chosen.map((a) => ({
        item: a.item,
        score: a.score,
        why: `${verb} together with ${seeds[a.from]!.item}`,
      }));
    },
  };
}
