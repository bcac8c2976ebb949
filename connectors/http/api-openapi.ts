import type { FastifyDynamicSwaggerOptions } from "@fastify/swagger";

/**
 * The OpenAPI 3 document of the JSON API (`/openapi.json`): its paths and parameters are generated
 * from the routes' schemas (api-routes.ts); here are what they refer to, the shapes of the
 * answers. They document only: answers are written with JSON.stringify, never cut to a schema.
 */
const time = { type: "string", format: "date-time", nullable: true };

const SCHEMAS = {
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
      hidden: { type: "boolean", description: "left out of every answer while true" },
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
            carts: { type: "integer" },
            purchases: { type: "integer" },
          },
        },
      },
      weights: {
        type: "object",
        additionalProperties: { type: "number" },
        description: "the weight per event type each score counts (TRENDING_WEIGHTS)",
      },
    },
  },
};

export const openApiOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: "3.0.3",
    info: {
      title: "reco-stream JSON API",
      version: "1",
      description:
        "Recommendations, similar items, trending and pipeline status. Same validation and errors as the gRPC façade reco.v1: a bad parameter is 400 naming the field, 503 until the backend has data.",
    },
    // The shapes are plain JSON schema; the OpenAPI types want each `type` as a literal.
    components: { schemas: SCHEMAS as unknown as Record<string, never> },
  },
};

/** A 200 with one of the shapes above. */
export const ok = (ref: keyof typeof SCHEMAS, description: string) => ({
  description,
  $ref: `#/components/schemas/${ref}`,
});

/** The error answers a route may give, each an Error document. */
export const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [
      c,
      { description: ERROR_TEXT[c] ?? "error", $ref: "#/components/schemas/Error" },
    ]),
  );

const ERROR_TEXT: Record<number, string> = {
  401: "no key of API_KEYS (UNAUTHENTICATED)",
  413: "body over 8 MiB (RESOURCE_EXHAUSTED)",
  415: "not application/json",
  400: "a parameter is not valid (INVALID_ARGUMENT; `field` names it)",
  404: "not found (NOT_FOUND)",
  429: "too many open streams (RESOURCE_EXHAUSTED)",
  501: "the backend has no such source (UNIMPLEMENTED)",
  503: "starting, no data yet (UNAVAILABLE); retry",
  504: "the backend did not answer in time (DEADLINE_EXCEEDED)",
};
