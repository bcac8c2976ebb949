import {
  servedModel,
  trainAls,
  blend,
  type BlendSettings,
  type SourceLists,
  createRecommender,
  type SourceSettings,
} from "../../actors/sources/index.js";
import type { SourcePreset, Scored, SourceName } from "../../actors/sources/index.js";
import { createDesignDriver, DESIGN_DEFAULTS } from "./design.js";
import type { LogEvent } from "./log.js";
import { addTo, newTally, scoreList, summarise, type MetricRow, type Tally } from "./metrics.js";

/**
 * The time-split evaluation of `reco eval` (protocol of ../shared/data/README.md): for each cut
 * (a fraction of the time-ordered log), every user with history before the cut and a target after
 * it — up to the next cut — is a test case; each method's top k is scored against the targets.
 * "seen" scores lists as returned; "new" leaves out the items the user touched before the cut,
 * from the lists and from the targets (cases without a new target do not count).
 *
 * One pass over the log: the sources and the design driver are fed up to each cut in turn and
 * asked there, so the lists a case gets are those the engine would serve at that moment; ALS is
 * trained at each cut on everything before it (a replayed log is served by a model trained on it).
 */
export type Mode = "seen" | "new";
export const MODES: readonly Mode[] = ["seen", "new"];

export interface Case {
  cut: number;
  user: string;
  targets: Set<string>;
  newTargets: Set<string>;
  touched: Set<string>;
  /** Items done for the user at the cut (the preset's): the blend never serves them. */
  done: Set<string>;
  /** Each source's list as served (seen items allowed), and without the touched items. */
  lists: SourceLists;
  listsNew: SourceLists;
  explicit: Scored[];
  design: { item: string; source: string }[];
}

export interface EvalOptions {
  preset: SourcePreset;
  k: number;
  testCuts: readonly number[];
  /** Earlier cuts whose cases choose the blend weights (--validation). */
  validationCuts?: readonly number[];
  sources: SourceSettings;
  blend: BlendSettings;
  /** Progress lines (stderr). */
  log?: (line: string) => void;
}

export const METHODS = [
  "blend",
  "popularity",
  "design",
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "COLLABORATIVE explicit",
  "TRENDING",
  "PERSONALIZED",
] as const;
export type Method = (typeof METHODS)[number];

export interface EvalResult {
  preset: string;
  events: number;
  users: number;
  items: number;
  k: number;
  cuts: readonly number[];
  blend: BlendSettings;
  /** Method → mode → metrics pooled over the test cuts. */
  rows: Partial<Record<Method, Record<Mode, MetricRow>>>;
  /** Per cut and mode: HR of the blend and of popularity, and HR and NDCG of every method. */
  perCut: {
    cut: number;
    mode: Mode;
    cases: number;
    blend: number;
    popularity: number;
    hr: Partial<Record<Method, number>>;
    ndcg: Partial<Record<Method, number>>;
  }[];
  /**
   * Per mode and history length (the items the user touched before the cut, HISTORY_BUCKETS):
   * the cases and every method's HR, pooled over the test cuts.
   */
  byHistory: HistoryRow[];
  /** Cuts where the blend's HR is below popularity's. */
  belowPopularity: { cut: number; mode: Mode }[];
  /**
   * Where the blend's HR is below the best single source's, pooled (no cut) or on a cut, with
   * the one-sided p-value of an exact paired test of the difference (`signTestP`).
   */
  belowBestSource: {
    cut?: number;
    mode: Mode;
    source: Method;
    hr: number;
    blend: number;
    p: number;
  }[];
  /** Paired counts of every method against the blend. */
  discordant: Discordant[];
  /** ALS training time per cut (ms) and model size (bytes of factors) at the last cut. */
  als: { implicitMs: number[]; explicitMs: number[]; factorBytes: number };
  validation?: { cuts: readonly number[]; cases: number; chosen: BlendSettings; hr: number };
}

/** The lower ends of the history lengths `byHistory` pools cases by: 1, 2, 3–4, 5–9, 10+. */
export const HISTORY_BUCKETS = [1, 2, 3, 5, 10] as const;

/** The label of the history-length bucket of a user who touched `items` items ("3–4"). */
export function historyBucket(items: number): string {
  let x = 0;
  while (x + 1 < HISTORY_BUCKETS.length && items >= HISTORY_BUCKETS[x + 1]!) x++;
  const lo = HISTORY_BUCKETS[x]!;
  const next = HISTORY_BUCKETS[x + 1];
  if (items < lo) return String(items);
  if (next === undefined) return `${lo}+`;
  return next - 1 === lo ? String(lo) : `${lo}–${next - 1}`;
}

