/**
 * A fast, seeded click-event generator for the bench: Zipf-distributed users and items, items
 * spread over main categories, an event mix of views, clicks, carts and purchases, and mild
 * event-time disorder (well inside the 10 min allowed out-of-orderness, so nothing is late).
 */
import type { OutgoingMessage } from "../connectors/nats/publisher.js";

export interface GeneratorOptions {
  seed: number;
  users: number;
  items: number;
  /** Zipf exponent of user activity (with `userDist` "zipf"). */
  userSkew: number;
  /**
   * How events pick users: "zipf" (default; skewed by `userSkew`), "uniform" (each user equally
   * likely), or "cycle" (event k goes to user k mod `users`: with at least `users` events, exactly
   * `users` active users, each with the same number of events).
   */
  userDist?: "zipf" | "uniform" | "cycle";
  /** Zipf exponent of item popularity. */
  itemSkew: number;
  /** Event time of the first event, epoch ms. */
  start: number;
  /** Event times spread linearly over this span (before jitter). */
  spanMs: number;
  /** Each event time is moved by up to ± this much (disorder). */
  jitterMs: number;
}

export const DEFAULT_GENERATOR: Omit<GeneratorOptions, "start"> = {
  seed: 20261121,
  users: 20_000,
  items: 5_000,
  userSkew: 0.9,
  itemSkew: 1.1,
  spanMs: 2 * 3_600_000,
  jitterMs: 60_000,
};

export const CATEGORIES = [
  "electronics",
  "appliances",
  "computers",
  "apparel",
  "furniture",
  "kids",
  "sport",
  "construction",
  "auto",
  "accessories",
  "stationery",
  "medicine",
  "country_yard",
  "books",
  "garden",
  "toys",
] as const;

/** Cumulative event mix: view 70%, click 18%, cart 7%, purchase 5%. */
const MIX: ReadonlyArray<readonly [number, string]> = [
  [0.7, "view"],
  [0.88, "click"],
  [0.95, "cart"],
  [1, "purchase"],
];

/** mulberry32: returns uint32 values. */
export function rng32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Samples ranks 0..n-1 with P(k) ∝ 1/(k+1)^s, by binary search over the CDF. */
export function zipf(n: number, s: number, uniform: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, s);
  for (let k = 0; k < n; k++) cdf[k]! /= sum;
  return () => {
    const u = uniform();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const hex32 = (x: number) =>
  HEX[x >>> 24]! + HEX[(x >>> 16) & 255]! + HEX[(x >>> 8) & 255]! + HEX[x & 255]!;

/** A v4-shaped UUID from four seeded uint32s. */
export function uuidFrom(next: () => number): string {
  const a = hex32(next());
  const b = hex32(next());
  const c = hex32(next());
  const d = hex32(next());
  return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${"89ab"[c.charCodeAt(0) & 3]}${c.slice(1, 4)}-${c.slice(4, 8)}${d}`;
}

/** Category, brand and price of an item: fixed per item, popular items spread over categories. */
export function itemInfo(item: number): { category: string; brand: string; price: number } {
  const h = Math.imul(item + 1, 0x9e3779b1) >>> 0;
  const main = CATEGORIES[h % CATEGORIES.length]!;
  return {
    category: `${main}.sub${(h >>> 8) % 5}`,
    brand: `brand${(h >>> 12) % 40}`,
    price: 5 + ((h >>> 16) % 500) / 2,
  };
}

export interface EventFields {
  type: string;
  ts: number;
  user: string;
  item: string;
  category: string;
  brand: string;
  price: number;
  id: string;
}

const encoder = new TextEncoder();

/** One event as the JSON bytes of the v1 contract, published to `events.<type>`. */
export function toMessage(e: EventFields): OutgoingMessage {
  const json =
    `{"event_id":"${e.id}","event_type":"${e.type}","event_ts":"${new Date(e.ts).toISOString()}",` +
    `"user_id":"${e.user}","item_id":"${e.item}","category_code":"${e.category}",` +
    `"brand":"${e.brand}","price":${e.price},"device_type":"mobile"}`;
  return { subject: `events.${e.type}`, data: encoder.encode(json) };
}

const userRe = /"user_id":"([^"]*)"/;
/** The user id of a generated event's JSON bytes ("" if none). */
export function userOf(data: Uint8Array): string {
  return (
    userRe.exec(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString())?.[1] ?? ""
  );
}

/** A stream of generated events; `next(ts)` overrides the event time (real-time load). */
export function createGenerator(o: GeneratorOptions, total = 1) {
  const next32 = rng32(o.seed);
  const uniform = () => next32() / 4294967296;
  const dist = o.userDist ?? "zipf";
  const zipfUser = dist === "zipf" ? zipf(o.users, o.userSkew, uniform) : undefined;
  const item = zipf(o.items, o.itemSkew, uniform);
  let k = 0;
  let cycled = 0;
  const user = (): number =>
    zipfUser ? zipfUser() : dist === "cycle" ? cycled++ % o.users : Math.floor(uniform() * o.users);
  return {
    next(ts?: number): EventFields {
      const u = uniform();
      let type = "purchase";
      for (const [p, t] of MIX) {
        if (u < p) {
          type = t;
          break;
        }
      }
      const i = item();
      const info = itemInfo(i);
      const base = o.start + Math.floor((k++ / total) * o.spanMs);
      const jitter = Math.floor((uniform() - 0.5) * 2 * o.jitterMs);
      return {
        type,
        ts: ts ?? base + jitter,
        user: `u${user()}`,
        item: `p${i}`,
        ...info,
        id: uuidFrom(next32),
      };
    },
  };
}

/** `n` events spread over `o.spanMs` from `o.start`, generated as they are read (no array). */
export function* streamMessages(n: number, o: GeneratorOptions): Generator<OutgoingMessage> {
  const g = createGenerator(o, n);
  for (let k = 0; k < n; k++) yield toMessage(g.next());
}

/** `n` events spread over `o.spanMs` from `o.start`, as messages ready to publish. */
export function generateMessages(n: number, o: GeneratorOptions): OutgoingMessage[] {
  const g = createGenerator(o, n);
  const out: OutgoingMessage[] = new Array<OutgoingMessage>(n);
  for (let k = 0; k < n; k++) out[k] = toMessage(g.next());
  return out;
}
