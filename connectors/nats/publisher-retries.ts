/**
 * When a message is due again: the deadlines of the messages in flight, checked by one interval
 * per publisher, and how a 503 "no responders" is told from "no stream". What a due message
 * becomes (re-sent, settled with its newer upsert, or timed out) is the publisher's (publisher.ts).
 */

import type { Entry } from "./publisher-entry.js";

/**
 * A 503 "no responders" this soon after a reconnect is taken as "not ready yet", not as "no
 * stream": a nats-server that restarted accepts connections before its JetStream has recovered
 * its streams, and answers 503 meanwhile (seconds with a large store). A 503 means nothing
 * received the message, so re-sending it cannot store it twice; only messages with a `msgId` are
 * re-sent (within `retries`), since those are the ones whose order readers restore by id and
 * `prev` (actors/host/hop-order.ts), where a late re-send cannot overwrite a newer value.
 *
 * A server that is stopping answers 503 too, before any reconnect: it shuts its JetStream down
 * before it closes client connections. So the first 503 of such a message outside this window is
 * also taken as unanswered (re-sent at its deadline, by then usually on the new connection); only
 * a second one from the same server with no reconnect in between settles it as "no stream". A
 * restarted server is known by its new id, even before the client reports the reconnect.
 */
export const RECONNECT_503_MS = 30_000;

/**
 * Calls `onExpired` with the messages of `inflight` (in deadline order) whose deadline has
 * passed, checked every quarter of `timeoutMs` (5-250 ms). The interval is unref'd; clear it on
 * close.
 */
export function watchDeadlines(
  timeoutMs: number,
  inflight: ReadonlyMap<number, Entry>,
  onExpired: (expired: Entry[]) => void,
): ReturnType<typeof setInterval> {
  const tickMs = Math.max(5, Math.min(250, Math.floor(timeoutMs / 4)));
  let lastTick = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    // Time the event loop was held (GC, a long synchronous turn) does not count against the
    // server: after a stall, timers run before the I/O phase that reads the PubAcks which came
    // meanwhile, and every message in flight looked timed out. A stall of 5 s re-sent whole
    // windows of hops and failed KV puts (freshness outliers of ~5 s, hops published
    // twice under one id).
    const held = now - lastTick - tickMs;
    lastTick = now;
    if (inflight.size === 0) return;
    if (held > tickMs) for (const e of inflight.values()) e.deadline += held;
    const expired: Entry[] = [];
    for (const e of inflight.values()) {
      if (e.deadline > now) break;
      expired.push(e);
    }
    onExpired(expired);
  }, tickMs);
  timer.unref();
  return timer;
}
