import { keepIdleConnections } from "./keep-alive.js";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  BackendUnavailableError,
  TRENDING_WINDOWS,
  type RecoBackend,
  type Recommendations,
  type RecommendOptions,
} from "../../actors/backend.js";
import { HttpError, sendError, sendJson, toErrorResponse } from "./api-errors.js";
import {
  checkParams,
  countParam,
  idParam,
  recommendOptionsParams,
  timeParam,
  windowParam,
} from "./api-params.js";
import { createPipelineView, type MetricsSource } from "./api-pipeline.js";
import { readQuality } from "./api-quality.js";
import { createStaticFiles, defaultWebRoot } from "./api-static.js";
import { createTrendingHistory, streamTrending } from "./api-trending.js";
import { isoTime, itemJson, recommendationsJson, similarJson, trendingJson } from "./api-views.js";
import { openApiDocument } from "./api-openapi.js";
import { postEvents, requireApiKey, type PublishEvent } from "./api-events.js";
import { catalogueJson, putItem, type UpsertItem } from "./api-items.js";

export interface ApiServerOptions {
  /** 0 picks a free port (read it back from `ApiServer.port`). */
  port: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** The port is only a preference: if it is taken, bind a free one instead of failing. */
  portFallback?: boolean;
  backend: RecoBackend;
  /** Where `/v1/pipeline` reads stage metrics; absent: an empty pipeline (a gateway). */
  metrics?: MetricsSource;
  /** Origins allowed to call the API from a browser (`*`: any); default none (same origin). */
  corsOrigins?: readonly string[];
  /** SSE heartbeat period (default 15 s). */
  heartbeatMs?: number;
  /** Open event streams at most; one more gets 429. Default 1,000. */
  maxStreams?: number;
  /** Longest wait for a backend answer before 504 (default 5 s). */
  timeoutMs?: number;
  /** Console files (default: this package's `web/`). */
  webRoot?: string;
  logger?: { warn(obj: object, msg?: string): void };
  /** Stores an event in JetStream (`POST /v1/events`); absent: the route answers 501. */
  publishEvent?: PublishEvent;
  /** Stores an item upsert (`PUT /v1/items/{id}`); absent: the route answers 501. */
  upsertItem?: UpsertItem;
  /**
   * API_KEYS: keys a write (`POST /v1/events`) must carry; reads need one too when the server is
   * bound to other than loopback and keys are set. No keys: writes are refused.
   */
  apiKeys?: readonly string[];
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export interface ApiServer {
  readonly port: number;
  /** The console's address, for the ready line. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * The JSON/HTTP API and the web console (DESIGN §5) on plain `node:http`: a dozen GET routes, a
 * static folder and one event stream did not earn a framework; the rules that matter (validation,
 * the error mapping, latest-wins streaming) are shared with the gRPC façade or written out here.
 */
export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const { backend } = o;
  const host = o.host ?? "127.0.0.1";
  const cors = new Set(o.corsOrigins ?? []);
  const history = createTrendingHistory(backend);
  const pipeline = o.metrics ? createPipelineView(o.metrics) : undefined;
  const files = createStaticFiles(o.webRoot ?? defaultWebRoot());
  const streams = new Set<() => void>();
  const maxStreams = o.maxStreams ?? 1000;
  const timeoutMs = o.timeoutMs ?? 5000;

  const requireReady = () => {
    if (!backend.isReady())
      throw new BackendUnavailableError("the backend is starting: no data to answer from yet");
  };

  const recommend = async (
    userId: string,
    n: number,
    options: RecommendOptions | undefined,
  ): Promise<Recommendations> => {
    const now =
      options === undefined
        ? backend.recommendNow?.(userId, n)
        : backend.recommendNow?.(userId, n, options);
    if (now) return now;
    return backend.getRecommendations(userId, n, AbortSignal.timeout(timeoutMs), options);
  };

  /** Routes by path; each throws what `sendError` maps to a status. */
  const apiKeys = o.apiKeys ?? [];
  const readsKeyed = apiKeys.length > 0 && !LOOPBACK.has(host);
  const route = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const path = url.pathname;
    const q = url.searchParams;
    let m: RegExpExecArray | null;
    if (req.method === "PUT") {
      if (!(m = /^\/v1\/items\/([^/]*)$/.exec(path)))
        throw new HttpError(
          405,
          "METHOD_NOT_ALLOWED",
          `PUT is not allowed on ${path.slice(0, 200)}`,
          {
            allow: "GET, HEAD, OPTIONS",
          },
        );
      checkParams(q, []);
      const itemId = idParam(m[1]!, "item_id");
      requireApiKey(req, apiKeys, "PUT /v1/items/{id}");
      if (!o.upsertItem)
        throw new HttpError(
          501,
          "UNIMPLEMENTED",
          "this server stores no items (no NATS connection)",
        );
      const { status, body } = await putItem(req, itemId, o.upsertItem);
      return sendJson(res, status, body);
    }
    if (req.method === "POST") {
      if (path !== "/v1/events")
        throw new HttpError(
          405,
          "METHOD_NOT_ALLOWED",
          `POST is not allowed on ${path.slice(0, 200)}: use GET`,
          {
            allow: "GET, HEAD, OPTIONS",
          },
        );
      checkParams(q, []);
      requireApiKey(req, apiKeys, "POST /v1/events");
      const publish = o.publishEvent;
      if (!publish)
        throw new HttpError(
          501,
          "UNIMPLEMENTED",
          "this server publishes no events (no NATS connection)",
        );
      const answer = await postEvents(req, async (subject, data, msgId) => {
        try {
          return await publish(subject, data, msgId);
        } catch (err) {
          throw new BackendUnavailableError(
            `the events could not be stored (${err instanceof Error ? err.message : String(err)}): send the same request again, repeats count once`,
          );
        }
      });
      return sendJson(res, 202, answer);
    }
    if (readsKeyed && path.startsWith("/v1/")) requireApiKey(req, apiKeys, "this API");
    if ((m = /^\/v1\/users\/([^/]*)\/recommendations$/.exec(path))) {
      checkParams(q, ["n", "category", "exclude", "excludeTouched"]);
      const userId = idParam(m[1]!, "user_id");
      const n = countParam(q, "n");
      const options = recommendOptionsParams(q);
      requireReady();
      return sendJson(res, 200, recommendationsJson(await recommend(userId, n, options)));
    }
    if ((m = /^\/v1\/users\/([^/]*)\/events$/.exec(path))) {
      checkParams(q, ["n"]);
      const userId = idParam(m[1]!, "user_id");
      const n = countParam(q, "n");
      requireReady();
      if (!backend.recentEvents)
        throw new HttpError(
          501,
          "UNIMPLEMENTED",
          "this backend keeps no per-user event history yet (it comes with the history source)",
        );
      return sendJson(res, 200, {
        userId,
        events: (await backend.recentEvents(userId, n)).map((e) => ({
          ...e,
          eventTime: isoTime(e.eventTime),
        })),
      });
    }
    if ((m = /^\/v1\/items\/([^/]*)\/similar$/.exec(path))) {
      checkParams(q, ["n"]);
      const itemId = idParam(m[1]!, "item_id");
      const n = countParam(q, "n");
      requireReady();
      if (!backend.similarItems)
        throw new HttpError(501, "UNIMPLEMENTED", "this backend serves no similar items");
      return sendJson(res, 200, similarJson(await backend.similarItems(itemId, n)));
    }
    if ((m = /^\/v1\/items\/([^/]*)$/.exec(path))) {
      checkParams(q, []);
      const itemId = idParam(m[1]!, "item_id");
      requireReady();
      const trending = TRENDING_WINDOWS.map((w) => history.latest(w));
      const info = backend.item?.(itemId);
      const catalogue = info?.catalogue ? catalogueJson(info.catalogue) : null;
      return sendJson(res, 200, { ...itemJson(itemId, info, trending), catalogue });
    }
    if (path === "/v1/trending") {
      checkParams(q, ["window", "k", "at"]);
      const window = windowParam(q);
      const k = countParam(q, "k");
      const at = timeParam(q, "at");
      requireReady();
      if (at !== undefined) {
        const final = history.finalAt(window, at);
        if (!final)
          throw new HttpError(
            404,
            "NOT_FOUND",
            `no final ${window} window containing ${new Date(at).toISOString()} is known: finals are kept for the last 48 windows closed since this process started (GET /v1/trending/finals?window=${window} lists them)`,
          );
        return sendJson(res, 200, trendingJson(final, k));
      }
      const latest = history.latest(window);
      if (!latest)
        return sendJson(res, 200, {
          window,
          windowStart: null,
          windowEnd: null,
          final: false,
          watermark: null,
          items: [],
          statusMessage: "no event has reached a trending window yet",
        });
      return sendJson(res, 200, trendingJson(latest, k));
    }
    if (path === "/v1/trending/finals") {
      checkParams(q, ["window"]);
      const window = windowParam(q);
      return sendJson(res, 200, {
        window,
        finals: history.finals(window).map((f) => {
          const j = trendingJson(f, 1);
          return { windowStart: j.windowStart, windowEnd: j.windowEnd, top: j.items[0] ?? null };
        }),
      });
    }
    if (path === "/v1/trending/stream") {
      checkParams(q, ["window", "k"]);
      const window = windowParam(q);
      const k = countParam(q, "k");
      if (streams.size >= maxStreams)
        throw new HttpError(
          429,
          "RESOURCE_EXHAUSTED",
          `too many open trending streams (${maxStreams}): retry later`,
          { "retry-after": "5" },
        );
      const close = streamTrending(
        req,
        res,
        backend,
        window,
        k,
        { heartbeatMs: o.heartbeatMs ?? 15_000 },
        () => streams.delete(close),
      );
      streams.add(close);
      return;
    }
    if (path === "/v1/pipeline") {
      checkParams(q, []);
      const view = pipeline ? await pipeline.read() : undefined;
      return sendJson(res, 200, {
        ready: backend.isReady(),
        ...(view ?? { stages: [], slowest: null }),
        trending: TRENDING_WINDOWS.map((w) => {
          const s = history.latest(w);
          return s ? { ...trendingJson(s, 0), items: undefined } : { window: w };
        }),
      });
    }
    if (path === "/v1/quality") {
      checkParams(q, []);
      return sendJson(
        res,
        200,
        o.metrics
          ? await readQuality(o.metrics)
          : { prequential: [], arms: [], drift: { psi: {}, events: {} }, models: [] },
      );
    }
    if (path === "/openapi.json") return sendJson(res, 200, openApiDocument());
    if (!path.startsWith("/v1/") && (await files.serve(path, res))) return;
    throw new HttpError(
      404,
      "NOT_FOUND",
      `no route for ${path.slice(0, 200)}: see /openapi.json for the API, / for the console`,
    );
  };

