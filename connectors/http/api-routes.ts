import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  FastifyInstance,
  FastifySchema,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
} from "fastify";
import {
  BackendUnavailableError,
  TRENDING_WINDOWS,
  type Recommendations,
  type RecommendOptions,
  type TrendingWindowName,
} from "../../actors/contract/index.js";
import { HttpError } from "./api-errors.js";
import { eventsBody, postEvents, requireJson } from "./api-events.js";
import { MAX_EVENTS_BODY_BYTES } from "./api-limits.js";
import { catalogueJson, putItem, MAX_ITEM_BODY_BYTES } from "./api-items.js";
import { errors, ok } from "./api-openapi.js";
import {
  at,
  count,
  itemPath,
  query,
  recommendOptions,
  recommendQuery,
  timeParam,
  userPath,
  window,
} from "./api-params.js";
import { createPipelineView } from "./api-pipeline.js";
import type { ApiServerOptions } from "./api-options.js";
import { readQuality } from "./api-quality.js";
import { streamTrending, type TrendingHistory } from "./api-trending.js";
import { isoTime, itemJson, recommendationsJson, similarJson, trendingJson } from "./api-views.js";

/** What the routes share with the server: the trending it keeps, the streams it ends at stop. */
export interface RouteState {
  history: TrendingHistory;
  /** Open event streams, each by the function that ends it. */
  streams: Set<() => void>;
}

