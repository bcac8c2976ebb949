import { DEFAULT_COUNT, MAX_COUNT, MAX_ID_LENGTH } from "../../actors/backend.js";

/** The OpenAPI 3 document of the JSON API (`/openapi.json`), written from the same constants. */
export function openApiDocument() {
  const count = (name: string, what: string) => ({
    name,
    in: "query",
    required: false,
    description: `${what} (default ${DEFAULT_COUNT})`,
    schema: { type: "integer", minimum: 1, maximum: MAX_COUNT, default: DEFAULT_COUNT },
  });
  const id = (name: string) => ({
    name,
    in: "path",
    required: true,
    schema: { type: "string", minLength: 1, maxLength: MAX_ID_LENGTH },
  });
  const windowParam = {
    name: "window",
    in: "query",
    required: false,
    schema: { type: "string", enum: ["1h", "24h"], default: "1h" },
  };
  const errors = (...codes: number[]) =>
    Object.fromEntries(
      codes.map((c) => [
        String(c),
        {
          description: ERROR_TEXT[c] ?? "error",
          content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
        },
      ]),
    );
  const json = (ref: string, description: string) => ({
    description,
    content: { "application/json": { schema: { $ref: `#/components/schemas/${ref}` } } },
  });
  const time = { type: "string", format: "date-time", nullable: true };
  return {
    openapi: "3.0.3",
    info: {
      title: "reco-stream JSON API",
      version: "1",
      description:
        "Recommendations, similar items, trending and pipeline status. Same validation and errors as the gRPC façade reco.v1: a bad parameter is 400 naming the field, 503 until the backend has data.",
    },
    paths: {
      "/v1/users/{userId}/recommendations": {
        get: {
          summary: "Ranked items for a user, with source and explanation",
          parameters: [
            id("userId"),
            count("n", "items to return"),
            {
              name: "category",
              in: "query",
              required: false,
              description: "only items of this main category",
              schema: { type: "string", maxLength: 256 },
            },
            {
              name: "exclude",
              in: "query",
              required: false,
              description: "item ids never to return, separated by commas (at most 100)",
              schema: { type: "string" },
            },
            {
              name: "excludeTouched",
              in: "query",
              required: false,
              description: "leave out every item the user has interacted with",
              schema: { type: "boolean", default: false },
            },
          ],
          responses: {
            "200": json("Recommendations", "ranked items"),
            ...errors(400, 503, 504),
          },
        },
      },
      "/v1/users/{userId}/events": {
        get: {
          summary:
            "The user's recent interactions, newest first (501 with RANKER=design, which keeps no per-user items)",
          parameters: [id("userId"), count("n", "events to return")],
          responses: { "200": { description: "recent events" }, ...errors(400, 501, 503) },
        },
      },
      "/v1/events": {
        post: {
          summary:
            "Events (one, or an array of up to 1,000) with the NATS contract (DESIGN §2), published to JetStream with Nats-Msg-Id = event_id: a retried request counts once. Needs a key of API_KEYS as Authorization: Bearer <key> or X-API-Key: <key>",
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: { oneOf: [{ type: "object" }, { type: "array", maxItems: 1000 }] },
              },
            },
          },
          responses: {
            "202": {
              description:
                "each event accepted, duplicate or rejected with its reason (results, in order)",
            },
            "401": { description: "no key of API_KEYS" },
            "413": { description: "body over 8 MiB" },
            "415": { description: "not application/json" },
            ...errors(400, 501, 503),
          },
        },
      },
      "/v1/items/{itemId}/similar": {
        get: {
          summary: "Items like this one; `basis` names the source that answered",
          parameters: [id("itemId"), count("n", "items to return")],
          responses: { "200": json("SimilarItems", "similar items"), ...errors(400, 501, 503) },
        },
      },
      "/v1/items/{itemId}": {
        get: {
          summary:
            "An item's catalogue entry, its popularity and its place in the current trending windows",
          parameters: [id("itemId")],
          responses: { "200": json("Item", "the item"), ...errors(400, 503) },
        },
        put: {
          summary:
            "Upserts the item's catalogue fields (any of them; fields left out keep their value), published to items.upsert. Needs a key of API_KEYS; `Idempotency-Key` makes a retried request count once",
          parameters: [id("itemId")],
          requestBody: {
            required: true,
            content: {
              "application/json": { schema: { $ref: "#/components/schemas/ItemUpsert" } },
            },
          },
          responses: {
            "200": json("CatalogueItem", "the item as stored"),
            "202": { description: "stored; the catalogue did not show it within 5 s" },
            "401": { description: "no key of API_KEYS" },
            "415": { description: "not application/json" },
            ...errors(400, 501, 503),
          },
        },
      },
      "/v1/trending": {
        get: {
          summary: "Top items of the newest trending window, or the final of a past one",
          parameters: [
            windowParam,
            count("k", "items to return"),
            {
              name: "at",
              in: "query",
              required: false,
              description:
                "event time (ISO-8601 with zone, or epoch ms): the final of the window containing it",
              schema: { type: "string" },
            },
          ],
          responses: {
            "200": json("Trending", "a trending window"),
            ...errors(400, 404, 503),
          },
        },
      },
      "/v1/trending/finals": {
        get: {
          summary: "Past windows whose final this process has seen, newest first",
          parameters: [windowParam],
          responses: { "200": { description: "window bounds and top item" }, ...errors(400) },
        },
      },
      "/v1/trending/stream": {
        get: {
          summary:
            "Server-sent events: `event: trending` with a Trending JSON document per update; comment heartbeats; a slow client gets the latest update (finals kept)",
          parameters: [windowParam, count("k", "items per update")],
          responses: {
            "200": { description: "an event stream", content: { "text/event-stream": {} } },
            ...errors(400, 429),
          },
        },
      },
      "/v1/pipeline": {
        get: {
          summary:
            "Per stage and partition: consumer lag, position, events/s, restarts, dead letters, late events; event-time progress; bad-event ratio; the slowest stage",
          responses: { "200": { description: "pipeline status" } },
        },
      },
      "/v1/quality": {
        get: {
          summary:
            'Live quality (README "Quality"): prequential HitRate@10, NDCG@10, coverage per method and window; A/B arms with Wilson 95% intervals; drift PSI',
          responses: {
            "200": {
              description:
                "quality figures, as /metrics has them; `minimums` gives the fewest cases a figure needs, and each figure's `enough` says whether it reaches its own (docs/CONSOLE.md)",
            },
          },
        },
      },
    },
    components: {
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["status", "code", "message"],
              properties: {
                status: { type: "integer" },
                code: {
                  type: "string",
                  description: "gRPC status name: INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, …",
                },
                message: { type: "string" },
                field: { type: "string", description: "the parameter at fault (400)" },
              },
            },
          },
        },
        Recommendations: {
          type: "object",
          properties: {
            userId: { type: "string" },
            items: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  rank: { type: "integer" },
                  itemId: { type: "string" },
                  score: { type: "number" },
                  source: {
                    type: "string",
                    enum: [
                      "HISTORY",
                      "SIMILAR_ITEMS",
                      "COLLABORATIVE",
                      "PERSONALIZED",
                      "TRENDING",
                      "POPULAR_FALLBACK",
                    ],
                  },
                  explanation: { type: "string" },
                  title: { type: "string", description: "from the item catalogue, when known" },
                  labels: { type: "array", items: { type: "string" } },
                  category: { type: "string" },
                  brand: { type: "string" },
                  averagePrice: { type: "number" },
                  purchases: { type: "integer" },
                },
              },
            },
            topCategories: {
              type: "array",
              items: {
                type: "object",
                properties: { category: { type: "string" }, interest: { type: "integer" } },
              },
            },
            watermark: time,
            statusMessage: { type: "string" },
            stalenessMs: { type: "integer" },
            arm: { type: "string", description: "the user's A/B arm (ARMS), when arms are set" },
          },
        },
        SimilarItems: {
          type: "object",
          properties: {
            itemId: { type: "string" },
            basis: {
              type: "string",
              enum: ["CO_VISITATION", "SAME_CATEGORY_POPULAR", "POPULAR_FALLBACK"],
            },
            items: { type: "array", items: { type: "object" } },
            watermark: time,
            statusMessage: { type: "string" },
          },
        },
        Item: {
          type: "object",
          properties: {
            itemId: { type: "string" },
            catalogue: { $ref: "#/components/schemas/CatalogueItem" },
            popularity: { type: "object", nullable: true },
            trending: { type: "array", items: { type: "object" } },
          },
        },
        ItemUpsert: {
          type: "object",
          additionalProperties: false,
          properties: {
            title: { type: "string", maxLength: 1024 },
            categories: { type: "array", items: { type: "string" }, maxItems: 64 },
            brand: { type: "string", maxLength: 256 },
            price: { type: "number", minimum: 0 },
            labels: { type: "array", items: { type: "string" }, maxItems: 64 },
            hidden: { type: "boolean", description: "left out of every answer while true" },
          },
        },
        CatalogueItem: {
          type: "object",
          nullable: true,
          properties: {
            itemId: { type: "string" },
            title: { type: "string" },
            categories: { type: "array", items: { type: "string" } },
            brand: { type: "string" },
            price: { type: "number", nullable: true },
            labels: { type: "array", items: { type: "string" } },
            hidden: { type: "boolean" },
            updatedAt: time,
          },
        },
        Trending: {
          type: "object",
          properties: {
            window: { type: "string", enum: ["1h", "24h"] },
            windowStart: time,
            windowEnd: time,
            final: { type: "boolean" },
            watermark: time,
            items: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  rank: { type: "integer" },
                  itemId: { type: "string" },
                  title: { type: "string", description: "from the item catalogue, when known" },
                  labels: { type: "array", items: { type: "string" } },
                  score: { type: "number" },
                  views: { type: "integer" },
                  clicks: { type: "integer" },
                },
              },
            },
          },
        },
      },
    },
  };
}

const ERROR_TEXT: Record<number, string> = {
  400: "a parameter is not valid (INVALID_ARGUMENT; `field` names it)",
  404: "not found (NOT_FOUND)",
  429: "too many open streams (RESOURCE_EXHAUSTED)",
  501: "the backend has no such source (UNIMPLEMENTED)",
  503: "starting, no data yet (UNAVAILABLE); retry",
  504: "the backend did not answer in time (DEADLINE_EXCEEDED)",
};
