import { Metadata, status, type StatusObject } from "@grpc/grpc-js";
import { BackendUnavailableError, InvalidArgumentError } from "../../actors/backend.js";

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
 * INVALID_ARGUMENT (see `methodDefinition` in server.ts).
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

/** The canonical upper-case name of a status code, e.g. `INVALID_ARGUMENT`. */
export function statusName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

function isDomException(err: unknown, name: string): err is Error {
  return err instanceof Error && err.name === name;
}
