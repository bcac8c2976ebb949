import { createItemIds, ItemEdges, toItemEdges, type ItemIds } from "./item-edges.js";
import type { Edge, Neighbours } from "./neighbours.js";
import type { SourcePreset } from "./preset.js";
import { recentItems, type Recent, type RecentItems } from "./recent-items.js";
import { memStore, type KeyStore } from "./store.js";
import { byScoreThenId, decay, nthBest, type Scored, type SourceEvent } from "./types.js";

/**
 * SIMILAR_ITEMS: item-to-item co-visitation (DESIGN §3.7). Two items touched by the same user
 * within one session or within `windowMs` of event time are neighbours; each such pair adds the
 * stronger of the two interaction weights, decayed by event time. Each item keeps at most `k`
 * neighbours (the weakest are dropped once it holds 3k), and each user's recent items are a
 * bounded list: memory is O(items × k + users × recentPerUser), whatever the number of events.
 *
 * The data is per item (neighbours, total weight) and per user (recent items), in stores (the
 * stage's state): pair weights are sums over every user's events, so the stage that holds them
 * is fed in one order (EVENTS order) to be exact.
 *
 * Similarity is the co-visitation weight divided by the square root of the two items' total
 * weights (cosine on the co-visitation counts), so a neighbour is one seen *with* the item, not
 * merely one seen everywhere.
 */
export interface CovisitOptions {
  preset: SourcePreset;
  /** Two interactions without a common session are neighbours within this much time (1 h). */
  windowMs?: number;
  /** Event time for a pair's weight to halve (default 7 days). */
  halfLifeMs?: number;
  /** Neighbours kept per item (default 50). */
  k?: number;
  /** Recent items remembered per user to pair new ones with (default 30). */
  recentPerUser?: number;
  /** Cosine normalisation (default true); false ranks by raw co-visitation weight. */
  normalise?: boolean;
}

/** A ranked neighbour (serving's copy: scores at one `now`). */
interface Neighbour {
  item: string;
  score: number;
}

const NONE: Neighbour[] = [];

/** A seed's first neighbours: item numbers and scores, `size` of them, in no order. */
interface Firsts {
  keys: Int32Array;
  scores: Float64Array;
  size: number;
}
const NO_FIRSTS: Firsts = { keys: new Int32Array(0), scores: new Float64Array(0), size: 0 };
/** Neighbour lists kept for serving at most (a bound on memory, not a tuning knob). */
const MAX_RANKED = 50_000;
/** Neighbour lists `add` holds between flushes at most (a bound on memory). */
const MAX_HELD = 50_000;

/** Where co-visitation keeps its data (the covisit stage's state maps). */
export interface CovisitStores {
  /**
   * Neighbours per item, by neighbour id (a stage's map decodes its stored bytes:
   * neighbours.ts; a text map would hand out the entries).
   */
  edges: KeyStore<ItemEdges | Neighbours | [string, Edge][]>;
  /**
   * The numbering of item ids that `edges`' codec decodes with (item-edges.ts itemEdgesCodec),
   * if it does; otherwise co-visitation numbers them itself.
   */
  ids?: ItemIds;
  /** Decayed total weight per item. */
  mass: KeyStore<Edge>;
  /** Recent items per user, oldest first (stored as `Recent[]`; recent-items.ts's live form). */
  recent: KeyStore<Recent[] | RecentItems>;
}

export const memCovisitStores = (): CovisitStores => ({
  edges: memStore(),
  mass: memStore(),
  recent: memStore(),
});

export interface SimilarItemsSource {
  add(e: SourceEvent): void;
  /** The item's neighbours, best first (what GetSimilarItems serves). */
  similar(item: string, now: number, n?: number): Scored[];
  /**
   * A user's candidates from their seed items (history, best first, with scores): the sum over
   * seeds of seed weight × similarity, explained by the seed that contributed most.
   */
  candidates(seeds: readonly Scored[], now: number, n?: number): Scored[];
  /** Items with neighbours. */
  readonly items: number;
  /**
   * Lets go of the neighbour lists `add` changed since the last flush. `add` sets a list in the
   * store (marks it changed) when it first changes it after a flush, not at every pair: a store
   * that snapshots changed keys must see a flush before each snapshot (a stage flushes after each
   * batch; snapshots are taken between batches).
   */
  flush(): void;
}

