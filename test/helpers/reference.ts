/**
 * A plain reference implementation: computes recommendations, top categories, the popularity
 * table, trending windows and late events from the whole event log at once, in publish order,
 * with DESIGN.md §3's rules. No stages, no window state, no NATS, no partitions: if the pipeline
 * and this agree at every partition count, the pipeline is right.
 *
 * The rules, as the contract states them and the pipeline implements them:
 * - Dedupe by `event_id` (case-insensitive, first wins). Each accepted event carries `wb`, the
 *   progress before it: the max event time over all earlier accepted events (-1 at first).
 * - User path: late if `ts < wb − userOutOfOrderness` (to reco.late, reason
 *   `behind_watermark:user`). Interest = interactions per main category over the 5 min windows
 *   whose end is after `now − interestHorizon` (`now` = final progress); top 3 by interest
 *   descending, ties by name. Purchases in those windows exclude items from personalised
 *   candidates.
 * - Popularity: purchases per item over 1 h buckets whose end is after `now − popularityHorizon`;
 *   a purchase with `ts < wb − popularityHorizon` never counts: it goes to reco.late (reason
 *   `behind_watermark:popularity`, watermark `wb − popularityHorizon`).
 *   Category and brand: the latest non-empty over the counted purchases (the pipeline remembers
 *   them over every accepted purchase; the two agree whenever an item keeps its category).
 * - Recommendations: per top category, items with purchases > 0 of that category, score =
 *   interest × purchases / 100, sorted by score descending, then item id (plain string order),
 *   first n; the rest filled from the overall top `fallbackSize` by purchases (ties by id) with
 *   score 0.1, skipping items already listed (the user's own purchases are not skipped there).
 * - Trending: views, clicks, carts and purchases of 1 h tumbling windows (late if
 *   `ts < wb − 2 h`) and of 24 h windows sliding by 1 h (late if `ts < wb − 26 h`); score =
 *   views × w_v + clicks × w_c + carts × w_cart + purchases × w_p (a type of weight 0 is not
 *   counted),
 *   sorted by score descending, then item id. A window is final once `now − disorder` reaches
 *   its end.
 */

export interface RefEvent {
  event_id: string;
  event_type: string;
  /** ISO-8601 with zone, epoch millis, or a string of digits (epoch millis). */
  event_ts: string | number;
  user_id: string | number;
  item_id?: string | number;
  product_id?: string | number;
  movie_id?: string | number;
  category_code?: string;
  brand?: string;
  price?: number;
  rating?: number;
}

export interface RefOptions {
  windowMs: number;
  userOutOfOrdernessMs: number;
  hourOutOfOrdernessMs: number;
  /** Disorder of the 24 h sliding windows (DESIGN: 26 h). */
  dayOutOfOrdernessMs?: number;
  interestHorizonMs: number;
  popularityHorizonMs: number;
  topCategories: number;
  fallbackSize: number;
  viewWeight: number;
  clickWeight: number;
  cartWeight: number;
  purchaseWeight: number;
  /** `movies`: a rating of 4 or more counts as a purchase. */
  preset?: "ecommerce" | "movies";
  /**
   * The movies preset's catalogue (MOVIES_CATALOG): movie id -> category, the first genre of the
   * movie, lowercased. An event without `category_code` takes its movie's category.
   */
  genres?: ReadonlyMap<string, string>;
}

export const DEFAULT_REF: RefOptions = {
  windowMs: 300_000,
  userOutOfOrdernessMs: 600_000,
  hourOutOfOrdernessMs: 7_200_000,
  dayOutOfOrdernessMs: 93_600_000,
  interestHorizonMs: 86_400_000,
  popularityHorizonMs: 604_800_000,
  topCategories: 3,
  fallbackSize: 10,
  viewWeight: 1,
  clickWeight: 2,
  cartWeight: 3,
  purchaseWeight: 5,
  preset: "ecommerce",
};

