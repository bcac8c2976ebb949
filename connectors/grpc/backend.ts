// The serving port moved to actors/contract/backend.ts (shared by gRPC and the JSON/HTTP API); these
// re-exports keep existing imports compiling.
export { BackendUnavailableError } from "../../actors/contract/index.js";
export type {
  RecoBackend,
  Recommendations,
  RecommendedItem,
  CategoryInterest,
  TrendingSnapshot,
  TrendingEntry,
  TrendingWindowName,
  Source,
} from "../../actors/contract/index.js";
