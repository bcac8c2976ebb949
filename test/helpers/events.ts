import { randomUUID } from "node:crypto";
import { eventTimeOf, type RefEvent } from "./reference.js";

/** mulberry32: a small seeded PRNG, so generated logs are the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A deterministic UUID-shaped id from a seeded generator. */
export function seededUuid(r: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(r() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export interface LogOptions {
  seed: number;
  events: number;
  users: number;
  items: number;
  categories: string[];
  start: number;
  spanMs: number;
  /** Share of events published late (behind the user-path watermark). */
  lateShare: number;
  lateByMs: number;
}

/** A seeded click log in publish order, with mild disorder and a share of late events. */
export function generateLog(o: LogOptions): RefEvent[] {
  const r = rng(o.seed);
  const itemCat = (i: number) => o.categories[i % o.categories.length]!;
  const types = ["view", "view", "view", "view", "click", "click", "cart", "purchase", "purchase"];
  const out: RefEvent[] = [];
  for (let k = 0; k < o.events; k++) {
    const base = o.start + Math.floor((k / o.events) * o.spanMs);
    const jitter = Math.floor((r() - 0.5) * 120_000);
    const late = r() < o.lateShare ? o.lateByMs : 0;
    // Skewed choice: low ids are more popular.
    const item = Math.floor(o.items * r() * r());
    const user = Math.floor(o.users * r());
    const type = types[Math.floor(r() * types.length)]!;
    out.push({
      event_id: seededUuid(r),
      event_type: type,
      event_ts: new Date(base + jitter - late).toISOString(),
      user_id: `u${user}`,
      item_id: `p${item}`,
      category_code: `${itemCat(item)}.sub${item % 3}`,
      brand: `brand${item % 4}`,
      price: 5 + (item % 20),
    });
  }
  return out;
}

export const uuid = () => randomUUID();

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

export interface ScenarioOptions {
  seed: number;
  /** Events of the main log, spread evenly over `spanMs` from `start`. */
  events: number;
  users: number;
  items: number;
  categories: string[];
  start: number;
  /** About two days, so the 24 h horizon and the 24 h sliding windows matter. */
  spanMs: number;
  /** Share of main events late on the user path only: 10 min to 2 h behind progress. */
  lateShare: number;
  /** Share 2 h to 26 h behind: late on the user path and the 1 h trending windows. */
  veryLateShare: number;
  /** Share more than 26 h behind: late on every path (purchases still count as popular). */
  ancientShare: number;
  /** Share of events on an exact lateness boundary (progress − disorder, and 1 ms more). */
  boundaryShare: number;
  /** Share of events published again (same event_id, sometimes upper-cased or with other content). */
  duplicateShare: number;
  /**
   * Purchases from `ageMs` before `start`, over `spanMs`, published first: popular until 7 days
   * of event time have passed.
   */
  prologue: { events: number; ageMs: number; spanMs: number };
  /** After the main log, a gap of event time, then a burst by a few users on a few items. */
  burst: { events: number; gapMs: number; spanMs: number; users: number; items: number };
}

export interface Scenario {
  /** Publish order. */
  log: RefEvent[];
  /** Event-time progress after the log (max event time). */
  progress: number;
  /** Users and items of the burst: the only keys that see records at the end. */
  burstUsers: string[];
  burstItems: string[];
}

/**
 * A seeded log for comparing the pipeline with the reference: disorder within the bounds, a share
 * of events late on one, two or all paths, events exactly on the lateness boundaries, duplicates,
 * purchases too old for the 7-day popularity horizon, Zipf-like users and items, users who only
 * view, items without category, brand or price, every accepted spelling of ids and times, and a
 * burst after a quiet gap so that most partitions see no records at the end of the log.
 */
export function generateScenario(o: ScenarioOptions): Scenario {
  const r = rng(o.seed);
  const log: RefEvent[] = [];
  const originals: RefEvent[] = []; // candidates for duplicates
  let progress = -1;
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // Zipf-like: low indices are much more frequent.
  const skewed = (n: number, s: number) => Math.min(n - 1, Math.floor(n * Math.pow(r(), s)));
  const userId = (k: number): string | number => (k % 7 === 3 ? 100_000 + k : `u${k}`);
  const viewOnly = (k: number) => k % 10 === 9;
  const itemFields = (k: number): Partial<RefEvent> => {
    const f: Partial<RefEvent> = {};
    const id = k % 6 === 0 ? 1000 + k : `p${k}`;
    if (r() < 0.1) f.product_id = id;
    else f.item_id = id;
    if (k % 13 !== 0) f.category_code = `${o.categories[k % o.categories.length]}.sub${k % 3}`;
    if (k % 9 !== 0) f.brand = `brand${k % 5}`;
    if (k % 11 !== 0) f.price = 0.99 + (k % 20) * 1.25;
    return f;
  };
  const types = [
    ...Array<string>(45).fill("view"),
    ...Array<string>(25).fill("click"),
    ...Array<string>(10).fill("cart"),
    ...Array<string>(12).fill("purchase"),
    ...Array<string>(4).fill("remove_from_cart"),
    ...Array<string>(4).fill("rating"),
  ];
  const timeOf = (ts: number): string | number => {
    const x = r();
    if (x < 0.1) return ts;
    if (x < 0.15) return String(ts);
    if (x < 0.25) return new Date(ts + 2 * HOUR).toISOString().replace("Z", "+02:00");
    return new Date(ts).toISOString();
  };
  const make = (ts: number, user: number, item: number, type?: string): RefEvent => {
    const t = type ?? (viewOnly(user) ? "view" : pick(types));
    const e: RefEvent = {
      event_id: seededUuid(r),
      event_type: t,
      event_ts: timeOf(ts),
      user_id: userId(user),
      ...itemFields(item),
    };
    if (t === "rating") e.rating = 0.5 + Math.floor(r() * 10) / 2;
    return e;
  };
  const push = (e: RefEvent, ts: number, duplicable = true) => {
    log.push(e);
    if (duplicable) originals.push(e);
    progress = Math.max(progress, ts);
    if (duplicable && r() < o.duplicateShare && originals.length > 1) {
      // A recent event again (the dedupe memory is bounded by event time, not by the log).
      // Only one still inside parse's dedupe horizon (26 h of event time): beyond it, a repeat
      // is accepted again by design (a bounded, time-limited memory of seen ids).
      const back = originals[Math.max(0, originals.length - 1 - Math.floor(r() * 30))]!;
      if (eventTimeOf(back.event_ts) < progress - 20 * HOUR) return;
      const x = r();
      if (x < 0.3) log.push({ ...back, event_id: back.event_id.toUpperCase() });
      else if (x < 0.5) log.push({ ...back, user_id: "dup-conflict", event_type: "purchase" });
      else log.push({ ...back });
    }
  };

  // Prologue: purchases days before the main log.
  const p0 = o.start - o.prologue.ageMs;
  for (let k = 0; k < o.prologue.events; k++) {
    const ts = p0 + Math.floor((k / o.prologue.events) * o.prologue.spanMs);
    push(make(ts, skewed(o.users, 2), skewed(o.items, 2), "purchase"), ts, false);
  }

  // Main log.
  let oldPurchases = 2; // purchases more than 7 days behind: popularity ignores them
  // Cumulative shares: late (user path), very late (+ 1 h windows), ancient (every path), boundary.
  const cut = [o.lateShare, o.veryLateShare, o.ancientShare, o.boundaryShare].reduce<number[]>(
    (a, v) => [...a, (a[a.length - 1] ?? 0) + v],
    [],
  );
  for (let k = 0; k < o.events; k++) {
    const base = o.start + Math.floor((k / o.events) * o.spanMs);
    const user = skewed(o.users, 2.2);
    const item = skewed(o.items, 2);
    const x = r();
    let ts: number;
    if (k > 100 && x < cut[0]!) ts = progress - 10 * MIN - 1 - Math.floor(r() * 110 * MIN);
    else if (k > 100 && x < cut[1]!) ts = progress - 2 * HOUR - 1 - Math.floor(r() * 24 * HOUR);
    else if (k > 100 && x < cut[2]!) ts = progress - 26 * HOUR - 1 - Math.floor(r() * 14 * HOUR);
    else if (k > 100 && x < cut[3]!) {
      const d = pick([10 * MIN, 2 * HOUR, 26 * HOUR]);
      ts = progress - d - (r() < 0.5 ? 1 : 0);
    } else {
      // Disorder within the bounds (under 9 min behind), sometimes on a window's first or last ms.
      ts = base - Math.floor(r() * 3 * MIN);
      const y = r();
      if (y < 0.05) ts -= ts % (5 * MIN);
      else if (y < 0.08) ts = ts - (ts % (5 * MIN)) - 1;
    }
    if (oldPurchases > 0 && k > o.events / 2 && r() < 0.01) {
      oldPurchases--;
      const ts8 = progress - 8 * DAY;
      push(make(ts8, user, item, "purchase"), ts8);
      continue;
    }
    push(make(ts, user, item), ts);
  }

  // A quiet gap, then a burst on a few keys; then the log ends.
  const b0 = o.start + o.spanMs + o.burst.gapMs;
  const burstUsers = Array.from({ length: o.burst.users }, (_, k) => k * 10); // not view-only
  const burstItems = Array.from({ length: o.burst.items }, (_, k) => 1 + k);
  for (let k = 0; k < o.burst.events; k++) {
    const ts = b0 + Math.floor((k / o.burst.events) * o.burst.spanMs);
    push(make(ts, pick(burstUsers), pick(burstItems)), ts);
  }
  return {
    log,
    progress,
    burstUsers: burstUsers.map((u) => String(userId(u))),
    burstItems: burstItems.map((i) => String(i % 6 === 0 ? 1000 + i : `p${i}`)),
  };
}

/**
 * A marker event at `ts`, for a user of its own and an item of its own (no category, so it
 * changes no one else's interest or candidates): a closer that moves event time on, so windows
 * close.
 */
export function markerEvent(
  r: () => number,
  type: "view" | "cart",
  ts: number,
  name: string,
): RefEvent {
  return {
    event_id: seededUuid(r),
    event_type: type,
    event_ts: new Date(ts).toISOString(),
    user_id: name,
    item_id: name,
  };
}

export interface RatingsLogOptions {
  seed: number;
  events: number;
  users: number;
  movies: number;
  /** Genres, lower case: the first genre of a movie becomes its category (as `reco replay --movies` does). */
  genres: string[];
  start: number;
  spanMs: number;
  /** Give each rating its movie's genre as `category_code` (default true); false: none. */
  withCategory?: boolean;
}

/**
 * A seeded MovieLens-style log for the `movies` preset: only `rating` events (0.5 to 5 in halves),
 * ids as positive integers under `movie_id`, mild disorder within the user path's bound, and a
 * few duplicates. A rating of 4 or more counts as a purchase.
 */
export function generateRatingsLog(o: RatingsLogOptions): RefEvent[] {
  const r = rng(o.seed);
  const out: RefEvent[] = [];
  for (let k = 0; k < o.events; k++) {
    const ts = o.start + Math.floor((k / o.events) * o.spanMs) - Math.floor(r() * 5 * MIN);
    const movie = 1 + Math.floor(o.movies * r() * r());
    const e: RefEvent = {
      event_id: seededUuid(r),
      event_type: "rating",
      event_ts: ts,
      user_id: 1 + Math.floor(o.users * r() * r()),
      movie_id: movie,
      rating: 0.5 + Math.floor(r() * 10) / 2,
    };
    if (o.withCategory ?? true) e.category_code = o.genres[movie % o.genres.length]!;
    out.push(e);
    if (r() < 0.02) out.push({ ...e });
  }
  return out;
}

export interface MoviesCatalog {
  /** The text of a MovieLens `movies.csv`. */
  csv: string;
  /** Movie id -> category as the contract says: the first genre, lowercased. */
  genres: Map<string, string>;
}

/**
 * A MovieLens-style `movies.csv` for movies 1..`movies`: movie k's first genre is
 * `genres[k % genres.length]` (capitalised, as MovieLens writes them), followed by another one;
 * every 17th movie has `(no genres listed)` and so no category; titles with commas are quoted.
 */
export function moviesCatalog(movies: number, genres: string[]): MoviesCatalog {
  const cap = (g: string) => g.charAt(0).toUpperCase() + g.slice(1);
  const lines = ["movieId,title,genres"];
  const map = new Map<string, string>();
  for (let k = 1; k <= movies; k++) {
    const title = k % 5 === 0 ? `"Movie ${k}, The (199${k % 10})"` : `Movie ${k} (199${k % 10})`;
    if (k % 17 === 0) {
      lines.push(`${k},${title},(no genres listed)`);
      continue;
    }
    const first = genres[k % genres.length]!;
    const second = genres[(k + 1) % genres.length]!;
    lines.push(`${k},${title},${cap(first)}|${cap(second)}`);
    map.set(String(k), first.toLowerCase());
  }
  return { csv: `${lines.join("\n")}\n`, genres: map };
}

export interface Rees46Options {
  seed: number;
  rows: number;
  users: number;
  products: number;
  /** First event time (epoch ms); rows are spread over `spanMs`, in time order. */
  start: number;
  spanMs: number;
}

/**
 * A REES46-schema e-commerce CSV (`event_time,event_type,product_id,category_id,category_code,
 * brand,price,user_id,user_session`), as the Kaggle "eCommerce behavior data from multi category
 * store" files are: in time order, whole seconds in `YYYY-MM-DD hh:mm:ss UTC`, numeric product
 * and user ids, a category code per product (some empty), brands (some empty), prices that vary
 * a little between events, and views, carts, removals and purchases. Users 8, 18, ... are active
 * in the first 5 hours only, users 9, 19, ... look only at products without a category code,
 * users 7, 17, ... mostly at the few products of a rare category.
 */
export function generateRees46Csv(o: Rees46Options): string {
  const r = rng(o.seed);
  const codes = [
    "electronics.smartphone",
    "electronics.audio.headphone",
    "appliances.kitchen.washer",
    "computers.notebook",
    "apparel.shoes",
    "furniture.living_room.sofa",
    "",
  ];
  const brands = ["samsung", "apple", "xiaomi", "bosch", "nike", ""];
  const product = (k: number) => ({
    id: String(1_000_000 + k * 37),
    categoryId: String(2_053_013_555_631_882_655n + BigInt(k % codes.length)),
    code: k % 23 === 5 ? "kids.toys" : codes[k % codes.length]!,
    brand: brands[(k * 7) % brands.length]!,
    price: 10 + ((k * 13) % 400) + 0.99,
  });
  const types = [
    ...Array<string>(70).fill("view"),
    ...Array<string>(14).fill("cart"),
    ...Array<string>(4).fill("remove_from_cart"),
    ...Array<string>(12).fill("purchase"),
  ];
  const two = (n: number) => String(n).padStart(2, "0");
  const time = (ms: number) => {
    const d = new Date(ms - (ms % 1000));
    return (
      `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ` +
      `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`
    );
  };
  const lines = [
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session",
  ];
  for (let k = 0; k < o.rows; k++) {
    const ts = o.start + Math.floor((k / o.rows) * o.spanMs);
    let u = Math.min(o.users - 1, Math.floor(o.users * Math.pow(r(), 2)));
    // Users 8, 18, ... are active in the first 5 hours only: their interest leaves a 24 h horizon.
    if (u % 10 === 8 && ts - o.start > 5 * HOUR) u--;
    // A user leans towards the products near their own index: interests differ between users.
    const near = (u * 5 + Math.floor(Math.pow(r(), 1.5) * o.products)) % o.products;
    let pk = r() < 0.6 ? near : Math.floor(o.products * Math.pow(r(), 2));
    // Users 9, 19, ... look only at products without a category code; users 7, 17, ... only
    // at the few of a rare category (fewer candidates than answers: the rest is filled up).
    if (u % 10 === 9) {
      pk += (codes.length - 1 - (pk % codes.length)) % codes.length;
      if (pk % 23 === 5) pk += codes.length;
    } else if (u % 10 === 7) pk = 5 + 23 * Math.floor(r() * (o.products / 23));
    const p = product(pk);
    const type = types[Math.floor(r() * types.length)]!;
    const price = (p.price * (0.95 + Math.floor(r() * 10) / 100)).toFixed(2);
    const session = seededUuid(rng(u + 1));
    lines.push(
      [
        time(ts),
        type,
        p.id,
        p.categoryId,
        p.code,
        p.brand,
        price,
        String(500_000_000 + u),
        session,
      ].join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}
