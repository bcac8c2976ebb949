import { memStore, type KeyStore } from "./store.js";
import { byScoreThenId, decay, type Scored, type SourceEvent } from "./types.js";

/**
 * Item counters decayed by event time: TRENDING (seed 002's UC3 boost: views × 1 + clicks × 2
 * over the last hours) and POPULAR_FALLBACK (target events — purchases, ratings of 4+ — over a
 * long horizon). One structure, two settings. Scores are kept relative to a moving anchor time
 * so that the decay of every item is one multiplication at query time, not an update per item.
 */
export interface ItemCounterOptions {
  /** The weight an event adds (0: not counted). */
  weight(e: SourceEvent): number;
  /** Event time for a count to halve (Infinity: plain counts). */
  halfLifeMs: number;
  /** Explanation of a listed item, given its rounded current count. */
  explain(item: string, count: number): string;
  /**
   * Where the counts live (the stage's state: one key per item) and the anchor time (one key,
   * `anchorKey`, of `anchors`). Memory by default.
   */
  store?: { raw: KeyStore<number>; anchors: KeyStore<number>; anchorKey: string };
}

export interface ItemCounter {
  add(e: SourceEvent): void;
  /** The top items at event time `now`, best first; `keep` filters before the cut to `n`. */
  top(now: number, n: number, keep?: (item: string) => boolean): Scored[];
  /** One item's decayed count at `now`. */
  score(item: string, now: number): number;
  readonly items: number;
}

/** An item kept in rank order: its raw count (as in the store) and its place in the list. */
interface Kept {
  item: string;
  v: number;
  p: number;
}

/** Items whose rank is kept up to date for `top` (a request deeper than this sorts them all). */
const TOP_KEPT = 1024;