export interface HistoryRow {
  mode: Mode;
  history: string;
  cases: number;
  hr: Partial<Record<Method, number>>;
}

/**
 * Cases where a method and the blend disagree on a hit, pooled (no cut) or on one cut: the
 * counts of a paired (McNemar) test of the two on the same cases.
 */
export interface Discordant {
  cut?: number;
  mode: Mode;
  method: Method;
  /** Cases the method hits and the blend misses. */
  methodOnly: number;
  /** Cases the blend hits and the method misses. */
  blendOnly: number;
}

/**
 * A case's top-k list for one method and mode. Popularity and each source alone are scored as
 * the blend serves their items: without the user's done items (what serving never returns, and
 * what the online scorer leaves out of every list too), so no method is credited with an answer
 * the engine would not give. The design ranking is scored as its stages answer.
 */
export function listFor(
  method: Method,
  c: Case,
  mode: Mode,
  bs: BlendSettings,
  k: number,
): string[] {
  const lists = mode === "new" ? c.listsNew : c.lists;
  const take = (items: Iterable<string>, skipDone = true) => {
    const out: string[] = [];
    for (const i of items) {
      if (out.length >= k) break;
      if (mode === "new" && c.touched.has(i)) continue;
      if (skipDone && c.done.has(i)) continue;
      out.push(i);
    }
    return out;
  };
  const items = (l: readonly Scored[] | undefined) => (l ?? []).map((x) => x.item);
  switch (method) {
    case "blend":
      return blend(lists, bs, {
        n: k,
        exclude: c.done,
        touched: c.touched,
        excludeTouched: mode === "new",
      }).map((x) => x.item);
    case "popularity":
      return take(items(lists.POPULAR_FALLBACK));
    case "design":
      return take(
        c.design.map((x) => x.item),
        false,
      );
    case "PERSONALIZED":
      return take(
        c.design.filter((x) => x.source === "PERSONALIZED").map((x) => x.item),
        false,
      );
    case "COLLABORATIVE explicit":
      return take(items(c.explicit));
    default:
      return take(items(lists[method as SourceName]));
  }
}

/** Runs the sources over the log and collects the cases of every cut. */
export function collectCases(
  events: readonly LogEvent[],
  o: EvalOptions,
): { cases: Case[]; als: EvalResult["als"] } {
  const cuts = [...new Set([...(o.validationCuts ?? []), ...o.testCuts])].sort((a, b) => a - b);
  const ends = new Map<number, number>();
  for (const series of [o.validationCuts ?? [], o.testCuts])
    series.forEach((c, x) => ends.set(c, Math.max(ends.get(c) ?? 0, series[x + 1] ?? 1)));
  const N = events.length;
  const at = (f: number) => Math.min(N, Math.floor(N * f));
  const rec = createRecommender(o.preset, o.sources);
  const design = createDesignDriver({ preset: o.preset.name, ...DESIGN_DEFAULTS });
  const touched = new Map<string, Set<string>>();
  const cases: Case[] = [];
  const als: EvalResult["als"] = { implicitMs: [], explicitMs: [], factorBytes: 0 };
  let fed = 0;
  for (const cut of cuts) {
    const from = at(cut);
    const batch = events.slice(fed, from);
    for (const e of batch) {
      // As the engine's sources read it: parse carries no session (actors/sources/event.ts).
      rec.add({ u: e.u, i: e.i, t: e.t, ts: e.ts, c: e.c, r: e.r });
      let t = touched.get(e.u);
      if (!t) touched.set(e.u, (t = new Set()));
      t.add(e.i);
    }
    for (let x = 0; x < batch.length; x += 1000) design.feed(batch.slice(x, x + 1000));
    fed = from;
    if (from === 0) continue;
    const now = events[from - 1]!.ts;
    if (o.sources.implicit) {
      const t0 = performance.now();
      // Trained from scratch on everything before the cut, as the engine's trainings are
      // (actors/sources/als-worker.ts), and served as the engine serves it (item factors only).
      const m = servedModel(trainAls(rec.implicitRatings(), o.sources.implicit));
      als.implicitMs.push(Math.round(performance.now() - t0));
      als.factorBytes = m.V.byteLength;
      rec.setImplicit(m);
    }
    if (o.sources.explicit) {
      const t0 = performance.now();
      rec.setExplicit(trainAls(rec.explicitRatings(), o.sources.explicit));
      als.explicitMs.push(Math.round(performance.now() - t0));
    }
    const targets = new Map<string, Set<string>>();
    for (let x = from; x < at(ends.get(cut)!); x++) {
      const e = events[x]!;
      if (!o.preset.isTarget(e) || !touched.has(e.u)) continue;
      let t = targets.get(e.u);
      if (!t) targets.set(e.u, (t = new Set()));
      t.add(e.i);
    }
    for (const [user, t] of [...targets].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const seen = touched.get(user)!;
      const n = o.k + seen.size;
      const answer = design.answer(user, Math.min(100, n));
      const done = rec.done(user, now);
      cases.push({
        cut,
        user,
        targets: t,
        newTargets: new Set([...t].filter((i) => !seen.has(i))),
        touched: new Set(seen),
        done,
        // As serving reads them (actors/serving/recommender-serve.ts): done items take no place.
        lists: rec.lists(user, now, 100, done),
        listsNew: rec.lists(user, now, 100, seen),
        explicit: rec.explicitCandidates(user, n, seen),
        design: answer.items.map((x) => ({ item: x.itemId, source: x.source })),
      });
    }
    o.log?.(`cut ${Math.round(cut * 100)}%: ${from} events before, ${targets.size} test users`);
  }
  return { cases, als };
}

