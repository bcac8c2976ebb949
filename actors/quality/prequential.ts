import { Packr } from "msgpackr";
import type { StateMaps, ValueCodec } from "../../runtime/index.js";
import { decodeStoredArray } from "../sources/index.js";

/**
 * Prequential ("test, then train") tallies (DESIGN §7): each target event (a cart or purchase; a
 * rating of 4+) is a case for every method scored on it — the blend, each source, popularity, the
 * design ranking, each A/B arm's ranker — a hit when the event's item is in the method's top k
 * as it would have answered just before the event. HR@k, NDCG@k (one relevant item: 1/log2(rank
 * + 1)) and coverage (distinct items in the top-k lists / distinct items seen) over sliding
 * windows of event time (1 h, 24 h: whole 5-minute buckets, as the drift windows) and since the
 * start ("all").
 *
 * State (the host snapshots it with the input position, so a restart counts what a run without
 * it counts): a tally per (bucket, method) and per method since the start, and the items listed
 * per (bucket or "all", method), for coverage, in COVER_CHUNKS lists by a hash of the item (a
 * key per item listed was hundreds of thousands of JSON keys to load after a day: the scorer's
 * state loads with the covisit stage's, which blended answers wait for); buckets older than a
 * day are dropped.
 */
export interface Tally {
  /** cases */
  c: number;
  /** hits */
  h: number;
  /** sum of NDCG */
  g: number;
}

export const PREQUENTIAL_WINDOWS = { "1h": 3_600_000, "24h": 86_400_000 } as const;
export type WindowName = keyof typeof PREQUENTIAL_WINDOWS | "all";
export const WINDOW_NAMES: readonly WindowName[] = ["1h", "24h", "all"];

export interface MethodFigures {
  cases: number;
  hits: number;
  hitRate: number;
  ndcg: number;
  coverage: number;
}

export type PrequentialReport = Record<WindowName, Record<string, MethodFigures>>;

/**
 * What a report is computed from, before it is divided: per window and method the tallies and
 * the items listed, and the items seen. The tallies of several scorers (one per partition) add
 * up and their item sets unite into one report (`mergeReports`) as if one scorer had scored
 * every case.
 */
export interface PrequentialParts {
  windows: Record<WindowName, Record<string, { t: Tally; items: ReadonlySet<string>[] }>>;
  seen: Iterable<string>;
  seenCount: number;
}

export interface Prequential {
  /** Scores one case of `method`: the top-k `list` against `item`, at event time `ts`. */
  score(method: string, ts: number, list: readonly string[], item: string): void;
  /** An item seen in an event (the catalogue that coverage divides by). */
  seen(item: string): void;
  /** Drops buckets no window reads any more (event-time progress `now`). */
  prune(now: number): void;
  report(now: number, methods: readonly string[]): PrequentialReport;
  /** The report's parts (to merge with other scorers'). */
  parts(now: number, methods: readonly string[]): PrequentialParts;
}

const BUCKET = 300_000;
const ALL = "all";
/** Lists of listed items per (bucket, method): each a key, rewritten when an item joins it. */
export const COVER_CHUNKS = 16;

/** The cover list an item belongs to (FNV-1a of its UTF-16 code units: the same in every run). */
const chunkOf = (item: string): number => {
  let h = 0x811c9dc5;
  for (let x = 0; x < item.length; x++) h = Math.imul(h ^ item.charCodeAt(x), 0x01000193);
  return (h >>> 0) % COVER_CHUNKS;
};

interface Cell {
  t: Tally;
  items: Set<string>;
  /** `items` as stored, by chunk (the stored values, appended in place). */
  chunks: (string[] | undefined)[];
}

// Plain arrays: a value decodes alone, with no shared record shapes.
const coverPackr = new Packr({ useRecords: false });
/** A cover list as MessagePack; one stored as JSON text before still loads. */
export const coverCodec: ValueCodec<string[]> = {
  encode: (items) => coverPackr.pack(items),
  decode: (stored) => decodeStoredArray(stored, "prequential cover list") as string[],
};

