import { memStore, type KeyStore } from "./store.js";
import { byScoreThenId, decay, type Scored, type SourceEvent } from "./types.js";

/**
 * Item counters decayed by event time: TRENDING (seed 002's UC3 boost: views × 1 + clicks × 2
 * over the last hours) and POPULAR_FALLBACK (target events — purchases, ratings of 4+ — over a
 * long horizon). One structure, two settings. Scores are kept relative to a moving anchor time
 * so that the decay of every item is one multiplication at query time, not an update per item.
 *
 * The anchor is a point of a lattice in event time, every STEP half-lives: that of the newest
 * counted event. An event at ts adds w · 2^((ts - L)/hl) · 2^(STEP · (L - anchor)/(STEP · hl)),
 * L its own lattice point: the second factor, and the rescaling of every count when the anchor
 * moves on, are exact powers of two. So two counters fed one item's events in the same order
 * hold the same count for it up to a power of two, whatever other items each counts: counters
 * of disjoint items (one per item partition) read together (`mergeCounters`) give the bits one
 * counter of every item gives.
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

/** One item's stored count as it was at some point: `raw` relative to `anchor` (undefined: none). */
export interface RawCount {
  raw: number | undefined;
  anchor: number;
}

/** A counter's own data, as `mergeCounters` reads it: counts as stored, relative to its anchor. */
export interface CounterPart extends ItemCounter {
  readonly halfLifeMs: number;
  /** The anchor the stored counts are relative to (NaN before any count). */
  anchor(): number;
  /** The first n items by stored count (ties by id) that `keep` allows, with those counts. */
  rawTop(n: number, keep?: (item: string) => boolean): (readonly [string, number])[];
  /** An item's stored count. */
  raw(item: string): number | undefined;
  explain(item: string, count: number): string;
  /** Moves on with every count added (a memo's key). */
  changes(): number;
  /**
   * The stored count, and the anchor, that the item of the latest count had before it (one
   * object, changed in place by the next count: read it at once).
   */
  readonly last: Readonly<RawCount>;
}

/** Half-lives between two lattice points of the anchor. */
const STEP = 256;

/** The lattice point at or before `ts`, for a finite half-life. */
const latticeOf = (ts: number, hl: number) => Math.floor(ts / (STEP * hl)) * (STEP * hl);

/** 2^(STEP · steps from lattice point `from` to `to`): an exact power of two. */
const stepFactor = (from: number, to: number, hl: number) =>
  Math.pow(2, STEP * Math.round((to - from) / (STEP * hl)));

/** Whether stored count `a` ranks before `b`: a higher count, ties by id. */
const ranksBefore = (a: readonly [string, number], b: readonly [string, number]) =>
  a[1] > b[1] || (a[1] === b[1] && a[0] < b[0]);

/** Stored counts at decay factor f as a ranked list, in serving order. */
function scoredList(
  counts: readonly (readonly [string, number])[],
  f: number,
  explain: (item: string, count: number) => string,
): Scored[] {
  return counts
    .map(([item, v]) => {
      const count = v * f;
      return { item, score: count, why: explain(item, count) };
    })
    .sort(byScoreThenId);
}

/** An item kept in rank order: its raw count (as in the store) and its place in the list. */
interface Kept {
  item: string;
  v: number;
  p: number;
}

/** Items whose rank is kept up to date for `top` (a request deeper than this sorts them all). */
const TOP_KEPT = 1024;