export function createItemCounter(opts: ItemCounterOptions): ItemCounter {
  const hl = opts.halfLifeMs;
  // Count of item x at time t = raw(x) · 2^(-(t - anchor)/hl). The anchor moves forward (and
  // every raw value is rescaled once) before the exponent can overflow.
  const raw = opts.store?.raw ?? memStore<number>();
  const anchors = opts.store?.anchors ?? memStore<number>();
  const anchorKey = opts.store?.anchorKey ?? "anchor";
  let anchor = anchors.get(anchorKey) ?? Number.NaN;
  let sorted: [string, number][] | undefined;
  const setAnchor = (t: number) => {
    anchor = t;
    anchors.set(anchorKey, t);
  };

  // The best TOP_KEPT items in ranking order, kept up to date as events arrive: a count only
  // grows (an event adds to one item; a rebase scales all alike), so an item enters when it
  // passes the last one and never leaves but by being passed. Serving reads it instead of
  // sorting the whole catalogue after every event (the full sort stays for deeper requests).
  // Built from the counts at first use (the store may hold a snapshot's).
  // Each kept item is a record with its count and position, so moving one up the list reads no
  // map and hashes no key per place passed (an increment passes every item of the count it
  // leaves: with many items at equal low counts, the linear walk with a Map of positions was
  // ~5% of bench step 2's CPU).
  let best: Kept[] | undefined;
  /** Events counted so far, and the last unfiltered top list (see `top`). */
  let changes = 0;
  let lastTop: { now: number; n: number; changes: number; list: Scored[] } | undefined;
  /** The record of each item in `best`. */
  const pos = new Map<string, Kept>();
  /** Whether `a` ranks before `b`: higher count, ties by id. */
  const before = (a: Kept, b: Kept) => a.v > b.v || (a.v === b.v && a.item < b.item);
  const fullSort = () =>
    (sorted ??= [...raw.entries()].sort(
      (a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0),
    ));
  const ranked = (): Kept[] => {
    if (best) return best;
    best = fullSort()
      .slice(0, TOP_KEPT)
      .map(([item, v], p) => ({ item, v, p }));
    pos.clear();
    for (const k of best) pos.set(k.item, k);
    return best;
  };
  /**
   * Moves b[from] up to its place: the list above it is in order, so the places it passes are
   * found by bisection (the first it ranks before), then shifted down by one.
   */
  const rise = (b: Kept[], from: number) => {
    const k = b[from]!;
    let lo = 0;
    let hi = from;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(k, b[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    for (let p = from; p > lo; p--) {
      const moved = (b[p] = b[p - 1]!);
      moved.p = p;
    }
    b[lo] = k;
    k.p = lo;
  };
  const keepBest = (item: string, v: number) => {
    const b = ranked();
    const k = pos.get(item);
    if (k !== undefined) {
      k.v = v;
      return rise(b, k.p);
    }
    const added: Kept = { item, v, p: b.length };
    if (b.length < TOP_KEPT) {
      b.push(added);
      pos.set(item, added);
      return rise(b, added.p);
    }
    const last = b[b.length - 1]!;
    if (!before(added, last)) return;
    pos.delete(last.item);
    added.p = b.length - 1;
    b[added.p] = added;
    pos.set(item, added);
    rise(b, added.p);
  };

  const rebase = (t: number) => {
    const f = decay(t - anchor, hl);
    for (const [x, v] of [...raw.entries()]) raw.set(x, v * f);
    setAnchor(t);
    // Rounding may make scaled counts equal: the order is taken again from a full sort.
    sorted = undefined;
    best = undefined;
  };

  return {
    get items() {
      return raw.size;
    },
    add(e) {
      const w = opts.weight(e);
      if (w <= 0) return;
      changes++;
      if (Number.isNaN(anchor)) setAnchor(e.ts);
      if (Number.isFinite(hl) && (e.ts - anchor) / hl > 500) rebase(e.ts);
      const v = (raw.get(e.i) ?? 0) + w / decay(e.ts - anchor, hl);
      raw.set(e.i, v);
      sorted = undefined;
      keepBest(e.i, v);
    },
    score(item, now) {
      const v = raw.get(item);
      return v === undefined ? 0 : v * decay(now - anchor, hl);
    },
    top(now, n, keep) {
      // Every answer without a filter asks for the same list until an event or `now` moves:
      // kept once computed (it is the same list a new computation would give).
      if (!keep) {
        const hit = lastTop;
        if (hit && hit.now === now && hit.n === n && hit.changes === changes) return hit.list;
        const list = topAt(now, n);
        lastTop = { now, n, changes, list };
        return list;
      }
      return topAt(now, n, keep);
    },
  };
  function topAt(now: number, n: number, keep?: (item: string) => boolean): Scored[] {
    // The order does not depend on `now` (one factor for all).
    const f = Number.isNaN(anchor) ? 1 : decay(now - anchor, hl);
    const out: Scored[] = [];
    const b = ranked();
    // A kept record's count is the store's (set together in `add`, rebuilt from it after a
    // rebase or a load): read there, not looked up again (100 lookups per answer under ingest).
    for (const { item, v } of b) {
      if (out.length >= n) break;
      if (keep && !keep(item)) continue;
      const count = v * f;
      out.push({ item, score: count, why: opts.explain(item, count) });
    }
    // More asked for than the kept best hold (after the filter): the whole catalogue, sorted.
    if (out.length < n && b.length < raw.size) {
      out.length = 0;
      for (const [item, v] of fullSort()) {
        if (out.length >= n) break;
        if (keep && !keep(item)) continue;
        const count = v * f;
        out.push({ item, score: count, why: opts.explain(item, count) });
      }
    }
    return out.sort(byScoreThenId);
  }
}

/** TRENDING: views × 1 and clicks × 2 (weights configurable), decayed with a 1 h half-life. */
export function createTrending(
  o: {
    viewWeight?: number;
    clickWeight?: number;
    halfLifeMs?: number;
    all?: boolean;
    store?: ItemCounterOptions["store"];
  } = {},
): ItemCounter {
  const vw = o.viewWeight ?? 1;
  const cw = o.clickWeight ?? 2;
  return createItemCounter({
    halfLifeMs: o.halfLifeMs ?? 3_600_000,
    // `all`: every interaction counts once (a log of ratings has no views or clicks).
    weight: (e) => (e.t === "view" ? vw : e.t === "click" ? cw : o.all ? 1 : 0),
    explain: () => "trending now",
    ...(o.store ? { store: o.store } : {}),
  });
}

/** POPULAR_FALLBACK: target events per item (purchases; ratings of 4+), decayed or plain. */
export function createPopular(
  isTarget: (e: SourceEvent) => boolean,
  halfLifeMs = Infinity,
  store?: ItemCounterOptions["store"],
): ItemCounter {
  return createItemCounter({
    halfLifeMs,
    weight: (e) => (isTarget(e) ? 1 : 0),
    explain: () => "popular overall",
    ...(store ? { store } : {}),
  });
}
