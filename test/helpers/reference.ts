/**
 * A plain reference implementation: computes recommendations, top categories and trending
 * windows from the whole event log at once, in publish order, with DESIGN.md §3's rules.
 * No stages, no windows state, no NATS: if the pipeline and this agree, the pipeline is right.
 */

export interface RefEvent {
  event_id: string;
  event_type: string;
  event_ts: string | number;
  user_id: string | number;
  item_id?: string | number;
  product_id?: string | number;
  category_code?: string;
  brand?: string;
  price?: number;
}

export interface RefOptions {
  windowMs: number;
  userOutOfOrdernessMs: number;
  hourOutOfOrdernessMs: number;
  interestHorizonMs: number;
  popularityHorizonMs: number;
  topCategories: number;
  fallbackSize: number;
  viewWeight: number;
  clickWeight: number;
}

export const DEFAULT_REF: RefOptions = {
  windowMs: 300_000,
  userOutOfOrdernessMs: 600_000,
  hourOutOfOrdernessMs: 7_200_000,
  interestHorizonMs: 86_400_000,
  popularityHorizonMs: 604_800_000,
  topCategories: 3,
  fallbackSize: 10,
  viewWeight: 1,
  clickWeight: 2,
};

const H = 3_600_000;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

interface E {
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

export function reference(log: RefEvent[], o: RefOptions = DEFAULT_REF) {
  const seen = new Set<string>();
  const events: E[] = [];
  let progress = -1;
  for (const r of log) {
    if (seen.has(r.event_id)) continue;
    seen.add(r.event_id);
    const ts = typeof r.event_ts === "number" ? r.event_ts : Date.parse(r.event_ts);
    events.push({
      t: r.event_type,
      ts,
      u: String(r.user_id),
      i: String(r.item_id ?? r.product_id),
      c: (r.category_code ?? "").split(".")[0] ?? "",
      b: r.brand ?? "",
      pr: r.price ?? -1,
      wb: progress,
    });
    progress = Math.max(progress, ts);
  }
  const now = progress;
  const win = (ts: number) => ts - (ts % o.windowMs);
  const userPath = events.filter((e) => !(e.wb >= 0 && e.ts < e.wb - o.userOutOfOrdernessMs));

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
  const pop = new Map<string, { n: number; c: string; b: string }>();
  for (const e of events) {
    if (e.t !== "purchase") continue;
    if (e.ts < e.wb - o.popularityHorizonMs) continue;
    if (e.ts - (e.ts % H) + H <= now - o.popularityHorizonMs) continue;
    const p = pop.get(e.i) ?? { n: 0, c: "", b: "" };
    pop.set(e.i, { n: p.n + 1, c: e.c || p.c, b: e.b || p.b });
  }
  const topOverall = [...pop]
    .sort((a, b) => b[1].n - a[1].n || cmp(a[0], b[0]))
    .slice(0, o.fallbackSize);

  const recommend = (u: string, n: number): RefItem[] => {
    const excluded = purchased.get(u) ?? new Set<string>();
    const cands: RefItem[] = [];
    for (const [c, k] of topCategories(u)) {
      for (const [i, p] of pop) {
        if (p.c !== c || excluded.has(i)) continue;
        cands.push({ itemId: i, score: (k * p.n) / 100, source: "PERSONALIZED" });
      }
    }
    cands.sort((a, b) => b.score - a.score || cmp(a.itemId, b.itemId));
    const out = cands.slice(0, n);
    const taken = new Set(out.map((x) => x.itemId));
    for (const [i] of topOverall) {
      if (out.length >= n) break;
      if (taken.has(i)) continue;
      out.push({ itemId: i, score: 0.1, source: "POPULAR_FALLBACK" });
    }
    return out;
  };

  /** Trending top list of the 1 h window starting at `start`. */
  const trendingHour = (start: number) => {
    const acc = new Map<string, [number, number]>();
    for (const e of events) {
      if (e.t !== "view" && e.t !== "click") continue;
      if (e.wb >= 0 && e.ts < e.wb - o.hourOutOfOrdernessMs) continue;
      if (e.ts < start || e.ts >= start + H) continue;
      const a = acc.get(e.i) ?? [0, 0];
      if (e.t === "view") a[0]++;
      else a[1]++;
      acc.set(e.i, a);
    }
    return [...acc]
      .map(([itemId, [views, clicks]]) => ({
        itemId,
        score: views * o.viewWeight + clicks * o.clickWeight,
        views,
        clicks,
      }))
      .sort((a, b) => b.score - a.score || cmp(a.itemId, b.itemId));
  };

  return { now, topCategories, recommend, trendingHour, accepted: events.length };
}
