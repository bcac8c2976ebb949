import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { status } from "@grpc/grpc-js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Registry } from "prom-client";
import { Observable } from "rxjs";
import {
  BackendUnavailableError,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
} from "../connectors/grpc/backend.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/client.js";
import { CallCancelledError, DeadlineExceededError } from "../connectors/grpc/errors.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/server.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import {
  counterValue,
  expectStatus,
  sampleRecommendations,
  resetFake,
  startFakeServer,
  type FakeBackend,
} from "./helpers/grpc-server.js";

/**
 * GetRecommendations: the backend's answer mapped field by field, the request validated before
 * the backend is asked, and the backend's failures (not ready, unavailable, too slow, a bug)
 * mapped to gRPC statuses a client can act on, with no stack trace leaving the server; both
 * through the backend's promise and when it answers in place (recommendNow).
 */

describe("gRPC server", () => {
  let fake: FakeBackend;
  let client: RecoClient;
  let stop: () => Promise<void>;
  const logger = { info: vi.fn(), warn: vi.fn() };

  beforeAll(async () => {
    ({ fake, client, stop } = await startFakeServer(logger));
  });

  afterAll(async () => {
    await stop();
  });

  beforeEach(() => resetFake(fake, logger));

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
