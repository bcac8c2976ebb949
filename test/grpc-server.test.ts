import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Metadata,
  credentials,
  loadPackageDefinition,
  makeGenericClientConstructor,
  status,
  type Client,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, timestampMs } from "@bufbuild/protobuf/wkt";
import { Registry } from "prom-client";
import { Observable, Subject } from "rxjs";
import {
  BackendUnavailableError,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../connectors/grpc/backend.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/client.js";
import { CallCancelledError, DeadlineExceededError } from "../connectors/grpc/errors.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/server.js";
import { Source, TrendingWindow, type TrendingUpdate } from "../proto/gen/reco/v1/reco_pb.js";

/** An in-memory backend whose answers each test sets. */
function createFakeBackend() {
  const subjects: Record<TrendingWindowName, Subject<TrendingSnapshot>> = {
    "1h": new Subject(),
    "24h": new Subject(),
  };
  const subscribers: Record<TrendingWindowName, number> = { "1h": 0, "24h": 0 };
  const fake = {
    ready: true,
    calls: [] as { userId: string; n: number; signal: AbortSignal }[],
    answer: async (userId: string): Promise<Recommendations> => sampleRecommendations(userId),
    subjects,
    subscribers,
    backend: {
      isReady: () => fake.ready,
      getRecommendations(userId, n, signal) {
        fake.calls.push({ userId, n, signal });
        return fake.answer(userId, n, signal);
      },
      trending: (window) =>
        new Observable<TrendingSnapshot>((subscriber) => {
          subscribers[window] += 1;
          const inner = subjects[window].subscribe(subscriber);
          return () => {
            subscribers[window] -= 1;
            inner.unsubscribe();
          };
        }),
    } satisfies RecoBackend,
  } as {
    ready: boolean;
    calls: { userId: string; n: number; signal: AbortSignal }[];
    answer: (userId: string, n: number, signal: AbortSignal) => Promise<Recommendations>;
    subjects: typeof subjects;
    subscribers: typeof subscribers;
    backend: RecoBackend;
  };
  return fake;
}

function sampleRecommendations(userId: string): Recommendations {
  return {
    userId,
    items: [
      {
        itemId: "1004856",
        score: 12.5,
        rank: 1,
        category: "electronics.smartphone",
        brand: "samsung",
        averagePrice: 130.76,
        source: "PERSONALIZED",
        purchases: 42,
      },
      {
        itemId: "5100816",
        score: 3,
        rank: 2,
        category: "appliances.kitchen",
        brand: "",
        averagePrice: 0,
        source: "POPULAR_FALLBACK",
        purchases: 7,
      },
    ],
    topCategories: [{ category: "electronics.smartphone", interest: 9 }],
    watermark: Date.UTC(2019, 10, 1, 12, 0, 0),
    statusMessage: "",
  };
}

const HOUR = 3_600_000;
const T0 = Date.UTC(2019, 10, 1, 0, 0, 0);

/** A 1 h snapshot whose sequence number travels in the watermark (T0 + seq). */
function snapshot(seq: number, options: { items?: number; final?: boolean; start?: number } = {}) {
  const count = options.items ?? 3;
  const start = options.start ?? T0;
  return {
    window: "1h",
    windowStart: start,
    windowEnd: start + HOUR,
    items: Array.from({ length: count }, (_, i) => ({
      itemId: `item-${String(i).padStart(3, "0")}-${"x".repeat(100)}`,
      score: count - i,
      views: 10 * (count - i),
      clicks: count - i,
    })),
    final: options.final ?? false,
    watermark: T0 + seq,
  } satisfies TrendingSnapshot;
}

const seqOf = (update: TrendingUpdate): number =>
  update.watermark ? timestampMs(update.watermark) - T0 : -1;

/** Reads a trending stream in the background and lets the test wait for a given update. */
function collect(stream: AsyncIterable<TrendingUpdate>) {
  const updates: TrendingUpdate[] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (const update of stream) updates.push(update);
    } catch (err) {
      error = err;
    }
  })();
  return {
    updates,
    done,
    get error() {
      return error;
    },
    waitFor: (predicate: (u: TrendingUpdate) => boolean) =>
      vi.waitFor(
        () => {
          if (!updates.some(predicate)) throw new Error("not yet");
        },
        { timeout: 5000, interval: 1 },
      ),
  };
}

