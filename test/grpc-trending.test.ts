import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  credentials,
  makeGenericClientConstructor,
  status,
  type ServiceError,
} from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { ReplaySubject } from "rxjs";
import type {
  RecoBackend,
  TrendingSnapshot,
  TrendingWindowName,
} from "../connectors/grpc/backend.js";
import {
  recoServiceDefinition,
  startGrpcServer,
  type GrpcServer,
} from "../connectors/grpc/server.js";
import {
  GetTrendingRequestSchema,
  StreamTrendingRequestSchema,
  TrendingWindow,
  type GetTrendingRequest,
  type TrendingUpdate,
} from "../proto/gen/reco/v1/reco_pb.js";

/*
 * StreamTrending on an idle input sent one message and then nothing, so a
 * client could not tell a quiet input from a dead connection; and only the newest window could
 * be had. Now an idle stream gets heartbeats, and GetTrending(window, k, at) answers the newest
 * window or the final of a past one.
 */

const HOUR = 3_600_000;
const T0 = Date.UTC(2019, 9, 1, 0, 0, 0);

const snap = (start: number, final: boolean, item = "a"): TrendingSnapshot => ({
  window: "1h",
  windowStart: start,
  windowEnd: start + HOUR,
  items: [{ itemId: item, score: 3, views: 1, clicks: 1, carts: 0, purchases: 0 }],
  final,
  watermark: start,
});

describe("trending over gRPC", () => {
  const subjects: Record<TrendingWindowName, ReplaySubject<TrendingSnapshot>> = {
    "1h": new ReplaySubject(1),
    "24h": new ReplaySubject(1),
  };
  const backend: RecoBackend = {
    isReady: () => true,
    getRecommendations: () => Promise.reject(new Error("not used")),
    trending: (w) => subjects[w].asObservable(),
  };
  let server: GrpcServer;
  let client: InstanceType<ReturnType<typeof makeGenericClientConstructor>>;

  beforeAll(async () => {
    server = await startGrpcServer({
      port: 0,
      backend,
      trendingHeartbeatMs: 200,
      keepTrendingFinals: true,
    });
    const Client = makeGenericClientConstructor(
      recoServiceDefinition,
      "reco.v1.RecommendationService",
    );
    client = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await server?.stop(1000);
  });

  const getTrending = (req: Omit<Partial<GetTrendingRequest>, "$typeName">) =>
    new Promise<TrendingUpdate>((resolve, reject) =>
      client.makeUnaryRequest(
        recoServiceDefinition.GetTrending.path,
        recoServiceDefinition.GetTrending.requestSerialize,
        recoServiceDefinition.GetTrending.responseDeserialize,
        create(GetTrendingRequestSchema, req),
        (err: ServiceError | null, res?: TrendingUpdate) => (err ? reject(err) : resolve(res!)),
      ),
    );

  it("sends heartbeats on an idle stream: no items before any data, then the newest list again", async () => {
    const call = client.makeServerStreamRequest(
      recoServiceDefinition.StreamTrending.path,
      recoServiceDefinition.StreamTrending.requestSerialize,
      recoServiceDefinition.StreamTrending.responseDeserialize,
      create(StreamTrendingRequestSchema, { window: TrendingWindow.ONE_DAY, k: 5 }),
    );
    const got: TrendingUpdate[] = [];
    call.on("data", (u: TrendingUpdate) => got.push(u));
    call.on("error", () => undefined);
    await vi.waitFor(() => expect(got.length).toBeGreaterThanOrEqual(2), { timeout: 3000 });
    expect(got[0]).toMatchObject({ heartbeat: true, window: TrendingWindow.ONE_DAY, items: [] });
    subjects["24h"].next({ ...snap(T0, false), window: "24h", windowEnd: T0 + 24 * HOUR });
    await vi.waitFor(() =>
      expect(got.some((u) => !u.heartbeat && u.items.length === 1)).toBe(true),
    );
    const n = got.length;
    // Nothing new: heartbeats repeat the newest list.
    await vi.waitFor(() => expect(got.length).toBeGreaterThan(n + 1), { timeout: 3000 });
    expect(got.at(-1)).toMatchObject({ heartbeat: true, final: false });
    expect(got.at(-1)!.items.map((i) => i.itemId)).toEqual(["a"]);
    call.cancel();
  });

  it("answers GetTrending with the newest window, or with `at` the final of a past one", async () => {
    subjects["1h"].next(snap(T0, false, "x"));
    subjects["1h"].next(snap(T0, true, "y"));
    subjects["1h"].next(snap(T0 + HOUR, false, "z"));
    const newest = await getTrending({ window: TrendingWindow.ONE_HOUR, k: 3 });
    expect(timestampMs(newest.windowStart!)).toBe(T0 + HOUR);
    expect(newest.items.map((i) => i.itemId)).toEqual(["z"]);
    const past = await getTrending({
      window: TrendingWindow.ONE_HOUR,
      k: 3,
      at: timestampFromMs(T0 + 30 * 60_000),
    });
    expect(past).toMatchObject({ final: true });
    expect(timestampMs(past.windowStart!)).toBe(T0);
    expect(past.items.map((i) => i.itemId)).toEqual(["y"]);
    const err = (await getTrending({
      window: TrendingWindow.ONE_HOUR,
      at: timestampFromMs(T0 - 5 * HOUR),
    }).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.NOT_FOUND);
    const bad = (await getTrending({ k: 101 }).catch((e: unknown) => e)) as ServiceError;
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
  });
});
