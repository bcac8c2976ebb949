import type { Observable } from "rxjs";

/**
 * The port the gRPC façade serves from. The gateway implements it over the stage actors
 * (in process, or over NATS request-reply when roles are split); the connector knows nothing else.
 */
export interface RecoBackend {
  /** False while NATS or state is not ready: the façade answers UNAVAILABLE. */
  isReady(): boolean;
  /** Recommendations for one user; `n` is already validated (1..100). */
  getRecommendations(userId: string, n: number, signal: AbortSignal): Promise<Recommendations>;
  /**
   * Optional fast path: the same answer as `getRecommendations`, given synchronously when the
   * serving state can be read in place (a worker's own partitions, a gateway's replica). The façade
   * then answers within the request's own task: no AbortSignal, timer, promise or closure per
   * call, and grpc-js writes the response while it is still handling the request's frames.
   * Throws what `getRecommendations` would reject with; `undefined` means "ask
   * `getRecommendations`" (an answer that needs I/O).
   */
  recommendNow?(userId: string, n: number): Recommendations | undefined;
  /**
   * Trending snapshots for the newest window of `window`. Emits the latest known snapshot
   * at once (if any), then every update. Hot: it never completes while the process runs.
   */
  trending(window: TrendingWindowName): Observable<TrendingSnapshot>;
}

export type Source = "PERSONALIZED" | "POPULAR_FALLBACK";
export type TrendingWindowName = "1h" | "24h";

export interface RecommendedItem {
  itemId: string;
  score: number;
  /** 1-based. */
  rank: number;
  category: string;
  brand: string;
  averagePrice: number;
  source: Source;
  purchases: number;
}

export interface CategoryInterest {
  category: string;
  interest: number;
}

export interface Recommendations {
  userId: string;
  items: RecommendedItem[];
  topCategories: CategoryInterest[];
  /** Event-time watermark (epoch ms) the answer reflects; null before any data. */
  watermark: number | null;
  /** Why the list is empty or fallback-only; empty when personalised. */
  statusMessage: string;
  /** Upper bound on the answering view's staleness (ms); 0 or absent when current. */
  stalenessMs?: number;
}

export interface TrendingEntry {
  itemId: string;
  score: number;
  views: number;
  clicks: number;
  /** Counted only when TRENDING_WEIGHTS lists the type; absent from older snapshots. */
  carts?: number;
  purchases?: number;
}

export interface TrendingSnapshot {
  window: TrendingWindowName;
  /** Epoch ms. */
  windowStart: number;
  windowEnd: number;
  /** Sorted by score descending, ties by item id; at most 100 entries. */
  items: TrendingEntry[];
  final: boolean;
  watermark: number | null;
}

/** Thrown by a backend when it cannot answer yet (maps to UNAVAILABLE). */
export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
}