async function expectStatus(promise: Promise<unknown>, code: status): Promise<ServiceError> {
  const err = (await promise.then(
    () => {
      throw new Error(`expected ${status[code]}, the call succeeded`);
    },
    (e: unknown) => e,
  )) as ServiceError;
  expect(status[err.code]).toBe(status[code]);
  return err;
}

async function firstOf(stream: AsyncIterable<TrendingUpdate>): Promise<TrendingUpdate | undefined> {
  for await (const update of stream) return update;
  return undefined;
}

async function counterValue(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("gRPC server", () => {
  let fake: ReturnType<typeof createFakeBackend>;
  let registry: Registry;
  let server: GrpcServer;
  let client: RecoClient;
  let address: string;
  const logger = { info: vi.fn(), warn: vi.fn() };

  beforeAll(async () => {
    fake = createFakeBackend();
    registry = new Registry();
    server = await startGrpcServer({ port: 0, backend: fake.backend, registry, logger });
    address = `127.0.0.1:${server.port}`;
    client = createRecoClient(address);
  });

  afterAll(async () => {
    client.close();
    await server.stop(1000);
  });

  beforeEach(() => {
    fake.ready = true;
    fake.calls.length = 0;
    fake.answer = async (userId) => sampleRecommendations(userId);
    logger.warn.mockClear();
  });

  describe("GetRecommendations", () => {
    it("maps the backend's answer to the response field by field", async () => {
      const response = await client.getRecommendations("u1", 2);

      expect(fake.calls[0]).toMatchObject({ userId: "u1", n: 2 });
      expect(response.userId).toBe("u1");
      expect(response.items).toHaveLength(2);
      expect(response.items[0]).toMatchObject({
        itemId: "1004856",
        score: 12.5,
        rank: 1,
        category: "electronics.smartphone",
        brand: "samsung",
        averagePrice: 130.76,
        source: Source.PERSONALIZED,
        purchases: 42n,
      });
      expect(response.items[1]?.source).toBe(Source.POPULAR_FALLBACK);
      expect(response.topCategories.map((c) => [c.category, c.interest])).toEqual([
        ["electronics.smartphone", 9n],
      ]);
      expect(response.watermark && timestampMs(response.watermark)).toBe(
        Date.UTC(2019, 10, 1, 12, 0, 0),
      );
      expect(response.statusMessage).toBe("");
    });

    it("leaves the watermark unset and passes the status message before any data", async () => {
      fake.answer = async (userId) => ({
        userId,
        items: [],
        topCategories: [],
        watermark: null,
        statusMessage: "no events processed yet",
      });
      const response = await client.getRecommendations("u1");
      expect(response.watermark).toBeUndefined();
      expect(response.items).toEqual([]);
      expect(response.statusMessage).toBe("no events processed yet");
    });

    it("asks the backend for 10 items when n is 0", async () => {
      await client.getRecommendations("u1", 0);
      expect(fake.calls[0]?.n).toBe(10);
    });

    it("rejects an empty user id with INVALID_ARGUMENT", async () => {
      const err = await expectStatus(client.getRecommendations("", 5), status.INVALID_ARGUMENT);
      expect(err.details).toBe("user_id must not be empty");
      expect(fake.calls).toHaveLength(0);
    });

    it("rejects a user id longer than 128 characters with INVALID_ARGUMENT", async () => {
      const err = await expectStatus(
        client.getRecommendations("u".repeat(129), 5),
        status.INVALID_ARGUMENT,
      );
      expect(err.details).toContain("user_id");
      expect(err.details).toContain("129");
    });

    it("rejects n = 101 with INVALID_ARGUMENT naming the field and the value", async () => {
      const err = await expectStatus(client.getRecommendations("u1", 101), status.INVALID_ARGUMENT);
      expect(err.details).toBe("n must be between 1 and 100, got 101");
    });

    it("answers UNAVAILABLE while the backend is not ready", async () => {
      fake.ready = false;
      const err = await expectStatus(client.getRecommendations("u1", 5), status.UNAVAILABLE);
      expect(err.details).toMatch(/not available yet/);
      expect(fake.calls).toHaveLength(0);
    });

    it("answers UNAVAILABLE when the backend throws BackendUnavailableError", async () => {
      fake.answer = async () => {
        throw new BackendUnavailableError("state store is replaying");
      };
      const err = await expectStatus(client.getRecommendations("u1", 5), status.UNAVAILABLE);
      expect(err.details).toBe("state store is replaying");
    });

    it("answers DEADLINE_EXCEEDED and aborts the backend's signal when the backend is too slow", async () => {
      fake.answer = (_userId, _n, signal) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => resolve(sampleRecommendations("late")), 5000);
          signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(signal.reason);
          });
        });
      await expectStatus(
        client.getRecommendations("u1", 5, { deadlineMs: 100 }),
        status.DEADLINE_EXCEEDED,
      );
      const signal = fake.calls[0]?.signal;
      await vi.waitFor(() => expect(signal?.aborted).toBe(true));
      // The server's deadline counts from when it received the call, so under load the client's
      // own deadline can fire first and cancel the stream: either way the backend is told to stop.
      expect(
        signal?.reason instanceof DeadlineExceededError ||
          signal?.reason instanceof CallCancelledError,
      ).toBe(true);
    });

    it("answers INTERNAL with a short message and no stack trace when the backend throws", async () => {
      fake.answer = async () => {
        throw new TypeError("cannot read properties of undefined (reading 'score')");
      };
      const err = await expectStatus(client.getRecommendations("u1", 5), status.INTERNAL);
      expect(err.details).not.toMatch(/\n|\bat |TypeError|score/);
      expect(logger.warn).toHaveBeenCalledWith(
        expect.objectContaining({ method: "GetRecommendations", err: expect.any(TypeError) }),
        expect.any(String),
      );
    });
  });

  describe("StreamTrending", () => {
    it("rejects k = 101 with INVALID_ARGUMENT", async () => {
      const err = await expectStatus(
        firstOf(client.streamTrending("1h", 101)),
        status.INVALID_ARGUMENT,
      );
      expect(err.details).toBe("k must be between 1 and 100, got 101");
    });

    it("rejects an unknown window enum value with INVALID_ARGUMENT", async () => {
      const err = await expectStatus(
        firstOf(client.streamTrending(7 as TrendingWindow, 5)),
        status.INVALID_ARGUMENT,
      );
      expect(err.details).toContain("window");
      expect(err.details).toContain("7");
    });

    it("streams the unspecified window as one hour, in order, with ranks 1..k", async () => {
      const stream = client.streamTrending(TrendingWindow.TRENDING_WINDOW_UNSPECIFIED, 2);
      const reader = collect(stream);
      await vi.waitFor(() => expect(fake.subscribers["1h"]).toBe(1));

      fake.subjects["1h"].next(snapshot(1));
      fake.subjects["1h"].next(snapshot(2));
      fake.subjects["1h"].next(snapshot(3, { final: true }));
      await reader.waitFor((u) => seqOf(u) === 3);

      expect(reader.updates.map(seqOf)).toEqual([1, 2, 3]);
      const last = reader.updates[2] as TrendingUpdate;
      expect(last.window).toBe(TrendingWindow.ONE_HOUR);
      expect(last.final).toBe(true);
      expect(last.windowStart && timestampMs(last.windowStart)).toBe(T0);
      expect(last.windowEnd && timestampMs(last.windowEnd)).toBe(T0 + HOUR);
      expect(last.items.map((i) => [i.rank, i.score, i.views, i.clicks])).toEqual([
        [1, 3, 30n, 3n],
        [2, 2, 20n, 2n],
      ]);

      stream.cancel();
      await reader.done;
      expect(reader.error).toBeUndefined();
    });

    it("unsubscribes from the backend when the client cancels", async () => {
      const stream = client.streamTrending("24h", 5);
      const reader = collect(stream);
      await vi.waitFor(() => expect(fake.subscribers["24h"]).toBe(1));
      expect(await counterValue(registry, "grpc_trending_subscribers")).toBe(1);

      stream.cancel();
      await reader.done;
      await vi.waitFor(() => expect(fake.subscribers["24h"]).toBe(0));
      expect(await counterValue(registry, "grpc_trending_subscribers")).toBe(0);
    });

    it("lets a fast subscriber run ahead while a slow one keeps only the latest state and every final", async () => {
      // Own connections, so the two subscribers share no HTTP/2 flow-control window.
      const own = { channelOptions: { "grpc.use_local_subchannel_pool": 1 } };
      const fastClient = createRecoClient(address, own);
      const slowClient = createRecoClient(address, own);
      try {
        const slowStream = slowClient.streamTrending("1h", 100);
        const fastStream = fastClient.streamTrending("1h", 100);
        const fast = collect(fastStream);
        await vi.waitFor(() => expect(fake.subscribers["1h"]).toBe(2));
        const droppedBefore = await counterValue(registry, "grpc_trending_dropped_updates_total");

        // The slow subscriber reads the first update, then nothing until the end. (A grpc-js
        // client that never reads at all buffers without bound on its side, so the server would
        // see no backpressure; one that has started reading stops the HTTP/2 window instead.)
        const slowUpdates = slowStream[Symbol.asyncIterator]();
        const slowFirst = slowUpdates.next();
        fake.subjects["1h"].next(snapshot(1, { items: 100 }));
        expect(seqOf((await slowFirst).value as TrendingUpdate)).toBe(1);

        // ~12 KB per update, far more than the HTTP/2 window and the stream buffers hold.
        const n = 200;
        for (let seq = 2; seq <= n; seq++) {
          fake.subjects["1h"].next(snapshot(seq, { items: 100 }));
          await fast.waitFor((u) => seqOf(u) === seq);
        }
        fake.subjects["1h"].next(snapshot(n + 1, { items: 100, final: true }));
        fake.subjects["1h"].next(snapshot(n + 2, { items: 100, start: T0 + HOUR }));
        await fast.waitFor((u) => seqOf(u) === n + 2);

        // The fast subscriber saw every update, in order, while the slow one was stuck.
        expect(fast.updates.map(seqOf)).toEqual(Array.from({ length: n + 2 }, (_, i) => i + 1));
        const dropped =
          (await counterValue(registry, "grpc_trending_dropped_updates_total")) - droppedBefore;
        expect(dropped).toBeGreaterThan(0);

        const slow = collect({ [Symbol.asyncIterator]: () => slowUpdates });
        await slow.waitFor((u) => seqOf(u) === n + 2);
        const seqs = slow.updates.map(seqOf);
        // Every update reached the slow subscriber or was counted as dropped, never both.
        expect(1 + seqs.length + dropped).toBe(n + 2);
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        expect(seqs.slice(-2)).toEqual([n + 1, n + 2]);
        expect(slow.updates.at(-2)?.final).toBe(true);

        slowStream.cancel();
        fastStream.cancel();
        await Promise.all([slow.done, fast.done]);
      } finally {
        fastClient.close();
        slowClient.close();
      }
    });
  });

  describe("health and reflection", () => {
    const HealthClient = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");

    function checkHealth(serviceName: string): Promise<string> {
      const health = new HealthClient(address, credentials.createInsecure());
      return new Promise<string>((resolve, reject) => {
        health.Check(
          { service: serviceName },
          (err: ServiceError | null, res?: { status: string }) =>
            err || !res ? reject(err) : resolve(res.status),
        );
      }).finally(() => health.close());
    }

    it("reports SERVING for the server and the service, NOT_SERVING after setServing(false)", async () => {
      expect(await checkHealth("")).toBe("SERVING");
      expect(await checkHealth("reco.v1.RecommendationService")).toBe("SERVING");
      server.setServing(false);
      try {
        expect(await checkHealth("reco.v1.RecommendationService")).toBe("NOT_SERVING");
      } finally {
        server.setServing(true);
      }
    });

    type ReflectionResponse = {
      listServicesResponse?: { service: { name: string }[] };
      fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      errorResponse?: { errorCode: number; errorMessage: string };
    };

    /** One request/response exchange with the reflection service of `version`. */
    async function reflect(
      version: "v1" | "v1alpha",
      request: Record<string, string>,
    ): Promise<ReflectionResponse> {
      const root = dirname(createRequire(import.meta.url).resolve("@grpc/reflection/package.json"));
      const definition = loadSync(
        join(root, `build/proto/grpc/reflection/${version}/reflection.proto`),
      );
      const grpcPackage = loadPackageDefinition(definition) as unknown as {
        grpc: {
          reflection: Record<string, { ServerReflection: new (...args: unknown[]) => Client }>;
        };
      };
      const Reflection = grpcPackage.grpc.reflection[version]?.ServerReflection;
      if (!Reflection) throw new Error(`no ServerReflection in ${version}`);
      const reflection = new Reflection(address, credentials.createInsecure()) as Client & {
        ServerReflectionInfo(metadata: Metadata): ClientDuplexStream<object, ReflectionResponse>;
      };
      try {
        const call = reflection.ServerReflectionInfo(new Metadata());
        const response = new Promise<ReflectionResponse>((resolve, reject) => {
          call.once("data", resolve);
          call.once("error", reject);
        });
        call.write(request);
        call.end();
        return await response;
      } finally {
        reflection.close();
      }
    }

    it.each(["v1", "v1alpha"] as const)(
      "lists reco.v1.RecommendationService and serves its file over reflection %s",
      async (version) => {
        const list = await reflect(version, { listServices: "*" });
        const names = list.listServicesResponse?.service.map((s) => s.name) ?? [];
        expect(names).toContain("reco.v1.RecommendationService");
        expect(names).toContain("grpc.health.v1.Health");

        const file = await reflect(version, {
          fileContainingSymbol: "reco.v1.RecommendationService",
        });
        const protos = (file.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
          fromBinary(FileDescriptorProtoSchema, bytes),
        );
        const reco = protos.find((p) => p.name === "reco/v1/reco.proto");
        expect(reco?.service.map((s) => s.name)).toEqual(["RecommendationService"]);
        expect(reco?.service[0]?.method.map((m) => m.name)).toEqual([
          "GetRecommendations",
          "StreamTrending",
          "GetSimilarItems",
          "GetTrending",
        ]);
        // Its import comes along, so a client can resolve google.protobuf.Timestamp.
        expect(protos.map((p) => p.name)).toContain("google/protobuf/timestamp.proto");
      },
    );
  });

  describe("metrics", () => {
    it("counts requests by method and code and observes their duration", async () => {
      const labels = { method: "GetRecommendations" };
      const ok = await counterValue(registry, "grpc_requests_total", { ...labels, code: "OK" });
      const bad = await counterValue(registry, "grpc_requests_total", {
        ...labels,
        code: "INVALID_ARGUMENT",
      });
      await client.getRecommendations("u1", 3);
      await expectStatus(client.getRecommendations("", 3), status.INVALID_ARGUMENT);

      expect(await counterValue(registry, "grpc_requests_total", { ...labels, code: "OK" })).toBe(
        ok + 1,
      );
      expect(
        await counterValue(registry, "grpc_requests_total", {
          ...labels,
          code: "INVALID_ARGUMENT",
        }),
      ).toBe(bad + 1);
      const text = await registry.metrics();
      expect(text).toMatch(
        /grpc_request_duration_seconds_count\{method="GetRecommendations"\} \d+/,
      );
      expect(text).toMatch(/grpc_requests_total\{method="StreamTrending",code="CANCELLED"\} \d+/);
    });
  });
});

