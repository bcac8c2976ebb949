import {
  createInbox,
  Events,
  headers as natsHeaders,
  type MsgHdrs,
  type NatsConnection,
} from "nats";

import { readPubAck } from "./publisher-acks.js";
import { publishMany } from "./publisher-batch.js";
import type { Entry, FlushWaiter } from "./publisher-entry.js";
import {
  asError,
  JetStreamPublishError,
  NoStreamError,
  PublisherClosedError,
  PublishTimeoutError,
} from "./publisher-errors.js";
import { RECONNECT_503_MS, watchDeadlines } from "./publisher-retries.js";
import { sendSoon } from "./publisher-send-turn.js";
import type {
  JetStreamPublisher,
  JetStreamPublisherOptions,
  PubAckInfo,
  PublishOptions,
} from "./publisher-types.js";

/**
 * createJetStreamPublisher: the window of acks awaited, the queue behind it, settling each
 * message (and the upserts it supersedes) and what a timeout makes of it. The contract is
 * publisher-types.ts, the errors publisher-errors.ts (both re-exported here); deadlines and the
 * 503 rule are publisher-retries.ts, PubAck parsing publisher-acks.ts, publishMany
 * publisher-batch.ts.
 */

export type {
  JetStreamPublisher,
  JetStreamPublisherOptions,
  OutgoingMessage,
  PubAckInfo,
  PublishOptions,
} from "./publisher-types.js";
export {
  JetStreamPublishError,
  NoStreamError,
  PublisherClosedError,
  PublishTimeoutError,
} from "./publisher-errors.js";

const resolved = Promise.resolve();

const noop = (): void => {};

/**
 * A JetStream publisher built on core NATS (see NATS-NOTES: ~4x the throughput of
 * `js.publish()`): every message is a core `PUB` whose reply subject is `<inbox>.<token>` on one
 * wildcard subscription, and the PubAck JSON is parsed in that subscription's callback.
 *
 * Flow control: at most `window` messages await acks. Once the window is full the publisher waits
 * until half of it is acked and then sends the next half window in one go, so messages leave in
 * large socket writes rather than one write per ack.
 *
 * Timeouts are checked by one interval against the oldest in-flight messages (no timer per
 * message). A message with a `msgId` is re-sent with the same `Nats-Msg-Id` up to `retries`
 * times, so the server deduplicates the retry; one without is rejected at its first timeout.
 */
