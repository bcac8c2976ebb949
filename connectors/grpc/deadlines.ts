import { type ServerUnaryCall } from "@grpc/grpc-js";
import { CallCancelledError, DeadlineExceededError } from "./errors.js";

/**
 * Deadlines and cancellation of a server call: an AbortSignal for the backend, and whether a
 * call is already past its deadline (grpc-js reports its own deadline timer as a cancellation).
 */
/**
 * An AbortSignal for one call: aborted with `DeadlineExceededError` when the call's deadline
 * passes and with `CallCancelledError` when the client cancels or disconnects.
 */
export function createCallSignal(call: ServerUnaryCall<unknown, unknown>): {
  signal: AbortSignal;
  cleanup(): void;
} {
  const controller = new AbortController();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const onCancelled = () => controller.abort(cancellationReason(call));
  call.once("cancelled", onCancelled);
  let timer: NodeJS.Timeout | undefined;
  if (Number.isFinite(deadlineMs)) {
    const remaining = deadlineMs - Date.now();
    if (remaining <= 0) controller.abort(new DeadlineExceededError());
    else timer = setTimeout(() => controller.abort(new DeadlineExceededError()), remaining);
  }
  if (call.cancelled) onCancelled();
  return {
    signal: controller.signal,
    cleanup() {
      if (timer) clearTimeout(timer);
      call.removeListener("cancelled", onCancelled);
    },
  };
}

export function isPastDeadline(
  call: Pick<ServerUnaryCall<unknown, unknown>, "getDeadline">,
): boolean {
  const deadline = call.getDeadline();
  // grpc-js gives Infinity for a call without a deadline: no clock read then.
  if (deadline === Infinity) return false;
  return Date.now() >= (deadline instanceof Date ? deadline.getTime() : deadline);
}

/** Why a call was cancelled: grpc-js reports its own deadline timer as a cancellation too. */
export function cancellationReason(
  call: Pick<ServerUnaryCall<unknown, unknown>, "getDeadline">,
): Error {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return Date.now() >= deadlineMs ? new DeadlineExceededError() : new CallCancelledError();
}

/** Settles with `work`, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => signal.removeEventListener("abort", onAbort);
    Promise.resolve()
      .then(work)
      .then(
        (value) => {
          settle();
          resolve(value);
        },
        (err: unknown) => {
          settle();
          // A backend that honours the signal rejects with its own AbortError; ours says why.
          reject(signal.aborted ? signal.reason : err);
        },
      );
  });
}
