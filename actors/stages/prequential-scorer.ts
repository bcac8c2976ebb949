import type { StateMap, StateMaps } from "../../runtime/index.js";
import type { InputBatch } from "../../runtime/index.js";
import type { StageState } from "../../state/index.js";
import type { Arms } from "../quality/index.js";
import { hash64 } from "../contract/index.js";
import type { Recommendations, ParsedRecord } from "../contract/index.js";
import { createPrequential, type PrequentialReport } from "../quality/index.js";
import {
  blend,
  type BlendSettings,
  createHistory,
  type UserHistory,
  sourceLists,
  type SourceSettings,
} from "../sources/index.js";
import type {
  CollaborativeSource,
  SimilarItemsSource,
  SourcePreset,
  KeyStore,
  ItemCounter,
  Scored,
  SourceEvent,
  SourceName,
} from "../sources/index.js";

/**
 * The prequential scorer (DESIGN §7): "test, then train". Fed every user-path record
 * in EVENTS order, it scores each target event (preset: a cart or purchase; a rating of 4+)
 * against what the rankers would have answered the user just before it — the candidate sources'
 * lists at event-time progress, composed as serving composes them (recommender-serve.ts: the
 * user's done items left out of the blend) — then feeds the event to its own history. The blend,
 * each source alone, popularity, the design ranking (when an arm uses it) and the user's A/B arm
 * are scored (prequential.ts).
 *
 * It reads co-visitation and the trending and popular counters from whoever feeds them in the
 * same order right after `before` and before `after` (the covisit stage, which runs the scorer
 * when it runs at all; the prequential stage's own copies otherwise), and keeps its own copy of
 * each user's history: the history stages run apart (per partition), so at any moment each is at
 * a different point of the input, and reading them would score against whatever they had reached
 * (a replay would not give the same figures).
 *
 * Only a share of the users is scored (`sample`, QUALITY_SAMPLE, default 0.1; asking every source
 * for 100 candidates per case cost more than the rest of the engine), chosen by a hash of the
 * user id: the same cases in every run, so the figures stay exact under replay. Its history copy
 * holds the sampled users alone, so the scorer's memory and its work per event follow the share.
 *
 * Not a pure function of the input: COLLABORATIVE reads the collaborative stage's served model,
 * trained in a worker and served when it arrives, so during a fast replay the events right after
 * a training point are scored with the previous model (as serving would have answered then). The
 * movies preset's blend gives COLLABORATIVE no weight, so its blend figures do not depend on it.
 */
export interface PrequentialSettings {
  preset: SourcePreset;
  sources: SourceSettings;
  blend: BlendSettings;
  arms?: Arms;
  /** The collaborative stage's source, when it runs here (read only). */
  collaborative?: () => CollaborativeSource | undefined;
  /**
   * Records the collaborative stage has fed (its input point; it is fed the same EVENTS order).
   * COLLABORATIVE is asked only while that stage is not past the case: its user rows (which the
   * fold-in reads) and its model must hold no event after the one scored. A case it is past is
   * not a COLLABORATIVE case, and the blend's lists lack COLLABORATIVE for it.
   */
  collaborativeFed?: () => number;
  k?: number;
  /**
   * Builds the DESIGN §3.4–3.6 ranking an arm with `ranker: "design"` is scored against
   * (plan/design-driver.ts `designRankerFor`): the composition passes it in, so this stage does
   * not depend on the composition that runs the design stages.
   */
  design?: (stores: DesignStores) => DesignRanker;
  /**
   * Share of users scored, 0 < x <= 1 (default 1: all). A user is chosen by a hash of the user
   * id, so a replay, a restart or another process scores the same cases.
   */
  sample?: number;
}

export interface PrequentialView {
  /** Methods scored (gauge labels). */
  readonly methods: readonly string[];
  report(): PrequentialReport;
  /** Event-time progress (epoch ms), -1 before any. */
  progress(): number;
}

/** The sources scored alone, as `reco eval` lists them. */
export const SCORED_SOURCES: readonly SourceName[] = [
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "TRENDING",
];

/** The methods a stage with these arms scores. */
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

/** A handler's StageState over prefixed maps of this stage's state (the design driver's). */
function subState(maps: StateMaps, prefix: string): StageState {
  const metas = maps.map<Record<string, unknown>>("design-meta");
  const meta = new Proxy<Record<string, unknown>>(
    { ...metas.get(prefix) },
    {
      set(target, key, value) {
        target[key as string] = value;
        metas.set(prefix, { ...target });
        return true;
      },
    },
  );
  return {
    map: (name, options) => maps.map(`design-${prefix}-${name}`, options),
    meta,
    value: <V>(name: string) => ({
      get: () => meta[name] as V | undefined,
      set: (v: V) => void (meta[name] = v),
    }),
    dirtyCount: () => 0,
    keyCount: () => 0,
  };
}

/**
 * Whether the user with this id is one of the `share` scored: the id's hash (a function of the id
 * alone) against the share, so the choice is the same in every run.
 */
export function sampled(user: string, share: number): boolean {
  return share >= 1 || hash64(`preq:${user}`).lo < share * 4_294_967_296;
}