/** The API's routes (DESIGN §5); each throws what the error handler maps to a status. */
export function addRoutes(app: FastifyInstance, o: ApiServerOptions, state: RouteState): void {
  const { backend } = o;
  const { history, streams } = state;
  const pipeline = o.metrics ? createPipelineView(o.metrics) : undefined;
  const maxStreams = o.maxStreams ?? 1000;
  const unimplemented = (message: string) => new HttpError(501, "UNIMPLEMENTED", message);
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
    return backend.getRecommendations(userId, n, AbortSignal.timeout(o.timeoutMs ?? 5000), options);
  };
  const get = <R extends RouteGenericInterface>(
    url: string,
    schema: FastifySchema,
    handler: RouteHandlerMethod<RawServerDefault, IncomingMessage, ServerResponse, R>,
  ) => app.get<R>(url, { schema }, handler);

  get<{
    Params: { userId: string };
    Querystring: { n: number; category?: string; exclude?: string[]; excludeTouched?: boolean };
  }>(
    "/v1/users/:userId/recommendations",
    {
      summary: "Ranked items for a user, with source and explanation",
      params: userPath,
      querystring: query(recommendQuery),
      response: { 200: ok("Recommendations", "ranked items"), ...errors(400, 503, 504) },
    },
    async (req) => {
      const options = recommendOptions(req.query);
      requireReady();
      return recommendationsJson(await recommend(req.params.userId, req.query.n, options));
    },
  );

  get<{ Params: { userId: string }; Querystring: { n: number } }>(
    "/v1/users/:userId/events",
    {
      summary:
        "The user's recent interactions, newest first (501 with RANKER=design, which keeps no per-user items)",
      params: userPath,
      querystring: query({ n: count("events to return") }),
      response: { 200: { description: "recent events" }, ...errors(400, 501, 503) },
    },
    async (req) => {
      const { userId } = req.params;
      requireReady();
      if (!backend.recentEvents)
        throw unimplemented(
          "this backend keeps no per-user event history yet (it comes with the history source)",
        );
      const events = await backend.recentEvents(userId, req.query.n);
      return { userId, events: events.map((e) => ({ ...e, eventTime: isoTime(e.eventTime) })) };
    },
  );

  get<{ Params: { itemId: string }; Querystring: { n: number } }>(
    "/v1/items/:itemId/similar",
    {
      summary: "Items like this one; `basis` names the source that answered",
      params: itemPath,
      querystring: query({ n: count("items to return") }),
      response: { 200: ok("SimilarItems", "similar items"), ...errors(400, 501, 503) },
    },
    async (req) => {
      requireReady();
      if (!backend.similarItems) throw unimplemented("this backend serves no similar items");
      return similarJson(await backend.similarItems(req.params.itemId, req.query.n));
    },
  );

  get<{ Params: { itemId: string } }>(
    "/v1/items/:itemId",
    {
      summary:
        "An item's catalogue entry, its popularity and its place in the current trending windows",
      params: itemPath,
      querystring: query(),
      response: { 200: ok("Item", "the item"), ...errors(400, 503) },
    },
    async (req) => {
      const { itemId } = req.params;
      requireReady();
      const trending = TRENDING_WINDOWS.map((w) => history.latest(w));
      const info = backend.item?.(itemId);
      const catalogue = info?.catalogue ? catalogueJson(info.catalogue) : null;
      return { ...itemJson(itemId, info, trending), catalogue };
    },
  );

  get<{ Querystring: { window: TrendingWindowName; k: number; at?: string } }>(
    "/v1/trending",
    {
      summary: "Top items of the newest trending window, or the final of a past one",
      querystring: query({ window, k: count("items to return"), at }),
      response: { 200: ok("Trending", "a trending window"), ...errors(400, 404, 503) },
    },
    async (req) => {
      const { window, k } = req.query;
      const t = timeParam(req.query.at, "at");
      requireReady();
      if (t !== undefined) {
        const final = history.finalAt(window, t);
        if (!final)
          throw new HttpError(
            404,
            "NOT_FOUND",
            `no final ${window} window containing ${new Date(t).toISOString()} is known: finals are kept for the last 48 windows closed since this process started (GET /v1/trending/finals?window=${window} lists them)`,
          );
        return trendingJson(final, k);
      }
      const latest = history.latest(window);
      if (!latest)
        return {
          window,
          windowStart: null,
          windowEnd: null,
          final: false,
          watermark: null,
          items: [],
          statusMessage: "no event has reached a trending window yet",
        };
      return trendingJson(latest, k);
    },
  );

  get<{ Querystring: { window: TrendingWindowName } }>(
    "/v1/trending/finals",
    {
      summary: "Past windows whose final this process has seen, newest first",
      querystring: query({ window }),
      response: { 200: { description: "window bounds and top item" }, ...errors(400) },
    },
    async (req) => {
      const { window } = req.query;
      return {
        window,
        finals: history.finals(window).map((f) => {
          const j = trendingJson(f, 1);
          return { windowStart: j.windowStart, windowEnd: j.windowEnd, top: j.items[0] ?? null };
        }),
      };
    },
  );

  get<{ Querystring: { window: TrendingWindowName; k: number } }>(
    "/v1/trending/stream",
    {
      summary:
        "Server-sent events: `event: trending` with a Trending JSON document per update; comment heartbeats; a slow client gets the latest update (finals kept)",
      querystring: query({ window, k: count("items per update") }),
      produces: ["text/event-stream"],
      response: { 200: { description: "an event stream" }, ...errors(400, 429) },
    },
    (req, reply) => {
      if (streams.size >= maxStreams)
        throw new HttpError(
          429,
          "RESOURCE_EXHAUSTED",
          `too many open trending streams (${maxStreams}): retry later`,
          { "retry-after": "5" },
        );
      // The stream writes to the socket itself; the headers set so far (CORS) go with it.
      reply.hijack();
      for (const [name, value] of Object.entries(reply.getHeaders()))
        if (value !== undefined) reply.raw.setHeader(name, value);
      const close = streamTrending(
        req.raw,
        reply.raw,
        backend,
        req.query.window,
        req.query.k,
        { heartbeatMs: o.heartbeatMs ?? 15_000 },
        () => streams.delete(close),
      );
      streams.add(close);
    },
  );

  get(
    "/v1/pipeline",
    {
      summary:
        "Per stage and partition: consumer lag, position, events/s, restarts, dead letters, late events; event-time progress; bad-event ratio; the slowest stage",
      querystring: query(),
      response: { 200: { description: "pipeline status" } },
    },
    async () => {
      const view = pipeline ? await pipeline.read() : undefined;
      return {
        ready: backend.isReady(),
        ...(view ?? { stages: [], slowest: null }),
        trending: TRENDING_WINDOWS.map((w) => {
          const s = history.latest(w);
          return s ? { ...trendingJson(s, 0), items: undefined } : { window: w };
        }),
      };
    },
  );

  get(
    "/v1/quality",
    {
      summary:
        'Live quality (README "Quality"): prequential HitRate@10, NDCG@10, coverage per method and window; A/B arms with Wilson 95% intervals; drift PSI',
      querystring: query(),
      response: {
        200: {
          description:
            "quality figures, as /metrics has them; `minimums` gives the fewest cases a figure needs, and each figure's `enough` says whether it reaches its own (docs/CONSOLE.md)",
        },
      },
    },
    async () =>
      o.metrics
        ? readQuality(o.metrics)
        : { prequential: [], arms: [], drift: { psi: {}, events: {} }, models: [] },
  );

  const publish = o.publishEvent;
  app.post(
    "/v1/events",
    {
      config: { write: "POST /v1/events" },
      bodyLimit: MAX_EVENTS_BODY_BYTES,
      // Before the body is read (after the key check): nothing to publish to, or not JSON.
      onRequest: async (req) => {
        if (!publish) throw unimplemented("this server publishes no events (no NATS connection)");
        requireJson(req.headers);
      },
      schema: {
        summary:
          "Events (one, or an array of up to 1,000) with the NATS contract (DESIGN §2), published to JetStream with Nats-Msg-Id = event_id: a retried request counts once. Needs a key of API_KEYS as Authorization: Bearer <key> or X-API-Key: <key>",
        querystring: query(),
        body: eventsBody,
        response: {
          202: {
            description:
              "each event accepted, duplicate or rejected with its reason (results, in order)",
          },
          ...errors(400, 401, 413, 415, 501, 503),
        },
      },
    },
    async (req, reply) => {
      const answer = await postEvents(req.body, async (subject, data, msgId) => {
        try {
          return await publish!(subject, data, msgId);
        } catch (err) {
          throw new BackendUnavailableError(
            `the events could not be stored (${err instanceof Error ? err.message : String(err)}): send the same request again, repeats count once`,
          );
        }
      });
      return reply.code(202).send(answer);
    },
  );

  const upsert = o.upsertItem;
  app.put<{ Params: { itemId: string } }>(
    "/v1/items/:itemId",
    {
      config: { write: "PUT /v1/items/{id}" },
      bodyLimit: MAX_ITEM_BODY_BYTES,
      onRequest: async (req) => {
        if (!upsert) throw unimplemented("this server stores no items (no NATS connection)");
        requireJson(req.headers);
      },
      // The body is checked by the catalogue's own rules (actors/contract/catalogue.ts), the same as an
      // items.upsert message's, so both doors name a bad field in the same words.
      schema: {
        summary:
          "Upserts the item's catalogue fields, any of title, categories, brand, price (>= 0), labels and hidden; fields left out keep their value. Published to items.upsert; needs a key of API_KEYS; an Idempotency-Key header makes a retried request count once",
        params: itemPath,
        querystring: query(),
        response: {
          200: ok("CatalogueItem", "the item as stored"),
          202: { description: "stored; the catalogue did not show it within 5 s" },
          ...errors(400, 401, 413, 415, 501, 503),
        },
      },
    },
    async (req, reply) => {
      const { status, body } = await putItem(req.body, req.headers, req.params.itemId, upsert!);
      return reply.code(status).send(body);
    },
  );
}