export function createCovisit(
  opts: CovisitOptions,
  stores: CovisitStores = memCovisitStores(),
): SimilarItemsSource {
  const windowMs = opts.windowMs ?? 3_600_000;
  const halfLife = opts.halfLifeMs ?? 7 * 86_400_000;
  const k = opts.k ?? 50;
  const recentCap = opts.recentPerUser ?? 30;
  const normalise = opts.normalise ?? true;
  const { edges, mass, recent } = stores;
  const ids = stores.ids ?? createItemIds();
  const names = ids.names;
  /** A stored value as the live form (a value from another codec or a load: converted). */
  const live = (v: ItemEdges | Neighbours | [string, Edge][] | undefined) =>
    v === undefined || (v instanceof ItemEdges && v.ids === ids)
      ? v
      : toItemEdges(v instanceof ItemEdges ? v.toJSON() : v, ids);
  /** The item's stored neighbours. A read does not set the key, so serving never makes it dirty. */
  const edgesOf = (item: string): ItemEdges | undefined => live(edges.get(item));
  /**
   * The lists `add` changed since the last flush, by item number, and those numbers: read from
   * `edges` and set there once, then changed in place from here (a read and a set per pair were
   * three string-keyed lookups through the state map, and a conversion after each snapshot).
   * Only `add` writes `edges`, so a held list is always the stored one.
   */
  const held: (ItemEdges | undefined)[] = [];
  const heldIds: number[] = [];
  /** Flushes so far: `massSet[x] === flushes` marks an item's mass set since the last one. */
  let flushes = 1;
  const flush = () => {
    for (const x of heldIds) held[x] = undefined;
    heldIds.length = 0;
    flushes++;
  };
  /**
   * Each item's total weight by item number, as the object `mass` holds (null: none): read from
   * `mass` once, then changed in place here and set there once per flush, as held lists are (a
   * string-keyed lookup through the state map per event, and one per neighbour scored, read and
   * set the same few objects). Only `add` writes `mass`, so a kept value is always the stored one.
   */
  const massRef: (Edge | null | undefined)[] = [];
  const massSet: number[] = [];
  const massOf = (x: number): Edge | undefined => {
    let v = massRef[x];
    if (v === undefined) massRef[x] = v = mass.get(names[x]!) ?? null;
    return v ?? undefined;
  };
  /** The list of item number x (named `name`), to change and then set. */
  const changing = (x: number, name: string): ItemEdges => {
    let m = held[x];
    if (m === undefined) {
      // Without flushes (a direct user): a bound on what is held.
      if (heldIds.length >= MAX_HELD) flush();
      m = edgesOf(name) ?? new ItemEdges(ids);
      held[x] = m;
      heldIds.push(x);
      edges.set(name, m); // changed in place until the flush
    }
    return m;
  };

  const at = (x: Edge, now: number) => x[0] * decay(Math.max(0, now - x[1]), halfLife);
  /** `at` of a weight s as of ts. */
  const atOf = (s: number, ts: number, now: number) => s * decay(Math.max(0, now - ts), halfLife);
  // decay() inlined on the per-pair path (the same expression, so the same bits).
  const finite = Number.isFinite(halfLife);
  /** Adds w at time ts to a decayed sum, in place (the later time becomes its reference). */
  const bump = (x: Edge, w: number, ts: number) => {
    if (ts >= x[1]) {
      x[0] = x[0] * (finite ? Math.pow(2, -(ts - x[1]) / halfLife) : 1) + w;
      x[1] = ts;
    } else x[0] += w * (finite ? Math.pow(2, -(x[1] - ts) / halfLife) : 1);
  };

  /**
   * Adds w at ts to the edge of `m` (a's neighbours, changed in place) to b (its number): as
   * `bump` on the entry's weight and time.
   */
  const link = (m: ItemEdges, b: number, w: number, ts: number) => {
    const x = m.find(b);
    if (x >= 0) {
      // Entry x's weight and time: d[3x + 1], d[3x + 2] (item-edges.ts).
      const d = m.d;
      const at = 3 * x + 1;
      const t = d[at + 1]!;
      if (ts >= t) {
        d[at] = d[at]! * (finite ? Math.pow(2, -(ts - t) / halfLife) : 1) + w;
        d[at + 1] = ts;
      } else d[at] = d[at]! + w * (finite ? Math.pow(2, -(t - ts) / halfLife) : 1);
    } else {
      m.push(b, w, ts);
      if (m.size >= 3 * k) prune(m, ts);
    }
  };

  /**
   * Keeps the k strongest neighbours (ties by id), so a list never holds 3k or more: the k-th
   * best score from a typed-array sort (no comparator; a comparator sort of the entries was ~10%
   * of the covisit stage), then every entry above it and the smallest ids among those equal to it.
   */
  const prune = (m: ItemEdges, now: number) => {
    const n = m.size;
    const scores = new Float64Array(n);
    for (let x = 0; x < n; x++) scores[x] = atOf(m.sOf(x), m.tsOf(x), now);
    // The k-th best by selection (nthBest: the same value as a sort gives, in linear time).
    const kth = nthBest(scores.slice(), k);
    let above = 0;
    const ties: string[] = [];
    for (let x = 0; x < n; x++) {
      const sc = scores[x]!;
      if (sc > kth) above++;
      else if (sc === kth) ties.push(names[m.keyOf(x)]!);
    }
    const kept = new Set(ties.sort().slice(0, k - above));
    const keep = new Uint8Array(n);
    for (let x = 0; x < n; x++) {
      const sc = scores[x]!;
      keep[x] = sc > kth || (sc === kth && kept.has(names[m.keyOf(x)]!)) ? 1 : 0;
    }
    m.retain(keep);
  };

  /**
   * Changes of the graph (edges or masses): a neighbour list computed at the same `now` and the
   * same version is the one a new computation would give, so it is reused (serving asks for the
   * same seeds' neighbours again and again between events). The stores change only through
   * `add` once loaded. A list computed for its first `top` entries only is `whole: false`.
   */
  let version = 0;
  const ranked = new Map<
    string,
    { now: number; version: number; list: Neighbour[]; whole: boolean }
  >();

  /**
   * Items' masses at one (`now`, version), by item number: a user's seeds share many neighbours,
   * whose masses were looked up and decayed once per list (the prequential stage asks for 20
   * seeds' lists per case, each event a new version). `massGen[x] === gen` marks a held value.
   */
  let gen = 0;
  let genNow = NaN;
  let genVersion = -1;
  let massGen = new Int32Array(1024);
  let massVal = new Float64Array(1024);
  const massAtOf = (x: number, now: number): number => {
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
    const mb = massOf(x);
    const v = mb ? at(mb, now) : 1;
    massGen[x] = gen;
    massVal[x] = v;
    return v;
  };

  /** The score at `now` (cosine or raw) of each of `item`'s edges `m`, in `m`'s order. */
  const scoresOf = (item: string, m: ItemEdges, now: number): Float64Array => {
    const n = m.size;
    const scores = new Float64Array(n);
    // The item's own mass at `now`, once per list (it is in every pair's denominator).
    const ma = normalise ? massOf(ids.idOf(item)) : undefined;
    const maAt = ma ? at(ma, now) : 1;
    for (let x = 0; x < n; x++) {
      const raw = atOf(m.sOf(x), m.tsOf(x), now);
      let score = raw;
      if (normalise) {
        const d = Math.sqrt(maAt * massAtOf(m.keyOf(x), now));
        score = d > 0 ? raw / d : 0;
      }
      scores[x] = score;
    }
    return scores;
  };

  /**
   * The item's neighbours at `now` (cosine or raw), best first, ties by id: the first `top` of
   * them (all by default). Only entries scoring at least the `top`-th best score are made into
   * objects and sorted (found by selection, as topByScore does): the same first `top`
   * as sorting them all.
   */
  const neighbours = (item: string, now: number, top = Infinity): Neighbour[] => {
    const hit = ranked.get(item);
    if (hit && hit.now === now && hit.version === version && (hit.whole || hit.list.length >= top))
      return hit.list;
    const m = edgesOf(item);
    if (!m) return NONE;
    const n = m.size;
    const scores = scoresOf(item, m, now);
    const whole = n <= top;
    const least = whole ? -Infinity : nthBest(scores.slice(), top);
    const list: Neighbour[] = [];
    for (let x = 0; x < n; x++)
      if (scores[x]! >= least) list.push({ item: names[m.keyOf(x)]!, score: scores[x]! });
    list.sort(byScoreThenId);
    if (list.length > top) list.length = top;
    if (ranked.size >= MAX_RANKED) ranked.clear();
    ranked.set(item, { now, version, list, whole });
    return list;
  };

  /**
   * A seed's first `top` neighbours at `now` as `neighbours` ranks them, as item numbers and
   * scores in no particular order (candidates sum them: the order within one seed's list does
   * not matter): the same entries without an object per neighbour and a comparator sort of
   * them, which a user's 20 seeds paid at every answer once the graph had changed (bench
   * step 4b: every answer). Kept per (now, version) as ranked lists are; a ranked list already
   * kept for them is read instead.
   */
  const firstOf = (item: string, now: number, top: number): Firsts => {
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
    const m = edgesOf(item);
    if (!m) return NO_FIRSTS;
    const n = m.size;
    // The scores `neighbours` ranks: the same function, so the same bits.
    const all = scoresOf(item, m, now);
    const size = Math.min(n, top);
    const keys = new Int32Array(size);
    const scores = new Float64Array(size);
    let got = 0;
    if (n <= top) {
      for (let x = 0; x < n; x++) {
        keys[x] = m.keyOf(x);
        scores[x] = all[x]!;
      }
      got = n;
    } else {
      const least = nthBest(all.slice(), top);
      // Every entry above the bar, then of those at it the smallest ids (byScoreThenId's ties).
      const ties: number[] = [];
      for (let x = 0; x < n; x++) {
        const sc = all[x]!;
        if (sc > least) {
          keys[got] = m.keyOf(x);
          scores[got++] = sc;
        } else if (sc === least) ties.push(x);
      }
      if (ties.length > 0) {
        ties.sort((a, b) => {
          const na = names[m.keyOf(a)]!;
          const nb = names[m.keyOf(b)]!;
          return na < nb ? -1 : na > nb ? 1 : 0;
        });
        for (let t = 0; t < ties.length && got < top; t++) {
          keys[got] = m.keyOf(ties[t]!);
          scores[got++] = all[ties[t]!]!;
        }
      }
    }
    const out = { now, version, top, keys, scores, size: got };
    if (firsts.size >= MAX_RANKED) firsts.clear();
    firsts.set(item, out);
    return out;
  };
  const firsts = new Map<string, Firsts & { now: number; version: number; top: number }>();
  let accRound = 0;
  let accGen = new Int32Array(0);
  let accScore = new Float64Array(0);
  let accBest = new Float64Array(0);
  let accFrom = new Int32Array(0);
  const growAcc = (min: number) => {
    const c = Math.max(min, 2 * accGen.length, 1024);
    const gen = new Int32Array(c);
    gen.set(accGen);
    const score = new Float64Array(c);
    score.set(accScore);
    const best = new Float64Array(c);
    best.set(accBest);
    const from = new Int32Array(c);
    from.set(accFrom);
    [accGen, accScore, accBest, accFrom] = [gen, score, best, from];
  };

  const similar = (item: string, now: number, n = k): Scored[] => {
    const why = `${opts.preset.verb} together with ${item}`;
    return neighbours(item, now, n)
      .slice(0, n)
      .map((c) => ({ item: c.item, score: c.score, why }));
  };

  return {
    get items() {
      return edges.size;
    },
    flush,
    add(e) {
      const w = opts.preset.weight(e);
      if (w <= 0) return;
      version++;
      // The item's number, and its id as the one string object `ids` holds for it.
      const me = ids.idOf(e.i);
      const item = names[me]!;
      const own = massOf(me);
      if (own) bump(own, w, e.ts);
      else massRef[me] = [w, e.ts];
      if (massSet[me] !== flushes) {
        massSet[me] = flushes;
        mass.set(item, massRef[me]!);
      }
      const list = recentItems(recent.get(e.u), ids, recentCap + 1);
      const sess = e.sess ?? null;
      const { nums, ts: times, w: weights, sess: sessions } = list;
      // The item's own neighbours, once per event.
      let mine: ItemEdges | undefined;
      // Where the item itself is in the list (it is there at most once).
      let at0 = -1;
      // Each recent item pairs once per event (its latest touch), not once per earlier touch.
      for (let x = 0; x < list.size; x++) {
        const ox = nums[x]!;
        if (ox === me) {
          at0 = x;
          continue;
        }
        const rs = sessions[x]!;
        const together = (rs !== null && rs === sess) || Math.abs(e.ts - times[x]!) <= windowMs;
        if (!together) continue;
        const pw = Math.max(w, weights[x]!);
        mine ??= changing(me, item);
        link(mine, ox, pw, e.ts);
        link(changing(ox, names[ox]!), me, pw, e.ts);
      }
      if (at0 >= 0) list.remove(at0);
      list.push(me, e.ts, w, sess);
      while (list.size > recentCap) list.remove(0);
      recent.set(e.u, list);
    },
    similar,
    candidates(seeds, now, n = 100) {
      const top = seeds[0]?.score ?? 0;
      if (top <= 0) return [];
      // Sums by item number (typed arrays, `accGen[x] === g` marks an item summed in this call).
      const g = ++accRound;
      if (accGen.length < names.length) growAcc(names.length);
      const summed: number[] = [];
      for (let si = 0; si < seeds.length; si++) {
        const seed = seeds[si]!;
        const sw = seed.score / top;
        const { keys, scores, size } = firstOf(seed.item, now, k);
        // Within one seed's first k, the order does not change a sum (each item once).
        for (let x = 0; x < size; x++) {
          const i = keys[x]!;
          const c = sw * scores[x]!;
          if (i >= accGen.length) growAcc(i + 1);
          if (accGen[i] !== g) {
            accGen[i] = g;
            accScore[i] = c;
            accBest[i] = c;
            accFrom[i] = si;
            summed.push(i);
          } else {
            accScore[i] = accScore[i]! + c;
            if (c > accBest[i]!) {
              accBest[i] = c;
              accFrom[i] = si;
            }
          }
        }
      }
      // Ranked first (topByScore's rule: only those at or above the n-th best sum become
      // objects), explained after: only the n served get their sentence.
      let bar = -Infinity;
      if (summed.length > n) {
        const sums = new Float64Array(summed.length);
        for (let x = 0; x < summed.length; x++) sums[x] = accScore[summed[x]!]!;
        bar = n > 0 ? nthBest(sums, n) : Infinity;
      }
      const chosen: { item: string; score: number; from: number }[] = [];
      for (const i of summed)
        if (accScore[i]! >= bar)
          chosen.push({ item: names[i]!, score: accScore[i]!, from: accFrom[i]! });
      chosen.sort(byScoreThenId);
      if (chosen.length > n) chosen.length = n;
      return chosen.map((a) => ({
        item: a.item,
        score: a.score,
        why: `${opts.preset.verb} together with ${seeds[a.from]!.item}`,
      }));
    },
  };
}
