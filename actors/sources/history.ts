import type { SourcePreset } from "./preset.js";
import { memStore, type KeyStore } from "./store.js";
import { decay, topByScore, type Scored, type SourceEvent } from "./types.js";

/**
 * HISTORY: the user's own recent items (DESIGN §3.7). Each interaction adds its weight (view 1,
 * click 2, cart 3, purchase 5; a rating its value), decayed by event time with a half-life, so
 * recent and strong interactions rank first; what the preset counts as done (a purchase within
 * 24 h, a rated movie) is left out. Memory is bounded per user (`maxItemsPerUser`: the weakest
 * item is forgotten first).
 *
 * What is done and what was touched outlive that bound: an item forgotten by the ranking stays in
 * the user's value as its id and the time it was done (a number instead of a Touch), so a heavy
 * rater never gets back a film they rated, and `excludeTouched` leaves out everything they
 * touched, however long their history. Those past items are bounded too (`maxPastPerUser`,
 * default {@link MAX_PAST_PER_USER}): beyond it the oldest forgotten one is dropped.
 *
 * The data is per user (`store`: the history stage's state, one key per user), so a user's
 * history depends only on that user's events in their order: a stage per user partition is exact.
 */
export interface HistoryOptions {
  preset: SourcePreset;
  /** Event time for a score to halve (default 1 day). */
  halfLifeMs?: number;
  /** Items remembered per user (default 200). */
  maxItemsPerUser?: number;
  /** Items forgotten by the ranking but still known as touched or done (default 10,000). */
  maxPastPerUser?: number;
}

/** Items a user touched that are kept as touched or done after the ranking forgot them. */
export const MAX_PAST_PER_USER = 10_000;

/**
 * One remembered item, as stored (JSON: a compact array): decayed score as of `ts`, latest event
 * time on the item, strongest interaction weight seen and its event type (for the explanation),
 * times touched, event time of the latest "done" event (-1: none).
 */
type Touch = [s: number, ts: number, w: number, t: string, n: number, done: number];
const S = 0,
  TS = 1,
  W = 2,
  T = 3,
  N = 4,
  DONE = 5;

/**
 * A past item: one the ranking forgot (beyond `maxItemsPerUser`), kept as the event time it was
 * last done (-1: never done) so it stays touched and, while done, never served.
 */
type Past = number;

/**
 * A user's remembered items by item id: a Map (an object dictionary per user made `add` 2.7×
 * slower: 100k events of the chaos log, 6.4 s against 2.4 s), stored as its entries. A value is
 * a Touch (ranked) or a Past (forgotten by the ranking, still touched).
 */
export class UserItems extends Map<string, Touch | Past> {
  /** Ranked (Touch) items, counted when first needed (-1: not counted yet). */
  live = -1;
  toJSON(): [string, Touch | Past][] {
    return [...this];
  }
}

/** A user's remembered items as stored (entries once loaded, a Map once read). */
export type UserHistory = UserItems | [string, Touch | Past][];

const isPast = (x: Touch | Past): x is Past => typeof x === "number";

export interface HistorySource {
  add(e: SourceEvent): void;
  /** The user's items, best first, done items left out. */
  candidates(user: string, now: number, n?: number): Scored[];
  /** Every item the user touched (done ones included), best first: seeds for other sources. */
  seeds(user: string, now: number, n?: number): Scored[];
  /** The items the preset counts as done for the user at `now` (never recommended to them). */
  done(user: string, now: number): Set<string>;
  /** The items the user touched (ranked and past: up to `maxPastPerUser` more). */
  touched(user: string): ReadonlySet<string>;
  /** What the user did with an item they touched ("you viewed it"); undefined if untouched. */
  why(user: string, item: string): string | undefined;
  /** The user's items, latest interaction first (ties by item id), at most `n`. */
  recent(user: string, n: number): RecentTouch[];
  /** Users known. */
  readonly users: number;
}

/** One remembered item of a user: its strongest interaction, latest time and times touched. */
export interface RecentTouch {
  item: string;
  /** The strongest interaction's event type (a purchase outranks the views before it). */
  type: string;
  /** Event time of the latest interaction, epoch ms. */
  ts: number;
  /** Interactions with the item. */
  count: number;
}

/** The explanation of a touched item the ranking no longer holds. */
const PAST_WHY = "from your earlier history";

const EXPLAIN: Record<string, string> = {
  view: "you viewed it",
  click: "you clicked it",
  cart: "in your cart",
  purchase: "you bought it",
  remove_from_cart: "you viewed it",
};

