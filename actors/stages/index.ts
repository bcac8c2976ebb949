/**
 * One file per stage of DESIGN §3 (parse, watermark, window, interest-ranking, popularity-join,
 * fallback, popularity, trending, catalogue, history (with the prequential scorer), covisit,
 * collaborative, drift),
 * each a definition of ports and an RxJS operator; the topology maps the ports (actors/plan).
 *
 * What the rest of the program uses from actors/stages/; its files import each other directly.
 */
export { createBadRatioMonitor } from "./bad-ratio.js";
export { catalogueStage, catalogueUpsertStage, readUpsert } from "./catalogue-stage.js";
export {
  collaborativeRowsOf,
  collaborativeStage,
  isIdleMark,
  COLLABORATIVE_MAPS,
  ratingRows,
  routedRows,
} from "./collaborative-stage.js";
export {
  COLLABORATIVE_TRAINER,
  TRAINER_MAPS,
  collaborativeTrainerStage,
  copyMaps,
  shelfView,
} from "./collaborative-trainer.js";
export { covisitStage } from "./covisit-stage.js";
export { NO_CATEGORY, createDriftHandler, driftStage } from "./drift.js";
export {
  answerFor,
  completeRecommendations,
  createFallbackActor,
  topCategoriesOf,
} from "./fallback.js";
export { historyStage } from "./history-stage.js";
export { cellKey as interestCellKey, keyTail, parseCellKey } from "./interest-ranking-keys.js";
export { interestStage } from "./interest-ranking.js";
export { cellCodec } from "./interest-ranking-profiles.js";
export {
  collabInput,
  loadMergedHandler,
  mergedStageSpec,
  pairsInput,
  parseInput,
  partitionInput,
} from "./merged-input.js";
export type { MergedInput, MergedTopology } from "./merged-input.js";
export { MAP, OLD_MAP, waitingCodec } from "./merged-waiting.js";
export { createIntPairs, createPackedKeys } from "./packed-keys.js";
export { createBadRatioAlert } from "./parse-metrics.js";
export {
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  clockScheduler,
  parseStage,
  readIdleMarker,
  signIdleMarker,
} from "./parse.js";
export { decodeProfile, encodeProfile } from "./popularity-join-profile.js";
export {
  EXPIRED_PROFILES_KEPT,
  byItemId,
  createJoinHandler,
  joinCandidates,
  purchasedAfter,
  joinStage,
} from "./popularity-join.js";
export { createPopularityTable, topRows } from "./popularity-table.js";
export { heartbeatRow, popularityStage } from "./popularity.js";
export {
  SCORED_SOURCES,
  createPrequentialScorer,
  sampled,
  scoredMethods,
} from "./prequential-scorer.js";
export { createTrainer } from "./recommender-trainer.js";
export { SEG, createSeenIds } from "./seen-ids.js";
export { cellKey as trendingCellKey, topByScore, trendingStage } from "./trending.js";
export { sendLate, watermarkStage } from "./watermark.js";
export { cellKey as windowCellKey, windowStage } from "./window.js";

export type { CatalogueHandler, CatalogueUpsertHandler } from "./catalogue-stage.js";
export type {
  CollaborativePart,
  CollaborativePartView,
  CollaborativeRecord,
  RowsRecord,
} from "./collaborative-stage.js";
export type {
  CollaborativeTrainerSettings,
  CollaborativeView,
  ModelShelf,
} from "./collaborative-trainer.js";
export type { CovisitView } from "./covisit-stage.js";
export type { DriftHandler } from "./drift.js";
export type { FallbackActor, RecommendRequest } from "./fallback.js";
export type { HistoryView, PairsTo } from "./history-stage.js";
export type { InterestHandler, InterestOptions, ProfileRecord } from "./interest-ranking.js";
export type { ParseHandler, ParseOptions, ParseView } from "./parse-options.js";
export type { ConsumerView, ParseCounters, ParseSettings } from "./parse.js";
export type { Candidate, JoinHandler, PopularityTableView } from "./popularity-join.js";
export type { PopularityTable } from "./popularity-table.js";
export type {
  LatePurchase,
  PopularityHandler,
  PopularityOptions,
  PopularityRow,
} from "./popularity.js";
export type {
  PrequentialSettings,
  PrequentialView,
  Served,
  ServeFn,
} from "./prequential-scorer.js";
export type { TrainFn } from "./recommender-trainer.js";
export type { SeenIds } from "./seen-ids.js";
export type {
  TrendingHandler,
  TrendingHeartbeat,
  TrendingKind,
  TrendingOptions,
  TrendingPart,
  TrendingSettings,
  TrendingView,
  TrendingWeights,
} from "./trending.js";
export type {
  LateCounter,
  LateRecord,
  WatermarkHandler,
  WatermarkOptions,
  WatermarkView,
} from "./watermark.js";
export type { WindowHandler, WindowOptions, WindowOutput, WindowRecord } from "./window.js";