export function createJetStreamPublisher(
  nc: NatsConnection,
  options: JetStreamPublisherOptions = {},
): JetStreamPublisher {
  const window = options.window ?? 1024;
  const timeoutMs = options.timeoutMs ?? 5000;
  const retries = options.retries ?? 3;
  if (!Number.isInteger(window) || window < 1)
    throw new RangeError(`window must be >= 1: ${window}`);
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0: ${timeoutMs}`);
  if (!Number.isInteger(retries) || retries < 0) throw new RangeError(`retries must be >= 0`);
  const lowWater = Math.floor(window / 2);
  // ready() holds producers back beyond this many pending (in flight + queued).
  const highWater = 2 * window;

  const prefix = `${createInbox()}.`;
  const prefixLen = prefix.length;
  // In send order; a retried entry is moved to the end, so the map is also in deadline order.
  const inflight = new Map<number, Entry>();
  // The newest unsettled upsert per subject (PublishOptions.upsert).
  // Per subject with upserts unsettled: the newest published (settled or not) and how many are
  // unsettled (the record goes with the last of them).
  const upserts = new Map<string, { newest: Entry; open: number }>();
  // Superseded upserts waiting for their newer one (out of `inflight`, still unsettled).
  let waitingOnNewer = 0;
  /** Whether a timed-out (or 503'd) entry may be sent again (see PublishOptions.upsert). */
  const resendable = (e: Entry): boolean =>
    e.attempts <= retries && (e.retriable || (e.upsert && upserts.get(e.subject)?.newest === e));
  /**
   * An upsert that timed out after a newer one of its subject was published: not re-sent (it
   * would land after the newer value), it settles with the newer one (which is re-sent itself).
   */
  const supersede = (e: Entry): boolean => {
    if (!e.upsert || closedError !== undefined) return false;
    const newer = upserts.get(e.subject)?.newest;
    if (newer === undefined || newer === e) return false;
    inflight.delete(e.token);
    if (newer.outcome !== undefined) {
      // The newer one is settled already (its ack came first: this one's was lost or late).
      settle(e, newer.outcome.err ? undefined : newer.outcome.ack, newer.outcome.err);
      return true;
    }
    waitingOnNewer++;
    (newer.followers ??= []).push(e);
    if (e.followers !== undefined) {
      newer.followers.push(...e.followers);
      e.followers = undefined;
    }
    return true;
  };
  // FIFO with a moving head (shift() is O(n) on big arrays); sent slots are cleared for the GC.
  let queue: Array<Entry | undefined> = [];
  let queueHead = 0;
  let blocked = false;
  let nextToken = 1;
  let closing = false;
  let closePromise: Promise<void> | undefined;
  let sending = false;
  let scheduled = false;
  let closedError: Error | undefined;
  let unflushedError: Error | undefined;
  let readyWaiters: Array<() => void> = [];
  let reconnectedAt = -Infinity;
  let flushWaiters: FlushWaiter[] = [];

  const queued = (): number => queue.length - queueHead + waitingOnNewer;

  const send = (e: Entry): void => {
    e.attempts++;
    e.deadline = Date.now() + timeoutMs;
    inflight.set(e.token, e);
    try {
      nc.publish(e.subject, e.data, { reply: prefix + e.token, headers: e.hdrs });
    } catch (err) {
      // The connection is closed (or the subject is invalid): nothing will answer.
      settle(e, undefined, asError(err, e.subject));
    }
  };

  /** Sends queued messages while the window has room; one synchronous run is one socket write. */
  const sendQueued = (): void => {
    // send() can settle synchronously (closed connection), which comes back here.
    if (sending) return;
    sending = true;
    try {
      while (inflight.size < window && queueHead < queue.length) {
        const e = queue[queueHead]!;
        queue[queueHead++] = undefined;
        send(e);
      }
    } finally {
      sending = false;
    }
    if (inflight.size >= window) blocked = true;
    if (queueHead === queue.length) {
      queue = [];
      queueHead = 0;
    } else if (queueHead > 4096 && queueHead * 2 > queue.length) {
      queue = queue.slice(queueHead);
      queueHead = 0;
    }
  };

  const onImmediate = (): void => {
    scheduled = false;
    if (!blocked) sendQueued();
  };

  function settle(e: Entry, ack: PubAckInfo | undefined, err: Error | undefined): void {
    if (inflight.get(e.token) === e) inflight.delete(e.token);
    if (e.upsert && e.outcome === undefined) {
      e.outcome = err ? { err } : { ack: ack! };
      const u = upserts.get(e.subject);
      if (u !== undefined && --u.open === 0) upserts.delete(e.subject);
    }
    if (e.followers !== undefined) {
      const followers = e.followers;
      e.followers = undefined;
      waitingOnNewer -= followers.length;
      for (const f of followers) settle(f, ack, err);
    }
    if (err) {
      unflushedError ??= err;
      e.onError(err);
    } else {
      e.onAck(ack!);
    }
    if (flushWaiters.length > 0) settleFlushWaiters(e.token);
    // Refill in half-window batches: one write per batch instead of one per ack.
    if (blocked && inflight.size <= lowWater) {
      blocked = false;
      sendQueued();
    }
    if (readyWaiters.length > 0 && inflight.size + queued() < highWater) {
      const waiters = readyWaiters;
      readyWaiters = [];
      for (const w of waiters) w();
    }
  }

  const settleFlushWaiters = (token: number): void => {
    let done = false;
    for (const w of flushWaiters) {
      if (token <= w.target && --w.remaining === 0) done = true;
    }
    if (!done) return;
    const still: FlushWaiter[] = [];
    for (const w of flushWaiters) {
      if (w.remaining > 0) {
        still.push(w);
        continue;
      }
      const failure = unflushedError;
      unflushedError = undefined;
      if (failure) w.reject(failure);
      else w.resolve();
    }
    flushWaiters = still;
  };

  const failAll = (err: Error): void => {
    closedError ??= err;
    const all = [...inflight.values(), ...(queue.slice(queueHead) as Entry[])];
    queue = [];
    queueHead = 0;
    for (const e of all) settle(e, undefined, err);
  };

  const sub = nc.subscribe(`${prefix}*`, {
    callback: (err, msg) => {
      if (err) {
        failAll(
          new PublisherClosedError(`PubAck subscription failed: ${err.message}`, { cause: err }),
        );
        return;
      }
      const e = inflight.get(Number(msg.subject.substring(prefixLen)));
      // Unknown token: a late ack for a publish that already timed out or was answered.
      if (e === undefined) return;
      const h = msg.headers;
      if (msg.data.length === 0 && h !== undefined && h.code !== 0) {
        if (h.code === 503 && (e.retriable || e.upsert) && e.attempts <= retries) {
          // As if unanswered: the timer re-sends it at its deadline (see RECONNECT_503_MS).
          if (Date.now() - reconnectedAt < RECONNECT_503_MS) return;
          // The server that answered: a restarted one has a new id, known from its INFO before
          // any message it delivers, while the status event of the reconnect may come later.
          const server = nc.info?.server_id ?? "";
          if (e.noResponders !== server) {
            e.noResponders = server;
            return;
          }
        }
        settle(
          e,
          undefined,
          h.code === 503
            ? new NoStreamError(e.subject)
            : new JetStreamPublishError(e.subject, `status ${h.code} ${h.description}`, h.code),
        );
        return;
      }
      const ack = readPubAck(e.subject, msg.data);
      if (ack instanceof Error) settle(e, undefined, ack);
      else settle(e, ack, undefined);
    },
  });

  const timer = watchDeadlines(timeoutMs, inflight, (expired) => {
    for (const e of expired) {
      if (supersede(e)) continue;
      if (resendable(e) && closedError === undefined) {
        inflight.delete(e.token); // re-inserted at the end by send()
        send(e);
      } else {
        settle(e, undefined, new PublishTimeoutError(e.subject, timeoutMs, e.attempts));
      }
    }
  });

  // Watches reconnects for RECONNECT_503_MS; stopped on close.
  const status = nc.status();
  void (async () => {
    for await (const st of status) if (st.type === Events.Reconnect) reconnectedAt = Date.now();
  })().catch(noop);
  const stopStatus = () => (status as unknown as { stop?: () => void }).stop?.();

  void nc.closed().then(() => {
    clearInterval(timer);
    stopStatus();
    failAll(new PublisherClosedError("NATS connection closed before the PubAck arrived"));
  });

  const enqueue = (
    subject: string,
    data: Uint8Array,
    opts: PublishOptions | undefined,
    onAck: (ack: PubAckInfo) => void,
    onError: (err: Error) => void,
  ): void => {
    let hdrs: MsgHdrs | undefined;
    if (opts?.headers !== undefined || opts?.msgId !== undefined) {
      hdrs = natsHeaders();
      if (opts.headers !== undefined) {
        for (const [k, v] of Object.entries(opts.headers)) hdrs.set(k, v);
      }
      if (opts.msgId !== undefined) hdrs.set("Nats-Msg-Id", opts.msgId);
    }
    const e: Entry = {
      token: nextToken++,
      subject,
      data,
      hdrs,
      retriable: opts?.msgId !== undefined,
      upsert: opts?.upsert === true && opts.msgId === undefined,
      followers: undefined,
      outcome: undefined,
      attempts: 0,
      noResponders: undefined,
      deadline: 0,
      onAck,
      onError,
    };
    if (closing || closedError !== undefined) {
      const err = closedError ?? new PublisherClosedError("publisher is closed");
      unflushedError ??= err;
      onError(err);
      return;
    }
    if (e.upsert) {
      const u = upserts.get(subject);
      if (u === undefined) upserts.set(subject, { newest: e, open: 1 });
      else {
        u.newest = e;
        u.open++;
      }
    }
    queue.push(e);
    // Publishes made in one turn of the event loop (including across awaits, e.g. an async
    // source) are sent together on the next turn, so nats.js writes them in one go: its own
    // coalescing only spans one microtask.
    if (!blocked && !scheduled) {
      scheduled = true;
      sendSoon(onImmediate);
    }
  };

  const ready = (): Promise<void> =>
    inflight.size + queued() < highWater
      ? resolved
      : new Promise<void>((resolve) => readyWaiters.push(resolve));

  const flush = (): Promise<void> => {
    const remaining = inflight.size + queued();
    if (remaining === 0) {
      const failure = unflushedError;
      unflushedError = undefined;
      return failure ? Promise.reject(failure) : resolved;
    }
    return new Promise<void>((resolve, reject) => {
      flushWaiters.push({ remaining, target: nextToken - 1, resolve, reject });
    });
  };

  return {
    publish(subject, data, opts) {
      const p = new Promise<PubAckInfo>((resolve, reject) => {
        enqueue(subject, data, opts, resolve, reject);
      });
      // A caller may rely on flush() for errors and drop this promise: keep Node from treating
      // its rejection as unhandled. Awaiting it still throws.
      p.catch(noop);
      return p;
    },

    publishMany: (source, onAck, options) =>
      publishMany(
        { enqueue, pending: () => inflight.size + queued(), highWater, ready, flush },
        source,
        onAck,
        options,
      ),

    ready,
    flush,

    pending() {
      return inflight.size + queued();
    },

    close() {
      closePromise ??= (async () => {
        try {
          await flush();
        } finally {
          closing = true;
          clearInterval(timer);
          stopStatus();
          if (!nc.isClosed()) sub.unsubscribe();
        }
      })();
      return closePromise;
    },
  };
}
