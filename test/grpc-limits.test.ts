import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  Metadata,
  credentials,
  makeGenericClientConstructor,
  status,
  type ServiceError,
} from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { Observable, Subject } from "rxjs";
import type { RecoBackend, Recommendations, TrendingSnapshot } from "../connectors/grpc/backend.js";
import { BackendUnavailableError } from "../connectors/grpc/backend.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/client.js";
import {
  CallCancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  ResourceExhaustedError,
  ServerShuttingDownError,
  toServiceError,
} from "../connectors/grpc/errors.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/server.js";
import { GetRecommendationsRequestSchema, TrendingWindow } from "../proto/gen/reco/v1/reco_pb.js";

/**
 * Limits and status codes of the gRPC façade: each limit has its status code and a
 * message naming the field; never UNKNOWN, never a stack trace.
 */

const answer = (userId: string, n: number): Recommendations => ({
  userId,
  items: Array.from({ length: n }, (_, i) => ({
    itemId: `p${i}`,
    score: n - i,
    rank: i + 1,
    category: "c",
    brand: "",
    averagePrice: 1,
    source: "POPULAR_FALLBACK",
    purchases: 1,
  })),
  topCategories: [],
  watermark: null,
  statusMessage: "",
});

function backend() {
  const trending = new Subject<TrendingSnapshot>();
  const calls: { userId: string; n: number }[] = [];
  const b: RecoBackend = {
    isReady: () => true,
    getRecommendations: async (userId, n) => {
      calls.push({ userId, n });
      return answer(userId, n);
    },
    trending: () => trending,
  };
  return { b, calls, trending };
}

