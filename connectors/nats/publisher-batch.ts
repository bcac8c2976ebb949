/**
 * publishMany: a batch of messages (a sync or async source, arrays allowed) published through one
 * publisher's window, counted and settled together.
 */

import type { OutgoingMessage, PubAckInfo, PublishOptions } from "./publisher-types.js";

/** What publishMany needs of its publisher (publisher.ts). */
export interface BatchPublisher {
  enqueue(
    subject: string,
    data: Uint8Array,
    opts: PublishOptions | undefined,
    onAck: (ack: PubAckInfo) => void,
    onError: (err: Error) => void,
  ): void;
  /** Messages in flight and queued. */
  pending(): number;
  /** ready() holds producers back beyond this many pending. */
  readonly highWater: number;
  ready(): Promise<void>;
  flush(): Promise<void>;
}

/** JetStreamPublisher.publishMany, over `p`. */
export async function publishMany(
  p: BatchPublisher,
  source: Iterable<OutgoingMessage> | AsyncIterable<OutgoingMessage | readonly OutgoingMessage[]>,
  onAck?: (ack: PubAckInfo, msg: OutgoingMessage) => void,
  options?: { failFast?: boolean },
): Promise<{ published: number; duplicates: number }> {
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
    p.enqueue(m.subject, m.data, m.opts, onOk, fail);
  };
  if (Symbol.iterator in source) {
    // No `for await` over a sync source: it would yield to the event loop's microtasks
    // after every message for nothing.
    for (const m of source) {
      if (failure !== undefined) break;
      if (p.pending() >= p.highWater) await p.ready();
      feed(m);
    }
  } else {
    for await (const item of source) {
      if (failure !== undefined) break;
      if (p.pending() >= p.highWater) await p.ready();
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
  await p.flush().catch(fail);
  if (failure !== undefined) throw failure;
  return { published, duplicates };
}
