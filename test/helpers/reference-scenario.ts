import { generateScenario, markerEvent, rng } from "./events.js";
import { reference, type RefEvent, type RefTrendingKind, type Reference } from "./reference.js";

/*
 * The reference comparison's scenario and expectations, shared by the
 * run on NATS (test/reference-compare-partitions.test.ts) and the run on the in-memory driver
 * (test/reference-driver.test.ts): one seeded log, phase A (the log) and phase B (a closer about
 * 48 h of event time later), and what the plain reference (reference.ts) says of each.
 */

export const H = 3_600_000;
export const DAY = 24 * H;
export const T0 = Date.parse("2026-11-16T00:00:00Z");

export const scenario = generateScenario({
  seed: 20261121,
  events: 3600,
  users: 300,
  items: 150,
  categories: ["electronics", "books", "garden", "toys", "sports", "beauty"],
  start: T0,
  spanMs: 44 * H,
  lateShare: 0.02,
  veryLateShare: 0.01,
  ancientShare: 0.006,
  boundaryShare: 0.01,
  duplicateShare: 0.03,
  prologue: { events: 60, ageMs: 4 * DAY, spanMs: 2 * DAY },
  burst: { events: 150, gapMs: 2 * H, spanMs: 10 * 60_000, users: 2, items: 2 },
});
export const mr = rng(77);
export const logA: RefEvent[] = scenario.log;
// The closer moves the 24 h windows' watermark by exactly 48 h (see the 48 h bug below).
export const closedEndA = Math.floor((scenario.progress - 26 * H) / H) * H;
export const closerTs = closedEndA + 48 * H + 26 * H;
export const closer = markerEvent(mr, "view", closerTs, "closer");
export const logB: RefEvent[] = [...logA, closer];
export const refA = reference(logA);
export const refB = reference(logB);
export const COLD_USER = "never-seen-user";

export const round = (x: number) => Math.round(x * 1e9) / 1e9;

export type RecItem = [
  itemId: string,
  score: number,
  source: string,
  purchases: number,
  category: string,
  brand: string,
  avgPrice: number,
];
export interface RecAnswer {
  items: RecItem[];
  top: [string, number][];
}
export type Answers = Record<string, RecAnswer>;
export type PopRow = [
  item: string,
  purchases: number,
  category: string,
  brand: string,
  avgPrice: number,
];
export type TrendingRow = [itemId: string, score: number, views: number, clicks: number];
export type Finals = Record<string, TrendingRow[]>;

export function expectedAnswers(ref: Reference): Answers {
  const rows = new Map(ref.popularity().map((p) => [p.item, p]));
  const out: Answers = {};
  for (const u of [...ref.users(), COLD_USER]) {
    out[u] = {
      items: ref.recommend(u, 10).map((i) => {
        const p = rows.get(i.itemId)!;
        return [
          i.itemId,
          round(i.score),
          i.source,
          p.purchases,
          p.category,
          p.brand,
          round(p.avgPrice),
        ];
      }),
      top: ref.topCategories(u),
    };
  }
  return out;
}

export const expectedPopularity = (ref: Reference): PopRow[] =>
  ref.popularity().map((p) => [p.item, p.purchases, p.category, p.brand, round(p.avgPrice)]);

/** "<kind>.<start>" -> top 100 of every window the reference closes. */
export function expectedFinals(ref: Reference): Finals {
  const out: Finals = {};
  for (const kind of ["1h", "24h"] as RefTrendingKind[])
    for (const s of ref.closedWindows(kind))
      out[`${kind}.${s}`] = ref
        .trending(kind, s)
        .slice(0, 100)
        .map((e) => [e.itemId, e.score, e.views, e.clicks]);
  return sortKeys(out);
}

export function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A partition's part of a trending window, as the reco_trending bucket holds it. */
export interface TrendingPart {
  kind: string;
  start: number;
  items: TrendingRow[];
  final: boolean;
}

