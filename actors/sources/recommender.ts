import { createRatingsBuilder, type Ratings } from "./als-matrix.js";
import { createAlsIndex, type AlsIndex } from "./als-model.js";
import type { AlsModel, AlsSettings } from "./als.js";
import { createCovisit, type CovisitOptions } from "./covisit.js";
import { createHistory, type RecentTouch } from "./history.js";
import type { SourcePreset } from "./preset.js";
import { createPopular, createTrending } from "./trending.js";
import type { SourceLists } from "./blend.js";
import type { Scored, SourceEvent } from "./types.js";

/**
 * The candidate sources of one user path, fed the same events: history, co-visitation,
 * trending, popularity, and the interaction matrix that ALS trains on (its models are set from
 * outside: trained in a worker, restored from a snapshot). Pure: what a stage will hold as
 * state, and what `reco eval` drives directly.
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

export interface Recommender {
  add(e: SourceEvent): void;
  /**
   * Each source's candidates for the user at event time `now`, `n` per source; `skip` items
   * (the user's touched ones, when they are to be left out) do not use up a list's places in
   * the sources that rank a whole catalogue (collaborative, trending, popular).
   */
  lists(user: string, now: number, n: number, skip?: ReadonlySet<string>): SourceLists;
  /** The matrix implicit ALS trains on (summed interaction weights). */
  implicitRatings(): Ratings;
  /** The matrix explicit ALS trains on (latest rating per user and item). */
  explicitRatings(): Ratings;
  setImplicit(model: AlsModel | undefined): void;
  setExplicit(model: AlsModel | undefined): void;
  /** The explicit model's candidates (whichever model serves COLLABORATIVE). */
  explicitCandidates(user: string, n: number, skip?: ReadonlySet<string>): Scored[];
  similar(item: string, now: number, n: number): Scored[];
  /** Items done for the user (preset): the blend leaves them out of every source. */
  done(user: string, now: number): Set<string>;
  /** The user's remembered items, latest first (the history source's memory). */
  recent(user: string, n: number): RecentTouch[];
}

export function createRecommender(preset: SourcePreset, s: SourceSettings): Recommender {
  const history = createHistory({
    preset,
    halfLifeMs: s.historyHalfLifeMs,
    maxItemsPerUser: s.maxItemsPerUser,
  });
  const covisit = createCovisit({ preset, ...s.covisit });
  const trending = createTrending({ halfLifeMs: s.trending.halfLifeMs, all: s.trending.all });
  const popular = createPopular(preset.isTarget, s.popularHalfLifeMs);
  const implicit = createRatingsBuilder();
  const explicit = createRatingsBuilder();
  let implicitIndex: AlsIndex | undefined;
  let explicitIndex: AlsIndex | undefined;

  return {
    add(e) {
      history.add(e);
      covisit.add(e);
      trending.add(e);
      popular.add(e);
      const w = preset.weight(e);
      if (w > 0) implicit.add(e.u, e.i, w);
      if (e.t === "rating" && e.r >= 0) explicit.add(e.u, e.i, e.r, true);
    },
    lists(user, now, n, skip) {
      const keep = skip && skip.size > 0 ? (i: string) => !skip.has(i) : undefined;
      const seeds = history.seeds(user, now, s.similarSeeds);
      const lists: SourceLists = {
        HISTORY: history.candidates(user, now, n),
        SIMILAR_ITEMS: covisit.candidates(seeds, now, n + (skip?.size ?? 0)),
        TRENDING: trending.top(now, n, keep),
        POPULAR_FALLBACK: popular.top(now, n, keep),
      };
      const collaborative = s.collaborative === "explicit" ? explicitIndex : implicitIndex;
      if (collaborative) lists.COLLABORATIVE = collaborative.candidates(user, n, keep);
      return lists;
    },
    implicitRatings: () => implicit.build(),
    explicitRatings: () => explicit.build(),
    setImplicit: (m) => void (implicitIndex = m && createAlsIndex(m)),
    setExplicit: (m) => void (explicitIndex = m && createAlsIndex(m)),
    explicitCandidates: (user, n, skip) =>
      explicitIndex?.candidates(user, n, skip && ((i) => !skip.has(i))) ?? [],
    similar: (item, now, n) => covisit.similar(item, now, n),
    done: (user, now) => history.done(user, now),
    recent: (user, n) => history.recent(user, n),
  };
}
