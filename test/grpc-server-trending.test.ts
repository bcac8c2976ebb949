import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { status, type ServiceError } from "@grpc/grpc-js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Registry } from "prom-client";
import { createRecoClient, type RecoClient } from "../connectors/grpc/client.js";
import { startGrpcServer } from "../connectors/grpc/server.js";
import { TrendingWindow, type TrendingUpdate } from "../proto/gen/reco/v1/reco_pb.js";
import {
  HOUR,
  T0,
  collect,
  counterValue,
  createFakeBackend,
  expectStatus,
  firstOf,
  seqOf,
  snapshot,
  resetFake,
  startFakeServer,
  type FakeBackend,
} from "./helpers/grpc-server.js";

/**
 * StreamTrending: requests validated, updates streamed in order with their ranks, a cancelled
 * stream unsubscribed from the backend, a slow subscriber held to the latest state while a fast
 * one runs ahead, and open streams ended when the server stops. The request metrics are checked
 * here too, after those streams on the same server: the cancelled StreamTrending call they look
 * for is one of them.
 */

describe("gRPC server", () => {
  let fake: FakeBackend;
  let registry: Registry;
  let client: RecoClient;
  let address: string;
  let stop: () => Promise<void>;
  const logger = { info: vi.fn(), warn: vi.fn() };

  beforeAll(async () => {
    ({ fake, registry, address, client, stop } = await startFakeServer(logger));
  });

  afterAll(async () => {
    await stop();
  });

  beforeEach(() => resetFake(fake, logger));

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
