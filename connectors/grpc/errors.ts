import { Metadata, status, type StatusObject } from "@grpc/grpc-js";
import { BackendUnavailableError, InvalidArgumentError } from "../../actors/contract/index.js";

// Transport-neutral (the JSON/HTTP API raises it too); re-exported for existing imports.
export { InvalidArgumentError };

/**
 * The server will not take on more of something bounded (open trending streams); the client may
 * retry later or elsewhere.
 */
export class ResourceExhaustedError extends Error {
  override name = "ResourceExhaustedError";
}

/** The call's deadline passed before the backend answered (the abort reason of its signal). */
export class DeadlineExceededError extends Error {
  override name = "DeadlineExceededError";
  constructor(message = "deadline exceeded before the backend answered", options?: ErrorOptions) {
    super(message, options);
  }
}

/** The client cancelled the call or went away (the abort reason of its signal). */
export class CallCancelledError extends Error {
  override name = "CallCancelledError";
  constructor(message = "call cancelled by the client", options?: ErrorOptions) {
    super(message, options);
  }
}

/** The server is stopping: open streams are ended with this so clients reconnect elsewhere. */
export class ServerShuttingDownError extends Error {
  override name = "ServerShuttingDownError";
  constructor(message = "server is shutting down", options?: ErrorOptions) {
    super(message, options);
  }
}

/** What a grpc-js handler passes to its callback or emits as a stream error. */
export type ServiceErrorStatus = StatusObject;

/**
 * The one mapping from error conditions to gRPC status codes. Clients see a closed set of
 * codes with a useful message; anything unexpected becomes INTERNAL with a short message (the
 * detail goes to the server log, never a stack trace to the client, never UNKNOWN).
 *
 * | condition (why: see the comments in the code)                      | code               |
 * | ------------------------------------------------------------------ | ------------------ |
 * | InvalidArgumentError: a field breaks its contract (user_id empty,  | INVALID_ARGUMENT   |
 * |   blank or > 128 chars; n or k not 1..100; unknown window enum;    |                    |
 * |   undecodable request body); the message names the field and value |                    |
 * | BackendUnavailableError: NATS or state not ready                   | UNAVAILABLE        |
 * | ServerShuttingDownError: draining                                  | UNAVAILABLE        |
 * | DeadlineExceededError, AbortSignal TimeoutError                    | DEADLINE_EXCEEDED  |
 * | CallCancelledError, AbortError                                     | CANCELLED          |
 * | ResourceExhaustedError: too many open trending streams             | RESOURCE_EXHAUSTED |
 * | anything else (a bug)                                              | INTERNAL           |
 *
 * Raised by grpc-js itself, before a handler runs: a request larger than
 * `grpc.max_receive_message_length` (GRPC_MAX_MESSAGE_BYTES) is RESOURCE_EXHAUSTED ("Received
 * message larger than max"), an unknown method UNIMPLEMENTED. A body that is not valid protobuf
 * would be INTERNAL there, so the service definition decodes it itself and answers
 * INVALID_ARGUMENT (see `methodDefinition` in server.ts). The other statuses grpc-js raises on
 * its own are corrected by {@link transportStatus}.
 */
export function toServiceError(err: unknown): ServiceErrorStatus {
  const make = (code: status, details: string): ServiceErrorStatus => ({
    code,
    details,
    metadata: new Metadata(),
  });
  // The request itself is wrong; retrying the same request cannot succeed.
  if (err instanceof InvalidArgumentError) return make(status.INVALID_ARGUMENT, err.message);
  // NATS or state not ready yet: transient, the client should retry with backoff.
  if (err instanceof BackendUnavailableError) return make(status.UNAVAILABLE, err.message);
  // Draining: transient from the client's point of view, another replica (or a restart) serves.
  if (err instanceof ServerShuttingDownError) return make(status.UNAVAILABLE, err.message);
  // The client's own deadline fired; the work was abandoned.
  if (err instanceof DeadlineExceededError) return make(status.DEADLINE_EXCEEDED, err.message);
  // A bound of the server was reached: not the request's fault, not transient in the UNAVAILABLE
  // sense either; the client may retry later.
  if (err instanceof ResourceExhaustedError) return make(status.RESOURCE_EXHAUSTED, err.message);
  // The client gave up; the status is only for our metrics, the client no longer listens.
  if (err instanceof CallCancelledError) return make(status.CANCELLED, err.message);
  // AbortSignal.timeout() aborts with a "TimeoutError" DOMException: a deadline by another name.
  if (isDomException(err, "TimeoutError")) return make(status.DEADLINE_EXCEEDED, err.message);
  // A bare AbortError means someone aborted the work without saying why: treat as cancelled.
  if (isDomException(err, "AbortError")) return make(status.CANCELLED, err.message);
  // A bug or an unexpected failure: INTERNAL, short message; the caller logs the error itself.
  return make(status.INTERNAL, "internal error while serving the request (see server log)");
}

/**
 * grpc-js's own statuses for a malformed HTTP/2 request to a method we serve, recognised by their
 * text (grpc-js 1.14; test/grpc-transport.test.ts sends each), with the code the client
 * should see. Found with a raw HTTP/2 client: an empty or cut-short body, or two
 * messages to a unary method, came back UNIMPLEMENTED, a malformed `grpc-timeout` or a body that
 * does not decompress INTERNAL, though each is the client's error; and none was counted in
 * grpc_requests_total, since our handlers never ran.
 */
const TRANSPORT_STATUSES: readonly [RegExp, status, string | undefined][] = [
  // No message, or its frame cut short by the end of the stream: the request is malformed.
  [
    /^Received no request message/,
    status.INVALID_ARGUMENT,
    "no request message: the body is empty or its frame is cut short",
  ],
  [
    /^Received a second request message/,
    status.INVALID_ARGUMENT,
    "more than one request message for a method that takes one",
  ],
  [/^Invalid grpc-timeout value/, status.INVALID_ARGUMENT, undefined],
  [
    /^Failed to decompress message/,
    status.INVALID_ARGUMENT,
    "the request message does not decompress with its grpc-encoding",
  ],
  [
    /^Error deserializing request/,
    status.INVALID_ARGUMENT,
    "the request message could not be decoded",
  ],
  // Right as they are (the gRPC compression spec says UNIMPLEMENTED), only uncounted before.
  [/^Received message compressed with unsupported encoding/, status.UNIMPLEMENTED, undefined],
  [
    /^Received message (larger than max|that decompresses to a size larger than)/,
    status.RESOURCE_EXHAUSTED,
    undefined,
  ],
];

/**
 * The status to send instead of one grpc-js raised by itself (see TRANSPORT_STATUSES), or
 * undefined when `s` is not one of those (ours, or OK).
 */
export function transportStatus(s: {
  code: status;
  details: string;
}): { code: status; details: string } | undefined {
  if (s.code === status.OK) return undefined;
  for (const [re, code, details] of TRANSPORT_STATUSES)
    if (re.test(s.details)) return { code, details: details ?? s.details };
  return undefined;
}

/** The canonical upper-case name of a status code, e.g. `INVALID_ARGUMENT`. */
export function statusName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

function isDomException(err: unknown, name: string): err is Error {
  return err instanceof Error && err.name === name;
}