export function createPrequential(state: StateMaps, k = 10): Prequential {
  const tallies = state.map<Tally>("preq");
  const cover = state.map<string[]>("preqCover", { codec: coverCodec });
  /** The layout before COVER_CHUNKS: a key per (bucket, method, item); moved into `cover`. */
  const listed = state.map<1>("preqItems");
  const catalogue = state.map<1>("preqCatalogue");
  let pruned = -1;
  const cells = new Map<string, Map<string, Cell>>(); // bucket ("all" or start) -> method -> cell
  const cell = (bucket: string, method: string): Cell => {
    let m = cells.get(bucket);
    if (!m) cells.set(bucket, (m = new Map()));
    let c = m.get(method);
    if (!c) m.set(method, (c = { t: { c: 0, h: 0, g: 0 }, items: new Set(), chunks: [] }));
    return c;
  };
  /** Lists the item in the cell (kept in its chunk's stored list). */
  const list = (bucket: string, method: string, c: Cell, item: string) => {
    c.items.add(item);
    const x = chunkOf(item);
    const chunk = (c.chunks[x] ??= []);
    chunk.push(item);
    cover.set(`${bucket}|${method}|${x}`, chunk);
  };
  // The in-memory index, from the state.
  for (const [key, t] of tallies.entries()) {
    const x = key.indexOf("|");
    cell(key.slice(0, x), key.slice(x + 1)).t = t;
  }
  for (const [key, items] of cover.entries()) {
    const x = key.indexOf("|");
    const y = key.indexOf("|", x + 1);
    const c = cell(key.slice(0, x), key.slice(x + 1, y));
    c.chunks[Number(key.slice(y + 1))] = items;
    for (const i of items) c.items.add(i);
  }
  for (const key of [...listed.keys()]) {
    const x = key.indexOf("|");
    const y = key.indexOf("|", x + 1);
    const bucket = key.slice(0, x);
    const method = key.slice(x + 1, y);
    const c = cell(bucket, method);
    const item = key.slice(y + 1);
    if (!c.items.has(item)) list(bucket, method, c, item);
    listed.delete(key);
  }

  const add = (
    bucket: string,
    method: string,
    hit: boolean,
    gain: number,
    top: readonly string[],
  ) => {
    const c = cell(bucket, method);
    c.t = { c: c.t.c + 1, h: c.t.h + (hit ? 1 : 0), g: c.t.g + gain };
    tallies.set(`${bucket}|${method}`, c.t);
    for (const i of top) if (!c.items.has(i)) list(bucket, method, c, i);
  };

  const self: Prequential = {
    score(method, ts, list, item) {
      const top = list.length > k ? list.slice(0, k) : list;
      const at = top.indexOf(item);
      const gain = at < 0 ? 0 : 1 / Math.log2(at + 2);
      add(String(ts - (ts % BUCKET)), method, at >= 0, gain, top);
      add(ALL, method, at >= 0, gain, top);
    },
    seen(item) {
      if (!catalogue.has(item)) catalogue.set(item, 1);
    },
    prune(now) {
      if (now - (now % BUCKET) === pruned) return;
      pruned = now - (now % BUCKET);
      const oldest = now - (now % BUCKET) - PREQUENTIAL_WINDOWS["24h"];
      for (const [bucket, m] of cells) {
        if (bucket === ALL || Number(bucket) > oldest) continue;
        for (const [method, c] of m) {
          tallies.delete(`${bucket}|${method}`);
          c.chunks.forEach((chunk, x) => {
            if (chunk) cover.delete(`${bucket}|${method}|${x}`);
          });
        }
        cells.delete(bucket);
      }
    },
    report(now, methods) {
      return mergeReports([self.parts(now, methods)], methods);
    },
    parts(now, methods) {
      const sum = (cs: Cell[]) => {
        const t: Tally = { c: 0, h: 0, g: 0 };
        for (const p of cs) {
          t.c += p.t.c;
          t.h += p.t.h;
          t.g += p.t.g;
        }
        return { t, items: cs.map((p) => p.items) };
      };
      const out = { "1h": {}, "24h": {}, all: {} } as PrequentialParts["windows"];
      const last = now - (now % BUCKET);
      for (const method of methods) {
        const all = cells.get(ALL)?.get(method);
        out.all[method] = sum(all ? [all] : []);
        for (const w of ["1h", "24h"] as const) {
          const from = last - PREQUENTIAL_WINDOWS[w] + BUCKET;
          const cs: Cell[] = [];
          for (const [bucket, m] of cells) {
            if (bucket === ALL) continue;
            const start = Number(bucket);
            const c = m.get(method);
            if (c && start >= from && start <= last) cs.push(c);
          }
          out[w][method] = sum(cs);
        }
      }
      return { windows: out, seen: catalogue.keys(), seenCount: catalogue.size };
    },
  };
  return self;
}

