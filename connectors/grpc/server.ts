import { readFile } from "node:fs/promises";
import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type MethodDefinition,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation, service as healthServiceDefinition } from "grpc-health-check";
import {
  create,
  fromBinary,
  toBinary,
  type DescFile,
  type DescMessage,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  timestampFromMs,
  timestampMs,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import type { Registry } from "prom-client";
import type { Subscription } from "rxjs";
import {
  RecommendationService,
  Source,
  TrendingUpdateSchema,
  TrendingWindow,
  TrendingWindowSchema,
  file_reco_v1_reco,
  type CategoryInterest,
  type GetRecommendationsRequest,
  type GetRecommendationsResponse,
  type GetSimilarItemsRequest,
  type GetSimilarItemsResponse,
  SimilarBasis,
  type RecommendedItem,
  type GetTrendingRequest,
  type StreamTrendingRequest,
  type TrendingUpdate,
} from "../../proto/gen/reco/v1/reco_pb.js";
import { createTrendingHistory } from "../http/api-trending.js";
import {
  BackendUnavailableError,
  hasOptions,
  validateCount,
  validateId,
  validateRecommendOptions,
  type RecommendOptions,
  type RecoBackend,
  type Recommendations,
  type SimilarItems,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../../actors/backend.js";
import {
  CallCancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  ResourceExhaustedError,
  ServerShuttingDownError,
  toServiceError,
  type ServiceErrorStatus,
} from "./errors.js";
import { createGrpcMetrics, transportErrorInterceptor } from "./metrics.js";
import { explain } from "../http/api-views.js";

export interface GrpcServerOptions {
  /** 0 picks a free port (read it back from `GrpcServer.port`). */
  port: number;
  /** Interface to bind; default `127.0.0.1`. `0.0.0.0` serves every interface. */
  host?: string;
  backend: RecoBackend;
  /**
   * If given, the server registers `grpc_requests_total{method,code}`,
   * `grpc_request_duration_seconds{method}` (for streams: the stream's lifetime),
   * `grpc_trending_subscribers` and `grpc_trending_dropped_updates_total` in it.
   */
  registry?: Registry;
  /** PEM files; insecure (plaintext) when absent. */
  tls?: { certFile: string; keyFile: string };
  /**
   * `grpc.max_receive_message_length`: a larger request is refused by grpc-js with
   * RESOURCE_EXHAUSTED before it is decoded. Default 64 KiB (our requests are a few hundred bytes;
   * GRPC_MAX_MESSAGE_BYTES).
   */
  maxMessageBytes?: number;
  /** Open StreamTrending calls at most; one more gets RESOURCE_EXHAUSTED. Default 10,000. */
  maxTrendingStreams?: number;
  /**
   * A StreamTrending call that was sent nothing for this long gets a heartbeat (the newest list
   * again, `heartbeat` set). Default 10 s.
   */
  trendingHeartbeatMs?: number;
  /**
   * Keep the finals of past trending windows from the start (for GetTrending's `at`): the server
   * then holds a subscription per window kind. Default false: kept from the first GetTrending
   * call on. The app sets it.
   */
  keepTrendingFinals?: boolean;
  logger?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export interface GrpcServer {
  /** The bound port (the real one when `port: 0` was asked). */
  readonly port: number;
  /** Sets the health status of "" and `reco.v1.RecommendationService` to SERVING / NOT_SERVING. */
  setServing(serving: boolean): void;
  /**
   * Reports NOT_SERVING, ends open trending streams with UNAVAILABLE, lets unary calls in flight
   * finish for up to `graceMs` (default 5000), then closes every connection. Never rejects.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Finals a blocked trending subscriber may hold besides the newest non-final update. A final is
 * the settled answer for a window, so it is kept until written: one step of event time can close
 * dozens of windows at once (a 48 h jump closes 48 of the 24 h windows), and grpc-js reports
 * backpressure after ~16 queued messages even for a client that reads promptly. Only a client
 * stuck for STUCK_MS loses old finals beyond MAX_FINALS_WHEN_STUCK; MAX_PENDING_FINALS bounds
 * memory in any case.
 */
const MAX_PENDING_FINALS = 1024;
const MAX_FINALS_WHEN_STUCK = 4;
const STUCK_MS = 30_000;

const SERVICE_NAME = RecommendationService.typeName;

/**
 * The grpc-js service definition of `reco.v1.RecommendationService`, built from the protobuf-es
 * descriptors: binary protobuf on the wire, generated message types in the handlers. Keys are the
 * proto method names (as @grpc/proto-loader would produce), `originalName` the camelCase ones.
 */
export const recoServiceDefinition = {
  GetRecommendations: methodDefinition(RecommendationService.method.getRecommendations),
  StreamTrending: methodDefinition(RecommendationService.method.streamTrending),
  GetSimilarItems: methodDefinition(RecommendationService.method.getSimilarItems),
  GetTrending: methodDefinition(RecommendationService.method.getTrending),
} satisfies ServiceDefinition;

function methodDefinition<I extends DescMessage, O extends DescMessage>(method: {
  name: string;
  localName: string;
  methodKind: string;
  input: I;
  output: O;
}): MethodDefinition<MessageShape<I>, MessageShape<O>> {
  const { input, output } = method;
  return {
    path: `/${SERVICE_NAME}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (msg) => toBuffer(toBinary(input, msg)),
    // grpc-js answers INTERNAL when this throws; a malformed body is the client's error, so it
    // becomes an empty message marked as malformed, which the handler answers INVALID_ARGUMENT.
    requestDeserialize: (bytes) => {
      try {
        return fromBinary(input, bytes);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        return Object.assign(create(input), { [MALFORMED]: reason });
      }
    },
    responseSerialize: (msg) => toBuffer(toBinary(output, msg)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
    originalName: method.localName,
  };
}

/** Marks a request whose bytes did not decode; the value is the decoder's reason. */
const MALFORMED = Symbol("malformed request");

/** Throws INVALID_ARGUMENT for a request body that was not valid protobuf. */
function assertDecoded(request: object, typeName: string): void {
  const reason = (request as { [MALFORMED]?: string })[MALFORMED];
  if (reason !== undefined)
    throw new InvalidArgumentError(
      "request",
      `request is not a valid ${typeName} message: ${reason}`.slice(0, 300),
    );
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A proto-loader-style package definition for @grpc/reflection, built from the descriptors
 * embedded in the generated code (and in grpc-health-check), so reflection serves exactly what we
 * serve without loading a `.proto` at run time. Reflection reads only `fileDescriptorProtos` of
 * each entry, so one entry per file set suffices: the `reco.v1.TrendingWindow` enum entry carries
 * reco.proto and its imports, the health response message entry carries health.proto.
 */
function reflectionPackageDefinition(): ConstructorParameters<typeof ReflectionService>[0] {
  const files: Buffer[] = [];
  const seen = new Set<string>();
  const add = (file: DescFile): void => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    file.dependencies.forEach(add);
    files.push(toBuffer(toBinary(FileDescriptorProtoSchema, file.proto)));
  };
  add(file_reco_v1_reco);
  const definition: ConstructorParameters<typeof ReflectionService>[0] = {
    [TrendingWindowSchema.typeName]: {
      format: "Protocol Buffer 3 EnumDescriptorProto",
      type: TrendingWindowSchema.proto,
      fileDescriptorProtos: files,
    },
  };
  const healthResponse = healthServiceDefinition["Check"]?.responseType;
  if (healthResponse) definition["grpc.health.v1.HealthCheckResponse"] = healthResponse;
  return definition;
}

/**
 * An AbortSignal for one call: aborted with `DeadlineExceededError` when the call's deadline
 * passes and with `CallCancelledError` when the client cancels or disconnects.
 */
function createCallSignal(call: ServerUnaryCall<unknown, unknown>): {
  signal: AbortSignal;
  cleanup(): void;
} {
  const controller = new AbortController();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const onCancelled = () => controller.abort(cancellationReason(call));
  call.once("cancelled", onCancelled);
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(deadlineMs)) {
    const remaining = deadlineMs - Date.now();
    if (remaining <= 0) controller.abort(new DeadlineExceededError());
    else timer = setTimeout(() => controller.abort(new DeadlineExceededError()), remaining);
  }
  if (call.cancelled) onCancelled();
  return {
    signal: controller.signal,
    cleanup() {
      if (timer) clearTimeout(timer);
      call.removeListener("cancelled", onCancelled);
    },
  };
}

function isPastDeadline(call: Pick<ServerUnaryCall<unknown, unknown>, "getDeadline">): boolean {
  const deadline = call.getDeadline();
  // grpc-js gives Infinity for a call without a deadline: no clock read then.
  if (deadline === Infinity) return false;
  return Date.now() >= (deadline instanceof Date ? deadline.getTime() : deadline);
}

/** Why a call was cancelled: grpc-js reports its own deadline timer as a cancellation too. */
function cancellationReason(call: Pick<ServerUnaryCall<unknown, unknown>, "getDeadline">): Error {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return Date.now() >= deadlineMs ? new DeadlineExceededError() : new CallCancelledError();
}

/** Settles with `work`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal.removeEventListener("abort", onAbort);
    Promise.resolve()
      .then(work)
      .then(
        (value) => {
          settle();
          resolve(value);
        },
        (err: unknown) => {
          settle();
          // A backend that honours the signal rejects with its own AbortError; ours says why.
          reject(signal.aborted ? signal.reason : err);
        },
      );
  });
}

function validateRecommendationsRequest(req: GetRecommendationsRequest): {
  userId: string;
  n: number;
  options?: RecommendOptions;
} {
  assertDecoded(req, "reco.v1.GetRecommendationsRequest");
  // The rules are shared with the JSON/HTTP API (actors/backend.ts).
  const userId = validateId("user_id", req.userId);
  const n = validateCount("n", req.n);
  const options = validateRecommendOptions({
    category: req.category,
    exclude: req.excludeItemIds,
    excludeTouched: req.excludeTouched,
  });
  // No options: the call takes the same path, with the same arguments, as before they existed.
  return hasOptions(options) ? { userId, n, options } : { userId, n };
}

function validateSimilarRequest(req: GetSimilarItemsRequest): { itemId: string; n: number } {
  assertDecoded(req, "reco.v1.GetSimilarItemsRequest");
  return { itemId: validateId("item_id", req.itemId), n: validateCount("n", req.n) };
}

const SIMILAR_BASIS: Record<SimilarItems["basis"], SimilarBasis> = {
  CO_VISITATION: SimilarBasis.CO_VISITATION,
  SAME_CATEGORY_POPULAR: SimilarBasis.SAME_CATEGORY_POPULAR,
  POPULAR_FALLBACK: SimilarBasis.SIMILAR_POPULAR_FALLBACK,
};

function toSimilarResponse(s: SimilarItems): GetSimilarItemsResponse {
  const source = s.basis === "CO_VISITATION" ? Source.SIMILAR_ITEMS : Source.POPULAR_FALLBACK;
  return {
    $typeName: "reco.v1.GetSimilarItemsResponse",
    itemId: s.itemId,
    basis: SIMILAR_BASIS[s.basis],
    items: s.items.map((i) => ({
      $typeName: "reco.v1.RecommendedItem",
      itemId: i.itemId,
      score: i.score,
      rank: i.rank,
      category: i.category,
      brand: i.brand,
      averagePrice: i.averagePrice,
      source,
      purchases: toUint64(i.purchases),
      explanation: i.explanation,
    })),
    watermark: s.watermark === null ? undefined : toTimestamp(s.watermark),
    statusMessage: s.statusMessage,
  };
}

function validateTrendingRequest(req: StreamTrendingRequest): {
  window: TrendingWindowName;
  k: number;
} {
  assertDecoded(req, "reco.v1.StreamTrendingRequest");
  return { window: windowName(req.window), k: validateCount("k", req.k) };
}

function validateGetTrendingRequest(req: GetTrendingRequest): {
  window: TrendingWindowName;
  k: number;
  at: number | undefined;
} {
  assertDecoded(req, "reco.v1.GetTrendingRequest");
  return {
    window: windowName(req.window),
    k: validateCount("k", req.k),
    at: req.at === undefined ? undefined : Number(timestampMs(req.at)),
  };
}

/** Raised when a past trending window asked for is not kept (maps to NOT_FOUND). */
export class TrendingWindowNotFoundError extends Error {
  override name = "TrendingWindowNotFoundError";
}

function windowName(window: TrendingWindow): TrendingWindowName {
  switch (window) {
    case TrendingWindow.TRENDING_WINDOW_UNSPECIFIED:
    case TrendingWindow.ONE_HOUR:
      return "1h";
    case TrendingWindow.ONE_DAY:
      return "24h";
    default:
      throw new InvalidArgumentError(
        "window",
        `window must be ONE_HOUR (1) or ONE_DAY (2), got ${window as number}`,
      );
  }
}

function windowEnum(window: TrendingWindowName): TrendingWindow {
  return window === "24h" ? TrendingWindow.ONE_DAY : TrendingWindow.ONE_HOUR;
}

/** Counts travel as uint64; the backend's numbers are floats that should be whole. */
function toUint64(value: number): bigint {
  return Number.isFinite(value) && value > 0 ? BigInt(Math.round(value)) : 0n;
}

/**
 * The response as a plain message shape: the literals carry `$typeName` and every field, so
 * `toBinary` takes them as they are. `create()` would copy each nested init object into a fresh
 * message field by field through reflection, 5% of the serving CPU for ten items (a profile of
 * the in-process app under h2load); the types below still make a new proto field a compile error.
 */
function toRecommendationsResponse(recs: Recommendations): GetRecommendationsResponse {
  const items: RecommendedItem[] = new Array<RecommendedItem>(recs.items.length);
  for (let i = 0; i < recs.items.length; i++) {
    const item = recs.items[i]!;
    items[i] = {
      $typeName: "reco.v1.RecommendedItem",
      itemId: item.itemId,
      score: item.score,
      rank: item.rank,
      category: item.category,
      brand: item.brand,
      averagePrice: item.averagePrice,
      source: Source[item.source],
      purchases: toUint64(item.purchases),
      // The design ranking's items are explained by its own rules, as the JSON API does.
      explanation: explain(item),
    };
  }
  const topCategories: CategoryInterest[] = new Array<CategoryInterest>(recs.topCategories.length);
  for (let i = 0; i < recs.topCategories.length; i++) {
    const c = recs.topCategories[i]!;
    topCategories[i] = {
      $typeName: "reco.v1.CategoryInterest",
      category: c.category,
      interest: toUint64(c.interest),
    };
  }
  return {
    $typeName: "reco.v1.GetRecommendationsResponse",
    userId: recs.userId,
    items,
    topCategories,
    watermark: recs.watermark === null ? undefined : toTimestamp(recs.watermark),
    statusMessage: recs.statusMessage,
    stalenessMs: toUint64(
      Number.isFinite(recs.stalenessMs ?? 0) ? Math.round(recs.stalenessMs ?? 0) : 0,
    ),
  };
}

/** `timestampFromMs` as a plain message shape (that one goes through `create()`). */
function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return {
    $typeName: "google.protobuf.Timestamp",
    seconds: BigInt(seconds),
    nanos: (ms - seconds * 1000) * 1_000_000,
  };
}

function toTrendingUpdate(
  snapshot: TrendingSnapshot,
  k: number,
  heartbeat = false,
): TrendingUpdate {
  return create(TrendingUpdateSchema, {
    heartbeat,
    window: windowEnum(snapshot.window),
    windowStart: timestampFromMs(snapshot.windowStart),
    windowEnd: timestampFromMs(snapshot.windowEnd),
    items: snapshot.items.slice(0, k).map((entry, i) => ({
      itemId: entry.itemId,
      score: entry.score,
      views: toUint64(entry.views),
      clicks: toUint64(entry.clicks),
      carts: toUint64(entry.carts ?? 0),
      purchases: toUint64(entry.purchases ?? 0),
      rank: i + 1,
    })),
    final: snapshot.final,
    watermark: snapshot.watermark === null ? undefined : timestampFromMs(snapshot.watermark),
  });
}

/**
 * Writes snapshots to one StreamTrending call without ever queueing without bound. While the
 * call accepts writes they go straight through; once `write()` reports backpressure, only the
 * newest non-final snapshot is held (latest-wins), plus finals, which are never superseded by a
 * non-final (they are the settled answer for their window). Flushes on `drain`.
 */
function createTrendingWriter(
  call: ServerWritableStream<StreamTrendingRequest, TrendingUpdate>,
  k: number,
  onDropped: (count: number) => void,
): {
  offer(snapshot: TrendingSnapshot): void;
  /** Sends a heartbeat if nothing was written for `quietMs` and the call takes writes. */
  heartbeat(window: TrendingWindowName, quietMs: number): void;
  close(): void;
} {
  let pending: TrendingSnapshot[] = [];
  let blocked = false;
  let blockedSince = 0;
  let closed = false;
  let lastWrite = Date.now();
  let latest: TrendingSnapshot | undefined;

  const send = (update: TrendingUpdate): void => {
    lastWrite = Date.now();
    if (!call.write(update)) {
      blocked = true;
      blockedSince = Date.now();
      call.once("drain", flush);
    }
  };
  const write = (snapshot: TrendingSnapshot): void => {
    latest = snapshot;
    lastWrite = Date.now();
    if (!call.write(toTrendingUpdate(snapshot, k))) {
      blocked = true;
      blockedSince = Date.now();
      call.once("drain", flush);
    }
  };
  function flush(): void {
    blocked = false;
    while (!closed && !blocked && pending.length > 0) write(pending.shift() as TrendingSnapshot);
  }
  const enqueue = (snapshot: TrendingSnapshot): void => {
    const before = pending.length;
    // A newer snapshot supersedes pending non-finals: any window's if it is non-final itself
    // (there is only one newest window), its own window's if it is final.
    pending = pending.filter(
      (p) => p.final || (snapshot.final && p.windowStart !== snapshot.windowStart),
    );
    let dropped = before - pending.length;
    pending.push(snapshot);
    const finals = pending.filter((p) => p.final);
    const stuck = Date.now() - blockedSince > STUCK_MS;
    if (finals.length > MAX_PENDING_FINALS || (stuck && finals.length > MAX_FINALS_WHEN_STUCK)) {
      const oldest = finals[0];
      pending = pending.filter((p) => p !== oldest);
      dropped += 1;
    }
    if (dropped > 0) onDropped(dropped);
  };

  return {
    offer(snapshot) {
      if (closed) return;
      if (blocked) enqueue(snapshot);
      else write(snapshot);
    },
    heartbeat(window, quietMs) {
      if (closed || blocked || Date.now() - lastWrite < quietMs) return;
      send(
        latest
          ? toTrendingUpdate(latest, k, true)
          : create(TrendingUpdateSchema, { window: windowEnum(window), heartbeat: true }),
      );
    },
    close() {
      closed = true;
      pending = [];
      call.removeListener("drain", flush);
    },
  };
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const { backend, logger } = options;
  const host = options.host ?? "127.0.0.1";
  const metrics = createGrpcMetrics(options.registry);
  const maxTrendingStreams = options.maxTrendingStreams ?? 10_000;
  const heartbeatMs = options.trendingHeartbeatMs ?? 10_000;
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
      const response = toSimilarResponse(backend.similarItems(itemId, n));
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

  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes ?? 64 * 1024,
    // grpc-js's own statuses for malformed requests: the right code, and counted (issue 17).
    interceptors: [transportErrorInterceptor(metrics)],
  });
  server.addService(recoServiceDefinition, {
    GetRecommendations: getRecommendations,
    StreamTrending: streamTrending,
    GetSimilarItems: getSimilarItems,
    GetTrending: getTrending,
  });

  const health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionPackageDefinition()).addToServer(server);

  const credentials = options.tls
    ? ServerCredentials.createSsl(
        null,
        [
          {
            cert_chain: await readFile(options.tls.certFile),
            private_key: await readFile(options.tls.keyFile),
          },
        ],
        false,
      )
    : ServerCredentials.createInsecure();
  const target = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${target}:${options.port}`, credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  logger?.info({ host, port, tls: Boolean(options.tls) }, "gRPC server listening");

  const setServing = (serving: boolean): void => {
    const value = serving ? "SERVING" : "NOT_SERVING";
    health.setStatus("", value);
    health.setStatus(SERVICE_NAME, value);
  };

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      setServing(false);
      kept?.stop();
      for (const abort of [...openStreams]) abort(new ServerShuttingDownError());
      let resolved = false;
      const stopped = (forced: boolean): void => {
        if (resolved) return;
        resolved = true;
        clearTimeout(timer);
        logger?.info({ port, forced }, "gRPC server stopped");
        resolve();
      };
      // Health watchers and stuck clients would hold a graceful shutdown open forever.
      const timer = setTimeout(() => {
        server.forceShutdown();
        stopped(true);
      }, graceMs);
      server.tryShutdown(() => stopped(false));
    });
    return stopping;
  };

  return { port, setServing, stop };
}
