import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry, Counter, Gauge } from "prom-client";
import { BehaviorSubject, type Observable, type Subject } from "rxjs";
import {
  BackendUnavailableError,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../actors/contract/index.js";
import { startApiServer, type ApiServer } from "../connectors/http/api.js";
import { parsePrometheusText } from "../connectors/http/api-pipeline.js";
import { loadConfig } from "../bin/config.js";

const T0 = Date.parse("2019-10-01T10:00:00Z");

function recs(userId: string, n: number): Recommendations {
  return {
    userId,
    items: [
      {
        itemId: "1004856",
        score: 2.5,
        rank: 1,
        category: "electronics",
        brand: "samsung",
        averagePrice: 130.76,
        source: "PERSONALIZED",
        purchases: 25,
      },
      {
        itemId: "1005115",
        score: 0.1,
        rank: 2,
        category: "electronics",
        brand: "apple",
        averagePrice: 975.57,
        source: "POPULAR_FALLBACK",
        purchases: 20,
      },
    ].slice(0, n) as Recommendations["items"],
    topCategories: [{ category: "electronics", interest: 7 }],
    watermark: T0,
    statusMessage: "",
  };
}

function snapshot(window: TrendingWindowName, start: number, final: boolean): TrendingSnapshot {
  return {
    window,
    windowStart: start,
    windowEnd: start + (window === "1h" ? 3_600_000 : 86_400_000),
    items: [
      { itemId: "a", score: 5, views: 3, clicks: 1 },
      { itemId: "b", score: 2, views: 2, clicks: 0 },
    ],
    final,
    watermark: start,
  };
}

function fakeBackend() {
  const trending: Record<TrendingWindowName, Subject<TrendingSnapshot>> = {
    "1h": new BehaviorSubject(snapshot("1h", T0, false)),
    "24h": new BehaviorSubject(snapshot("24h", T0, false)),
  };
  const state = { ready: false, asked: [] as [string, number][] };
  const backend: RecoBackend = {
    isReady: () => state.ready,
    getRecommendations: async (u, n) => {
      state.asked.push([u, n]);
      return recs(u, n);
    },
    trending: (w): Observable<TrendingSnapshot> => trending[w],
    similarItems: (itemId, n) => ({
      itemId,
      basis: "SAME_CATEGORY_POPULAR",
      items: [],
      watermark: null,
      statusMessage: `n=${n}`,
    }),
  };
  return { backend, trending, state };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
  text: string;
}

function get(server: ApiServer, path: string, headers: Record<string, string> = {}) {
  return call(server, "GET", path, headers);
}

function call(
  server: ApiServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: server.port, path, method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json, text });
      });
    });
    req.on("error", reject);
    req.end();
  });
}

