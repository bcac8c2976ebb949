import { Neighbours, type Edge } from "./neighbours.js";
import type { SourcePreset } from "./preset.js";
import { memStore, type KeyStore } from "./store.js";
import { byScoreThenId, decay, topByScore, type Scored, type SourceEvent } from "./types.js";

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
/** Neighbour lists kept for serving at most (a bound on memory, not a tuning knob). */
const MAX_RANKED = 50_000;

/** A user's recent item as stored: item, time, weight, session id (null: none). */
type Recent = [i: string, ts: number, w: number, sess: string | null];

/** Where co-visitation keeps its data (the covisit stage's state maps). */
export interface CovisitStores {
  /**
   * Neighbours per item, by neighbour id (a stage's map decodes its stored bytes:
   * neighbours.ts; a text map would hand out the entries).
   */
  edges: KeyStore<Neighbours | [string, Edge][]>;
  /** Decayed total weight per item. */
  mass: KeyStore<Edge>;
  /** Recent items per user, oldest first. */
  recent: KeyStore<Recent[]>;
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
  /**
   * The item's stored neighbours as a Map (a value read after a load or a snapshot is its
   * entries). `link` keeps the Map it changes (it sets the key anyway); a read does not set it,
   * so serving never makes a key dirty.
   */
  const edgesOf = (item: string): Neighbours | undefined => {
    const v = edges.get(item);
    return v === undefined || v instanceof Neighbours ? v : new Neighbours(v);
  };

  const at = (x: Edge, now: number) => x[0] * decay(Math.max(0, now - x[1]), halfLife);
  /** Adds w at time ts to a decayed sum, in place (the later time becomes its reference). */
  const bump = (x: Edge, w: number, ts: number) => {
    if (ts >= x[1]) {
      x[0] = x[0] * decay(ts - x[1], halfLife) + w;
      x[1] = ts;
    } else x[0] += w * decay(x[1] - ts, halfLife);
  };

  /** Adds w at ts to the edge of `m` (a's neighbours, changed in place) to b. */
  const link = (m: Neighbours, b: string, w: number, ts: number) => {
    const e = m.get(b);
    if (e) bump(e, w, ts);
    else {
      m.set(b, [w, ts]);
      if (m.size >= 3 * k) prune(m, ts);
    }
  };

  /**
   * Keeps the k strongest neighbours (ties by id), so a list never holds 3k or more: the k-th
   * best score from a typed-array sort (no comparator; a comparator sort of the entries was ~10%
   * of the covisit stage), then every entry above it and the smallest ids among those equal to it.
   */
  const prune = (m: Neighbours, now: number) => {
    const scores = new Float64Array(m.size);
    let x = 0;
    for (const e of m.values()) scores[x++] = at(e, now);
    const kth = scores.slice().sort()[scores.length - k]!;
    let above = 0;
    const ties: string[] = [];
    x = 0;
    for (const item of m.keys()) {
      const sc = scores[x++]!;
      if (sc > kth) above++;
      else if (sc === kth) ties.push(item);
    }
    const kept = new Set(ties.sort().slice(0, k - above));
    x = 0;
    for (const item of m.keys()) {
      const sc = scores[x++]!;
      if (sc < kth || (sc === kth && !kept.has(item))) m.delete(item);
    }
  };

  /**
   * Changes of the graph (edges or masses): a neighbour list computed at the same `now` and the
   * same version is the one a new computation would give, so it is reused (serving asks for the
   * same seeds' neighbours again and again between events). The stores change only through
   * `add` once loaded.
   */
  let version = 0;
  const ranked = new Map<string, { now: number; version: number; list: Neighbour[] }>();

  /** The item's neighbours at `now` (cosine or raw), best first, ties by id. */
  const neighbours = (item: string, now: number): Neighbour[] => {
    const hit = ranked.get(item);
    if (hit && hit.now === now && hit.version === version) return hit.list;
    const m = edgesOf(item);
    if (!m) return NONE;
    const list: Neighbour[] = [];
    // The item's own mass at `now`, once per list (it is in every pair's denominator).
    const ma = normalise ? mass.get(item) : undefined;
    const maAt = ma ? at(ma, now) : 1;
    for (const [other, e] of m) {
      const raw = at(e, now);
      let score = raw;
      if (normalise) {
        const mb = mass.get(other);
        const d = Math.sqrt(maAt * (mb ? at(mb, now) : 1));
        score = d > 0 ? raw / d : 0;
      }
      list.push({ item: other, score });
    }
    list.sort(byScoreThenId);
    if (ranked.size >= MAX_RANKED) ranked.clear();
    ranked.set(item, { now, version, list });
    return list;
  };

  const similar = (item: string, now: number, n = k): Scored[] => {
    const why = `${opts.preset.verb} together with ${item}`;
    return neighbours(item, now)
      .slice(0, n)
      .map((c) => ({ item: c.item, score: c.score, why }));
  };

  return {
    get items() {
      return edges.size;
    },
    add(e) {
      const w = opts.preset.weight(e);
      if (w <= 0) return;
      version++;
      const own = mass.get(e.i);
      if (own) bump(own, w, e.ts);
      mass.set(e.i, own ?? [w, e.ts]);
      const list = recent.get(e.u) ?? [];
      // The item's own neighbours: read and marked changed once per event, not once per pair.
      let mine: Neighbours | undefined;
      // Each recent item pairs once per event (its latest touch), not once per earlier touch.
      for (const r of list) {
        if (r[0] === e.i) continue;
        const together =
          (r[3] !== null && r[3] === (e.sess ?? null)) || Math.abs(e.ts - r[1]) <= windowMs;
        if (!together) continue;
        const pw = Math.max(w, r[2]);
        if (!mine) {
          mine = edgesOf(e.i) ?? new Neighbours();
          edges.set(e.i, mine); // changed in place below
        }
        link(mine, r[0], pw, e.ts);
        const theirs = edgesOf(r[0]) ?? new Neighbours();
        link(theirs, e.i, pw, e.ts);
        edges.set(r[0], theirs);
      }
      const at0 = list.findIndex((r) => r[0] === e.i);
      if (at0 >= 0) list.splice(at0, 1);
      list.push([e.i, e.ts, w, e.sess ?? null]);
      if (list.length > recentCap) list.shift();
      recent.set(e.u, list);
    },
    similar,
    candidates(seeds, now, n = 100) {
      const top = seeds[0]?.score ?? 0;
      if (top <= 0) return [];
      const acc = new Map<string, { item: string; score: number; best: number; from: string }>();
      for (const seed of seeds) {
        const sw = seed.score / top;
        const list = neighbours(seed.item, now);
        for (let x = 0; x < list.length && x < k; x++) {
          const nb = list[x]!;
          const c = sw * nb.score;
          const a = acc.get(nb.item);
          if (!a) acc.set(nb.item, { item: nb.item, score: c, best: c, from: seed.item });
          else {
            a.score += c;
            if (c > a.best) {
              a.best = c;
              a.from = seed.item;
            }
          }
        }
      }
      // Ranked first, explained after: only the n served get their sentence.
      return topByScore([...acc.values()], n).map((a) => ({
        item: a.item,
        score: a.score,
        why: `${opts.preset.verb} together with ${a.from}`,
      }));
    },
  };
}
