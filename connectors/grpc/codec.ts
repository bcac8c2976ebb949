import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import type { ReflectionService } from "@grpc/reflection";
import type { service as HealthService } from "grpc-health-check";
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
import {
  hasOptions,
  validateCount,
  validateId,
  validateRecommendOptions,
  type RecommendOptions,
  type Recommendations,
  type SimilarItems,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../../actors/contract/index.js";
import { InvalidArgumentError } from "./errors.js";
import { explain } from "../http/api-views.js";
import { encodeRecommendationsResponse, keepItemBytes } from "./response-bytes.js";

/**
 * The wire side of `reco.v1.RecommendationService`: the grpc-js service definition over the
 * protobuf-es descriptors, the descriptors served by reflection, request checks (the shared rules
 * of actors/contract/backend.ts) and the domain answers as response messages.
 */
export const SERVICE_NAME = RecommendationService.typeName;

/**
 * The grpc-js service definition of `reco.v1.RecommendationService`, built from the protobuf-es
 * descriptors: binary protobuf on the wire, generated message types in the handlers. Keys are the
 * proto method names (as @grpc/proto-loader would produce), `originalName` the camelCase ones.
 */
export const recoServiceDefinition = {
  GetRecommendations: methodDefinition(
    RecommendationService.method.getRecommendations,
    encodeRecommendationsResponse,
  ),
  StreamTrending: methodDefinition(RecommendationService.method.streamTrending),
  GetSimilarItems: methodDefinition(RecommendationService.method.getSimilarItems),
  GetTrending: methodDefinition(RecommendationService.method.getTrending),
} satisfies ServiceDefinition;

function methodDefinition<I extends DescMessage, O extends DescMessage>(
  method: {
    name: string;
    localName: string;
    methodKind: string;
    input: I;
    output: O;
  },
  encode?: (msg: MessageShape<O>) => Uint8Array,
): MethodDefinition<MessageShape<I>, MessageShape<O>> {
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
    responseSerialize: encode
      ? (msg) => toBuffer(encode(msg))
      : (msg) => toBuffer(toBinary(output, msg)),
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
export function reflectionPackageDefinition(
  healthServiceDefinition: typeof HealthService,
): ConstructorParameters<typeof ReflectionService>[0] {
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

export function validateRecommendationsRequest(req: GetRecommendationsRequest): {
  userId: string;
  n: number;
  options?: RecommendOptions;
} {
  assertDecoded(req, "reco.v1.GetRecommendationsRequest");
  // The rules are shared with the JSON/HTTP API (actors/contract/backend.ts).
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

export function validateSimilarRequest(req: GetSimilarItemsRequest): { itemId: string; n: number } {
  assertDecoded(req, "reco.v1.GetSimilarItemsRequest");
  return { itemId: validateId("item_id", req.itemId), n: validateCount("n", req.n) };
}

const SIMILAR_BASIS: Record<SimilarItems["basis"], SimilarBasis> = {
  CO_VISITATION: SimilarBasis.CO_VISITATION,
  SAME_CATEGORY_POPULAR: SimilarBasis.SAME_CATEGORY_POPULAR,
  POPULAR_FALLBACK: SimilarBasis.SIMILAR_POPULAR_FALLBACK,
};

export function toSimilarResponse(s: SimilarItems): GetSimilarItemsResponse {
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
      title: i.title ?? "",
      labels: i.labels ?? [],
    })),
    watermark: s.watermark === null ? undefined : toTimestamp(s.watermark),
    statusMessage: s.statusMessage,
  };
}

export function validateTrendingRequest(req: StreamTrendingRequest): {
  window: TrendingWindowName;
  k: number;
} {
  assertDecoded(req, "reco.v1.StreamTrendingRequest");
  return { window: windowName(req.window), k: validateCount("k", req.k) };
}

export function validateGetTrendingRequest(req: GetTrendingRequest): {
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

export function windowName(window: TrendingWindow): TrendingWindowName {
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

export function windowEnum(window: TrendingWindowName): TrendingWindow {
  return window === "24h" ? TrendingWindow.ONE_DAY : TrendingWindow.ONE_HOUR;
}

/** Counts travel as uint64; the backend's numbers are floats that should be whole. */
export function toUint64(value: number): bigint {
  return Number.isFinite(value) && value > 0 ? BigInt(Math.round(value)) : 0n;
}

/**
 * The response as a plain message shape: the literals carry `$typeName` and every field, so
 * `toBinary` takes them as they are. `create()` would copy each nested init object into a fresh
 * message field by field through reflection, 5% of the serving CPU for ten items (a profile of
 * the in-process app under h2load); the types below still make a new proto field a compile error.
 */
export function toRecommendationsResponse(recs: Recommendations): GetRecommendationsResponse {
  return {
    $typeName: "reco.v1.GetRecommendationsResponse",
    userId: recs.userId,
    items: convertedItems(recs.items),
    topCategories: toCategoryInterests(recs.topCategories),
    watermark: recs.watermark === null ? undefined : toTimestamp(recs.watermark),
    statusMessage: recs.statusMessage,
    stalenessMs: toUint64(
      Number.isFinite(recs.stalenessMs ?? 0) ? Math.round(recs.stalenessMs ?? 0) : 0,
    ),
    arm: recs.arm ?? "",
  };
}

/**
 * The proto items of an answer's items, built once per items array: a memoised answer is served
 * with the same array again and again (answers are never changed once made), and its proto items
 * then keep their encoded bytes too (response-bytes.ts).
 */
const protoItems = new WeakMap<Recommendations["items"], RecommendedItem[]>();
function convertedItems(from: Recommendations["items"]): RecommendedItem[] {
  const kept = protoItems.get(from);
  if (kept !== undefined) return kept;
  const items = toRecommendedItems(from);
  protoItems.set(from, items);
  keepItemBytes(items);
  return items;
}

function toRecommendedItems(from: Recommendations["items"]): RecommendedItem[] {
  const items: RecommendedItem[] = new Array<RecommendedItem>(from.length);
  for (let i = 0; i < from.length; i++) {
    const item = from[i]!;
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
      title: item.title ?? "",
      labels: item.labels ?? [],
    };
  }
  return items;
}

function toCategoryInterests(from: Recommendations["topCategories"]): CategoryInterest[] {
  const topCategories: CategoryInterest[] = new Array<CategoryInterest>(from.length);
  for (let i = 0; i < from.length; i++) {
    const c = from[i]!;
    topCategories[i] = {
      $typeName: "reco.v1.CategoryInterest",
      category: c.category,
      interest: toUint64(c.interest),
    };
  }
  return topCategories;
}

/** `timestampFromMs` as a plain message shape (that one goes through `create()`). */
export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return {
    $typeName: "google.protobuf.Timestamp",
    seconds: BigInt(seconds),
    nanos: (ms - seconds * 1000) * 1_000_000,
  };
}

export function toTrendingUpdate(
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
      title: entry.title ?? "",
      labels: entry.labels ?? [],
    })),
    final: snapshot.final,
    watermark: snapshot.watermark === null ? undefined : timestampFromMs(snapshot.watermark),
    weights: { ...snapshot.weights },
  });
}