const H = 3_600_000;
const DAY = 24 * H;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

interface E {
  id: string;
  t: string;
  ts: number;
  u: string;
  i: string;
  c: string;
  b: string;
  pr: number;
  wb: number;
}

export interface RefItem {
  itemId: string;
  score: number;
  source: "PERSONALIZED" | "POPULAR_FALLBACK";
}

/** One row of the popularity table. */
export interface RefPopularityRow {
  item: string;
  purchases: number;
  category: string;
  brand: string;
  /** Average price of the counted purchases that had one; 0 when none had. */
  avgPrice: number;
}

export interface RefTrendingEntry {
  itemId: string;
  score: number;
  views: number;
  clicks: number;
  carts: number;
  purchases: number;
}

export type RefTrendingKind = "1h" | "24h";

/** Reasons of reco.late, as the pipeline writes them in the `Reco-Reason` header. */
export type LateReason =
  | "behind_watermark:user"
  | "behind_watermark:1h"
  | "behind_watermark:24h"
  | "behind_watermark:popularity";

/** One message the pipeline must keep in reco.late. */
export interface RefLate {
  reason: LateReason;
  eventId: string;
  /** The watermark the event was behind: its `wb` less the path's disorder. */
  watermark: number;
}

/** Event time in ms as the pipeline reads it: a number, a string of digits, or ISO-8601. */
export function eventTimeOf(v: string | number): number {
  if (typeof v === "number") return v;
  if (/^\d{1,16}$/.test(v)) return Number(v);
  return Date.parse(v.replace(" ", "T"));
}

/** The item id as the pipeline reads it: the first non-empty of item_id, product_id, movie_id. */
export function itemIdOf(r: RefEvent): string {
  const v = [r.item_id, r.product_id, r.movie_id].find(
    (x) => x !== undefined && x !== null && x !== "",
  );
  return String(v);
}

