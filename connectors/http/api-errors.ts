import type { ServerResponse } from "node:http";
import { BackendUnavailableError, InvalidArgumentError } from "../../actors/backend.js";

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
 * | method other than GET/HEAD/OPTIONS               | 405  | METHOD_NOT_ALLOWED |
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

/** Writes `body` as JSON (nothing for HEAD). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const { status, body, headers } = toErrorResponse(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, body, headers);
}
