import {
  DEFAULT_COUNT,
  InvalidArgumentError,
  MAX_COUNT,
  TRENDING_WINDOWS,
  validateCount,
  hasOptions,
  validateId,
  validateRecommendOptions,
  type RecommendOptions,
  type TrendingWindowName,
} from "../../actors/backend.js";

/**
 * Query and path parameters of the JSON API, checked with the gRPC façade's rules
 * (actors/backend.ts). Where HTTP can say more than protobuf, it is stricter: `n=0` or `n=abc`
 * is an error (gRPC cannot tell 0 from unset), and an unknown parameter is an error rather than
 * silently ignored (a typo such as `?num=5` would otherwise answer with the default).
 */
export function checkParams(query: URLSearchParams, allowed: readonly string[]): void {
  for (const name of query.keys())
    if (!allowed.includes(name))
      throw new InvalidArgumentError(
        name,
        `unknown query parameter ${JSON.stringify(name)}: expected ${
          allowed.length > 0 ? allowed.join(", ") : "none"
        }`,
      );
}

/** `n` or `k`: absent means the default (10); otherwise a whole number 1..100. */
export function countParam(query: URLSearchParams, field: string): number {
  const raw = query.get(field);
  if (raw === null || raw === "") return DEFAULT_COUNT;
  if (!/^\d{1,6}$/.test(raw.trim()))
    throw new InvalidArgumentError(
      field,
      `${field} must be a whole number between 1 and ${MAX_COUNT}, got ${JSON.stringify(raw.slice(0, 40))}`,
    );
  const n = Number(raw);
  // 0 is the default only on the gRPC wire (proto3 cannot tell it from unset).
  if (n === 0)
    throw new InvalidArgumentError(field, `${field} must be between 1 and ${MAX_COUNT}, got 0`);
  return validateCount(field, n);
}

/** `window`: 1h (default) or 24h; the gRPC enum names are accepted too. */
export function windowParam(query: URLSearchParams): TrendingWindowName {
  const raw = query.get("window");
  if (raw === null || raw === "") return "1h";
  const w = raw.trim().toLowerCase();
  if (w === "1h" || w === "one_hour") return "1h";
  if (w === "24h" || w === "one_day") return "24h";
  throw new InvalidArgumentError(
    "window",
    `window must be one of ${TRENDING_WINDOWS.join(", ")}, got ${JSON.stringify(raw.slice(0, 40))}`,
  );
}

/** `at`: a point in event time, ISO-8601 with zone or epoch milliseconds; absent: undefined. */
export function timeParam(query: URLSearchParams, field: string): number | undefined {
  const raw = query.get(field);
  if (raw === null || raw === "") return undefined;
  const t = /^\d{1,15}$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(t) || (!/^\d+$/.test(raw) && !/(Z|[+-]\d\d:?\d\d)$/i.test(raw)))
    throw new InvalidArgumentError(
      field,
      `${field} must be an ISO-8601 time with zone (2019-10-01T10:00:00Z) or epoch milliseconds, got ${JSON.stringify(raw.slice(0, 60))}`,
    );
  return t;
}

/** A path segment as an id: percent-decoded, then the id rules (not empty or blank, ≤ 128). */
export function idParam(segment: string, field: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    throw new InvalidArgumentError(field, `${field} is not valid percent-encoding`);
  }
  return validateId(field, id);
}

/**
 * GetRecommendations' options as query parameters: `category`, `exclude` (ids separated by
 * commas; the parameter may repeat) and `excludeTouched` (true/false/1/0), checked by the gRPC
 * façade's rules under these names. Undefined when none is set.
 */
export function recommendOptionsParams(query: URLSearchParams): RecommendOptions | undefined {
  const category = query.get("category") ?? "";
  const exclude = query
    .getAll("exclude")
    .flatMap((v) => v.split(","))
    .filter((v, _x, all) => v !== "" || all.length > 1);
  const rawTouched = query.get("excludeTouched");
  let excludeTouched = false;
  if (rawTouched !== null && rawTouched !== "") {
    const v = rawTouched.trim().toLowerCase();
    if (v === "true" || v === "1") excludeTouched = true;
    else if (v !== "false" && v !== "0")
      throw new InvalidArgumentError(
        "excludeTouched",
        `excludeTouched must be true or false, got ${JSON.stringify(rawTouched.slice(0, 40))}`,
      );
  }
  const options = validateRecommendOptions(
    { category, exclude, excludeTouched },
    { category: "category", exclude: "exclude" },
  );
  return hasOptions(options) ? options : undefined;
}
