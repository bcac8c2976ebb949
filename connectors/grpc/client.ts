import { readFileSync } from "node:fs";
import {
  Metadata,
  credentials,
  makeGenericClientConstructor,
  status,
  type CallOptions,
  type ChannelOptions,
  type Client,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
  type requestCallback,
} from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import {
  GetRecommendationsRequestSchema,
  GetSimilarItemsRequestSchema,
  GetTrendingRequestSchema,
  StreamTrendingRequestSchema,
  TrendingWindow,
  type GetRecommendationsRequest,
  type GetRecommendationsResponse,
  type GetSimilarItemsRequest,
  type GetSimilarItemsResponse,
  type GetTrendingRequest,
  type StreamTrendingRequest,
  type TrendingUpdate,
} from "../../proto/gen/reco/v1/reco_pb.js";
import type { TrendingWindowName } from "./backend.js";
import { recoServiceDefinition } from "./server.js";

export interface RecoClientOptions {
  /** `true`: TLS with the system roots; `{ caFile }`: TLS trusting that PEM bundle. */
  tls?: boolean | { caFile: string };
  /** Extra grpc-js channel options (e.g. `grpc.use_local_subchannel_pool` in tests). */
  channelOptions?: ChannelOptions;
}

/** A server stream of trending updates; iterate it once. Ends quietly after `cancel()`. */
export interface TrendingStream extends AsyncIterable<TrendingUpdate> {
  /** Cancels the call; an iteration in progress ends without an error. */
  cancel(): void;
}

/**
 * A typed client of `reco.v1.RecommendationService`. Failures reject (or throw from the
 * iteration) with grpc-js `ServiceError`s: read `code` (a `status`) and `details`.
 */
export interface RecoClient {
  /** `n` 0 or omitted means the server default (10). */
  getRecommendations(
    userId: string,
    n?: number,
    options?: {
      deadlineMs?: number;
      category?: string;
      excludeItemIds?: string[];
      excludeTouched?: boolean;
    },
  ): Promise<GetRecommendationsResponse>;
  /** `n` 0 or omitted means the server default (10). */
  getSimilarItems(itemId: string, n?: number): Promise<GetSimilarItemsResponse>;
  /** The newest window's list now; `k` 0 or omitted means the server default (10). */
  getTrending(window: TrendingWindow | TrendingWindowName, k?: number): Promise<TrendingUpdate>;
  /** `k` 0 or omitted means the server default (10). The call starts at once. */
  streamTrending(window: TrendingWindow | TrendingWindowName, k?: number): TrendingStream;
  close(): void;
}

/** The methods `makeGenericClientConstructor` adds for `recoServiceDefinition`. */
interface RawRecoClient extends Client {
  GetRecommendations(
    request: GetRecommendationsRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: requestCallback<GetRecommendationsResponse>,
  ): ClientUnaryCall;
  GetSimilarItems(
    request: GetSimilarItemsRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: requestCallback<GetSimilarItemsResponse>,
  ): ClientUnaryCall;
  GetTrending(
    request: GetTrendingRequest,
    metadata: Metadata,
    options: CallOptions,
    callback: requestCallback<TrendingUpdate>,
  ): ClientUnaryCall;
  StreamTrending(
    request: StreamTrendingRequest,
    metadata: Metadata,
    options: CallOptions,
  ): ClientReadableStream<TrendingUpdate>;
}

const RecoClientConstructor = makeGenericClientConstructor(
  recoServiceDefinition,
  "reco.v1.RecommendationService",
);

export function createRecoClient(address: string, options: RecoClientOptions = {}): RecoClient {
  const { tls } = options;
  const channelCredentials =
    tls === undefined || tls === false
      ? credentials.createInsecure()
      : credentials.createSsl(tls === true ? null : readFileSync(tls.caFile));
  // The constructor is generic (methods added at run time from the definition); this is the one
  // place its shape is asserted, and the definition above fixes it.
  const raw = new RecoClientConstructor(
    address,
    channelCredentials,
    options.channelOptions,
  ) as unknown as RawRecoClient;

  return {
    getRecommendations(userId, n = 0, { deadlineMs, ...options } = {}) {
      const callOptions: CallOptions =
        deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
      return new Promise((resolve, reject) => {
        raw.GetRecommendations(
          create(GetRecommendationsRequestSchema, { userId, n, ...options }),
          new Metadata(),
          callOptions,
          (err, response) => (err || !response ? reject(err) : resolve(response)),
        );
      });
    },

    getSimilarItems(itemId, n = 0) {
      return new Promise((resolve, reject) => {
        raw.GetSimilarItems(
          create(GetSimilarItemsRequestSchema, { itemId, n }),
          new Metadata(),
          {},
          (err, response) => (err || !response ? reject(err) : resolve(response)),
        );
      });
    },

    getTrending(window, k = 0) {
      return new Promise((resolve, reject) => {
        raw.GetTrending(
          create(GetTrendingRequestSchema, { window: toWindowEnum(window), k }),
          new Metadata(),
          {},
          (err, response) => (err || !response ? reject(err) : resolve(response)),
        );
      });
    },

    streamTrending(window, k = 0) {
      const call = raw.StreamTrending(
        create(StreamTrendingRequestSchema, { window: toWindowEnum(window), k }),
        new Metadata(),
        {},
      );
      // A stream nobody iterates yet must not crash the process with an unhandled 'error'
      // event; the iterator below attaches its own listener and still sees every error.
      call.on("error", () => {});
      let cancelled = false;
      let ended = false;
      async function* updates(): AsyncGenerator<TrendingUpdate> {
        try {
          for await (const update of call) yield update as TrendingUpdate;
        } catch (err) {
          if (cancelled && isStatus(err, status.CANCELLED)) return;
          throw err;
        } finally {
          ended = true;
          // Breaking out of the loop early must end the call, or the server keeps sending.
          if (!cancelled) call.cancel();
        }
      }
      return Object.assign(updates(), {
        cancel() {
          if (cancelled || ended) return;
          cancelled = true;
          call.cancel();
        },
      });
    },

    close() {
      raw.close();
    },
  };
}

/** True when `err` is a gRPC error with `code`. */
export function isStatus(err: unknown, code: status): err is ServiceError {
  return err instanceof Error && (err as Partial<ServiceError>).code === code;
}

function toWindowEnum(window: TrendingWindow | TrendingWindowName): TrendingWindow {
  if (window === "1h") return TrendingWindow.ONE_HOUR;
  if (window === "24h") return TrendingWindow.ONE_DAY;
  return window;
}
