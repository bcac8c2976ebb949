import { status, type ServiceError } from "@grpc/grpc-js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Registry } from "prom-client";
import { Observable, Subject } from "rxjs";
import { expect, vi } from "vitest";
import type {
  RecoBackend,
  Recommendations,
  TrendingSnapshot,
  TrendingWindowName,
} from "../../connectors/grpc/backend.js";
import { createRecoClient, type RecoClient } from "../../connectors/grpc/client.js";
import type { GrpcServerOptions } from "../../connectors/grpc/options.js";
import { startGrpcServer, type GrpcServer } from "../../connectors/grpc/server.js";
import type { TrendingUpdate } from "../../proto/gen/reco/v1/reco_pb.js";

/**
 * The gRPC server's tests (test/grpc-server-*.test.ts) run it over a fake backend, so that each
 * test sets what the backend answers or streams and sees exactly what the server made of it:
 * the backend, its sample answer, trending snapshots numbered in their watermark, and ways to
 * read a stream, expect a status and read a counter.
 */

/** An in-memory backend whose answers each test sets. */
export function createFakeBackend() {
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

export function sampleRecommendations(userId: string): Recommendations {
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

export const HOUR = 3_600_000;
export const T0 = Date.UTC(2019, 10, 1, 0, 0, 0);

/** A 1 h snapshot whose sequence number travels in the watermark (T0 + seq). */
export function snapshot(
  seq: number,
  options: { items?: number; final?: boolean; start?: number } = {},
) {
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

export const seqOf = (update: TrendingUpdate): number =>
  update.watermark ? timestampMs(update.watermark) - T0 : -1;

/** Reads a trending stream in the background and lets the test wait for a given update. */
export function collect(stream: AsyncIterable<TrendingUpdate>) {
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

export async function expectStatus(promise: Promise<unknown>, code: status): Promise<ServiceError> {
  const err = (await promise.then(
    () => {
      throw new Error(`expected ${status[code]}, the call succeeded`);
    },
    (e: unknown) => e,
  )) as ServiceError;
  expect(status[err.code]).toBe(status[code]);
  return err;
}

export async function firstOf(
  stream: AsyncIterable<TrendingUpdate>,
): Promise<TrendingUpdate | undefined> {
  for await (const update of stream) return update;
  return undefined;
}

export async function counterValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
) {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

export type FakeBackend = ReturnType<typeof createFakeBackend>;

/** The fake as it starts (ready, no calls, the sample answer), the logger's warnings cleared. */
export function resetFake(fake: FakeBackend, logger: { warn: { mockClear(): unknown } }): void {
  fake.ready = true;
  fake.calls.length = 0;
  fake.answer = async (userId) => sampleRecommendations(userId);
  logger.warn.mockClear();
}

/** A server on a free port over a fake backend, with its own registry and a client to it. */
export async function startFakeServer(logger: GrpcServerOptions["logger"]): Promise<{
  fake: FakeBackend;
  registry: Registry;
  server: GrpcServer;
  address: string;
  client: RecoClient;
  /** Closes the client, then stops the server. */
  stop: () => Promise<void>;
}> {
  const fake = createFakeBackend();
  const registry = new Registry();
  const server = await startGrpcServer({ port: 0, backend: fake.backend, registry, logger });
  const address = `127.0.0.1:${server.port}`;
  const client = createRecoClient(address);
  const stop = async () => {
    client.close();
    await server.stop(1000);
  };
  return { fake, registry, server, address, client, stop };
}
