import { seededRandom } from "../../actors/sources/index.js";
import type { LogEvent } from "./log.js";

/**
 * Sparse logs for `reco eval`: most users with a few events, a catalogue far larger than any
 * user sees. Two ways to get one, both reproducible from a seed: a user subsample of a real log
 * (`sampleUsers`), and a generated log with a known structure (`generateSparseLog`), so a test
 * does not rest on one file's quirks.
 */

/** FNV-1a of `seed:text`: a stable choice of users that does not depend on the file's order. */
function hash(text: string, seed: number): number {
  let h = 0x811c9dc5;
  const s = `${seed}:${text}`;
  for (let x = 0; x < s.length; x++) {
    h ^= s.charCodeAt(x);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The events of `users` users of the log, chosen by a seeded hash of their id (the lowest
 * hashes), in the log's order. Fewer users than that: all of them.
 */
export function sampleUsers(events: readonly LogEvent[], users: number, seed: number): LogEvent[] {
  const all = [...new Set(events.map((e) => e.u))];
  if (all.length <= users) return [...events];
  const keep = new Set(
    all
      .map((u) => [u, hash(u, seed)] as const)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, users)
      .map(([u]) => u),
  );
  return events.filter((e) => keep.has(e.u));
}

export interface SparseLogOptions {
  users: number;
  items: number;
  categories: number;
  seed: number;
  /** Days of event time the users' first visits spread over. */
  days?: number;
}

/** Zipf(1) rank in [0, n) by inverse transform of the harmonic CDF (approximate, continuous). */
function zipf(r: () => number, n: number): number {
  return Math.min(n - 1, Math.floor(Math.exp(r() * Math.log(n + 1)) - 1));
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/**
 * A generated e-commerce log. Items sit in categories whose popularity, and their items'
 * popularity within them, is Zipfian; each item has a few fixed neighbours in its category
 * (what co-visitation can learn). A user has one visit, sometimes a few: 1–5 views within a
 * category, each the previous item's neighbour or a popular item of the category; a visit
 * may end in a cart (and a purchase) of an item viewed in it or of a neighbour of the last one.
 * Returning users come back hours to days later to the same category, often to cart what they
 * viewed. About one user in twelve is a heavy one with many visits, so history lengths run
 * from 1 to dozens as in shop logs.
 */
export function generateSparseLog(o: SparseLogOptions): LogEvent[] {
  const r = seededRandom(o.seed);
  const perCat = Math.max(1, Math.floor(o.items / o.categories));
  const item = (cat: number, rank: number) => `p${cat * perCat + rank}`;
  // Each item's neighbours: nearby popularity ranks of its own category, so popular items have
  // popular neighbours and co-visitation is learnable from the heads of the categories.
  const neighbour = (cat: number, rank: number) => {
    const off = 1 + zipf(r, 8);
    const n = r() < 0.5 ? rank + off : rank - off;
    return item(cat, ((n % perCat) + perCat) % perCat);
  };
  const rankOf = (id: string) => Number(id.slice(1)) % perCat;
  const span = (o.days ?? 30) * DAY;
  const t0 = Date.UTC(2024, 0, 1);
  const events: LogEvent[] = [];
  let id = 0;
  const emit = (u: string, i: string, t: LogEvent["t"], ts: number, cat: number) =>
    events.push({ id: `g${id++}`, t, ts, u, i, c: `c${cat}`, b: "", pr: -1, r: -1 });
  for (let x = 0; x < o.users; x++) {
    const u = `u${x}`;
    const heavy = r() < 0.08;
    const visits = heavy ? 3 + Math.floor(r() * 10) : r() < 0.3 ? 2 : 1;
    let ts = t0 + Math.floor(r() * span);
    let cat = zipf(r, o.categories);
    const seen: string[] = [];
    for (let s = 0; s < visits; s++) {
      if (s > 0) {
        ts += Math.floor((2 + r() * 70) * 3_600_000);
        if (r() < 0.3) cat = zipf(r, o.categories);
      }
      const views = 1 + Math.floor(r() * (heavy ? 8 : 4));
      const viewed: string[] = [];
      // A returning user often starts from something viewed before.
      const back = seen.length > 0 && r() < 0.5;
      let last = back ? seen[Math.floor(r() * seen.length)]! : item(cat, zipf(r, perCat));
      if (back) cat = Math.floor(Number(last.slice(1)) / perCat);
      for (let v = 0; v < views; v++) {
        if (v > 0) last = r() < 0.6 ? neighbour(cat, rankOf(last)) : item(cat, zipf(r, perCat));
        viewed.push(last);
        seen.push(last);
        emit(u, last, "view", ts, cat);
        ts += Math.floor((0.5 + r() * 4) * MINUTE);
      }
      if (r() < 0.35) {
        const target =
          r() < 0.6 ? viewed[Math.floor(r() * viewed.length)]! : neighbour(cat, rankOf(last));
        emit(u, target, "cart", ts, cat);
        ts += MINUTE;
        if (r() < 0.5) emit(u, target, "purchase", ts, cat);
      }
    }
  }
  return events.sort((a, b) => a.ts - b.ts);
}