  const server: Server = createServer((req, res) => {
    const origin = req.headers.origin;
    // The answer depends on Origin when origins are listed: caches must keep them apart.
    if (cors.size > 0 && !cors.has("*")) res.setHeader("vary", "Origin");
    if (origin && (cors.has("*") || cors.has(origin)))
      res.setHeader("access-control-allow-origin", cors.has("*") ? "*" : origin);
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "access-control-allow-methods": "GET, HEAD, POST, PUT, OPTIONS",
        "access-control-allow-headers":
          "content-type, last-event-id, authorization, x-api-key, idempotency-key",
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    if (!["GET", "HEAD", "POST", "PUT"].includes(req.method ?? "")) {
      sendError(
        res,
        new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method ?? ""} is not allowed: use GET`, {
          allow: "GET, HEAD, POST, PUT, OPTIONS",
        }),
      );
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://localhost");
    } catch {
      sendError(res, new HttpError(400, "INVALID_ARGUMENT", "the request URL is not valid"));
      return;
    }
    route(req, res, url).catch((err: unknown) => {
      // A bug (500) goes to the log with its detail; the client gets a short message.
      if (toErrorResponse(err).status === 500)
        o.logger?.warn({ err: String(err), path: url.pathname }, "HTTP API request failed");
      sendError(res, err);
    });
  });
  keepIdleConnections(server);
  const port = await listen(server, o.port, host, o.portFallback ?? false);
  return {
    port,
    url: `http://${host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host}:${port}/`,
    stop: () =>
      new Promise<void>((resolve) => {
        history.stop();
        for (const close of [...streams]) close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function listen(server: Server, port: number, host: string, fallback: boolean) {
  const attempt = (p: number) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once("error", onError);
      server.listen(p, host, () => {
        server.removeListener("error", onError);
        resolve();
      });
    });
  try {
    await attempt(port);
  } catch (err) {
    if (!fallback || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    await attempt(0);
  }
  const addr = server.address();
  return typeof addr === "object" && addr ? addr.port : port;
}
