import type { Preset } from "../../actors/contract/index.js";
import type { TrendingWeights } from "../../actors/stages/index.js";
import type { RankerConfig } from "../../actors/plan/index.js";
import type { Arm } from "../../actors/quality/index.js";

/** Everything the pipeline needs to know; validated by bin/config.ts. */
export interface PipelineConfig extends RankerConfig {
  /** A/B arms (ARMS; actors/quality/arms.ts): absent, every user gets RANKER's answer. */
  arms?: Arm[];
  /** QUALITY=off: no drift stages and no prequential scoring. Default on. */
  quality?: boolean;
  /**
   * CHAINING=on: stages of a path on the same partitioning in this process run as one chain
   * (chains.ts). Default on.
   */
  chaining?: boolean;
  /**
   * INPUT_ALIGNMENT=on: the instances of a stage in this process take their hops lowest input
   * position first (actors/host/align.ts). Default on.
   */
  inputAlignment?: boolean;
  /** QUALITY_SAMPLE: share of users scored (default 1 here; bin/config.ts: 0.1). */
  qualitySample?: number;
  partitions: number;
  preset: Preset;
  windowMs: number;
  userOutOfOrdernessMs: number;
  trendingHourOutOfOrdernessMs: number;
  trendingDayOutOfOrdernessMs: number;
  interestHorizonMs: number;
  popularityHorizonMs: number;
  topCategories: number;
  fallbackSize: number;
  /** TRENDING_WEIGHTS: score weight per event type; types without one do not count. */
  trendingWeights: TrendingWeights;
  trendingTriggerMs: number;
  snapshotIntervalMs: number;
  snapshotEveryMessages: number;
  batchMaxRecords: number;
  batchMaxDelayMs: number;
  /** PAIRS_MAX_DELAY_MS: T of the history stages' pair hops (B is `batchMaxRecords`). */
  pairsMaxDelayMs: number;

  dedupeHorizonMs: number;
  dedupeMaxIds: number;
  maxEventBytes: number;
  maxAttempts: number;
  duplicateWindowMs: number;
  replicas: number;
  /** IDLE_TIMEOUT_MS: parse's idle markers (DESIGN §3.2); 0: never. */
  idleTimeoutMs: number;
  /** MAX_FUTURE_SKEW_MS (actors/stages/parse.ts); absent: parse's default. */
  maxFutureSkewMs?: number;
  /** MOVIES_CATALOG: MovieLens movies.csv whose first genres are the categories (PRESET=movies). */
  moviesCatalog?: string;
}

/**
 * Item partitions of co-visitation in a new deployment: 2, or `partitions` when fewer. Each
 * event's pairs go to every item partition holding one of its items, so on two cores fewer item
 * partitions than user partitions cost less (bench step 2, 8 user partitions: 117-131 µs of app
 * CPU per event without ALS with 2, 139-154 with 8, four alternating pairs); a cluster of
 * more workers may set more.
 */
export const newCovisitPartitions = (partitions: number): number => Math.min(2, partitions);
