/**
 * The JetStream publisher's contract: what a publish takes (subject, data, options), what its
 * PubAck gives back, the publisher's options and its interface (created in publisher.ts).
 */

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