export function createItemCounter(opts: ItemCounterOptions): CounterPart {
  const hl = opts.halfLifeMs;
  // Count of item x at time t = raw(x) · 2^(-(t - anchor)/hl). The anchor moves on to the newest
  // event's lattice point (every raw value rescaled once, by a power of two).
  const raw = opts.store?.raw ?? memStore<number>();
  const anchors = opts.store?.anchors ?? memStore<number>();
  const anchorKey = opts.store?.anchorKey ?? "anchor";
  const finite = Number.isFinite(hl);
  let anchor = anchors.get(anchorKey) ?? Number.NaN;
  let sorted: [string, number][] | undefined;
  const setAnchor = (t: number) => {
    anchor = t;
    anchors.set(anchorKey, t);
  };
  // Counts stored relative to an anchor off the lattice (the first event's time, where counters
  // once anchored): moved to the lattice point before it, once.
  if (finite && !Number.isNaN(anchor) && latticeOf(anchor, hl) !== anchor) {
    const to = latticeOf(anchor, hl);
    const f = decay(to - anchor, hl);
    for (const [x, v] of [...raw.entries()]) raw.set(x, v * f);
    setAnchor(to);
  }

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
  /** The counted item's stored count before the latest count (set in place, read at once). */
  const last: RawCount = { raw: undefined, anchor: Number.NaN };
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

  /** Moves the anchor on to lattice point `to`: every count times a power of two, exactly. */
  const rebase = (to: number) => {
    const f = stepFactor(to, anchor, hl);
    for (const [x, v] of [...raw.entries()]) raw.set(x, v * f);
    setAnchor(to);
    // Counts scaled into the subnormals may become equal: the order is taken again.
    sorted = undefined;
    best = undefined;
  };

  return {
    get items() {
      return raw.size;
    },
    halfLifeMs: hl,
    add(e) {
      const w = opts.weight(e);
      if (w <= 0) return;
      changes++;
      let had = raw.get(e.i);
      last.raw = had;
      last.anchor = anchor;
      let add = w;
      if (finite) {
        const at = latticeOf(e.ts, hl);
        if (Number.isNaN(anchor)) setAnchor(at);
        else if (at > anchor) {
          rebase(at);
          had = raw.get(e.i);
        }
        // w · 2^((ts - L)/hl), moved from L to the anchor by a power of two (exactly).
        add = (w / decay(e.ts - at, hl)) * stepFactor(anchor, at, hl);
      } else if (Number.isNaN(anchor)) setAnchor(e.ts);
      const v = (had ?? 0) + add;
      raw.set(e.i, v);
      sorted = undefined;
      keepBest(e.i, v);
    },
    score(item, now) {
      const v = raw.get(item);
      return v === undefined ? 0 : v * decay(now - anchor, hl);
    },
    anchor: () => anchor,
    raw: (item) => raw.get(item),
    last,
    rawTop,
    explain: (item, count) => opts.explain(item, count),
    changes: () => changes,
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
  function rawTop(n: number, keep?: (item: string) => boolean): [string, number][] {
    const out: [string, number][] = [];
    const b = ranked();
    // A kept record's count is the store's (set together in `add`, rebuilt from it after a
    // rebase or a load): read there, not looked up again (100 lookups per answer under ingest).
    for (const { item, v } of b) {
      if (out.length >= n) break;
      if (keep && !keep(item)) continue;
      out.push([item, v]);
    }
    // More asked for than the kept best hold (after the filter): the whole catalogue, sorted.
    if (out.length < n && b.length < raw.size) {
      out.length = 0;
      for (const [item, v] of fullSort()) {
        if (out.length >= n) break;
        if (keep && !keep(item)) continue;
        out.push([item, v]);
      }
    }
    return out;
  }
  function topAt(now: number, n: number, keep?: (item: string) => boolean): Scored[] {
    // The order does not depend on `now` (one factor for all).
    const f = Number.isNaN(anchor) ? 1 : decay(now - anchor, hl);
    return scoredList(rawTop(n, keep), f, opts.explain);
  }
}

/** Counters of disjoint items read as one; `with` reads one item's count as it once was. */
export interface MergedCounter extends ItemCounter {
  /** The same counters with `item`'s stored count replaced by `was` (as before its last event). */
  with(item: string, was: RawCount): ItemCounter;
}

/**
 * Counters of disjoint items read as one (the counters of each item partition): each count is
 * moved to the newest anchor by a power of two, so a list and a score are those one counter of
 * every item, fed each item's events in the same order, gives. `partOf` names an item's counter.
 */
export function mergeCounters(
  parts: readonly CounterPart[],
  partOf: (item: string) => number,
): MergedCounter {
  const hl = parts[0]?.halfLifeMs ?? Infinity;
  const finite = Number.isFinite(hl);
  /** The newest anchor (NaN: no counts anywhere). */
  const newest = () => {
    let a = Number.NaN;
    for (const p of parts) {
      const x = p.anchor();
      if (!Number.isNaN(x) && !(x <= a)) a = x;
    }
    return a;
  };
  /** A count relative to anchor `from`, moved to anchor `a` (exactly). */
  const moved = (v: number, from: number, a: number) => (finite ? v * stepFactor(a, from, hl) : v);
  const topAt = (
    now: number,
    n: number,
    keep: ((item: string) => boolean) | undefined,
    was?: { item: string; count: RawCount },
  ): Scored[] => {
    const a = newest();
    if (Number.isNaN(a)) return [];
    // Each part's first items in (count, id) order, its counts moved to anchor a (by a positive
    // factor, so the order holds), merged by the same order. A part is read to `limit` (a fair
    // share of n, and more) first, and further only if the merge runs past it.
    const lists: { list: (readonly [string, number])[]; all: boolean; p: CounterPart }[] = [];
    const limit = Math.min(n, Math.ceil((2 * n) / Math.max(1, parts.length)) + 4);
    const read = (p: CounterPart, at: number, k: number) => {
      const list = p.rawTop(k, keep);
      const f = moved(1, at, a);
      return { list: list.map(([item, v]) => [item, v * f] as const), all: list.length < k, p };
    };
    parts.forEach((p, x) => {
      const at = p.anchor();
      if (Number.isNaN(at)) return;
      if (was && partOf(was.item) === x) {
        // One more than asked: the item, its count lowered, may leave the first n.
        const { list } = read(p, at, n + 1);
        const kept = list.filter(([i]) => i !== was.item);
        const { raw, anchor } = was.count;
        if (raw !== undefined && (!keep || keep(was.item)))
          kept.push([was.item, moved(raw, anchor, a)]);
        lists.push({ list: kept.sort((u, w) => (ranksBefore(u, w) ? -1 : 1)), all: true, p });
      } else lists.push(read(p, at, limit));
    });
    let all: (readonly [string, number])[] = [];
    for (;;) {
      all = [];
      const heads = lists.map(() => 0);
      /** A part whose read ran out before the merge was done: read further, merge again. */
      let short = -1;
      while (all.length < n) {
        let best = -1;
        for (let x = 0; x < lists.length; x++) {
          const l = lists[x]!;
          if (heads[x]! >= l.list.length) {
            if (!l.all) short = x;
            continue;
          }
          if (best < 0 || ranksBefore(l.list[heads[x]!]!, lists[best]!.list[heads[best]!]!))
            best = x;
        }
        if (short >= 0 || best < 0) break;
        all.push(lists[best]!.list[heads[best]!++]!);
      }
      if (short < 0) break;
      const l = lists[short]!;
      lists[short] = read(l.p, l.p.anchor(), Math.min(n, 2 * l.list.length + 1));
      if (lists[short]!.list.length >= n) lists[short]!.all = true;
    }
    return scoredList(all, decay(now - a, hl), (item, count) =>
      parts[partOf(item)]!.explain(item, count),
    );
  };
  const scoreOf = (item: string, now: number, was?: RawCount) => {
    const p = parts[partOf(item)]!;
    const v = was ? was.raw : p.raw(item);
    if (v === undefined) return 0;
    const a = newest();
    return moved(v, was ? was.anchor : p.anchor(), a) * decay(now - a, hl);
  };
  const items = () => parts.reduce((sum, p) => sum + p.items, 0);
  const add = () => {
    throw new Error("counters read together are fed one by one");
  };
  let last: { now: number; n: number; changes: number; list: Scored[] } | undefined;
  const changes = () => parts.reduce((sum, p) => sum + p.changes(), 0);
  return {
    add,
    get items() {
      return items();
    },
    score: (item, now) => scoreOf(item, now),
    top(now, n, keep) {
      if (keep) return topAt(now, n, keep);
      const c = changes();
      if (last && last.now === now && last.n === n && last.changes === c) return last.list;
      const list = topAt(now, n, undefined);
      last = { now, n, changes: c, list };
      return list;
    },
    with(item, count) {
      return {
        add,
        get items() {
          return items();
        },
        score: (i, now) => (i === item ? scoreOf(i, now, count) : scoreOf(i, now)),
        top: (now, n, keep) => topAt(now, n, keep, { item, count }),
      };
    },
  };
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
): CounterPart {
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
): CounterPart {
  return createItemCounter({
    halfLifeMs,
    weight: (e) => (isTarget(e) ? 1 : 0),
    explain: () => "popular overall",
    ...(store ? { store } : {}),
  });
}
