import { BackendUnavailableError, InvalidArgumentError } from "../../actors/contract/index.js";
import { MAX_EVENTS_BODY_BYTES, MAX_EVENTS_PER_REQUEST } from "./api-limits.js";

/** A request the API answers with a 4xx/5xx of its own choosing (not a backend condition). */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** The parameter at fault (400). */
    readonly field?: string,
  ) {
    super(message);
  }
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
export function toErrorResponse(err: unknown) {
  const e =
    err instanceof HttpError
      ? err
      : err instanceof InvalidArgumentError
        ? new HttpError(400, "INVALID_ARGUMENT", err.message, {}, err.field)
        : // Transient: the client should retry shortly.
          err instanceof BackendUnavailableError
          ? new HttpError(503, "UNAVAILABLE", err.message, { "retry-after": "1" })
          : err instanceof Error && err.name === "TimeoutError"
            ? new HttpError(504, "DEADLINE_EXCEEDED", "the backend did not answer in time")
            : new HttpError(
                500,
                "INTERNAL",
                "internal error while serving the request (see server log)",
              );
  const { status, code, message, field } = e;
  const error = { status, code, message, ...(field !== undefined ? { field } : {}) };
  return { status, headers: e.headers, body: { error } };
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
      // Only an id in a route's path is decoded; anywhere else, no such route or file.
      const id = /^\/v1\/(users\/[^/?]*\/(recommendations|events)|items\/[^/?]*(\/similar)?)(\?|$)/;
      if (!id.test(url)) return notFound(url);
      const field = url.startsWith("/v1/users/") ? "user_id" : "item_id";
      return new InvalidArgumentError(field, `${field} is not valid percent-encoding`);
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
    `no route for ${pathOf(url)}: see /openapi.json for the API, / for the console`,
  );

/** The path of a request URL as a message may quote it: dot segments resolved, at most 200. */
export const pathOf = (url: string) => new URL(url, "http://localhost").pathname.slice(0, 200);
