import type { Ratings } from "./als-matrix-rows.js";
import type { AlsModel, AlsSettings, ServedModel } from "./als.js";
import { createCollaborative, type CollaborativeServing } from "./collaborative.js";
import { createCovisit, type CovisitOptions, type SimilarItemsReads } from "./covisit.js";
import { createHistory, type HistorySource, type RecentTouch } from "./history.js";
import type { SourcePreset } from "./preset.js";
import { createPopular, createTrending, type ItemCounter } from "./trending.js";
import type { SourceLists } from "./blend.js";
import type { Scored, SourceEvent } from "./types.js";

/**
 * The candidate sources of one user path, fed the same events: history, co-visitation,
 * trending, popularity, and the interaction matrix that ALS trains on (its models are set from
 * outside: trained in a worker, restored from a snapshot). Pure: what `reco eval` drives
 * directly; the engine runs the same sources as stages (history per user partition, covisit,
 * collaborative) and composes their lists with {@link sourceLists} at serving time.
 */
export interface SourceSettings {
  historyHalfLifeMs: number;
  maxItemsPerUser: number;
  covisit: Omit<CovisitOptions, "preset">;
  trending: { halfLifeMs: number; all: boolean };
  popularHalfLifeMs: number;
  /** Seeds of a user's similar-items candidates (their best history items). */
  similarSeeds: number;
  implicit?: AlsSettings;
  /** Explicit ALS (movies): trained on the latest rating of each (user, movie). */
  explicit?: AlsSettings;
  /** Which model serves COLLABORATIVE (default implicit). */
  collaborative?: "implicit" | "explicit";
}

/** What serving reads of the sources (the blend's inputs). */
export interface RecommenderReads {
  /**
   * Each source's candidates for the user at event time `now`, `n` per source; `skip` items
   * (the user's touched ones, when they are to be left out) do not use up a list's places in
   * the sources that rank a whole catalogue (collaborative, trending, popular).
   */
  lists(user: string, now: number, n: number, skip?: ReadonlySet<string>): SourceLists;
  similar(item: string, now: number, n: number): Scored[];
  /** Items done for the user (preset): the blend leaves them out of every source. */
  done(user: string, now: number): Set<string>;
  /** The user's remembered items, latest first (the history source's memory). */
  recent(user: string, n: number): RecentTouch[];
  /** What the user did with an item they touched ("you viewed it"); undefined if untouched. */
  why(user: string, item: string): string | undefined;
}

export interface Recommender extends RecommenderReads {
  add(e: SourceEvent): void;
  /** The matrix implicit ALS trains on (summed interaction weights). */
  implicitRatings(): Ratings;
  /** The matrix explicit ALS trains on (latest rating per user and item). */
  explicitRatings(): Ratings;
  /** Serves a model trained on every event added so far. */
  setImplicit(model: AlsModel | ServedModel | undefined): void;
  setExplicit(model: AlsModel | ServedModel | undefined): void;
  /** The explicit model's candidates (whichever model serves COLLABORATIVE). */
  explicitCandidates(user: string, n: number, skip?: ReadonlySet<string>): Scored[];
}

/** The sources a served list is made of (held by one object, or by several stages). */
export interface SourceParts {
  history: HistorySource;
  covisit: SimilarItemsReads;
  trending: ItemCounter;
  popular: ItemCounter;
  /** Undefined (or without a model) until a model is served. */
  collaborative?: CollaborativeServing;
}

/** The sources' lists for a user (see {@link RecommenderReads.lists}). */
export function sourceLists(
  parts: SourceParts,
  s: SourceSettings,
  user: string,
  now: number,
  n: number,
  skip?: ReadonlySet<string>,
): SourceLists {
  const keep = skip && skip.size > 0 ? (i: string) => !skip.has(i) : undefined;
  const seeds = parts.history.seeds(user, now, s.similarSeeds);
  const lists: SourceLists = {
    HISTORY: parts.history.candidates(user, now, n),
    SIMILAR_ITEMS: parts.covisit.candidates(seeds, now, n + (skip?.size ?? 0)),
    TRENDING: parts.trending.top(now, n, keep),
    POPULAR_FALLBACK: parts.popular.top(now, n, keep),
  };
  const c = parts.collaborative;
  if (c?.model(s.collaborative ?? "implicit")) lists.COLLABORATIVE = c.candidates(user, n, keep);
  return lists;
}

/** Serving's reads over the parts. */
export function readsOf(parts: SourceParts, s: SourceSettings): RecommenderReads {
  return {
    lists: (user, now, n, skip) => sourceLists(parts, s, user, now, n, skip),
    similar: (item, now, n) => parts.covisit.similar(item, now, n),
    done: (user, now) => parts.history.done(user, now),
    recent: (user, n) => parts.history.recent(user, n),
    why: (user, item) => parts.history.why(user, item),
  };
}

export function createRecommender(preset: SourcePreset, s: SourceSettings): Recommender {
  const parts = {
    history: createHistory({
      preset,
      halfLifeMs: s.historyHalfLifeMs,
      maxItemsPerUser: s.maxItemsPerUser,
    }),
    covisit: createCovisit({ preset, ...s.covisit }),
    trending: createTrending({ halfLifeMs: s.trending.halfLifeMs, all: s.trending.all }),
    popular: createPopular(preset.isTarget, s.popularHalfLifeMs),
    collaborative: createCollaborative(preset, s),
  };
  let fed = 0;
  return {
    ...readsOf(parts, s),
    add(e) {
      fed++;
      parts.history.add(e);
      parts.covisit.add(e);
      parts.trending.add(e);
      parts.popular.add(e);
      parts.collaborative.add(e, fed);
    },
    implicitRatings: () => parts.collaborative.implicitRatings(),
    explicitRatings: () => parts.collaborative.explicitRatings(),
    setImplicit: (m) => parts.collaborative.setModel("implicit", m, fed),
    setExplicit: (m) => parts.collaborative.setModel("explicit", m, fed),
    explicitCandidates: (user, n, skip) => parts.collaborative.explicitCandidates(user, n, skip),
  };
}
