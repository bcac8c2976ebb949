import type {
  HopPublisher,
  HopPublishOptions,
  HostTransport,
  InputSource,
  SourceMessage,
  SourceOptions,
} from "../../actors/host/index.js";

/**
 * An in-memory stand-in for the JetStream streams and KV buckets the pipeline uses, as a stage
 * host's transport (actors/host/transport.ts): streams of messages with sequences, deduplicated
 * by message id (no window: ids are unique per run), consumers that deliver from a sequence on,
 * in order, with delivery sequences and pending counts, and KV puts (`$KV.<bucket>.<key>`) kept
 * as the latest value per key. What the in-memory driver (bin/pipeline/driver.ts) runs on: no server,
 * no disk, no acks to wait for.
 */

export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly headers: Record<string, string>;
  /** Stored at (epoch ms). */
  readonly time: number;
}

export interface MemoryLog extends HostTransport {
  /** A stream holding the subjects that match one of `subjects` (NATS wildcards `*`, `>`). */
  addStream(name: string, subjects: readonly string[]): void;
  /** Stores a message in the stream of its subject (dropped if its id was seen or no stream). */
  publish(subject: string, data: Uint8Array, opts?: HopPublishOptions): void;
  messages(stream: string): readonly StoredMessage[];
  /** Latest value per key of a KV bucket (JSON-decoded). */
  kv(bucket: string): ReadonlyMap<string, unknown>;
  /** Calls `fn` with every put to the bucket from now on. */
  watchKv(bucket: string, fn: (key: string, value: unknown) => void): () => void;
  /** Messages stored so far, over every stream and bucket (for "nothing moves any more"). */
  stored(): number;
  /** True while some consumer has messages it has not delivered yet. */
  delivering(): boolean;
}

interface Stream {
  subjects: readonly string[];
  messages: StoredMessage[];
  ids: Set<string>;
  consumers: Set<Consumer>;
}

interface Consumer {
  filter: string;
  /** Indexes into the stream's messages that match the filter, from the start sequence on. */
  queue: number[];
  next: number;
  delivered: number;
  closed: boolean;
  scheduled: boolean;
  callback(m: SourceMessage): void;
  ended(): void;
}

/** NATS subject matching: `*` one token, `>` the rest (one or more tokens). */
export function subjectMatches(filter: string, subject: string): boolean {
  const f = filter.split(".");
  const s = subject.split(".");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === ">") return s.length > i;
    if (i >= s.length || (f[i] !== "*" && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

const dec = new TextDecoder();

export function createMemoryLog(o: { maxPayload?: number } = {}): MemoryLog {
  const streams = new Map<string, Stream>();
  const buckets = new Map<string, Map<string, unknown>>();
  const watchers = new Map<string, Set<(key: string, value: unknown) => void>>();
  let stored = 0;

  const pump = (stream: Stream, c: Consumer) => {
    if (c.scheduled || c.closed) return;
    c.scheduled = true;
    // Delivered on a later turn, as a client receives them: never inside the publisher's call.
    setImmediate(() => {
      c.scheduled = false;
      while (!c.closed && c.next < c.queue.length) {
        const m = stream.messages[c.queue[c.next]!]!;
        c.next++;
        const pending = c.queue.length - c.next;
        c.callback({
          seq: m.seq,
          subject: m.subject,
          data: m.data,
          headers: Object.entries(m.headers).map(([k, v]): [string, string[]] => [k, [v]]),
          info: {
            timestampNanos: m.time * 1e6,
            deliverySequence: ++c.delivered,
            pending,
          },
          ack: () => undefined,
        });
      }
    });
  };

  const publish: MemoryLog["publish"] = (subject, data, opts = {}) => {
    stored++;
    if (subject.startsWith("$KV.")) {
      const [, bucket = "", ...key] = subject.split(".");
      const value: unknown = JSON.parse(dec.decode(data));
      let b = buckets.get(bucket);
      if (!b) buckets.set(bucket, (b = new Map()));
      b.set(key.join("."), value);
      for (const w of watchers.get(bucket) ?? []) w(key.join("."), value);
      return;
    }
    for (const stream of streams.values()) {
      if (!stream.subjects.some((f) => subjectMatches(f, subject))) continue;
      if (opts.msgId !== undefined) {
        if (stream.ids.has(opts.msgId)) return;
        stream.ids.add(opts.msgId);
      }
      const index = stream.messages.length;
      stream.messages.push({
        seq: index + 1,
        subject,
        data,
        headers: opts.headers ?? {},
        time: Date.now(),
      });
      for (const c of stream.consumers)
        if (subjectMatches(c.filter, subject)) {
          c.queue.push(index);
          pump(stream, c);
        }
      return;
    }
  };

  const publisher = (): HopPublisher => ({
    publish(subject, data, opts) {
      publish(subject, data, opts);
      return Promise.resolve();
    },
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  });

  const openSource = (o: SourceOptions): Promise<InputSource> => {
    const stream = streams.get(o.stream);
    if (!stream) return Promise.reject(new Error(`no stream ${o.stream}`));
    let ended: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const c: Consumer = {
      filter: o.filterSubject,
      queue: [],
      next: 0,
      delivered: 0,
      closed: false,
      scheduled: false,
      callback: o.callback,
      ended,
    };
    stream.messages.forEach((m, i) => {
      if (m.seq >= o.startSeq && subjectMatches(c.filter, m.subject)) c.queue.push(i);
    });
    stream.consumers.add(c);
    pump(stream, c);
    return Promise.resolve({
      close() {
        c.closed = true;
        stream.consumers.delete(c);
        c.ended();
        return Promise.resolve();
      },
      closed: () => done,
    });
  };

  return {
    maxPayload: () => o.maxPayload ?? 1024 * 1024,
    createPublisher: publisher,
    openSource,
    addStream(name, subjects) {
      streams.set(name, { subjects, messages: [], ids: new Set(), consumers: new Set() });
    },
    publish,
    messages: (name) => streams.get(name)?.messages ?? [],
    kv: (bucket) => buckets.get(bucket) ?? new Map(),
    watchKv(bucket, fn) {
      let w = watchers.get(bucket);
      if (!w) watchers.set(bucket, (w = new Set()));
      w.add(fn);
      return () => w.delete(fn);
    },
    stored: () => stored,
    delivering: () =>
      [...streams.values()].some((s) => [...s.consumers].some((c) => c.next < c.queue.length)),
  };
}
