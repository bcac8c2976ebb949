import type { InputBatch, StateMaps } from "../../runtime/index.js";
import type { Arms } from "../quality/index.js";
import { hash64 } from "../contract/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  createPrequential,
  type PrequentialParts,
  type PrequentialReport,
} from "../quality/index.js";
import { blend, type BlendSettings } from "../sources/index.js";
import type {
  HistorySource,
  RecommenderReads,
  Scored,
  SourceEvent,
  SourceName,
  SourcePreset,
} from "../sources/index.js";

/**
 * The prequential scorer (DESIGN §7): "test, then train". It runs inside the history stage of
 * each user partition (history-stage.ts) and scores each target event of a sampled user (preset:
 * a cart or purchase; a rating of 4+) against the answer the serving path computes for that user
 * just before the stage takes the event: the blend of the sources' lists as serving composes it
 * (recommender-serve.ts: the user's done items left out), each source alone, popularity, the
 * design ranking (when an arm ranks by it) and the user's A/B arm.
 *
 * It keeps no copy of any source: it reads the serving path's own state (`serve`): this
 * partition's history, which is exactly at the case (the stage feeds it right after), and the
 * item-wide sources (co-visitation, the counters, the collaborative model) wherever they are in
 * their own input when the case is scored. The figures are those of answers served at that moment,
 * so a replay at another pace can score a few cases against sources a little further on or
 * behind; the cases themselves (which events, how many) are exact, and a restart counts each
 * once (the tallies are in the history stage's snapshot with its input position).
 *
 * Only a share of the users is scored (`sample`, QUALITY_SAMPLE), chosen by a hash of the user
 * id: the same users in every run and every process.
 */
export interface PrequentialSettings {
  preset: SourcePreset;
  blend: BlendSettings;
  arms?: Arms;
  k?: number;
  /** Share of users scored, 0 < x <= 1 (default 1: all), by a hash of the user id. */
  sample?: number;
  /**
   * What the serving path reads for `user` now, over this partition's `history`; undefined while
   * a source it composes does not run here (the case is counted unscored). `seq`: the case's
   * EVENTS sequence (COLLABORATIVE is left out while its stage has taken that event).
   */
  serve?: ServeFn;
  /**
   * The design ranking's answer (the fallback stage's, as served) just before the case `event`;
   * undefined while it is not serving (the case is counted unscored); "taken" while its answer
   * may already count the event (designBefore): the design, and an arm ranking by it, are not
   * scored on the case (as COLLABORATIVE is not while its stage has taken it), the others are.
   */
  design?: (
    user: string,
    n: number,
    event: { readonly item: string; readonly ts: number },
  ) => readonly string[] | "taken" | undefined;
}

/** The serving path's reads for one user at the answers' clock `now`. */
export interface Served {
  reads: Pick<RecommenderReads, "lists" | "done">;
  now: number;
  touched: ReadonlySet<string> | undefined;
  /** COLLABORATIVE's list is in `lists` (its stage has not yet taken the case's event). */
  collaborative: boolean;
}

export type ServeFn = (user: string, history: HistorySource, seq: number) => Served | undefined;

export interface PrequentialView {
  /** Methods scored (gauge labels). */
  readonly methods: readonly string[];
  /** This scorer's figures at its own progress. */
  report(): PrequentialReport;
  /** The tallies as of event-time `now` (the latest progress of the partitions merged). */
  parts(now: number): PrequentialParts;
  /** Event-time progress (epoch ms), -1 before any. */
  progress(): number;
  /** Cases that came while the serving path could not answer here (not in the tallies). */
  unscored(): number;
}

/** The sources scored alone, as `reco eval` lists them. */
export const SCORED_SOURCES: readonly SourceName[] = [
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "TRENDING",
];

