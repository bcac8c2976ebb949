/**
 * What a stage host needs from its transport, injected (connectors/nats/host-transport.ts is the
 * NATS one; test/helpers or an in-memory driver may give others): a durable input it can reopen at
 * a sequence, and a publisher whose flush says that outputs are stored. The host knows no client.
 *
 * The shapes are those of the nats.js objects (a `JsMsg` is a `SourceMessage` as it is), so the
 * NATS connector passes messages through without a copy per message.
 */

/** One input message. */
export interface SourceMessage {
  /** Position in the input stream (JetStream stream sequence). */
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  /** Header name → values (nats.js `MsgHdrs` iterates so). */
  readonly headers?: Iterable<[string, string[]]> | undefined;
  readonly info: {
    /** When the server stored it (epoch ns). Part of the log: a replay sees the same value. */
    readonly timestampNanos: number;
    /** The consumer's delivery count: one more per message sent, so a gap is a lost delivery. */
    readonly deliverySequence: number;
    /** Messages the server still holds for this consumer after this one. */
    readonly pending: number;
  };
  /** Cumulative ack: paces delivery only (the snapshot is the truth). */
  ack(): void;
}

export interface SourceOptions {
  stream: string;
  /** The consumer's name (no dots). */
  durable: string;
  /**
   * Names of consumers an earlier owner of this input left (an older lease's): deleted before
   * the durable is placed, so that owner's input ends instead of going on beside ours.
   */
  stale?: (name: string) => boolean;
  filterSubject: string;
  /** First sequence to deliver (the snapshot's + 1). */
  startSeq: number;
  /** Unacked messages before delivery pauses. */
  maxAckPending: number;
  /** Each message as it arrives. */
  callback(m: SourceMessage): void;
  /** Aborted when the instance stops: opening gives up (rejects) rather than finishing. */
  signal?: AbortSignal;
  /**
   * The input's consumer when the instances of this process that read the same subject share
   * one (a partition's hops, read by each of its stages): its name, and the names it replaces.
   * The transport may then deliver each message once for all of them, each instance still
   * reading from its own start with its own delivery numbering and acks. `durable` and `stale`
   * are then the consumers this instance had alone, deleted. Absent: a consumer of its own.
   */
  shared?: { durable: string; stale?: (name: string) => boolean };
}

/** An open input. */
export interface InputSource {
  close(): Promise<unknown>;
  /** Resolves when delivery ends, with the error if it ended without a `close`. */
  closed(): Promise<void | Error>;
  /**
   * Messages the server holds for this input now (undefined: it cannot tell). Asked when the
   * input has gone quiet: the count a delivery carries is the server's as it sent that message,
   * and the last one of a burst may carry a few more than ever come (seen 2-7 on nats-server
   * 2.9.10, with nothing left to deliver).
   */
  pending?(): Promise<number | undefined>;
}

export interface HopPublishOptions {
  /** Deterministic id: the server stores a message with a given id once (duplicate window). */
  msgId?: string;
  headers?: Record<string, string>;
  /**
   * An upsert of its subject (a KV put, no msgId): a slow acknowledgement is waited for and the
   * put re-sent while no newer put of the subject follows it, never after a newer one.
   */
  upsert?: boolean;
}

export interface HopPublisher {
  /** A failure is also reported by the next `flush()`: the promise may be ignored. */
  publish(subject: string, data: Uint8Array, opts?: HopPublishOptions): Promise<unknown>;
  /** Resolves once everything published so far is stored; rejects with the first failure. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface HostTransport {
  /** The largest message the server takes, if known (hops are cut at half of it). */
  maxPayload(): number | undefined;
  openSource(o: SourceOptions): Promise<InputSource>;
  createPublisher(o: { window: number }): HopPublisher;
}