describe("JSON/HTTP API: validation and status semantics shared with gRPC", () => {
  let server: ApiServer;
  const fake = fakeBackend();
  const registry = new Registry();
  const lag = new Gauge({
    name: "reco_stage_consumer_lag",
    help: "x",
    labelNames: ["stage", "partition"],
    registers: [registry],
  });
  const eventTime = new Gauge({
    name: "reco_stage_event_time_ms",
    help: "x",
    labelNames: ["stage", "partition"],
    registers: [registry],
  });
  const messagesIn = new Counter({
    name: "reco_stage_messages_in_total",
    help: "x",
    labelNames: ["stage", "partition"],
    registers: [registry],
  });

  beforeAll(async () => {
    server = await startApiServer({
      port: 0,
      backend: fake.backend,
      metrics: registry,
      corsOrigins: ["https://shop.example"],
      heartbeatMs: 50,
    });
  });
  afterAll(() => server.stop());

  it("answers 503 UNAVAILABLE with Retry-After before the backend has data", async () => {
    const r = await get(server, "/v1/users/u1/recommendations");
    expect(r.status).toBe(503);
    expect(r.headers["retry-after"]).toBe("1");
    expect(r.json).toMatchObject({ error: { status: 503, code: "UNAVAILABLE" } });
    fake.state.ready = true;
  });

  // Every endpoint, a bad request: a 4xx JSON error that names what is wrong, never a stack trace.
  it.each([
    ["/v1/users/u1/recommendations?n=0", 400, "n", /n must be between 1 and 100, got 0/],
    ["/v1/users/u1/recommendations?n=101", 400, "n", /got 101/],
    ["/v1/users/u1/recommendations?n=abc", 400, "n", /whole number/],
    ["/v1/users/u1/recommendations?num=5", 400, "num", /unknown query parameter "num"/],
    ["/v1/users/%20%20/recommendations", 400, "user_id", /must not be blank/],
    [`/v1/users/${"x".repeat(129)}/recommendations`, 400, "user_id", /at most 128/],
    ["/v1/users/%E0%A4%A/recommendations", 400, "user_id", /percent-encoding/],
    ["/v1/users//recommendations", 400, "user_id", /must not be empty/],
    ["/v1/items/p1/similar?n=-1", 400, "n", /whole number/],
    ["/v1/items/%20/similar", 400, "item_id", /blank/],
    ["/v1/items/p1?x=1", 400, "x", /unknown query parameter/],
    ["/v1/trending?window=2h", 400, "window", /window must be one of 1h, 24h, got "2h"/],
    ["/v1/trending?k=1000", 400, "k", /k must be between 1 and 100/],
    ["/v1/trending?at=yesterday", 400, "at", /ISO-8601/],
    ["/v1/trending?at=2019-10-01T10:00:00", 400, "at", /with zone/],
    ["/v1/trending/finals?window=1d", 400, "window", /window must be/],
    ["/v1/trending/stream?window=week", 400, "window", /window must be/],
    ["/v1/trending/stream?k=0", 400, "k", /got 0/],
    ["/v1/pipeline?verbose=1", 400, "verbose", /unknown query parameter/],
  ])("GET %s → %i naming %s", async (path, status, field, message) => {
    const r = await get(server, path);
    expect(r.status).toBe(status);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(r.json).toMatchObject({ error: { status, code: "INVALID_ARGUMENT", field } });
    expect((r.json as { error: { message: string } }).error.message).toMatch(message);
    expect(r.text).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("answers 404 JSON for unknown routes and past windows it has no final of", async () => {
    for (const path of [
      "/v1/nope",
      "/v1/users/u1",
      "/nothing-here.html",
      "/../package.json",
      "/%2e%2e/package.json",
      "/%E0%A4%A",
    ]) {
      const r = await get(server, path);
      expect(r.status, path).toBe(404);
      expect(r.json, path).toMatchObject({ error: { code: "NOT_FOUND" } });
    }
    const r = await get(server, "/v1/trending?window=1h&at=2019-09-01T00:00:00Z");
    expect(r.status).toBe(404);
    expect((r.json as { error: { message: string } }).error.message).toMatch(/no final 1h window/);
  });

  it("answers 405 with Allow for other methods", async () => {
    const r = await call(server, "POST", "/v1/users/u1/recommendations");
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe("GET, HEAD, OPTIONS");
    expect(r.json).toMatchObject({ error: { code: "METHOD_NOT_ALLOWED" } });
  });

  it("serves recommendations with explanations, n defaulting to 10", async () => {
    const r = await get(server, "/v1/users/user%201/recommendations?n=1");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({
      userId: "user 1",
      items: [
        {
          rank: 1,
          itemId: "1004856",
          score: 2.5,
          source: "PERSONALIZED",
          explanation: "popular in your top category electronics: bought 25 times in 7 days",
          category: "electronics",
          brand: "samsung",
          averagePrice: 130.76,
          purchases: 25,
        },
      ],
      topCategories: [{ category: "electronics", interest: 7 }],
      watermark: "2019-10-01T10:00:00.000Z",
      statusMessage: "",
      stalenessMs: 0,
    });
    await get(server, "/v1/users/u2/recommendations");
    expect(fake.state.asked.slice(-2)).toEqual([
      ["user 1", 1],
      ["u2", 10],
    ]);
  });

  it("a backend failure is a short 500, never the error's text", async () => {
    const broken = await startApiServer({
      port: 0,
      backend: {
        ...fake.backend,
        isReady: () => true,
        getRecommendations: () => Promise.reject(new Error("secret detail at foo.ts:12")),
      },
    });
    try {
      const r = await get(broken, "/v1/users/u1/recommendations");
      expect(r.status).toBe(500);
      expect(r.text).not.toContain("secret");
      expect(r.json).toMatchObject({ error: { code: "INTERNAL" } });
    } finally {
      await broken.stop();
    }
    const starting = await startApiServer({
      port: 0,
      backend: {
        ...fake.backend,
        isReady: () => true,
        getRecommendations: () => Promise.reject(new BackendUnavailableError("partition 3")),
      },
    });
    try {
      const r = await get(starting, "/v1/users/u1/recommendations");
      expect(r.status).toBe(503);
      expect(r.json).toMatchObject({ error: { code: "UNAVAILABLE", message: "partition 3" } });
    } finally {
      await starting.stop();
    }
  });

  it("serves the newest trending window, and a past window's final once it was seen", async () => {
    let r = await get(server, "/v1/trending?window=24h&k=1");
    expect(r.json).toMatchObject({
      window: "24h",
      windowStart: "2019-10-01T10:00:00.000Z",
      final: false,
      items: [{ rank: 1, itemId: "a", score: 5, views: 3, clicks: 1 }],
    });
    expect((r.json as { items: unknown[] }).items).toHaveLength(1);
    fake.trending["1h"].next(snapshot("1h", T0, true));
    fake.trending["1h"].next(snapshot("1h", T0 + 3_600_000, false));
    r = await get(server, "/v1/trending?window=1h&at=2019-10-01T10:30:00Z");
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ windowStart: "2019-10-01T10:00:00.000Z", final: true });
    r = await get(server, "/v1/trending?window=1h");
    expect(r.json).toMatchObject({ windowStart: "2019-10-01T11:00:00.000Z", final: false });
    r = await get(server, "/v1/trending/finals?window=1h");
    expect(r.json).toMatchObject({
      finals: [{ windowStart: "2019-10-01T10:00:00.000Z", top: { itemId: "a" } }],
    });
  });

  it("streams trending as server-sent events with heartbeats", async () => {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/trending/stream?window=1h&k=1`, {
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const until = async (re: RegExp) => {
      while (!re.test(text)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await until(/event: trending\nid: 1\ndata: .*\n\n/);
    fake.trending["1h"].next(snapshot("1h", T0 + 7_200_000, false));
    await until(/"windowStart":"2019-10-01T12:00:00.000Z"/);
    await until(/: heartbeat /);
    const frames = text.split("\n\n").filter((f) => f.startsWith("event: trending"));
    const last = JSON.parse(frames.at(-1)!.split("data: ")[1]!) as { items: unknown[] };
    expect(last.items).toHaveLength(1);
    controller.abort();
  });

  it("allows the configured CORS origins only", async () => {
    const ok = await get(server, "/v1/trending", { origin: "https://shop.example" });
    expect(ok.headers["access-control-allow-origin"]).toBe("https://shop.example");
    const other = await get(server, "/v1/trending", { origin: "https://evil.example" });
    expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    expect(other.headers.vary).toBe("Origin");
    const pre = await call(server, "OPTIONS", "/v1/trending", { origin: "https://shop.example" });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-methods"]).toContain("GET");
  });

  it("reports per stage and partition lag and events/s from the metrics, naming the slowest", async () => {
    lag.set({ stage: "window", partition: "2" }, 40);
    eventTime.set({ stage: "window", partition: "1" }, T0);
    eventTime.set({ stage: "window", partition: "2" }, T0 - 600_000);
    lag.set({ stage: "parse", partition: "0" }, 3);
    messagesIn.inc({ stage: "parse", partition: "0" }, 100);
    const start = Date.now();
    const first = (await get(server, "/v1/pipeline")).json as {
      stages: { stage: string; lag: number; eventTime: string | null }[];
      slowest: { stage: string; partition: number } | null;
    };
    expect(first.stages.map((s) => s.stage)).toEqual(["parse", "window"]);
    expect(first.slowest).toMatchObject({ stage: "window", partition: 2, lag: 40 });
    // A stage is as far in event time as its slowest partition.
    expect(first.stages[1]).toMatchObject({ eventTime: "2019-10-01T09:50:00.000Z" });
    await new Promise((r) => setTimeout(r, 1100));
    messagesIn.inc({ stage: "parse", partition: "0" }, 500);
    const second = (await get(server, "/v1/pipeline")).json as {
      stages: { stage: string; messagesInPerSecond: number }[];
    };
    // 500 messages between two scrapes at least 1.1 s apart, at most as far apart as this test's
    // two calls (a loaded machine stretches that beyond 1.1 s).
    const elapsedS = (Date.now() - start) / 1000;
    const rate = second.stages[0]!.messagesInPerSecond;
    expect(rate).toBeGreaterThanOrEqual(500 / elapsedS);
    expect(rate).toBeLessThanOrEqual(500 / 1.1);
  });

  it("publishes an OpenAPI 3 document listing every route", async () => {
    const r = await get(server, "/openapi.json");
    const doc = r.json as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/users/{userId}/recommendations",
        "/v1/items/{itemId}/similar",
        "/v1/trending",
        "/v1/trending/stream",
        "/v1/pipeline",
      ]),
    );
  });

  it("parses the Prometheus text format, escaped label values included", () => {
    expect(
      parsePrometheusText('# HELP x y\nx{a="q\\"uote",b="2"} 3.5\ny 1e3\nz{a="+"} +Inf\n'),
    ).toEqual([
      { name: "x", labels: { a: 'q"uote', b: "2" }, value: 3.5 },
      { name: "y", labels: {}, value: 1000 },
      { name: "z", labels: { a: "+" }, value: Infinity },
    ]);
  });

  it("takes a free port when the preferred one is taken and falling back is allowed", async () => {
    await expect(startApiServer({ port: server.port, backend: fake.backend })).rejects.toThrow(
      /EADDRINUSE/,
    );
    const other = await startApiServer({
      port: server.port,
      portFallback: true,
      backend: fake.backend,
    });
    expect(other.port).not.toBe(server.port);
    expect(other.url).toBe(`http://127.0.0.1:${other.port}/`);
    await other.stop();
  });
});