/** The methods a scorer with these arms scores. */
export function scoredMethods(arms: Arms | undefined): string[] {
  const list = arms?.arms ?? [];
  return [
    "blend",
    "popularity",
    ...(list.some((a) => a.ranker === "design") ? ["design"] : []),
    ...SCORED_SOURCES,
    ...list.map((a) => `arm:${a.name}`),
  ];
}

/** Candidates per source asked for (what serving asks for an answer of up to 100). */
const PER_SOURCE = 100;

/**
 * Whether the user with this id is one of the `share` scored: the id's hash (a function of the id
 * alone) against the share, so the choice is the same in every run.
 */
export function sampled(user: string, share: number): boolean {
  return share >= 1 || hash64(`preq:${user}`).lo < share * 4_294_967_296;
}

export interface PrequentialScorer {
  /** Before the record is fed to the history: scores it if it is a sampled case. */
  before(r: ParsedRecord, e: SourceEvent): void;
  /** After each batch: idle progress, old windows pruned, the clock kept. */
  settle(batch: InputBatch<ParsedRecord>): void;
  readonly view: PrequentialView;
}

export function createPrequentialScorer(
  o: PrequentialSettings,
  st: StateMaps,
  history: HistorySource,
): PrequentialScorer {
  const k = o.k ?? 10;
  const preq = createPrequential(st, k);
  const clock = st.map<number>("preq-clock");
  const methods = scoredMethods(o.arms);
  const scoresDesign = methods.includes("design");
  let progress = clock.get("progress") ?? -1;
  let unscored = clock.get("unscored") ?? 0;
  const sample = o.sample ?? 1;
  /** A source alone as served: its best k without the user's done items (as the blend leaves them). */
  const top = (l: readonly Scored[] | undefined, done: ReadonlySet<string>) => {
    const out: string[] = [];
    for (const x of l ?? []) {
      if (out.length >= k) break;
      if (!done.has(x.item)) out.push(x.item);
    }
    return out;
  };

  /** Scores a target event against the answers of just before it. */
  const score = (r: ParsedRecord) => {
    const served = o.serve?.(r.u, history, r.s);
    const designTop = scoresDesign ? o.design?.(r.u, k, { item: r.i, ts: r.ts }) : undefined;
    if (!served || (scoresDesign && designTop === undefined)) {
      unscored++;
      return;
    }
    const { reads, now, touched } = served;
    // As serving reads them: the done items take no place in a list (recommender-serve.ts).
    const done = reads.done(r.u, now);
    const lists = reads.lists(r.u, now, PER_SOURCE, done);
    const blended = (bs: BlendSettings) =>
      blend(lists, bs, { n: k, exclude: done, ...(touched ? { touched } : {}) }).map((x) => x.item);
    const main = blended(o.blend);
    preq.score("blend", r.ts, main, r.i);
    preq.score("popularity", r.ts, top(lists.POPULAR_FALLBACK, done), r.i);
    for (const s of SCORED_SOURCES)
      if (s !== "COLLABORATIVE" || served.collaborative)
        preq.score(s, r.ts, top(lists[s], done), r.i);
    const design = designTop === "taken" ? undefined : designTop;
    if (design) preq.score("design", r.ts, design, r.i);
    if (o.arms) {
      const arm = o.arms.armOf(r.u);
      const list = arm.ranker === "design" ? design : arm.blend ? blended(arm.blend) : main;
      if (list) preq.score(`arm:${arm.name}`, r.ts, list, r.i);
    }
  };

  return {
    before(r, e) {
      if (o.preset.isTarget(e) && sampled(r.u, sample)) score(r);
      preq.seen(r.i);
      progress = Math.max(progress, r.ts);
    },
    settle({ records, progress: p }) {
      if (records.length === 0) progress = Math.max(progress, p.to);
      preq.prune(progress);
      clock.set("progress", progress);
      clock.set("unscored", unscored);
    },
    view: {
      methods,
      report: () => preq.report(progress, methods),
      parts: (now) => preq.parts(now, methods),
      progress: () => progress,
      unscored: () => unscored,
    },
  };
}
