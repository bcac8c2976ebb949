import {
  createInbox,
  Events,
  headers as natsHeaders,
  type MsgHdrs,
  type NatsConnection,
} from "nats";

export interface PublishOptions {
  /** Sent as `Nats-Msg-Id`: the server stores a message with a given id once per duplicate window. */
  msgId?: string;
  headers?: Record<string, string>;
  /**
   * The message is an upsert of its subject (a KV put: `$KV.<bucket>.<key>`), which carries no
   * `msgId`: only the newest value per subject matters. On a timeout it is re-sent (within
   * `retries`) while no newer upsert of its subject was published after it; once one was, it is
   * not re-sent (a re-send would be stored after the newer value and put the older one back) and
   * settles as the newer one does.
   */
  upsert?: boolean;
}

export interface PubAckInfo {
  stream: string;
  seq: number;
  /** True when the server already held a message with this `Nats-Msg-Id`; `seq` is the original's. */
  duplicate: boolean;
}

export interface OutgoingMessage {
  subject: string;
  data: Uint8Array;
  opts?: PublishOptions;
}

export interface JetStreamPublisherOptions {
  /** Most acks awaited at once. Default 1024. */
  window?: number;
  /** How long to wait for one PubAck. Default 5000 ms. */
  timeoutMs?: number;
  /**
   * Re-sends after a timeout, only for messages with a `msgId`. Default 3. The same budget covers
   * a 503 "no responders" that comes soon after a reconnect, or a first one that comes before any
   * (a stopping server's: see RECONNECT_503_MS).
   */
  retries?: number;
}

export interface JetStreamPublisher {
  /**
   * Publishes to a subject bound to a stream; resolves with the PubAck. Applies backpressure:
   * when `window` acks are pending, the message waits in an in-memory queue until the window has
   * room. That queue is unbounded, so a producer that does not await each publish should
   * `await ready()` before publishing (or use `publishMany`).
   *
   * Messages are sent on the next turn of the event loop (`setImmediate`), together with every
   * other publish of the current turn.
   *
   * The returned promise may be ignored: a failure is then reported by the next `flush()`.
   */
  publish(subject: string, data: Uint8Array, opts?: PublishOptions): Promise<PubAckInfo>;
  /**
   * Publishes everything `source` yields, honouring the window, and resolves once every message
   * is acked. Rejects with the first failure; it stops reading `source` after one. An async source
   * may yield arrays (say, the rows of one file chunk) to save an await per message.
   * `failFast`: reject at the first failure without waiting for the messages still in flight to
   * settle (they may or may not be stored; a caller that re-sends them with the same msgIds
   * stores none twice).
   */
  publishMany(
    source: Iterable<OutgoingMessage> | AsyncIterable<OutgoingMessage | readonly OutgoingMessage[]>,
    onAck?: (ack: PubAckInfo, msg: OutgoingMessage) => void,
    options?: { failFast?: boolean },
  ): Promise<{ published: number; duplicates: number }>;
  /** Resolves at once while fewer than 2 × `window` messages are pending, else once they drop below. */
  ready(): Promise<void>;
  /**
   * Resolves when all publishes so far are acked. Rejects with the first failure since the
   * previous `flush()` (also failures already reported through a `publish()` promise).
   */
  flush(): Promise<void>;
  /** Messages published but not yet acked (in flight and queued). */
  pending(): number;
  /** Flushes (rejecting like `flush()`), then unsubscribes the reply inbox. Publishing after is an error. */
  close(): Promise<void>;
}

/** The stream rejected a publish; `description` is the server's text. */
export class JetStreamPublishError extends Error {
  override name = "JetStreamPublishError";
  constructor(
    readonly subject: string,
    readonly description: string,
    readonly code?: number,
    readonly errCode?: number,
    options?: ErrorOptions,
  ) {
    super(`publish to "${subject}" failed: ${description}`, options);
  }
}

/** Nothing answered the publish: no stream is bound to the subject (a 503 "no responders" status). */
export class NoStreamError extends JetStreamPublishError {
  override name = "NoStreamError";
  constructor(subject: string) {
    super(subject, "no stream is bound to this subject (no responders)", 503);
  }
}

/** No PubAck arrived in time (after all retries, if the message had a `msgId`). */
export class PublishTimeoutError extends JetStreamPublishError {
  override name = "PublishTimeoutError";
  constructor(subject: string, timeoutMs: number, attempts: number) {
    super(
      subject,
      `no PubAck within ${timeoutMs} ms (${attempts} attempt${attempts === 1 ? "" : "s"}); ` +
        `the message may or may not be stored`,
    );
  }
}

/** The publisher was closed, or its connection closed, before the message was acked. */
export class PublisherClosedError extends Error {
  override name = "PublisherClosedError";
}

interface Entry {
  /** Reply token, kept across retries so a late ack of an earlier attempt still counts. */
  readonly token: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly hdrs: MsgHdrs | undefined;
  /** Has a Nats-Msg-Id: the server dedupes a re-send. */
  readonly retriable: boolean;
  /** An upsert (PublishOptions.upsert): re-sent only while the newest of its subject. */
  readonly upsert: boolean;
  /** Upserts of the same subject superseded while in flight: they settle as this one does. */
  followers: Entry[] | undefined;
  /** How it settled (an upsert's, for older ones of its subject that time out after it). */
  outcome: { ack?: PubAckInfo; err?: Error } | undefined;
  attempts: number;
  /**
   * The server (its id) whose 503 answered an attempt with no reconnect seen since, or undefined
   * (see RECONNECT_503_MS).
   */
  noResponders: string | undefined;
  deadline: number;
  onAck: (ack: PubAckInfo) => void;
  onError: (err: Error) => void;
}

