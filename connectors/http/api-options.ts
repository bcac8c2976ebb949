import type { Logger } from "pino";
import type { RecoBackend } from "../../actors/contract/index.js";
import type { PublishEvent } from "./api-events.js";
import type { UpsertItem } from "./api-items.js";
import type { MetricsSource } from "./api-pipeline.js";

export interface ApiServerOptions {
  /** 0 picks a free port (read it back from `ApiServer.port`). */
  port: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** The port is only a preference: if it is taken, bind a free one instead of failing. */
  portFallback?: boolean;
  backend: RecoBackend;
  /** Where `/v1/pipeline` reads stage metrics; absent: an empty pipeline (a gateway). */
  metrics?: MetricsSource;
  /** Origins allowed to call the API from a browser (`*`: any); default none (same origin). */
  corsOrigins?: readonly string[];
  /** SSE heartbeat period (default 15 s). */
  heartbeatMs?: number;
  /** Open event streams at most; one more gets 429. Default 1,000. */
  maxStreams?: number;
  /** Longest wait for a backend answer before 504 (default 5 s). */
  timeoutMs?: number;
  /** Console files (default: this package's `web/`). */
  webRoot?: string;
  /** Fastify logs through it; a request that fails with a bug (500) is logged at warn. */
  logger?: Logger;
  /** Stores an event in JetStream (`POST /v1/events`); absent: the route answers 501. */
  publishEvent?: PublishEvent;
  /** Stores an item upsert (`PUT /v1/items/{id}`); absent: the route answers 501. */
  upsertItem?: UpsertItem;
  /**
   * API_KEYS: keys a write (`POST /v1/events`) must carry; reads need one too when the server is
   * bound to other than loopback and keys are set. No keys: writes are refused.
   */
  apiKeys?: readonly string[];
}
