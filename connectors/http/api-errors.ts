import { BackendUnavailableError, InvalidArgumentError } from "../../actors/backend.js";
import { MAX_EVENTS_BODY_BYTES, MAX_EVENTS_PER_REQUEST } from "./api-events.js";

/** A request the API answers with a 4xx/5xx of its own choosing (not a backend condition). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export interface ErrorBody {
  error: { status: number; code: string; message: string; field?: string };
}

/**
 * The one mapping from error conditions to HTTP statuses, the same conditions as the gRPC
 * façade's (connectors/grpc/errors.ts), named with the gRPC code so a client of both sees one
 * vocabulary (as Google's JSON APIs do):
 *
 * | condition                                        | HTTP | code             |
 * | ------------------------------------------------ | ---- | ---------------- |
 * | InvalidArgumentError (the field is named)        | 400  | INVALID_ARGUMENT |
 * | unknown route, item or past window               | 404  | NOT_FOUND        |
 * | method other than GET/HEAD/OPTIONS (POST: events) | 405  | METHOD_NOT_ALLOWED |
 * | a write without a key of API_KEYS                | 401  | UNAUTHENTICATED  |
 * | too many open event streams                      | 429  | RESOURCE_EXHAUSTED |
 * | BackendUnavailableError: starting, not ready     | 503  | UNAVAILABLE      |
 * | the backend did not answer in time               | 504  | DEADLINE_EXCEEDED |
 * | a backend without the capability                 | 501  | UNIMPLEMENTED    |
 * | anything else (a bug)                            | 500  | INTERNAL         |
 *
 * A 500 carries a short message; the detail goes to the server log, never a stack trace.
 */
export function toErrorResponse(err: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  if (err instanceof HttpError)
    return {
      status: err.status,
      body: { error: { status: err.status, code: err.code, message: err.message } },
      headers: err.headers,
    };
  if (err instanceof InvalidArgumentError)
    return {
      status: 400,
      body: {
        error: { status: 400, code: "INVALID_ARGUMENT", message: err.message, field: err.field },
      },
      headers: {},
    };
  // Transient: the client should retry shortly.
  if (err instanceof BackendUnavailableError)
    return {
      status: 503,
      body: { error: { status: 503, code: "UNAVAILABLE", message: err.message } },
      headers: { "retry-after": "1" },
    };
  if (err instanceof Error && err.name === "TimeoutError")
    return {
      status: 504,
      body: {
        error: {
          status: 504,
          code: "DEADLINE_EXCEEDED",
          message: "the backend did not answer in time",
        },
      },
      headers: {},
    };
  return {
    status: 500,
    body: {
      error: {
        status: 500,
        code: "INTERNAL",
        message: "internal error while serving the request (see server log)",
      },
    },
    headers: {},
  };
}

/**
 * Fastify's own refusals in the API's words: a body that is not JSON or too large, a URL that is
 * not valid percent-encoding, a request its route's schema refused (see api-params.ts).
 */
export function fromFramework(
  err: { code?: string; statusCode?: number; message: string },
  url: string,
): unknown {
  switch (err.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new HttpError(
        400,
        "INVALID_ARGUMENT",
        "the body is not JSON: send an event or an array of events",
      );
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new HttpError(
        413,
        "RESOURCE_EXHAUSTED",
        `the request body is over ${MAX_EVENTS_BODY_BYTES} bytes: send at most ${MAX_EVENTS_PER_REQUEST} events per request`,
      );
    case "FST_ERR_BAD_URL": {
      // Only an id in the path is decoded; anywhere else, no such route or file.
      const field = /^\/v1\/users\/[^/]*\/(recommendations|events)(\?|$)/.test(url)
        ? "user_id"
        : /^\/v1\/items\/[^/]*(\/similar)?(\?|$)/.test(url)
          ? "item_id"
          : undefined;
      return field
        ? new InvalidArgumentError(field, `${field} is not valid percent-encoding`)
        : notFound(url);
    }
  }
  const status = err.statusCode ?? 500;
  // Other refusals of a malformed request say what is wrong; they carry no detail of the server.
  return status >= 400 && status < 500
    ? new HttpError(status, "INVALID_ARGUMENT", err.message)
    : err;
}

export const notFound = (url: string) =>
  new HttpError(
    404,
    "NOT_FOUND",
    `no route for ${url.split("?")[0]!.slice(0, 200)}: see /openapi.json for the API, / for the console`,
  );
