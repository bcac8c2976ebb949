import {
  DEFAULT_COUNT,
  InvalidArgumentError,
  MAX_CATEGORY_LENGTH,
  MAX_COUNT,
  MAX_ID_LENGTH,
  TRENDING_WINDOWS,
  hasOptions,
  validateId,
  validateRecommendOptions,
  type RecommendOptions,
} from "../../actors/contract/index.js";
import type { FastifyError, FastifyRequest } from "fastify";
import { bodyError } from "./api-events.js";

/**
 * Query and path parameters of the JSON API as JSON schemas: Fastify checks each route's request
 * against them and the OpenAPI document is generated from them. Where HTTP can say more than
 * protobuf, they are stricter than the gRPC façade: `n=0` or `n=abc` is an error (gRPC cannot
 * tell 0 from unset), and an unknown parameter is an error rather than silently ignored (a typo
 * such as `?num=5` would otherwise answer with the default). What the schemas cannot say (an id
 * or a category that is only white space, a time that is no date) the façade's own rules check.
 */

export const count = (what: string) => ({
  type: "integer",
  minimum: 1,
  maximum: MAX_COUNT,
  default: DEFAULT_COUNT,
  description: `${what} (default ${DEFAULT_COUNT})`,
});

/** `window`: 1h (default) or 24h; the gRPC enum names are accepted too (see normaliseQuery). */
export const window = { type: "string", enum: [...TRENDING_WINDOWS], default: "1h" };

export const at = {
  type: "string",
  // Epoch milliseconds, or a time that ends with its zone; whether it is a date, timeParam says.
  pattern: "^(\\d{1,15}|.*([zZ]|[+-]\\d\\d:?\\d\\d))$",
  description:
    "event time (ISO-8601 with zone, or epoch ms): the final of the window containing it",
};

/** Query strings: only the parameters listed, nothing else. */
export const query = (properties: Record<string, object> = {}) => ({
  type: "object",
  additionalProperties: false,
  properties,
});

const id = {
  type: "string",
  minLength: 1,
  maxLength: MAX_ID_LENGTH,
  pattern: "\\S",
};
/** Path parameters, by the names the gRPC façade gives them in errors. */
const ID_FIELDS: Record<string, string> = { userId: "user_id", itemId: "item_id" };
export const userPath = { type: "object", required: ["userId"], properties: { userId: id } };
export const itemPath = { type: "object", required: ["itemId"], properties: { itemId: id } };

/** Messages for a query parameter the schema refused, by name: what was expected, what came. */
const quote = (raw: string, max = 40) => JSON.stringify(raw.slice(0, max));
const EXPECTED: Record<string, (field: string, raw: string) => string> = {
  n: countMessage,
  k: countMessage,
  window: (f, raw) => `${f} must be one of ${TRENDING_WINDOWS.join(", ")}, got ${quote(raw)}`,
  at: (f, raw) =>
    `${f} must be an ISO-8601 time with zone (2019-10-01T10:00:00Z) or epoch milliseconds, got ${quote(raw, 60)}`,
  category: (f, raw) => `${f} must be at most ${MAX_CATEGORY_LENGTH} characters, got ${raw.length}`,
  excludeTouched: (f, raw) => `${f} must be true or false, got ${quote(raw)}`,
};

function countMessage(field: string, raw: string): string {
  // 0 is the default only on the gRPC wire (proto3 cannot tell it from unset).
  return /^\d{1,6}$/.test(raw)
    ? `${field} must be between 1 and ${MAX_COUNT}, got ${Number(raw)}`
    : `${field} must be a whole number between 1 and ${MAX_COUNT}, got ${quote(raw)}`;
}

type Request = Pick<FastifyRequest, "query" | "params" | "body" | "routeOptions">;

/** The query parameters `req`'s route takes, by name. */
const queryOf = (req: Request) =>
  (req.routeOptions.schema?.querystring as { properties?: Record<string, { type?: string }> })
    ?.properties ?? {};