export function reference(log: RefEvent[], o: RefOptions = DEFAULT_REF) {
  const dayOoo = o.dayOutOfOrdernessMs ?? DEFAULT_REF.dayOutOfOrdernessMs!;
  const seen = new Set<string>();
  const events: E[] = [];
  let progress = -1;
  let duplicates = 0;
  for (const r of log) {
    const id = r.event_id.toLowerCase();
    if (seen.has(id)) {
      duplicates++;
      continue;
    }
    seen.add(id);
    const ts = eventTimeOf(r.event_ts);
    const item = itemIdOf(r);
    const category = r.category_code
      ? (r.category_code.split(".")[0] ?? "")
      : o.preset === "movies"
        ? (o.genres?.get(item) ?? "")
        : "";
    const purchase =
      o.preset === "movies"
        ? r.event_type === "rating" && (r.rating ?? -1) >= 4
        : r.event_type === "purchase";
    events.push({
      id,
      t: purchase ? "purchase" : r.event_type,
      ts,
      u: String(r.user_id),
      i: item,
      c: category,
      b: r.brand ?? "",
      pr: r.price ?? -1,
      wb: progress,
    });
    progress = Math.max(progress, ts);
  }
  const now = progress;
  const win = (ts: number) => ts - (ts % o.windowMs);
  const behind = (e: E, ooo: number) => e.wb >= 0 && e.ts < e.wb - ooo;
  const trendWeight: Record<string, number> = {
    view: o.viewWeight,
    click: o.clickWeight,
    cart: o.cartWeight,
    purchase: o.purchaseWeight,
  };
  const trendable = (e: E) => (trendWeight[e.t] ?? 0) > 0;
  const slot: Record<string, number> = { view: 0, click: 1, cart: 2, purchase: 3 };

  // Late events, in publish order, per path.
  const late: RefLate[] = [];
  for (const e of events) {
    if (behind(e, o.userOutOfOrdernessMs))
      late.push({
        reason: "behind_watermark:user",
        eventId: e.id,
        watermark: e.wb - o.userOutOfOrdernessMs,
      });
    if (e.t === "purchase" && e.ts < e.wb - o.popularityHorizonMs)
      late.push({
        reason: "behind_watermark:popularity",
        eventId: e.id,
        watermark: e.wb - o.popularityHorizonMs,
      });
    if (!trendable(e)) continue;
    if (behind(e, o.hourOutOfOrdernessMs))
      late.push({
        reason: "behind_watermark:1h",
        eventId: e.id,
        watermark: e.wb - o.hourOutOfOrdernessMs,
      });
    if (behind(e, dayOoo))
      late.push({ reason: "behind_watermark:24h", eventId: e.id, watermark: e.wb - dayOoo });
  }
  const lateCounts: Record<LateReason, number> = {
    "behind_watermark:user": 0,
    "behind_watermark:1h": 0,
    "behind_watermark:24h": 0,
    "behind_watermark:popularity": 0,
  };
  for (const l of late) lateCounts[l.reason]++;

  const userPath = events.filter((e) => !behind(e, o.userOutOfOrdernessMs));

  // Interest and recent purchases per user.
  const interest = new Map<string, Map<string, number>>();
  const purchased = new Map<string, Set<string>>();
  for (const e of userPath) {
    if (win(e.ts) + o.windowMs <= now - o.interestHorizonMs) continue;
    if (e.c) {
      const m = interest.get(e.u) ?? new Map<string, number>();
      m.set(e.c, (m.get(e.c) ?? 0) + 1);
      interest.set(e.u, m);
    }
    if (e.t === "purchase") {
      const s = purchased.get(e.u) ?? new Set<string>();
      s.add(e.i);
      purchased.set(e.u, s);
    }
  }
  const topCategories = (u: string): [string, number][] =>
    [...(interest.get(u) ?? new Map<string, number>())]
      .sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))
      .slice(0, o.topCategories);

  // Popularity over the horizon, in 1 h buckets.
  let popularityLate = 0;
  const acc = new Map<string, { n: number; c: string; b: string; sum: number; priced: number }>();
  for (const e of events) {
    if (e.t !== "purchase") continue;
    if (e.ts < e.wb - o.popularityHorizonMs) {
      popularityLate++;
      continue;
    }
    if (e.ts - (e.ts % H) + H <= now - o.popularityHorizonMs) continue;
    const p = acc.get(e.i) ?? { n: 0, c: "", b: "", sum: 0, priced: 0 };
    acc.set(e.i, {
      n: p.n + 1,
      c: e.c || p.c,
      b: e.b || p.b,
      sum: p.sum + (e.pr >= 0 ? e.pr : 0),
      priced: p.priced + (e.pr >= 0 ? 1 : 0),
    });
  }
  const pop = new Map<string, RefPopularityRow>(
    [...acc].map(([item, p]) => [
      item,
      {
        item,
        purchases: p.n,
        category: p.c,
        brand: p.b,
        avgPrice: p.priced > 0 ? p.sum / p.priced : 0,
      },
    ]),
  );
  const topOverall = [...pop.values()]
    .sort((a, b) => b.purchases - a.purchases || cmp(a.item, b.item))
    .slice(0, o.fallbackSize);

  const recommend = (u: string, n: number): RefItem[] => {
    const excluded = purchased.get(u) ?? new Set<string>();
    const cands: RefItem[] = [];
    for (const [c, k] of topCategories(u)) {
      for (const p of pop.values()) {
        if (p.category !== c || excluded.has(p.item)) continue;
        cands.push({ itemId: p.item, score: (k * p.purchases) / 100, source: "PERSONALIZED" });
      }
    }
    cands.sort((a, b) => b.score - a.score || cmp(a.itemId, b.itemId));
    const out = cands.slice(0, n);
    const taken = new Set(out.map((x) => x.itemId));
    for (const p of topOverall) {
      if (out.length >= n) break;
      if (taken.has(p.item)) continue;
      out.push({ itemId: p.item, score: 0.1, source: "POPULAR_FALLBACK" });
    }
    return out;
  };

  // Trending: counts per type, hour and item, separately per path (their lateness differs).
  type Counts = [number, number, number, number];
  const hours: Record<RefTrendingKind, Map<number, Map<string, Counts>>> = {
    "1h": new Map(),
    "24h": new Map(),
  };
  for (const e of events) {
    if (!trendable(e)) continue;
    const h = e.ts - (e.ts % H);
    for (const [kind, ooo] of [
      ["1h", o.hourOutOfOrdernessMs],
      ["24h", dayOoo],
    ] as const) {
      if (behind(e, ooo)) continue;
      let m = hours[kind].get(h);
      if (!m) hours[kind].set(h, (m = new Map()));
      const a = m.get(e.i) ?? [0, 0, 0, 0];
      a[slot[e.t]!]!++;
      m.set(e.i, a);
    }
  }
  const sizeOf = (kind: RefTrendingKind) => (kind === "1h" ? H : DAY);
  const trending = (kind: RefTrendingKind, start: number): RefTrendingEntry[] => {
    const sum = new Map<string, Counts>();
    for (let h = start; h < start + sizeOf(kind); h += H) {
      for (const [i, c] of hours[kind].get(h) ?? []) {
        const a = sum.get(i) ?? [0, 0, 0, 0];
        sum.set(i, [a[0] + c[0], a[1] + c[1], a[2] + c[2], a[3] + c[3]]);
      }
    }
    return [...sum]
      .map(([itemId, [views, clicks, carts, purchases]]) => ({
        itemId,
        score:
          views * o.viewWeight +
          clicks * o.clickWeight +
          carts * o.cartWeight +
          purchases * o.purchaseWeight,
        views,
        clicks,
        carts,
        purchases,
      }))
      .sort((a, b) => b.score - a.score || cmp(a.itemId, b.itemId));
  };
  /**
   * Starts of the windows of `kind` that hold data and are final at the end of the log:
   * `now − disorder` has reached their end. 24 h windows start on every hour.
   */
  const closedWindows = (kind: RefTrendingKind): number[] => {
    const ooo = kind === "1h" ? o.hourOutOfOrdernessMs : dayOoo;
    const starts = new Set<number>();
    for (const h of hours[kind].keys()) {
      if (kind === "1h") starts.add(h);
      else for (let s = h - DAY + H; s <= h; s += H) starts.add(s);
    }
    return [...starts]
      .filter((s) => now >= 0 && s + sizeOf(kind) <= now - ooo)
      .sort((a, b) => a - b);
  };

  return {
    now,
    /** Accepted (distinct) events. */
    accepted: events.length,
    /** Every accepted event with the progress before it (`wb`), in publish order. */
    timeline: (): readonly Pick<E, "id" | "t" | "ts" | "wb" | "u" | "i">[] =>
      events.map(({ id, t, ts, wb, u, i }) => ({ id, t, ts, wb, u, i })),
    duplicates,
    /** Users with at least one accepted event, sorted. */
    users: () => [...new Set(events.map((e) => e.u))].sort(cmp),
    topCategories,
    recommend,
    /** The popularity table: items with purchases > 0 over the horizon, sorted by item id. */
    popularity: () => [...pop.values()].sort((a, b) => cmp(a.item, b.item)),
    /**
     * Purchases ignored because they are beyond the popularity horizon on arrival (each also in
     * `late` as `behind_watermark:popularity`).
     */
    popularityLate,
    trending,
    trendingHour: (start: number) => trending("1h", start),
    trendingDay: (start: number) => trending("24h", start),
    closedWindows,
    /** Every message reco.late must hold, in publish order of the events. */
    late,
    lateCounts,
  };
}

export type Reference = ReturnType<typeof reference>;