export function createHistory(
  opts: HistoryOptions,
  users: KeyStore<UserHistory> = memStore(),
): HistorySource {
  const halfLife = opts.halfLifeMs ?? 86_400_000;
  const cap = opts.maxItemsPerUser ?? 200;
  const maxPast = opts.maxPastPerUser ?? MAX_PAST_PER_USER;
  /**
   * The user's items as a Map (a value read after a load or a snapshot is its entries). `add`
   * keeps the Map it changes (it sets the key anyway); a read does not set it, so serving never
   * makes a key dirty.
   */
  const itemsOf = (user: string): UserItems | undefined => {
    const v = users.get(user);
    return v === undefined || v instanceof UserItems ? v : new UserItems(v);
  };
  /**
   * The read paths' view of a loaded value (entries, as a text map decodes it): converted once
   * per value, not by each of the four reads of an answer (seeds, candidates, done, touched: a
   * Map of up to 250 items built four times per answer, ~8% of a blended answer in the serving
   * process). Only reads use it, and a value the store hands out is never changed in place (`add`
   * converts its own copy and sets it), so a kept conversion is the value's.
   */
  const readOnly = new WeakMap<object, UserItems>();
  const readItems = (user: string): UserItems | undefined => {
    const v = users.get(user);
    if (v === undefined || v instanceof UserItems) return v;
    let m = readOnly.get(v);
    if (m === undefined) readOnly.set(v, (m = new UserItems(v)));
    return m;
  };

  const scoreAt = (x: Touch, now: number) => x[S] * decay(Math.max(0, now - x[TS]), halfLife);
  const doneAt = (at: number, now: number) => at >= 0 && now - at < opts.preset.doneForMs;
  const isDone = (x: Touch | Past, now: number) => doneAt(isPast(x) ? x : x[DONE], now);

  const explain = (x: Touch) => {
    if (x[T] === "rating") return `you rated it ${x[W]}`;
    const base = EXPLAIN[x[T]] ?? "you viewed it";
    return x[N] > 1 && x[T] === "view" ? `you viewed it ${x[N]} times` : base;
  };

  const liveOf = (items: UserItems) => {
    if (items.live < 0) {
      let n = 0;
      for (const x of items.values()) if (!isPast(x)) n++;
      items.live = n;
    }
    return items.live;
  };

  /**
   * Ranks out the weakest items once a user holds 25% over the cap (amortised O(1) per event):
   * each stays as a past item (touched, and done while it is), the oldest past ones dropped
   * beyond `maxPast`.
   */
  const trim = (items: UserItems, now: number) => {
    if (items.size <= cap * 1.25 || liveOf(items) <= cap * 1.25) return;
    const ranked: [string, Touch][] = [];
    for (const [item, x] of items) if (!isPast(x)) ranked.push([item, x]);
    ranked.sort((a, b) => scoreAt(b[1], now) - scoreAt(a[1], now) || (a[0] < b[0] ? -1 : 1));
    for (const [item, x] of ranked.slice(cap)) {
      // Set anew, so the Map's order is the order items were forgotten in (oldest first).
      items.delete(item);
      items.set(item, x[DONE]);
    }
    items.live = cap;
    let past = items.size - cap;
    if (past <= maxPast) return;
    for (const [item, x] of items) {
      if (past <= maxPast) break;
      if (!isPast(x)) continue;
      items.delete(item);
      past--;
    }
  };

  const list = (user: string, now: number, n: number, withDone: boolean): Scored[] => {
    const items = readItems(user);
    if (!items) return [];
    const all: { item: string; score: number; x: Touch }[] = [];
    for (const [item, x] of items) {
      if (isPast(x) || (!withDone && isDone(x, now))) continue;
      all.push({ item, score: scoreAt(x, now), x });
    }
    // The first n in byScoreThenId order (items are distinct, scores finite: the same n as a
    // full sort), explained once chosen: a heavy user's 250 items were sorted whole and
    // explained twice per answer (seeds and candidates) to serve 20 and 100 of them.
    return topByScore(all, n).map(({ item, score, x }) => ({ item, score, why: explain(x) }));
  };

  return {
    get users() {
      return users.size;
    },
    add(e) {
      const w = opts.preset.weight(e);
      const done = opts.preset.isDone(e);
      if (w <= 0 && !done) return;
      const items = itemsOf(e.u) ?? new UserItems();
      const x = items.get(e.i);
      if (x === undefined || isPast(x)) {
        // A past item touched again is ranked again, from this event, still done if it was.
        const at = done ? Math.max(e.ts, x ?? -1) : (x ?? -1);
        if (x !== undefined) items.delete(e.i);
        items.set(e.i, [w, e.ts, w, e.t, 1, at]);
        if (items.live >= 0) items.live++;
        trim(items, e.ts);
        users.set(e.u, items);
        return;
      }
      // An event older than the latest one adds its weight decayed to the latest time.
      if (e.ts >= x[TS]) {
        x[S] = x[S] * decay(e.ts - x[TS], halfLife) + w;
        x[TS] = e.ts;
      } else x[S] += w * decay(x[TS] - e.ts, halfLife);
      if (w >= x[W]) {
        x[W] = w;
        x[T] = e.t;
      }
      x[N]++;
      if (done && e.ts > x[DONE]) x[DONE] = e.ts;
      users.set(e.u, items);
    },
    candidates: (user, now, n = 100) => list(user, now, n, false),
    seeds: (user, now, n = 100) => list(user, now, n, true),
    done(user, now) {
      const out = new Set<string>();
      for (const [item, x] of readItems(user) ?? []) if (isDone(x, now)) out.add(item);
      return out;
    },
    touched: (user) => new Set(readItems(user)?.keys() ?? []),
    why(user, item) {
      const x = readItems(user)?.get(item);
      return x === undefined ? undefined : isPast(x) ? PAST_WHY : explain(x);
    },
    recent(user, n) {
      const ranked: [string, Touch][] = [];
      for (const [item, x] of readItems(user) ?? []) if (!isPast(x)) ranked.push([item, x]);
      return ranked
        .sort(([a, x], [b, y]) => y[TS] - x[TS] || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, n)
        .map(([item, x]) => ({ item, type: x[T], ts: x[TS], count: x[N] }));
    },
  };
}
