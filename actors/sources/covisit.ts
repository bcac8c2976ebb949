import type { SourcePreset } from "./preset.js";
import { byScoreThenId, decay, type Scored, type SourceEvent } from "./types.js";

/**
 * SIMILAR_ITEMS: item-to-item co-visitation (DESIGN §3.7). Two items touched by the same user
 * within one session or within `windowMs` of event time are neighbours; each such pair adds the
 * stronger of the two interaction weights, decayed by event time. Each item keeps at most `k`
 * neighbours (the weakest are dropped once it holds 3k), and each user's recent items are a
 * bounded list: memory is O(items × k + users × recentPerUser), whatever the number of events.
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

interface Edge {
  s: number;
  ts: number;
}

interface Recent {
  i: string;
  ts: number;
  w: number;
  sess: string | undefined;
}

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

export function createCovisit(opts: CovisitOptions): SimilarItemsSource {
  const windowMs = opts.windowMs ?? 3_600_000;
  const halfLife = opts.halfLifeMs ?? 7 * 86_400_000;
  const k = opts.k ?? 50;
  const recentCap = opts.recentPerUser ?? 30;
  const normalise = opts.normalise ?? true;
  const edges = new Map<string, Map<string, Edge>>();
  const mass = new Map<string, Edge>(); // decayed total weight per item
  const recent = new Map<string, Recent[]>();

  const at = (x: Edge, now: number) => x.s * decay(Math.max(0, now - x.ts), halfLife);
  /** Adds w at time ts to a decayed sum, in place (the later time becomes its reference). */
  const bump = (x: Edge, w: number, ts: number) => {
    if (ts >= x.ts) {
      x.s = x.s * decay(ts - x.ts, halfLife) + w;
      x.ts = ts;
    } else x.s += w * decay(x.ts - ts, halfLife);
  };

  const link = (a: string, b: string, w: number, ts: number) => {
    let m = edges.get(a);
    if (!m) edges.set(a, (m = new Map()));
    const e = m.get(b);
    if (e) bump(e, w, ts);
    else {
      m.set(b, { s: w, ts });
      if (m.size >= 3 * k) prune(m, ts);
    }
  };

  /** Keeps the k strongest neighbours (ties by id), so a list never holds 3k or more. */
  const prune = (m: Map<string, Edge>, now: number) => {
    const scored: [string, number][] = [];
    for (const [item, e] of m) scored.push([item, at(e, now)]);
    scored.sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
    for (let x = k; x < scored.length; x++) m.delete(scored[x]![0]);
  };

  const sim = (a: string, b: string, e: Edge, now: number) => {
    const raw = at(e, now);
    if (!normalise) return raw;
    const ma = mass.get(a);
    const mb = mass.get(b);
    const d = Math.sqrt((ma ? at(ma, now) : 1) * (mb ? at(mb, now) : 1));
    return d > 0 ? raw / d : 0;
  };

  const similar = (item: string, now: number, n = k): Scored[] => {
    const m = edges.get(item);
    if (!m) return [];
    const out: Scored[] = [];
    for (const [other, e] of m)
      out.push({
        item: other,
        score: sim(item, other, e, now),
        why: `${opts.preset.verb} together with ${item}`,
      });
    return out.sort(byScoreThenId).slice(0, n);
  };

  return {
    get items() {
      return edges.size;
    },
    add(e) {
      const w = opts.preset.weight(e);
      if (w <= 0) return;
      const own = mass.get(e.i);
      if (own) bump(own, w, e.ts);
      else mass.set(e.i, { s: w, ts: e.ts });
      let list = recent.get(e.u);
      if (!list) recent.set(e.u, (list = []));
      // Each recent item pairs once per event (its latest touch), not once per earlier touch.
      for (const r of list) {
        if (r.i === e.i) continue;
        const together =
          (r.sess !== undefined && r.sess === e.sess) || Math.abs(e.ts - r.ts) <= windowMs;
        if (!together) continue;
        const pw = Math.max(w, r.w);
        link(e.i, r.i, pw, e.ts);
        link(r.i, e.i, pw, e.ts);
      }
      const at0 = list.findIndex((r) => r.i === e.i);
      if (at0 >= 0) list.splice(at0, 1);
      list.push({ i: e.i, ts: e.ts, w, sess: e.sess });
      if (list.length > recentCap) list.shift();
    },
    similar,
    candidates(seeds, now, n = 100) {
      const top = seeds[0]?.score ?? 0;
      if (top <= 0) return [];
      const acc = new Map<string, { score: number; best: number; from: string }>();
      for (const seed of seeds) {
        const sw = seed.score / top;
        for (const nb of similar(seed.item, now)) {
          const c = sw * nb.score;
          const a = acc.get(nb.item);
          if (!a) acc.set(nb.item, { score: c, best: c, from: seed.item });
          else {
            a.score += c;
            if (c > a.best) {
              a.best = c;
              a.from = seed.item;
            }
          }
        }
      }
      const out: Scored[] = [];
      for (const [item, a] of acc)
        out.push({ item, score: a.score, why: `${opts.preset.verb} together with ${a.from}` });
      return out.sort(byScoreThenId).slice(0, n);
    },
  };
}