/** What the scorer reads besides its own state: the item-keyed sources, fed by its host. */
export interface ScorerSources {
  covisit: SimilarItemsSource;
  trending: ItemCounter;
  popular: ItemCounter;
  /** Where the scorer keeps its copy of each user's history (one key per user). */
  users: KeyStore<UserHistory>;
  /** Its progress and records fed ("progress", "fed"). */
  clock: StateMap<number>;
  /**
   * Records its host had fed before the scorer's clock existed (a covisit stage's state from
   * before the scorer ran in it): the scorer's input point starts there, as the collaborative
   * stage counts (see PrequentialSettings.collaborativeFed).
   */
  fedBefore?: number;
}

export interface PrequentialScorer {
  /**
   * Before the record is fed to the shared sources: scores it if it is a sampled case, with the
   * sources as they are (just before it).
   */
  before(r: ParsedRecord, e: SourceEvent): void;
  /** After: the record goes into the scorer's history copy and counts as fed. */
  after(r: ParsedRecord, e: SourceEvent): void;
  /** After each batch (the sources flushed): idle progress, old windows pruned, the clock kept. */
  settle(batch: InputBatch<ParsedRecord>): void;
  /** Records fed so far. */
  fed(): number;
  readonly view: PrequentialView;
}

/** The design ranking as the scorer reads it: fed in time order, asked for a user's answer. */
export interface DesignRanker {
  feed(batch: readonly ParsedRecord[]): void;
  answer(user: string, n: number): Recommendations;
}

function designRanker(o: PrequentialSettings): NonNullable<PrequentialSettings["design"]> {
  if (o.design === undefined)
    throw new Error("an arm ranks by the design: the scorer's settings need `design`");
  return o.design;
}

export function createPrequentialScorer(
  o: PrequentialSettings,
  st: StateMaps,
  src: ScorerSources,
): PrequentialScorer {
  const { covisit, trending, popular, clock } = src;
  const k = o.k ?? 10;
  const preq = createPrequential(st, k);
  const history = createHistory(
    {
      preset: o.preset,
      halfLifeMs: o.sources.historyHalfLifeMs,
      maxItemsPerUser: o.sources.maxItemsPerUser,
    },
    src.users,
  );
  const arms = o.arms?.arms ?? [];
  const design: DesignRanker | undefined = arms.some((a) => a.ranker === "design")
    ? designRanker(o)({ state: (name) => subState(st, name), table: st.map("design-table") })
    : undefined;
  const methods = scoredMethods(o.arms);
  let progress = clock.get("progress") ?? -1;
  let pending: ParsedRecord[] = [];
  const flush = () => {
    if (pending.length > 0) design?.feed(pending);
    pending = [];
  };
  const sample = o.sample ?? 1;
  /** Records fed so far (the input point of the next record, as the collaborative stage counts). */
  let fed = clock.get("fed") ?? src.fedBefore ?? 0;
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
    const now = progress;
    const ahead = o.collaborativeFed !== undefined && o.collaborativeFed() > fed;
    const collaborative = ahead ? undefined : o.collaborative?.();
    const lists = sourceLists(
      { history, covisit, trending, popular, ...(collaborative ? { collaborative } : {}) },
      o.sources,
      r.u,
      now,
      PER_SOURCE,
    );
    const done = history.done(r.u, now);
    const t = history.touched(r.u);
    const touched = t.size > 0 ? t : undefined;
    const blended = (bs: BlendSettings) =>
      blend(lists, bs, { n: k, exclude: done, ...(touched ? { touched } : {}) }).map((x) => x.item);
    const main = blended(o.blend);
    preq.score("blend", r.ts, main, r.i);
    preq.score("popularity", r.ts, top(lists.POPULAR_FALLBACK, done), r.i);
    for (const s of SCORED_SOURCES)
      if (s !== "COLLABORATIVE" || !ahead) preq.score(s, r.ts, top(lists[s], done), r.i);
    let designTop: string[] | undefined;
    if (design) {
      flush();
      designTop = design.answer(r.u, k).items.map((x) => x.itemId);
      preq.score("design", r.ts, designTop, r.i);
    }
    if (o.arms) {
      const arm = o.arms.armOf(r.u);
      const list =
        arm.ranker === "design" ? (designTop ?? []) : arm.blend ? blended(arm.blend) : main;
      preq.score(`arm:${arm.name}`, r.ts, list, r.i);
    }
  };

  return {
    before(r, e) {
      progress = Math.max(progress, r.wb);
      if (o.preset.isTarget(e) && sampled(r.u, sample)) score(r);
    },
    after(r, e) {
      // Only a sampled user's cases read their history.
      if (sampled(r.u, sample)) history.add(e);
      preq.seen(r.i);
      fed++;
      if (design) pending.push(r);
      progress = Math.max(progress, r.ts);
    },
    settle({ records, progress: p }) {
      if (records.length === 0) progress = Math.max(progress, p.to);
      flush();
      preq.prune(progress);
      clock.set("progress", progress);
      clock.set("fed", fed);
    },
    fed: () => fed,
    view: {
      methods,
      report: () => preq.report(progress, methods),
      progress: () => progress,
    },
  };
}

/**
 * Where the driver keeps its state: in memory (eval), or in a stage's state maps (the prequential
 * stage, which must restart as it was): the four handlers' states and the popularity table's rows.
 */
export interface DesignStores {
  state(name: "window" | "interest" | "join" | "popularity"): StageState;
  table: {
    get(key: string): unknown;
    set(key: string, v: unknown): void;
    entries(): IterableIterator<[string, unknown]>;
  };
}