/** A client that sends raw bytes to a method, as a broken or hostile client would. */
function rawClient(address: string) {
  const identity = (b: Buffer) => b;
  const Ctor = makeGenericClientConstructor(
    {
      get: {
        path: "/reco.v1.RecommendationService/GetRecommendations",
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
      trending: {
        path: "/reco.v1.RecommendationService/StreamTrending",
        requestStream: false,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    "raw",
  );
  type Raw = {
    get(b: Buffer, m: Metadata, o: object, cb: (err: ServiceError | null) => void): void;
    trending(b: Buffer, m: Metadata): NodeJS.EventEmitter & { cancel(): void };
    close(): void;
  };
  const c = new Ctor(address, credentials.createInsecure()) as unknown as Raw;
  return {
    get: (body: Uint8Array) =>
      new Promise<ServiceError | null>((resolve) =>
        c.get(Buffer.from(body), new Metadata(), {}, (err) => resolve(err)),
      ),
    trending: (body: Uint8Array) =>
      new Promise<ServiceError | null>((resolve) => {
        const call = c.trending(Buffer.from(body), new Metadata());
        call.on("error", (err: ServiceError) => resolve(err));
        call.on("data", () => {
          call.cancel();
          resolve(null);
        });
      }),
    close: () => c.close(),
  };
}

async function statusOf(p: Promise<unknown>): Promise<ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
  if (!err) throw new Error("expected the call to fail");
  return err;
}

describe("gRPC limits and status codes", () => {
  let server: GrpcServer;
  let small: GrpcServer;
  let client: RecoClient;
  let smallClient: RecoClient;
  let raw: ReturnType<typeof rawClient>;
  const fake = backend();

  beforeAll(async () => {
    server = await startGrpcServer({ port: 0, backend: fake.b });
    small = await startGrpcServer({ port: 0, backend: fake.b, maxMessageBytes: 1024 });
    client = createRecoClient(`127.0.0.1:${server.port}`);
    smallClient = createRecoClient(`127.0.0.1:${small.port}`);
    raw = rawClient(`127.0.0.1:${server.port}`);
  });

  afterAll(async () => {
    client.close();
    smallClient.close();
    raw.close();
    await server.stop(500);
    await small.stop(500);
  });

  describe("maximum message size", () => {
    it("refuses a request over the default 64 KiB with RESOURCE_EXHAUSTED", async () => {
      const err = await statusOf(client.getRecommendations("u".repeat(70 * 1024), 5));
      expect(status[err.code]).toBe("RESOURCE_EXHAUSTED");
      expect(err.details).toMatch(/larger than max/);
    });

    it("honours maxMessageBytes (GRPC_MAX_MESSAGE_BYTES)", async () => {
      const err = await statusOf(smallClient.getRecommendations("u".repeat(2000), 5));
      expect(status[err.code]).toBe("RESOURCE_EXHAUSTED");
      expect(err.details).toContain("1024");
      // Just under the limit the request reaches validation instead.
      const near = await statusOf(smallClient.getRecommendations("u".repeat(1000), 5));
      expect(status[near.code]).toBe("INVALID_ARGUMENT");
      expect(near.details).toContain("user_id");
    });
  });

  describe("n", () => {
    it.each([1, 37, 100])("accepts n = %i", async (n) => {
      expect((await client.getRecommendations("u", n)).items).toHaveLength(n);
    });

    it("treats n = 0 (unset) as 10", async () => {
      expect((await client.getRecommendations("u", 0)).items).toHaveLength(10);
    });

    it.each([101, 4_294_967_295])("refuses n = %i with INVALID_ARGUMENT naming n", async (n) => {
      const err = await statusOf(client.getRecommendations("u", n));
      expect(status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toBe(`n must be between 1 and 100, got ${n}`);
    });
  });

  describe("user_id", () => {
    it("accepts 128 characters and refuses 129, naming user_id", async () => {
      await client.getRecommendations("u".repeat(128), 1);
      const err = await statusOf(client.getRecommendations("u".repeat(129), 1));
      expect(status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toBe("user_id must be at most 128 characters, got 129");
    });

    it.each(["", "   ", "\t\n"])("refuses %j with INVALID_ARGUMENT naming user_id", async (u) => {
      const err = await statusOf(client.getRecommendations(u, 1));
      expect(status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toMatch(/^user_id must not be (empty|blank)/);
    });
  });

  describe("StreamTrending", () => {
    const first = async (window: TrendingWindow, k: number) => {
      const stream = client.streamTrending(window, k);
      for await (const u of stream) {
        stream.cancel();
        return u;
      }
      return undefined;
    };

    it.each([101, 4_294_967_295])("refuses k = %i with INVALID_ARGUMENT naming k", async (k) => {
      const err = await statusOf(first(TrendingWindow.ONE_HOUR, k));
      expect(status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toBe(`k must be between 1 and 100, got ${k}`);
    });

    it.each([3, -1])("refuses the unknown window enum value %i naming window", async (w) => {
      const err = await statusOf(first(w as TrendingWindow, 5));
      expect(status[err.code]).toBe("INVALID_ARGUMENT");
      expect(err.details).toBe(`window must be ONE_HOUR (1) or ONE_DAY (2), got ${w}`);
    });

    it("sends k = 0 (unset) as the top 10", async () => {
      const got = first(TrendingWindow.ONE_DAY, 0);
      await new Promise((r) => setTimeout(r, 100));
      fake.trending.next({
        window: "24h",
        windowStart: 0,
        windowEnd: 3_600_000,
        items: Array.from({ length: 30 }, (_, i) => ({
          itemId: `i${i}`,
          score: 30 - i,
          views: 1,
          clicks: 1,
        })),
        final: false,
        watermark: null,
      });
      expect((await got)?.items).toHaveLength(10);
    });

    it("refuses a stream beyond maxTrendingStreams with RESOURCE_EXHAUSTED", async () => {
      let subscribers = 0;
      const counting: RecoBackend = {
        ...fake.b,
        trending: () =>
          new Observable<TrendingSnapshot>(() => {
            subscribers++;
            return () => void subscribers--;
          }),
      };
      const capped = await startGrpcServer({ port: 0, backend: counting, maxTrendingStreams: 2 });
      const c = createRecoClient(`127.0.0.1:${capped.port}`);
      try {
        const open = [c.streamTrending("1h", 1), c.streamTrending("24h", 1)];
        await vi.waitFor(() => expect(subscribers).toBe(2));
        const third = c.streamTrending("1h", 1);
        const err = await statusOf(third[Symbol.asyncIterator]().next());
        expect(status[err.code]).toBe("RESOURCE_EXHAUSTED");
        expect(err.details).toBe("too many open trending streams (2): retry later");
        for (const s of open) s.cancel();
        await vi.waitFor(() => expect(subscribers).toBe(0));
      } finally {
        c.close();
        await capped.stop(200);
      }
    });
  });

  describe("malformed request bodies", () => {
    it("answers INVALID_ARGUMENT, not INTERNAL, for bytes that are not protobuf", async () => {
      const truncated = Uint8Array.from([0x0a, 0xff, 0xff]);
      const err = await raw.get(truncated);
      expect(status[err!.code]).toBe("INVALID_ARGUMENT");
      expect(err!.details).toMatch(
        /^request is not a valid reco\.v1\.GetRecommendationsRequest message: /,
      );
      const badUtf8 = Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]);
      expect(status[(await raw.get(badUtf8))!.code]).toBe("INVALID_ARGUMENT");
      const trendingErr = await raw.trending(truncated);
      expect(status[trendingErr!.code]).toBe("INVALID_ARGUMENT");
      expect(trendingErr!.details).toMatch(/reco\.v1\.StreamTrendingRequest/);
    });

    it("still serves a well-formed body sent the same way", async () => {
      const body = toBinary(
        GetRecommendationsRequestSchema,
        create(GetRecommendationsRequestSchema, { userId: "u", n: 2 }),
      );
      expect(await raw.get(body)).toBeNull();
    });

    it("never answers UNKNOWN or INTERNAL for random bytes (property)", async () => {
      const seen = new Set<string>();
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), async (bytes) => {
          const err = await raw.get(bytes);
          const code = err ? status[err.code]! : "OK";
          seen.add(code);
          expect(["OK", "INVALID_ARGUMENT"]).toContain(code);
          if (err) expect(err.details).not.toMatch(/\n\s+at /);
        }),
        { seed: 5, numRuns: 150 },
      );
      expect(seen.has("INVALID_ARGUMENT")).toBe(true);
    });
  });
});

describe("toServiceError: the one mapping", () => {
  it.each([
    ["InvalidArgumentError", new InvalidArgumentError("n", "n must be 1..100"), "INVALID_ARGUMENT"],
    ["BackendUnavailableError", new BackendUnavailableError("starting"), "UNAVAILABLE"],
    ["ServerShuttingDownError", new ServerShuttingDownError(), "UNAVAILABLE"],
    ["DeadlineExceededError", new DeadlineExceededError(), "DEADLINE_EXCEEDED"],
    ["TimeoutError", new DOMException("timed out", "TimeoutError"), "DEADLINE_EXCEEDED"],
    ["CallCancelledError", new CallCancelledError(), "CANCELLED"],
    ["AbortError", new DOMException("aborted", "AbortError"), "CANCELLED"],
    [
      "ResourceExhaustedError",
      new ResourceExhaustedError("too many streams"),
      "RESOURCE_EXHAUSTED",
    ],
    ["TypeError", new TypeError("x is undefined"), "INTERNAL"],
  ] as const)("maps %s to %s", (_name, err, code) => {
    const s = toServiceError(err);
    expect(status[s.code]).toBe(code);
    if (code !== "INTERNAL") expect(s.details).toBe((err as Error).message);
  });

  it("never yields UNKNOWN or a stack trace, whatever is thrown (property)", () => {
    fc.assert(
      fc.property(fc.anything(), (thrown) => {
        const s = toServiceError(thrown);
        expect(s.code).not.toBe(status.UNKNOWN);
        expect(s.details).not.toMatch(/\n\s+at /);
      }),
      { seed: 5, numRuns: 300 },
    );
  });
});
