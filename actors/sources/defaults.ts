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
    covisit: { windowMs: HOUR, halfLifeMs: 7 * DAY, k: 50, recentPerUser: 30, normalise: true },
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
      covisit: { ...base.covisit, halfLifeMs: 365 * DAY },
      trending: { halfLifeMs: 30 * DAY, all: true },
      explicit: EXPLICIT_SEED_001,
    };
  return base;
}

/** Blend weights per preset, chosen with `reco eval --validation` (README "Quality"). */
export function defaultBlend(preset: SourcePreset): BlendSettings {
  if (preset.name === "movies")
    return {
      mode: "score",
      weights: { SIMILAR_ITEMS: 1, COLLABORATIVE: 0.5, TRENDING: 0.5, HISTORY: 1 },
    };
  return {
    mode: "score",
    weights: { HISTORY: 2, SIMILAR_ITEMS: 0.5, COLLABORATIVE: 0.5, TRENDING: 0.1 },
  };
}
