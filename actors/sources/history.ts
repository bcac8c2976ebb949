import type { SourcePreset } from "./preset.js";
import { byScoreThenId, decay, type Scored, type SourceEvent } from "./types.js";

/**
 * HISTORY: the user's own recent items (DESIGN §3.7). Each interaction adds its weight (view 1,
 * click 2, cart 3, purchase 5; a rating its value), decayed by event time with a half-life, so
 * recent and strong interactions rank first; what the preset counts as done (a purchase within
 * 24 h, a rated movie) is left out. Memory is bounded per user (`maxItemsPerUser`: the weakest
 * item is forgotten first).
 */
export interface HistoryOptions {
  preset: SourcePreset;
  /** Event time for a score to halve (default 1 day). */
  halfLifeMs?: number;
  /** Items remembered per user (default 200). */
  maxItemsPerUser?: number;
}

interface Touch {
  /** Decayed score as of `ts`. */
  s: number;
  /** Latest event time on the item. */
  ts: number;
  /** Strongest interaction weight seen, and its event type (for the explanation). */
  w: number;
  t: string;
  /** Times touched. */
  n: number;
  /** Event time of the latest "done" event, -Infinity if none. */
  done: number;
}

export interface HistorySource {
  add(e: SourceEvent): void;
  /** The user's items, best first, done items left out. */
  candidates(user: string, now: number, n?: number): Scored[];
  /** Every item the user touched (done ones included), best first: seeds for other sources. */
  seeds(user: string, now: number, n?: number): Scored[];
  /** The items the preset counts as done for the user at `now` (never recommended to them). */
  done(user: string, now: number): Set<string>;
  /** Whether the user touched the item (within what is remembered). */
  touched(user: string): ReadonlySet<string>;
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

const EXPLAIN: Record<string, string> = {
  view: "you viewed it",
  click: "you clicked it",
  cart: "in your cart",
  purchase: "you bought it",
  remove_from_cart: "you viewed it",
};

export function createHistory(opts: HistoryOptions): HistorySource {
  const halfLife = opts.halfLifeMs ?? 86_400_000;
  const cap = opts.maxItemsPerUser ?? 200;
  const users = new Map<string, Map<string, Touch>>();

  const scoreAt = (x: Touch, now: number) => x.s * decay(Math.max(0, now - x.ts), halfLife);

  const explain = (x: Touch) => {
    if (x.t === "rating") return `you rated it ${x.w}`;
    const base = EXPLAIN[x.t] ?? "you viewed it";
    return x.n > 1 && x.t === "view" ? `you viewed it ${x.n} times` : base;
  };

  /** Forgets the weakest items once a user holds 25% over the cap (amortised O(1) per event). */
  const trim = (items: Map<string, Touch>, now: number) => {
    if (items.size <= cap * 1.25) return;
    const ranked = [...items].sort(
      (a, b) => scoreAt(b[1], now) - scoreAt(a[1], now) || (a[0] < b[0] ? -1 : 1),
    );
    for (const [item] of ranked.slice(cap)) items.delete(item);
  };

  const list = (user: string, now: number, n: number, withDone: boolean): Scored[] => {
    const items = users.get(user);
    if (!items) return [];
    const out: Scored[] = [];
    for (const [item, x] of items) {
      if (!withDone && x.done > -Infinity && now - x.done < opts.preset.doneForMs) continue;
      out.push({ item, score: scoreAt(x, now), why: explain(x) });
    }
    return out.sort(byScoreThenId).slice(0, n);
  };

  return {
    get users() {
      return users.size;
    },
    add(e) {
      const w = opts.preset.weight(e);
      const done = opts.preset.isDone(e);
      if (w <= 0 && !done) return;
      let items = users.get(e.u);
      if (!items) users.set(e.u, (items = new Map()));
      const x = items.get(e.i);
      if (!x) {
        items.set(e.i, { s: w, ts: e.ts, w, t: e.t, n: 1, done: done ? e.ts : -Infinity });
        trim(items, e.ts);
        return;
      }
      // An event older than the latest one adds its weight decayed to the latest time.
      if (e.ts >= x.ts) {
        x.s = x.s * decay(e.ts - x.ts, halfLife) + w;
        x.ts = e.ts;
      } else x.s += w * decay(x.ts - e.ts, halfLife);
      if (w >= x.w) {
        x.w = w;
        x.t = e.t;
      }
      x.n++;
      if (done && e.ts > x.done) x.done = e.ts;
    },
    candidates: (user, now, n = 100) => list(user, now, n, false),
    seeds: (user, now, n = 100) => list(user, now, n, true),
    done(user, now) {
      const out = new Set<string>();
      for (const [item, x] of users.get(user) ?? [])
        if (x.done > -Infinity && now - x.done < opts.preset.doneForMs) out.add(item);
      return out;
    },
    touched: (user) => new Set(users.get(user)?.keys() ?? []),
    recent(user, n) {
      return [...(users.get(user) ?? [])]
        .sort(([a, x], [b, y]) => y.ts - x.ts || (a < b ? -1 : a > b ? 1 : 0))
        .slice(0, n)
        .map(([item, x]) => ({ item, type: x.t, ts: x.ts, count: x.n }));
    },
  };
}
