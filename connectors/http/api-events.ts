import { MAX_EVENTS_PER_REQUEST } from "./api-limits.js";
import type { IncomingHttpHeaders } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { normaliseEvent } from "../../actors/contract/index.js";
import { HttpError } from "./api-errors.js";

/**
 * `POST /v1/events` (DESIGN §1, §2): web and mobile front ends send events over HTTP. Each event
 * is checked against the same contract as on NATS (actors/contract/event.ts) and published to JetStream
 * as it came (`events.<event_type>`, `Nats-Msg-Id` = `event_id`), so the engine's parse sees
 * exactly what a NATS publisher would have sent and a retried request counts once.
 */

/** Publishes one event's bytes; resolves once JetStream stored it (or knew it already). */
export type PublishEvent = (
  subject: string,
  data: Uint8Array,
  msgId: string,
) => Promise<{ duplicate: boolean }>;

export interface EventResult {
  index: number;
  eventId?: string;
  status: "accepted" | "duplicate" | "rejected";
  reason?: string;
}

/** Whether the request carries one of `keys` (`Authorization: Bearer <key>` or `X-API-Key`). */
export function hasApiKey(headers: IncomingHttpHeaders, keys: readonly string[]): boolean {
  const auth = headers.authorization;
  const bearer = typeof auth === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
  const header = headers["x-api-key"];
  const given = bearer ?? (typeof header === "string" ? header.trim() : undefined);
  if (given === undefined || given === "") return false;
  const g = Buffer.from(given);
  return keys.some((k) => {
    const b = Buffer.from(k);
    return b.length === g.length && timingSafeEqual(b, g);
  });
}

/** 401 unless the request carries a key of `keys` (none configured: every write is refused). */
export function requireApiKey(
  headers: IncomingHttpHeaders,
  keys: readonly string[],
  what: string,
): void {
  if (keys.length === 0)
    throw new HttpError(
      401,
      "UNAUTHENTICATED",
      `${what} needs an API key, and none is configured: set API_KEYS and send one as ` +
        "Authorization: Bearer <key> or X-API-Key: <key>",
      { "www-authenticate": 'Bearer realm="reco"' },
    );
  if (!hasApiKey(headers, keys))
    throw new HttpError(
      401,
      "UNAUTHENTICATED",
      `${what} needs an API key from API_KEYS, sent as Authorization: Bearer <key> or ` +
        "X-API-Key: <key>",
      { "www-authenticate": 'Bearer realm="reco"' },
    );
}

/** 415 unless the request says it is JSON: checked before its body is read. */
export function requireJson(headers: IncomingHttpHeaders): void {
  const type = headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type))
    throw new HttpError(
      415,
      "INVALID_ARGUMENT",
      `content-type must be application/json (got ${JSON.stringify(type.slice(0, 100))})`,
    );
}

/**
 * Checks and publishes the events of one request (`value`, the parsed body): every event gets a
 * result, in the request's order. The route's schema refused an empty array or one of more than
 * {@link MAX_EVENTS_PER_REQUEST}.
 */
export async function postEvents(
  value: unknown,
  publish: PublishEvent,
): Promise<{ accepted: number; duplicates: number; rejected: number; results: EventResult[] }> {
  const events = Array.isArray(value) ? value : [value];
  const enc = new TextEncoder();
  const results = await Promise.all(
    events.map(async (raw, index): Promise<EventResult> => {
      const r = normaliseEvent(raw);
      const id = (raw as { event_id?: unknown } | null)?.event_id;
      const eventId = typeof id === "string" ? id : undefined;
      if (!r.ok)
        return {
          index,
          ...(eventId !== undefined ? { eventId } : {}),
          status: "rejected",
          reason: r.reason,
        };
      const ack = await publish(`events.${r.event.t}`, enc.encode(JSON.stringify(raw)), r.event.id);
      return { index, eventId: r.event.id, status: ack.duplicate ? "duplicate" : "accepted" };
    }),
  );
  const count = (s: EventResult["status"]) => results.filter((x) => x.status === s).length;
  return {
    accepted: count("accepted"),
    duplicates: count("duplicate"),
    rejected: count("rejected"),
    results,
  };
}

/**
 * The body: an event or an array of them. Anything else that is JSON counts as one event, and is
 * rejected as one (the array wraps it).
 */
export const eventsBody = {
  type: ["array", "object"],
  minItems: 1,
  maxItems: MAX_EVENTS_PER_REQUEST,
  description:
    "an event with the NATS contract (DESIGN §2), or an array of up to 1,000; each is published with Nats-Msg-Id = event_id",
};

/** The 400 for a body the schema refused, by what it broke. */
export function bodyError(keyword: string | undefined, body: unknown): HttpError {
  const n = Array.isArray(body) ? body.length : 1;
  return new HttpError(
    400,
    "INVALID_ARGUMENT",
    keyword === "minItems"
      ? "the array holds no event"
      : keyword === "maxItems"
        ? `${n} events in one request: at most ${MAX_EVENTS_PER_REQUEST}`
        : "the body is not JSON: send an event or an array of events",
  );
}
