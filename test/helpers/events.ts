import { randomUUID } from "node:crypto";
import type { RefEvent } from "./reference.js";

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
