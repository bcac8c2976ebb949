/**
 * What stages, sources and serving agree on: the event and the record after parse, the read
 * contract (backend.ts) and its argument errors, the catalogue's fields, partitioning, subject names.
 *
 * What the rest of the program uses from actors/contract/; its files import each other directly.
 */
export {
  BackendUnavailableError,
  DEFAULT_COUNT,
  InvalidArgumentError,
  MAX_CATEGORY_LENGTH,
  MAX_COUNT,
  MAX_ID_LENGTH,
  TRENDING_WINDOWS,
  hasOptions,
  validateCount,
  validateId,
  validateRecommendOptions,
} from "./backend.js";
export { learn, mergeExplicit, resolveItem, validateItemUpsert } from "./catalogue.js";
export { decodeProtobufEvent, isProtobuf } from "./event-protobuf.js";
export { EVENT_TYPES, isPurchase, normaliseEvent, parseJsonEvent } from "./event.js";
export { hash64 } from "./hash64.js";
export { partitionOf } from "./partition.js";
export {
  DAY,
  HOUR,
  MINUTE,
  buckets,
  catalogueKey,
  idOfKvKey,
  kvKeyOf,
  readOutsideGraph,
  subjects,
} from "./subjects.js";

export type {
  CategoryInterest,
  ItemInfo,
  RecentEvent,
  RecoBackend,
  RecommendOptions,
  Recommendations,
  RecommendedItem,
  SimilarItem,
  SimilarItems,
  Source,
  TrendingEntry,
  TrendingSnapshot,
  TrendingWindowName,
} from "./backend.js";
export type {
  BaseFields,
  CatalogueItem,
  ExplicitFields,
  ItemUpsert,
  LearnedFields,
} from "./catalogue.js";
export type {
  EventType,
  Interaction,
  ParseOptions,
  ParseResult,
  PairEvent,
  PairRecord,
  ParsedRecord,
  Preset,
} from "./event.js";
