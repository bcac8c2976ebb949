// The gRPC façade (DESIGN.md §5): server, typed client and the status mapping.
export { startGrpcServer, recoServiceDefinition } from "./server.js";
export { createRecoClient, isStatus } from "./client.js";
export {
  InvalidArgumentError,
  ResourceExhaustedError,
  DeadlineExceededError,
  CallCancelledError,
  ServerShuttingDownError,
  toServiceError,
  statusName,
} from "./errors.js";
export { BackendUnavailableError } from "./backend.js";

export type { GrpcServer } from "./server.js";
export type { GrpcServerOptions } from "./options.js";
export type { RecoClient, RecoClientOptions, TrendingStream } from "./client.js";
export type { ServiceErrorStatus } from "./errors.js";
export type {
  RecoBackend,
  Recommendations,
  RecommendedItem,
  CategoryInterest,
  TrendingSnapshot,
  TrendingEntry,
  TrendingWindowName,
  Source,
} from "./backend.js";