/**
 * One report from the parts of several scorers (each partition's): cases, hits and NDCG sums
 * added, the items listed and the items seen united. With one part it is that scorer's report.
 */
export function mergeReports(
  parts: readonly PrequentialParts[],
  methods: readonly string[],
): PrequentialReport {
  let seenCount: number;
  if (parts.length === 1) seenCount = parts[0]!.seenCount;
  else {
    const seen = new Set<string>();
    for (const p of parts) for (const i of p.seen) seen.add(i);
    seenCount = seen.size;
  }
  const items = Math.max(1, seenCount);
  const out = { "1h": {}, "24h": {}, all: {} } as PrequentialReport;
  for (const w of WINDOW_NAMES)
    for (const method of methods) {
      let c = 0;
      let h = 0;
      let g = 0;
      const listed = new Set<string>();
      for (const p of parts) {
        const x = p.windows[w][method];
        if (!x) continue;
        c += x.t.c;
        h += x.t.h;
        g += x.t.g;
        for (const set of x.items) for (const i of set) listed.add(i);
      }
      out[w][method] = {
        cases: c,
        hits: h,
        hitRate: c > 0 ? h / c : 0,
        ndcg: c > 0 ? g / c : 0,
        coverage: listed.size / items,
      };
    }
  return out;
}

/**
 * Wilson score interval of a hit rate (z = 1.96: 95%): stays inside [0, 1] and honest for small
 * counts and rates near 0 or 1, where the normal approximation is not.
 */
export function wilson(hits: number, cases: number, z = 1.96): { lower: number; upper: number } {
  if (cases <= 0) return { lower: 0, upper: 0 };
  const p = hits / cases;
  const z2 = z * z;
  const centre = (p + z2 / (2 * cases)) / (1 + z2 / cases);
  const half = (z / (1 + z2 / cases)) * Math.sqrt((p * (1 - p)) / cases + z2 / (4 * cases * cases));
  return { lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) };
}

/**
 * Interval of the difference of two hit rates, a − b (Newcombe's hybrid score method, from the
 * two Wilson intervals at the same z): unlike the normal approximation it stays honest for small
 * counts and rates near 0, and it excludes 0 exactly when the difference is significant at that
 * level (which non-overlapping Wilson intervals are a stricter test of).
 */
export function differenceInterval(
  a: { hits: number; cases: number },
  b: { hits: number; cases: number },
  z = 1.96,
): { difference: number; lower: number; upper: number } {
  const pa = a.cases > 0 ? a.hits / a.cases : 0;
  const pb = b.cases > 0 ? b.hits / b.cases : 0;
  const wa = wilson(a.hits, a.cases, z);
  const wb = wilson(b.hits, b.cases, z);
  const d = pa - pb;
  return {
    difference: d,
    lower: d - Math.sqrt((pa - wa.lower) ** 2 + (wb.upper - pb) ** 2),
    upper: d + Math.sqrt((wa.upper - pa) ** 2 + (pb - wb.lower) ** 2),
  };
}
