import {
  Metadata,
  status,
  type ServerUnaryCall,
  type ServerWritableStream,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { Subscription } from "rxjs";
import type {
  GetRecommendationsRequest,
  GetRecommendationsResponse,
  GetSimilarItemsRequest,
  GetSimilarItemsResponse,
  GetTrendingRequest,
  StreamTrendingRequest,
  TrendingUpdate,
} from "../../proto/gen/reco/v1/reco_pb.js";
import { createTrendingHistory } from "../http/api-trending.js";
import {
  BackendUnavailableError,
  type RecommendOptions,
  type RecoBackend,
  type Recommendations,
  type TrendingWindowName,
} from "../../actors/contract/index.js";
import { ResourceExhaustedError, toServiceError, type ServiceErrorStatus } from "./errors.js";
import type { createGrpcMetrics } from "./metrics.js";
import {
  toRecommendationsResponse,
  toSimilarResponse,
  toTrendingUpdate,
  validateGetTrendingRequest,
  validateRecommendationsRequest,
  validateSimilarRequest,
  validateTrendingRequest,
  TrendingWindowNotFoundError,
} from "./codec.js";
import { cancellationReason, createCallSignal, isPastDeadline, untilAborted } from "./deadlines.js";
import { createTrendingWriter } from "./trending-writer.js";
import type { GrpcServerOptions } from "./options.js";
import type { UntypedServiceImplementation } from "@grpc/grpc-js";

/**
 * The handlers of `reco.v1.RecommendationService` over a backend: requests checked, answers
 * converted (codec.ts), deadlines and cancellation honoured (deadlines.ts), trending streams
 * written without unbounded queues (trending-writer.ts), every call counted in the metrics.
 */
export interface RecoServiceOptions {
  backend: RecoBackend;
  metrics: ReturnType<typeof createGrpcMetrics>;
  maxTrendingStreams: number;
  trendingHeartbeatMs: number;
  keepTrendingFinals: boolean;
  logger?: GrpcServerOptions["logger"];
}

export interface RecoService {
  /** The grpc-js implementation (method name → handler). */
  readonly handlers: UntypedServiceImplementation;
  /** Ends every open trending stream with `err`. */
  abortStreams(err: Error): void;
  /** Stops keeping trending finals. */
  stop(): void;
}

export function createRecoService(options: RecoServiceOptions): RecoService {
  const { backend, logger, metrics, maxTrendingStreams } = options;
  const heartbeatMs = options.trendingHeartbeatMs;
  // GetTrending's past windows: the finals of the backend's streams, from the start or from
  // the first GetTrending call (keepTrendingFinals).
  let kept = options.keepTrendingFinals ? createTrendingHistory(backend) : undefined;
  const history = () => (kept ??= createTrendingHistory(backend));
  /** Ends every open trending stream; used by `stop()`. */
  const openStreams = new Set<(err: Error) => void>();

  const fail = (method: string, err: unknown): ServiceErrorStatus => {
    const serviceError = toServiceError(err);
    if (serviceError.code === status.INTERNAL) {
      logger?.warn({ err, method }, "gRPC call failed with an unexpected error");
    }
    return serviceError;
  };

  const getRecommendations = (
    call: ServerUnaryCall<GetRecommendationsRequest, GetRecommendationsResponse>,
    callback: sendUnaryData<GetRecommendationsResponse>,
  ): void => {
    const startedMs = performance.now();
    let request: { userId: string; n: number; options?: RecommendOptions };
    let answer: Recommendations | undefined;
    try {
      request = validateRecommendationsRequest(call.request);
      if (!backend.isReady()) {
        throw new BackendUnavailableError(
          "recommendations are not available yet: backend is starting",
        );
      }
      if (backend.recommendNow !== undefined) {
        // A call cancelled or past its deadline on arrival is not answered (as on the async path).
        if (call.cancelled || isPastDeadline(call)) throw cancellationReason(call);
        answer =
          request.options === undefined
            ? backend.recommendNow(request.userId, request.n)
            : backend.recommendNow(request.userId, request.n, request.options);
      }
    } catch (err) {
      failRecommendations(err, startedMs, callback);
      return;
    }
    // Answered in place: the response goes out within this task, with nothing allocated for a
    // signal, a timer or promises.
    if (answer !== undefined) {
      respondRecommendations(answer, startedMs, callback);
      return;
    }
    const { signal, cleanup } = createCallSignal(call);
    untilAborted(
      () => backend.getRecommendations(request.userId, request.n, signal, request.options),
      signal,
    ).then(
      (recs) => {
        cleanup();
        respondRecommendations(recs, startedMs, callback);
      },
      (err: unknown) => {
        cleanup();
        failRecommendations(err, startedMs, callback);
      },
    );
  };
  const respondRecommendations = (
    recs: Recommendations,
    startedMs: number,
    callback: sendUnaryData<GetRecommendationsResponse>,
  ): void => {
    let response: GetRecommendationsResponse;
    try {
      response = toRecommendationsResponse(recs);
    } catch (err) {
      failRecommendations(err, startedMs, callback);
      return;
    }
    metrics.record("GetRecommendations", status.OK, startedMs);
    callback(null, response);
  };
  const failRecommendations = (
    err: unknown,
    startedMs: number,
    callback: sendUnaryData<GetRecommendationsResponse>,
  ): void => {
    const serviceError = fail("GetRecommendations", err);
    metrics.record("GetRecommendations", serviceError.code, startedMs);
    callback(serviceError);
  };

  const getSimilarItems = (
    call: ServerUnaryCall<GetSimilarItemsRequest, GetSimilarItemsResponse>,
    callback: sendUnaryData<GetSimilarItemsResponse>,
  ): void => {
    const startedMs = performance.now();
    try {
      const { itemId, n } = validateSimilarRequest(call.request);
      if (!backend.similarItems) {
        metrics.record("GetSimilarItems", status.UNIMPLEMENTED, startedMs);
        callback({ code: status.UNIMPLEMENTED, details: "this backend serves no similar items" });
        return;
      }
      if (!backend.isReady())
        throw new BackendUnavailableError(
          "similar items are not available yet: backend is starting",
        );
      const similar = backend.similarItems(itemId, n);
      // A split `reco start` asks its ingest process (bin/pipeline/split-backend.ts).
      if (similar instanceof Promise) {
        similar.then(
          (s) => {
            metrics.record("GetSimilarItems", status.OK, startedMs);
            callback(null, toSimilarResponse(s));
          },
          (err: unknown) => {
            const serviceError = fail("GetSimilarItems", err);
            metrics.record("GetSimilarItems", serviceError.code, startedMs);
            callback(serviceError);
          },
        );
        return;
      }
      const response = toSimilarResponse(similar);
      metrics.record("GetSimilarItems", status.OK, startedMs);
      callback(null, response);
    } catch (err) {
      const serviceError = fail("GetSimilarItems", err);
      metrics.record("GetSimilarItems", serviceError.code, startedMs);
      callback(serviceError);
    }
  };

  const streamTrending = (
    call: ServerWritableStream<StreamTrendingRequest, TrendingUpdate>,
  ): void => {
    const method = "StreamTrending";
    const done = metrics.begin(method);
    const endWithError = (err: unknown): void => {
      const serviceError = fail(method, err);
      done(serviceError.code);
      // grpc-js turns an 'error' event on a server stream into the call's final status.
      call.emit("error", serviceError);
    };
    let request: { window: TrendingWindowName; k: number };
    try {
      request = validateTrendingRequest(call.request);
      if (openStreams.size >= maxTrendingStreams)
        throw new ResourceExhaustedError(
          `too many open trending streams (${maxTrendingStreams}): retry later`,
        );
    } catch (err) {
      endWithError(err);
      return;
    }

    const writer = createTrendingWriter(call, request.k, (count) => metrics.dropped(count));
    let subscription: Subscription | undefined;
    let finished = false;
    // An idle input sends nothing: a heartbeat tells the client the stream is alive.
    const beat = setInterval(
      () => writer.heartbeat(request.window, heartbeatMs),
      Math.max(10, Math.min(heartbeatMs, 1_000)),
    );
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(beat);
      subscription?.unsubscribe();
      writer.close();
      openStreams.delete(abort);
      metrics.subscribers(-1);
    };
    const abort = (err: Error): void => {
      finish();
      endWithError(err);
    };
    openStreams.add(abort);
    metrics.subscribers(1);
    const onCancelled = (): void => {
      finish();
      done(toServiceError(cancellationReason(call)).code);
    };
    call.once("cancelled", onCancelled);
    if (call.cancelled) {
      onCancelled();
      return;
    }
    try {
      subscription = backend.trending(request.window).subscribe({
        next: (snapshot) => writer.offer(snapshot),
        error: (err: unknown) => abort(err instanceof Error ? err : new Error(String(err))),
        complete: () => {
          finish();
          done(status.OK);
          call.end();
        },
      });
    } catch (err) {
      abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    // The observable may have completed or failed synchronously inside subscribe().
    if (finished) subscription.unsubscribe();
  };

  const getTrending = (
    call: ServerUnaryCall<GetTrendingRequest, TrendingUpdate>,
    callback: sendUnaryData<TrendingUpdate>,
  ): void => {
    const startedMs = performance.now();
    try {
      const { window, k, at } = validateGetTrendingRequest(call.request);
      if (!backend.isReady())
        throw new BackendUnavailableError("trending is not available yet: backend is starting");
      const latest = history().latest(window);
      let snapshot = latest;
      if (at !== undefined && !(latest && latest.windowStart <= at && at < latest.windowEnd)) {
        snapshot = history().finalAt(window, at);
        if (!snapshot)
          throw new TrendingWindowNotFoundError(
            `no ${window} trending window holding ${new Date(at).toISOString()} is kept ` +
              `(the ${history().finals(window).length} latest finals and the newest window are)`,
          );
      }
      if (!snapshot) throw new BackendUnavailableError("no trending data yet");
      metrics.record("GetTrending", status.OK, startedMs);
      callback(null, toTrendingUpdate(snapshot, k));
    } catch (err) {
      const serviceError =
        err instanceof TrendingWindowNotFoundError
          ? { code: status.NOT_FOUND, details: err.message, metadata: new Metadata() }
          : fail("GetTrending", err);
      metrics.record("GetTrending", serviceError.code, startedMs);
      callback(serviceError);
    }
  };

  return {
    handlers: {
      GetRecommendations: getRecommendations,
      StreamTrending: streamTrending,
      GetSimilarItems: getSimilarItems,
      GetTrending: getTrending,
    },
    abortStreams(err) {
      for (const abort of [...openStreams]) abort(err);
    },
    stop() {
      kept?.stop();
    },
  };
}