describe("WEB_PORT, WEB_HOST, WEB_CORS_ORIGINS", () => {
  it("default to 8080 on loopback, same origin only; a port given is a port required", () => {
    const d = loadConfig({});
    expect([d.webPort, d.webHost, d.webPortFallback, d.webCorsOrigins]).toEqual([
      8080,
      "127.0.0.1",
      true,
      [],
    ]);
    const set = loadConfig({
      WEB_PORT: "8080",
      WEB_CORS_ORIGINS: "https://a.example, http://b:3000",
    });
    expect(set.webPortFallback).toBe(false);
    expect(set.webCorsOrigins).toEqual(["https://a.example", "http://b:3000"]);
    expect(loadConfig({ WEB_CORS_ORIGINS: "*" }).webCorsOrigins).toEqual(["*"]);
  });

  it("refuse an origin with a path, naming the setting", () => {
    expect(() => loadConfig({ WEB_CORS_ORIGINS: "https://a.example/app" })).toThrow(
      /WEB_CORS_ORIGINS=.* is not valid: expected \* or comma-separated origins/,
    );
    expect(() => loadConfig({ WEB_PORT: "http" })).toThrow(/WEB_PORT="http" is not valid/);
  });
});

describe("a user's recent events", () => {
  it("are 501 UNIMPLEMENTED until a backend serves them, then a list with ISO times", async () => {
    const { backend, state } = fakeBackend();
    state.ready = true;
    const without = await startApiServer({ port: 0, backend });
    const withEvents = await startApiServer({
      port: 0,
      backend: {
        ...backend,
        recentEvents: (_u, n) =>
          [{ itemId: "p1", eventType: "view", eventTime: T0, category: "toys", count: 2 }].slice(
            0,
            n,
          ),
      },
    });
    try {
      const r = await get(without, "/v1/users/u1/events");
      expect(r.status).toBe(501);
      expect(r.json).toMatchObject({ error: { code: "UNIMPLEMENTED" } });
      expect((await get(without, "/v1/users/u1/events?n=0")).status).toBe(400);
      expect((await get(withEvents, "/v1/users/u1/events?n=5")).json).toEqual({
        userId: "u1",
        events: [
          {
            itemId: "p1",
            eventType: "view",
            eventTime: "2019-10-01T10:00:00.000Z",
            category: "toys",
            count: 2,
          },
        ],
      });
    } finally {
      await without.stop();
      await withEvents.stop();
    }
  });
});