/** Pools the cases of the given cuts into metrics per method and mode. */
export function score(
  cases: readonly Case[],
  cuts: readonly number[],
  bs: BlendSettings,
  k: number,
  catalogue: number,
  methods: readonly Method[] = METHODS,
): {
  rows: EvalResult["rows"];
  perCut: EvalResult["perCut"];
  discordant: Discordant[];
  byHistory: HistoryRow[];
} {
  const discordant: Discordant[] = [];
  const byHistory: HistoryRow[] = [];
  const inCuts = new Set(cuts);
  const rows: EvalResult["rows"] = {};
  const perCut: EvalResult["perCut"] = [];
  for (const mode of MODES) {
    const cutTallies = new Map<number, Partial<Record<Method, Tally>>>();
    const lengthTallies = new Map<string, Partial<Record<Method, Tally>>>();
    // Each case's blend hit, to count where a method and the blend disagree (a paired test).
    const blendHit = new Map<Case, number>();
    for (const method of ["blend" as const, ...methods.filter((m) => m !== "blend")]) {
      const t = newTally();
      const pairs = new Map<number | undefined, Discordant>();
      for (const c of cases) {
        if (!inCuts.has(c.cut)) continue;
        const targets = mode === "new" ? c.newTargets : c.targets;
        if (targets.size === 0) continue;
        const list = listFor(method, c, mode, bs, k);
        const s = scoreList(list, targets, k);
        addTo(t, s, list, k);
        if (method === "blend") blendHit.set(c, s.hr);
        else if (s.hr !== blendHit.get(c))
          for (const cut of [undefined, c.cut]) {
            let d = pairs.get(cut);
            if (!d)
              pairs.set(
                cut,
                (d = {
                  ...(cut === undefined ? {} : { cut }),
                  mode,
                  method,
                  methodOnly: 0,
                  blendOnly: 0,
                }),
              );
            if (s.hr > 0) d.methodOnly++;
            else d.blendOnly++;
          }
        let ct = cutTallies.get(c.cut);
        if (!ct) cutTallies.set(c.cut, (ct = {}));
        addTo((ct[method] ??= newTally()), s, list, k);
        const length = historyBucket(c.touched.size);
        let lt = lengthTallies.get(length);
        if (!lt) lengthTallies.set(length, (lt = {}));
        addTo((lt[method] ??= newTally()), s, list, k);
      }
      (rows[method] ??= {} as Record<Mode, MetricRow>)[mode] = summarise(t, catalogue);
      discordant.push(...pairs.values());
    }
    for (const [cut, ct] of [...cutTallies].sort((a, b) => a[0] - b[0])) {
      const hr: Partial<Record<Method, number>> = {};
      const ndcg: Partial<Record<Method, number>> = {};
      for (const [m, t] of Object.entries(ct) as [Method, Tally][]) {
        hr[m] = t.hr / Math.max(1, t.cases);
        ndcg[m] = t.ndcg / Math.max(1, t.cases);
      }
      perCut.push({
        cut,
        mode,
        cases: ct.blend?.cases ?? 0,
        blend: hr.blend ?? 0,
        popularity: hr.popularity ?? 0,
        hr,
        ndcg,
      });
    }
    const lengths = [...lengthTallies].sort(
      (a, b) => Number.parseInt(a[0], 10) - Number.parseInt(b[0], 10),
    );
    for (const [history, lt] of lengths) {
      const hr: Partial<Record<Method, number>> = {};
      for (const [m, t] of Object.entries(lt) as [Method, Tally][])
        hr[m] = t.hr / Math.max(1, t.cases);
      byHistory.push({ mode, history, cases: lt.blend?.cases ?? 0, hr });
    }
  }
  return { rows, perCut, discordant, byHistory };
}
