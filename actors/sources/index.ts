/**
 * The candidate sources (DESIGN §3.7), pure modules over key stores: history, co-visitation,
 * ALS (trained in a worker), trending and popular counters, and the blend of their lists.
 *
 * What the rest of the program uses from actors/sources/; its files import each other directly.
 */
export { evaluateAls } from "./als-eval.js";
export { createRatingsBuilder, ratingsFromStores } from "./als-matrix.js";
export { gatherRatings, type PartRatings } from "./als-gather.js";
export {
  atOrPast,
  crossingAt,
  judge,
  keepFrom,
  NO_POINTS,
  NO_TRAINER,
  partCrossings,
  past,
  type Crossing,
  type Due,
  type PartPoints,
  type PointState,
  type TrainerPoints,
} from "./collaborative-points.js";
export { CACHE_USERS, createAlsIndex, FOLD_WOODBURY_MAX } from "./als-model.js";
export {
  deserialiseModel,
  readStoredModel,
  serialiseModel,
  storeModel,
} from "./als-model-bytes.js";
export { trainInWorker, trainingsDone } from "./als-worker.js";
export {
  EXPLICIT_SEED_001,
  IMPLICIT_DEFAULTS,
  choleskySolve,
  gram,
  servedModel,
  trainAls,
} from "./als.js";
export { allowedBy, blend } from "./blend.js";
export {
  createRowsCopy,
  deltaBytes,
  deltaChunks,
  memRowsStores,
  type RowsCopy,
} from "./collaborative-copy.js";
export {
  createCollaborative,
  createCollaborativeRows,
  createCollaborativeServing,
} from "./collaborative.js";
export {
  createCovisit,
  createCovisitItems,
  createCovisitUsers,
  memCovisitStores,
  readCovisit,
} from "./covisit.js";
export { defaultBlend, defaultSourceSettings } from "./defaults.js";
export { sourceEventOf } from "./event.js";
export { decodeHistory, encodeHistory, historyCodec } from "./history-bytes.js";
export { decodeRatingRow, ratingRowCodec } from "./rating-row-bytes.js";
export { decodeStoredArray } from "./pack-rows.js";
export { UserItems, createHistory } from "./history.js";
export { ItemEdges, createItemIds, itemEdgesCodec } from "./item-edges.js";
export {
  Neighbours,
  decodeNeighbours,
  encodeNeighbours,
  neighboursCodec,
  writeNeighbourBytes,
} from "./neighbours.js";
export { ECOMMERCE, MOVIES, presetNamed } from "./preset.js";
export { RecentItems, recentItems } from "./recent-items.js";
export { createRecommender, readsOf, sourceLists } from "./recommender.js";
export { memStore } from "./store.js";
export { createPopular, createTrending, mergeCounters } from "./trending.js";
export {
  SOURCE_NAMES,
  byScoreThenId,
  nthBest,
  nthLargest,
  seededRandom,
  topByScore,
} from "./types.js";
export { recentStore, userStores } from "./user-stores.js";
export { decodeUserValue, encodeUserValue, userValueCodec } from "./user-value-bytes.js";

export type { Ratings } from "./als-matrix-rows.js";
export type { RatingRow, RatingsStores, RowsDelta } from "./als-matrix.js";
export type { AlsIndex } from "./als-model.js";
export type { StoredModel } from "./als-model-bytes.js";
export type { OfflineMetrics } from "./als-served.js";
export type { AlsSettings } from "./als-settings.js";
export type { AlsModel, ServedModel } from "./als.js";
export type { BlendRequest, BlendSettings, BlendWeights, SourceLists } from "./blend.js";
export type {
  CollaborativeRows,
  CollaborativeServing,
  CollaborativeSettings,
  CollaborativeSource,
} from "./collaborative.js";
export type {
  CovisitItems,
  CovisitOptions,
  SimilarItemsSource,
  SimilarItemsReads,
} from "./covisit.js";
export type { CovisitPart } from "./covisit-read.js";
export type { HistorySource, UserHistory } from "./history.js";
export type { ItemIds } from "./item-edges.js";
export type { Edge } from "./neighbours.js";
export type { SourcePreset } from "./preset.js";
export type { Recent } from "./recent-items.js";
export type { Recommender, RecommenderReads, SourceSettings } from "./recommender.js";
export type { KeyStore } from "./store.js";
export type { CounterPart, ItemCounter, MergedCounter, RawCount } from "./trending.js";
export type { Scored, SourceEvent, SourceName } from "./types.js";
export type { UserValue } from "./user-stores.js";
export type { StoredUserValue } from "./user-value-bytes.js";