interface FlushWaiter {
  /** Messages published before the flush still unsettled. */
  remaining: number;
  /** Last token published before the flush. */
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface RawPubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const decoder = new TextDecoder();
const resolved = Promise.resolve();

/**
 * A 503 "no responders" this soon after a reconnect is taken as "not ready yet", not as "no
 * stream": a nats-server that restarted accepts connections before its JetStream has recovered
 * its streams, and answers 503 meanwhile (seconds with a large store). A 503 means nothing
 * received the message, so re-sending it cannot store it twice; only messages with a `msgId` are
 * re-sent (within `retries`), since those are the ones whose order readers restore by id and
 * `prev` (actors/hop-order.ts), where a late re-send cannot overwrite a newer value.
 *
 * A server that is stopping answers 503 too, before any reconnect: it shuts its JetStream down
 * before it closes client connections. So the first 503 of such a message outside this window is
 * also taken as unanswered (re-sent at its deadline, by then usually on the new connection); only
 * a second one from the same server with no reconnect in between settles it as "no stream". A
 * restarted server is known by its new id, even before the client reports the reconnect.
 */
const RECONNECT_503_MS = 30_000;

/**
 * One setImmediate for every publisher of the process: the publishes of all of them in a turn
 * leave in one socket write (nats.js flushes its buffer once per microtask checkpoint, and each
 * setImmediate callback ends with one), not one write per publisher. A stage instance has its
 * own publisher, and dozens of them flush in the same turn.
 */
const dueSenders = new Set<() => void>();
let sendScheduled = false;
const sendDue = (): void => {
  sendScheduled = false;
  const senders = [...dueSenders];
  dueSenders.clear();
  let failure: { error: unknown } | undefined;
  for (const send of senders) {
    try {
      send();
    } catch (error) {
      // The others still send; the first error surfaces as it did from its own setImmediate.
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
};
const sendSoon = (send: () => void): void => {
  dueSenders.add(send);
  if (!sendScheduled) {
    sendScheduled = true;
    setImmediate(sendDue);
  }
};
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
      let raw: RawPubAck;
      try {
        raw = JSON.parse(decoder.decode(msg.data)) as RawPubAck;
      } catch (cause) {
        settle(
          e,
          undefined,
          new JetStreamPublishError(e.subject, "unparsable PubAck", undefined, undefined, {
            cause,
          }),
        );
        return;
      }
      if (raw.error !== undefined) {
        const { code, err_code: errCode, description } = raw.error;
        settle(
          e,
          undefined,
          new JetStreamPublishError(e.subject, description ?? "unknown error", code, errCode),
        );
        return;
      }
      settle(
        e,
        { stream: raw.stream ?? "", seq: raw.seq ?? 0, duplicate: raw.duplicate === true },
        undefined,
      );
    },
  });

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
    for (const e of expired) {
      if (supersede(e)) continue;
      if (resendable(e) && closedError === undefined) {
        inflight.delete(e.token); // re-inserted at the end by send()
        send(e);
      } else {
        settle(e, undefined, new PublishTimeoutError(e.subject, timeoutMs, e.attempts));
      }
    }
  }, tickMs);
  timer.unref();

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

    async publishMany(source, onAck, options) {
      let published = 0;
      let duplicates = 0;
      let failure: Error | undefined;
      const fail = (err: Error): void => {
        failure ??= err;
      };
      const feed = (m: OutgoingMessage): void => {
        const onOk = (ack: PubAckInfo): void => {
          published++;
          if (ack.duplicate) duplicates++;
          // Runs inside the PubAck subscription callback: a throw must not escape into it.
          try {
            onAck?.(ack, m);
          } catch (err) {
            fail(err instanceof Error ? err : new Error(String(err)));
          }
        };
        enqueue(m.subject, m.data, m.opts, onOk, fail);
      };
      if (Symbol.iterator in source) {
        // No `for await` over a sync source: it would yield to the event loop's microtasks
        // after every message for nothing.
        for (const m of source) {
          if (failure !== undefined) break;
          if (inflight.size + queued() >= highWater) await ready();
          feed(m);
        }
      } else {
        for await (const item of source) {
          if (failure !== undefined) break;
          if (inflight.size + queued() >= highWater) await ready();
          if (!Array.isArray(item)) {
            feed(item as OutgoingMessage);
            continue;
          }
          for (const m of item as readonly OutgoingMessage[]) {
            if (failure !== undefined) break;
            feed(m);
          }
        }
      }
      if (failure !== undefined && options?.failFast) throw failure;
      await flush().catch(fail);
      if (failure !== undefined) throw failure;
      return { published, duplicates };
    },

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

function asError(err: unknown, subject: string): Error {
  if (err instanceof Error)
    return new JetStreamPublishError(subject, err.message, undefined, undefined, { cause: err });
  return new JetStreamPublishError(subject, String(err));
}
