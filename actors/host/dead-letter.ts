/**
 * Dead letters that always fit. A message of nearly max_payload is stored in
 * EVENTS, but its dead-letter copy carries more headers (reason, subject, sequence, id): as it was
 * it could never be published, the stage failed at every snapshot and replayed the message for
 * ever. A raw output that does not fit goes truncated instead, saying so in its headers.
 */

/**
 * The original headers as carried into the dead letter. JetStream acts on publish headers such as
 * `Nats-Expected-Stream: EVENTS` or `Nats-Expected-Last-Sequence`: copied as they are, they would
 * make the dead letter's own publish fail, and parse would fail at every snapshot on one bad
 * event. They are kept under `Reco-Orig-<name>` instead. `Nats-Msg-Id` stays: the publisher
 * replaces it with the dead letter's own id.
 */
export function deadLetterHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    const lower = k.toLowerCase();
    if (lower.startsWith("nats-") && lower !== "nats-msg-id") out[`Reco-Orig-${k}`] = v;
    else out[k] = v;
  }
  return out;
}

/** nats-server's default max_payload, when the connection does not say. */
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/** Room kept below max_payload for what the client adds besides our headers. */
const MARGIN = 64;

const enc = new TextEncoder();

/** Bytes of the NATS header block for `headers` plus a `Nats-Msg-Id`, as nats.js writes it. */
function headerBytes(headers: Record<string, string>, msgId: string): number {
  // "NATS/1.0\r\n" ... "\r\n", one "key: value\r\n" line per header.
  let n = 12 + enc.encode(`Nats-Msg-Id: ${msgId}\r\n`).length;
  for (const k in headers) n += enc.encode(`${k}: ${headers[k]}\r\n`).length;
  return n;
}

/** The headers this engine sets on its own outputs, kept when the original ones must go. */
const isOwn = (key: string) => key.startsWith("Reco-") && !key.startsWith("Reco-Orig-");

/**
 * `data` and `headers` as they can be published within `maxPayload` bytes: unchanged when they
 * fit; else the body is cut to what fits, with `Reco-Truncated: true` and
 * `Reco-Original-Size: <bytes>`, and when the original headers alone take more than half the
 * room they are dropped too (`Reco-Headers-Dropped: <bytes>`), keeping the engine's own ones
 * (reason, subject, sequence, error).
 */
export function fitRawOutput(
  data: Uint8Array,
  headers: Record<string, string>,
  msgId: string,
  maxPayload: number,
): { data: Uint8Array; headers: Record<string, string> } {
  const room = maxPayload - MARGIN;
  // Most outputs are far below the limit: UTF-8 takes at most 3 bytes per UTF-16 unit.
  let chars = 12 + 15 + msgId.length;
  for (const k in headers) chars += k.length + headers[k]!.length + 4;
  if (data.length + 3 * chars <= room) return { data, headers };
  const hb = headerBytes(headers, msgId);
  if (hb + data.length <= room) return { data, headers };
  let kept = headers;
  if (hb > room / 2) {
    kept = {};
    for (const k in headers) if (isOwn(k)) kept[k] = headers[k]!;
    kept["Reco-Headers-Dropped"] = String(hb);
  }
  const out = { ...kept, "Reco-Truncated": "true", "Reco-Original-Size": String(data.length) };
  const left = Math.max(0, room - headerBytes(out, msgId));
  return { data: data.subarray(0, Math.min(data.length, left)), headers: out };
}

/**
 * Whether a publish failed for a reason that repeating it cannot cure: the server refused the
 * message (a JetStream error such as "message size exceeds maximum allowed") or the client did
 * (MAX_PAYLOAD_EXCEEDED, a bad subject or header). A timeout, no responders or a closed connection
 * is not: those heal. Duck-typed on connectors/nats/publisher.ts's JetStreamPublishError.
 */
export function isPermanentPublishError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as Error & { errCode?: number; cause?: { code?: unknown } };
  if (e.errCode !== undefined) return true;
  const code = String(e.cause?.code ?? "");
  return /^(MAX_PAYLOAD_EXCEEDED|BAD_SUBJECT|BAD_HEADER|BAD_PAYLOAD)$/.test(code);
}
