import { createHmac, timingSafeEqual } from "node:crypto";
import type { InputMessage } from "./types.js";

/** parse's idle markers (DESIGN §3.2): what they say, how they are signed and read back. */

/**
 * Subject of parse's idle markers in EVENTS. Publishers never use it: an event published here is
 * dead-lettered as `subject_mismatch:event_type` like any event on a subject not its type's, and
 * a marker without the engine's signature ({@link IDLE_SIGNATURE_HEADER}) as
 * `idle_marker_unsigned`.
 */
export const IDLE_SUBJECT = "events._idle";

/**
 * An idle marker, the body of a message on {@link IDLE_SUBJECT}: "event-time progress is at least
 * `progress`", decided by parse when the message at stream sequence `after` was the last of the
 * stream. It counts only at sequence `after + 1`: anything stored in between (an event that
 * raced the decision) makes it stale, and it is ignored. That is a function of the log alone,
 * so a replay reproduces the same progress at the same input position.
 */
export interface IdleMarker {
  progress: number;
  after: number;
}

/** The server's view of parse's consumer (`jsm.consumers.info`), on which idleness is decided. */
export interface ConsumerView {
  /** Messages of the stream not yet delivered to the consumer (`num_pending`). */
  pending: number;
  /** Last stream sequence delivered to the client (`delivered.stream_seq`). */
  delivered: number;
  /** Last stream sequence acknowledged (`ack_floor.stream_seq`; the host acks at snapshots). */
  ackFloor: number;
  /** Pull requests waiting at the server (`num_waiting`): above 0 while the client is pulling. */
  waiting: number;
}

export interface IdleOptions {
  /**
   * IDLE_TIMEOUT_MS: processing time without a new accepted event, while the consumer is caught
   * up, before event time moves on; and the least time between two markers. 0: never.
   */
  timeoutMs: number;
  /** Asks the server about parse's consumer (connectors/nats/source.ts consumerProbe). */
  probe(): Promise<ConsumerView>;
}

/** Header of an idle marker carrying its HMAC-SHA256 (base64url) under the engine's key. */
export const IDLE_SIGNATURE_HEADER = "Reco-Idle-Sig";

/** The signature of a marker's bytes under `key`. */
export function signIdleMarker(key: Uint8Array, data: Uint8Array): string {
  return createHmac("sha256", key).update(data).digest("base64url");
}

/** Whether `msg` carries a valid signature under `key` (none without a key). */
export function markerSignedBy(key: Uint8Array | undefined, msg: InputMessage): boolean {
  const sig = msg.headers[IDLE_SIGNATURE_HEADER];
  if (key === undefined || sig === undefined) return false;
  const want = Buffer.from(signIdleMarker(key, msg.data));
  const got = Buffer.from(sig);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Reads an idle marker; undefined when the bytes are not exactly one (then it is an event). */
export function readIdleMarker(data: Uint8Array): IdleMarker | undefined {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (Object.keys(o).length !== 2) return undefined;
  const { progress, after } = o;
  if (!Number.isSafeInteger(progress) || !Number.isSafeInteger(after)) return undefined;
  if ((progress as number) < 0 || (progress as number) > 8.64e15 || (after as number) < 0)
    return undefined;
  return { progress: progress as number, after: after as number };
}