/** The 400 for a request its route's schema refused, naming the field as the gRPC façade does. */
export function schemaError(err: FastifyError, req: Request): Error {
  const part = err.validationContext;
  const e = err.validation?.[0];
  if (part === "body") return bodyError(e?.keyword, req.body);
  if (part === "querystring" && e?.keyword === "additionalProperties") {
    const name = String(e.params.additionalProperty);
    const known = Object.keys(queryOf(req));
    return new InvalidArgumentError(
      name,
      `unknown query parameter ${JSON.stringify(name)}: expected ${known.join(", ") || "none"}`,
    );
  }
  const name = e?.instancePath.split("/")[1] ?? String(e?.params.missingProperty ?? "");
  const raw = ((part === "params" ? req.params : req.query) as Record<string, unknown>)[name];
  const text = Array.isArray(raw) ? raw.join(",") : String(raw ?? "");
  const field = part === "params" ? (ID_FIELDS[name] ?? name) : name;
  try {
    if (part === "params") validateId(field, text);
  } catch (idError) {
    if (idError instanceof InvalidArgumentError) return idError; // in the façade's own words
  }
  const expected = EXPECTED[name];
  return new InvalidArgumentError(
    field,
    expected ? expected(name, text) : `${field} ${e?.message ?? "is not valid"}`,
  );
}

/**
 * What the schemas take in one spelling only: an empty parameter is an absent one, `window`
 * takes the gRPC enum names in any case, `excludeTouched` takes 1 and 0. And what they would take
 * too readily: a count is digits only (the schema's coercion would read 1e2 as 100).
 */
export function normaliseQuery(req: Request): void {
  const q = req.query as Record<string, unknown>;
  for (const [name, schema] of Object.entries(queryOf(req))) {
    const v = q[name];
    if (v === "") delete q[name];
    else if (schema.type === "integer" && typeof v === "string" && !/^\d{1,6}$/.test(v.trim()))
      throw new InvalidArgumentError(name, countMessage(name, v));
  }
  if (typeof q.window === "string") {
    const w = q.window.trim().toLowerCase();
    q.window = w === "one_hour" ? "1h" : w === "one_day" ? "24h" : w;
  }
  if (typeof q.excludeTouched === "string") {
    const v = q.excludeTouched.trim().toLowerCase();
    q.excludeTouched = v === "1" ? "true" : v === "0" ? "false" : v;
  }
}

/** `at` as epoch milliseconds; the schema checked its shape, this that it is a date. */
export function timeParam(raw: string | undefined, field: string): number | undefined {
  if (raw === undefined) return undefined;
  const t = /^\d{1,15}$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(t)) throw new InvalidArgumentError(field, EXPECTED.at!(field, raw));
  return t;
}

/** The query parameters of GetRecommendations' options, as the schema left them. */
export const recommendQuery = {
  n: count("items to return"),
  category: {
    type: "string",
    maxLength: MAX_CATEGORY_LENGTH,
    description: "only items of this main category",
  },
  exclude: {
    type: "array",
    items: { type: "string" },
    description: "item ids never to return, separated by commas (at most 100)",
  },
  excludeTouched: {
    type: "boolean",
    default: false,
    description: "leave out every item the user has interacted with",
  },
};

/**
 * GetRecommendations' options from `category`, `exclude` (ids separated by commas; the parameter
 * may repeat) and `excludeTouched`, checked by the gRPC façade's rules under these names.
 * Undefined when none is set.
 */
export function recommendOptions(q: {
  category?: string;
  exclude?: string[];
  excludeTouched?: boolean;
}): RecommendOptions | undefined {
  const exclude = (q.exclude ?? [])
    .flatMap((v) => v.split(","))
    .filter((v, _x, all) => v !== "" || all.length > 1);
  const options = validateRecommendOptions(
    { category: q.category ?? "", exclude, excludeTouched: q.excludeTouched ?? false },
    { category: "category", exclude: "exclude" },
  );
  return hasOptions(options) ? options : undefined;
}