describe("GetRecommendations answered in place (RecoBackend.recommendNow)", () => {
  const registry = new Registry();
  const logger = { info: vi.fn(), warn: vi.fn() };
  let now: (userId: string, n: number) => Recommendations | undefined;
  let asked: { userId: string; n: number }[] = [];
  let server: GrpcServer;
  let client: RecoClient;
  beforeAll(async () => {
    const backend: RecoBackend = {
      isReady: () => true,
      recommendNow: (userId, n) => {
        asked.push({ userId, n });
        return now(userId, n);
      },
      getRecommendations: async (userId) => ({
        ...sampleRecommendations(userId),
        statusMessage: "async",
      }),
      trending: () => new Observable<TrendingSnapshot>(),
    };
    server = await startGrpcServer({ port: 0, backend, registry, logger });
    client = createRecoClient(`127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    client.close();
    await server.stop(1000);
  });
  beforeEach(() => {
    asked = [];
    now = (userId) => ({ ...sampleRecommendations(userId), stalenessMs: 1234.4 });
    logger.warn.mockClear();
  });

  it("answers what recommendNow returns, staleness_ms included, and counts it as OK", async () => {
    const ok = await counterValue(registry, "grpc_requests_total", { code: "OK" });
    const response = await client.getRecommendations("u7", 0);
    expect(asked).toEqual([{ userId: "u7", n: 10 }]);
    expect(response.userId).toBe("u7");
    expect(response.items.map((i) => [i.itemId, i.rank, i.source, i.purchases])).toEqual([
      ["1004856", 1, Source.PERSONALIZED, 42n],
      ["5100816", 2, Source.POPULAR_FALLBACK, 7n],
    ]);
    expect(response.stalenessMs).toBe(1234n);
    expect(response.statusMessage).toBe("");
    expect(await counterValue(registry, "grpc_requests_total", { code: "OK" })).toBe(ok + 1);
    expect(await registry.metrics()).toMatch(
      /grpc_request_duration_seconds_count\{method="GetRecommendations"\} [1-9]/,
    );
  });

  it("asks getRecommendations when recommendNow returns undefined", async () => {
    now = () => undefined;
    const response = await client.getRecommendations("u7", 3);
    expect(asked).toHaveLength(1);
    expect(response.statusMessage).toBe("async");
  });

  it("maps a thrown BackendUnavailableError to UNAVAILABLE", async () => {
    now = () => {
      throw new BackendUnavailableError("partition 3 is not serving yet (starting or restarting)");
    };
    const before = await counterValue(registry, "grpc_requests_total", { code: "UNAVAILABLE" });
    const err = await expectStatus(client.getRecommendations("u1", 5), status.UNAVAILABLE);
    expect(err.details).toBe("partition 3 is not serving yet (starting or restarting)");
    expect(await counterValue(registry, "grpc_requests_total", { code: "UNAVAILABLE" })).toBe(
      before + 1,
    );
  });

  it("maps anything else thrown to INTERNAL without a stack trace, and logs it", async () => {
    now = () => {
      throw new TypeError("cannot read properties of undefined (reading 'score')");
    };
    const err = await expectStatus(client.getRecommendations("u1", 5), status.INTERNAL);
    expect(err.details).not.toMatch(/\n|\bat |TypeError|score/);
    expect(logger.warn).toHaveBeenCalledWith(
      expect.objectContaining({ method: "GetRecommendations", err: expect.any(TypeError) }),
      expect.any(String),
    );
  });

  it("validates before asking: INVALID_ARGUMENT for an empty user id or n = 101", async () => {
    await expectStatus(client.getRecommendations("", 5), status.INVALID_ARGUMENT);
    await expectStatus(client.getRecommendations("u1", 101), status.INVALID_ARGUMENT);
    expect(asked).toHaveLength(0);
  });
});

describe("gRPC server shutdown", () => {
  it("ends open trending streams with UNAVAILABLE and reports NOT_SERVING when it stops", async () => {
    const fake = createFakeBackend();
    const server = await startGrpcServer({ port: 0, backend: fake.backend });
    const client = createRecoClient(`127.0.0.1:${server.port}`);
    try {
      const reader = collect(client.streamTrending("1h", 5));
      await vi.waitFor(() => expect(fake.subscribers["1h"]).toBe(1));
      await server.stop(2000);
      await reader.done;
      expect((reader.error as ServiceError | undefined)?.code).toBe(status.UNAVAILABLE);
      expect(fake.subscribers["1h"]).toBe(0);
    } finally {
      client.close();
    }
  });
});
