import {
  AckPolicy,
  DeliverPolicy,
  type ConsumerConfig,
  type ConsumerMessages,
  type JsMsg,
  type NatsConnection,
} from "nats";
import { isNotFound } from "./topology.js";

export interface DurableSourceOptions {
  stream: string;
  /** Durable consumer name (no dots). */
  durable: string;
  filterSubject: string;
  /** First stream sequence to deliver; 0 or 1 = from the beginning. */
  startSeq: number;
  /** Messages per pull (default 512). */
  batch?: number;
  /** Unacked messages before the server pauses delivery (default 20,000). */
  maxAckPending?: number;
}

/**
 * A durable pull consumer re-created at a given sequence. The caller's snapshot is the truth
 * about what was processed, so the consumer is deleted and added again at `startSeq` on every
 * start: acks (AckPolicy.All, cumulative) only pace delivery, and a redelivery is harmless
 * because the caller skips sequences it has covered. Durable, so `nats consumer info` and the
 * server's monitoring show its lag.
 */
export async function openDurableSource(
  nc: NatsConnection,
  o: DurableSourceOptions,
): Promise<ConsumerMessages> {
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.consumers.delete(o.stream, o.durable);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const config: Partial<ConsumerConfig> = {
    durable_name: o.durable,
    filter_subject: o.filterSubject,
    ack_policy: AckPolicy.All,
    max_ack_pending: o.maxAckPending ?? 20_000,
    ack_wait: 60_000_000_000, // 60 s in ns
    ...(o.startSeq > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: o.startSeq }
      : { deliver_policy: DeliverPolicy.All }),
  };
  await jsm.consumers.add(o.stream, config);
  const consumer = await nc.jetstream().consumers.get(o.stream, o.durable);
  return consumer.consume({ max_messages: o.batch ?? 512 });
}

export type { JsMsg };
