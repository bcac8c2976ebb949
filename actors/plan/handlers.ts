import type { StageOutput } from "../host/index.js";
import { createStageHandler, loadStageHandler, type AdaptedHandler } from "../host/index.js";
import type { StageState } from "../../state/index.js";
import { stageTopology } from "./topology.js";
import {
  clockScheduler,
  parseStage,
  watermarkStage,
  type WatermarkHandler,
  type WatermarkOptions,
  windowStage,
  type WindowHandler,
  type WindowOptions,
  interestStage,
  type InterestHandler,
  type InterestOptions,
  popularityStage,
  type PopularityHandler,
  type PopularityOptions,
  trendingStage,
  type TrendingHandler,
  type TrendingOptions,
  catalogueStage,
  catalogueUpsertStage,
  type CatalogueHandler,
  type CatalogueUpsertHandler,
} from "../stages/index.js";
import type { ParseHandler, ParseOptions, ParseView } from "../stages/index.js";

/**
 * Each stage in the host, its ports going where `stageTopology` says: the composition hands a
 * stage its addresses, so a stage file knows its ports only and never imports the topology.
 */
/** The parse stage in the host, on its raw input, its ports where `stageTopology.parse` says. */
export function createParseHandler(
  state: StageState,
  out: StageOutput,
  opts: ParseOptions,
): ParseHandler {
  const { clock, ...settings } = opts;
  const h = createStageHandler(parseStage, state, out, {
    settings,
    input: "raw",
    topology: stageTopology.parse(opts.partitions, opts.markerKey),
    ...(clock ? { scheduler: clockScheduler(clock) } : {}),
  }) as AdaptedHandler<ParseView> & { tick(): void };
  // The restored progress, before any input: on outgoing hops and on the gauge.
  out.setProgress(h.progress);
  if (h.progress >= 0) opts.badRatio?.progress?.(h.progress);
  return h;
}

/** The watermark stage in the host, its ports going where `stageTopology.watermark` says. */
export function createWatermarkHandler(
  state: StageState,
  out: StageOutput,
  opts: WatermarkOptions,
): WatermarkHandler {
  return createStageHandler(watermarkStage, state, out, {
    settings: { outOfOrdernessMs: opts.outOfOrdernessMs },
    topology: stageTopology.watermark(opts.partition, opts.counters),
  });
}

/** The window stage in today's host, its port going where `stageTopology.window` says. */
export function createWindowHandler(
  state: StageState,
  out: StageOutput,
  opts: WindowOptions,
): WindowHandler {
  return createStageHandler(windowStage, state, out, {
    settings: opts,
    topology: stageTopology.window(opts.partition),
  });
}

/** The stage in today's host, its port going where `stageTopology.interestRanking` says. */
export function createInterestHandler(
  state: StageState,
  out: StageOutput,
  opts: InterestOptions,
): InterestHandler {
  return createStageHandler(interestStage, state, out, {
    settings: opts,
    topology: stageTopology.interestRanking(opts.partition),
  });
}

/** The same, rebuilding the in-memory aggregates with the event loop given back between slices. */
export async function loadInterestHandler(
  state: StageState,
  out: StageOutput,
  opts: InterestOptions,
): Promise<InterestHandler> {
  return loadStageHandler(interestStage, state, out, {
    settings: opts,
    topology: stageTopology.interestRanking(opts.partition),
  });
}

/** The stage in today's host, its ports going where `stageTopology.popularity` says. */
export function createPopularityHandler(
  state: StageState,
  out: StageOutput,
  opts: PopularityOptions,
): PopularityHandler {
  return createStageHandler(popularityStage, state, out, {
    settings: { horizonMs: opts.horizonMs, heartbeat: opts.partition === 0 },
    topology: stageTopology.popularity(opts.counters),
  });
}

/** The trending stage in the host, its ports going where `stageTopology.trending` says. */
export function createTrendingHandler(
  state: StageState,
  out: StageOutput,
  opts: TrendingOptions,
): TrendingHandler {
  const { partition, counters, ...settings } = opts;
  return createStageHandler(trendingStage, state, out, {
    settings: { ...settings, partition },
    topology: stageTopology.trending(partition, counters),
  }) as TrendingHandler;
}

/** The learning stage in the host, its port going where `stageTopology.catalogue` says. */
export function createCatalogueHandler(state: StageState, out: StageOutput): CatalogueHandler {
  return createStageHandler(catalogueStage, state, out, {
    settings: {},
    topology: stageTopology.catalogue,
  });
}

/** The upsert stage in the host, on its raw input (the `ITEMS` stream). */
export function createCatalogueUpsertHandler(
  state: StageState,
  out: StageOutput,
): CatalogueUpsertHandler {
  return createStageHandler(catalogueUpsertStage, state, out, {
    settings: {},
    topology: stageTopology.catalogueUpsert,
    input: "raw",
  });
}