/**
 * Final trending windows from the reco_trending bucket's entries, merged over partitions (each
 * partition's part holds its own items; they are disjoint). A window with a final part and a
 * non-final one is reported with a "partial:" key, so it shows up in a comparison.
 *
 * A partition publishes a 24 h final only when the window differs from the one an hour before
 * (actors/stages/trending.ts): a window it did not publish holds what its newest final before it
 * holds, up to the last window its heartbeat ("wm.<q>") has closed (progress less 26 h).
 */
export function finalsFromKv(
  entries: Iterable<[string, TrendingPart | { q: number; wm: number }]>,
  oneDayOutOfOrdernessMs = 26 * HOUR_MS,
): Finals {
  /** Window ("<kind>.<start>") -> partition -> its part. */
  const parts = new Map<string, Map<number, TrendingPart>>();
  const put = (w: string, q: number, p: TrendingPart) => {
    let byQ = parts.get(w);
    if (!byQ) parts.set(w, (byQ = new Map()));
    byQ.set(q, p);
  };
  /** Per partition, its 24 h finals, and the end of the newest 24 h window it has closed. */
  const days = new Map<number, TrendingPart[]>();
  const closedEnd = new Map<number, number>();
  const close = (q: number, end: number) => closedEnd.set(q, Math.max(closedEnd.get(q) ?? 0, end));
  const provisional: [string, number, TrendingPart][] = [];
  for (const [key, v] of entries) {
    if (key.startsWith("wm.")) {
      const { q, wm } = v as { q: number; wm: number };
      close(q, Math.floor((wm - oneDayOutOfOrdernessMs) / HOUR_MS) * HOUR_MS);
      continue;
    }
    const p = v as TrendingPart;
    const q = Number(key.slice(key.lastIndexOf(".") + 1));
    if (p.kind !== "24h") put(`${p.kind}.${p.start}`, q, p);
    else if (!p.final) provisional.push([`24h.${p.start}`, q, p]);
    else {
      days.set(q, [...(days.get(q) ?? []), p]);
      close(q, p.start + DAY_MS);
    }
  }
  for (const [q, finals] of days) {
    finals.sort((a, b) => a.start - b.start);
    const lastStart = closedEnd.get(q)! - DAY_MS;
    finals.forEach((f, x) => {
      const next = Math.min(finals[x + 1]?.start ?? Infinity, lastStart + HOUR_MS);
      if (f.items.length > 0)
        for (let s = f.start; s < next && s < f.start + DAY_MS; s += HOUR_MS)
          put(`24h.${s}`, q, { ...f, start: s });
    });
  }
  // A non-final list of a window its partition has closed since is superseded by the final.
  for (const [w, q, p] of provisional)
    if (p.start + DAY_MS > (closedEnd.get(q) ?? -Infinity) && !parts.get(w)?.has(q)) put(w, q, p);
  const out: Finals = {};
  for (const [w, byQ] of parts) {
    const ps = [...byQ.values()];
    if (!ps.some((p) => p.final)) continue;
    const merged = ps
      // The reference defines [item, score, views, clicks]; carts and purchases come after them.
      .flatMap((p) =>
        p.items.map(([i, score, views, clicks]): TrendingRow => [i, score, views, clicks]),
      )
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, 100);
    out[ps.every((p) => p.final) ? w : `partial:${w}`] = merged;
  }
  return sortKeys(out);
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const expectedLate = (ref: Reference) =>
  ref.late.map((l) => `${l.reason} ${l.eventId} ${l.watermark}`).sort();

export const countByReason = (late: string[]) => {
  const c: Record<string, number> = {};
  for (const l of late) {
    const reason = l.slice(0, l.indexOf(" "));
    c[reason] = (c[reason] ?? 0) + 1;
  }
  return c;
};

/** Keys whose values differ, with both values, for a readable failure (at most `max`). */
export function differences<T>(expected: Record<string, T>, actual: Record<string, T>, max = 5) {
  const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  return keys
    .filter((k) => JSON.stringify(expected[k]) !== JSON.stringify(actual[k]))
    .slice(0, max)
    .map((k) => ({ key: k, expected: expected[k], actual: actual[k] }));
}
