import {
  AckPolicy,
  ConsumerEvents,
  DeliverPolicy,
  Events,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from "nats";
import { consumerInfos } from "./streams.js";
import { isNotFound } from "./topology.js";
import type { ConsumerView } from "../../actors/stages/index.js";

export interface DurableSourceOptions {
  stream: string;
  /** Durable consumer name (no dots). */
  durable: string;
  /** Names of the stream's consumers to delete before placing ours (an older lease's). */
  stale?: (name: string) => boolean;
  filterSubject: string;
  /** First stream sequence to deliver; 0 or 1 = from the beginning. */
  startSeq: number;
  /** Messages per pull (default 512). */
  batch?: number;
  /** Unacked messages before the server pauses delivery (default 20,000). */
  maxAckPending?: number;
  /**
   * Receives each message as it arrives, instead of iterating the returned messages: about half
   * the client CPU per message (no promise per message; measured 3 vs 6 µs). The caller then
   * watches `closed()` to learn that delivery ended, and bounds what it buffers with
   * `maxAckPending` and its acks (the client pulls again on receipt, not on processing).
   */
  callback?: (m: JsMsg) => void;
  /**
   * Gives up between placement attempts once aborted (throwing the signal's reason): a stage
   * instance stopped while its consumer is being placed. Without it, a stop waited for every
   * attempt (up to 40 s on a cluster that lost a node), and a unit handed over held its lease
   * that long (the cluster test's rebalance to a new worker timed out).
   */
  signal?: AbortSignal;
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
  // No API check (a $JS.API.INFO round trip before anything else): every stage instance opens
  // one of these at start, ~45 in a restart, each before it runs; an absent JetStream fails the
  // delete or add below just the same.
  const jsm = await nc.jetstreamManager({ checkAPI: false });
  const config: Partial<ConsumerConfig> & { durable_name: string } = {
    durable_name: o.durable,
    filter_subject: o.filterSubject,
    ack_policy: AckPolicy.All,
    max_ack_pending: o.maxAckPending ?? 20_000,
    ack_wait: 60_000_000_000, // 60 s in ns
    // One replica: the consumer is re-created at the snapshot's sequence on every start, so its
    // server-side state needs no raft group (dozens fewer elections when a cluster node dies).
    num_replicas: 1,
    ...(o.startSeq > 1
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: o.startSeq }
      : { deliver_policy: DeliverPolicy.All }),
  };
  if (o.stale) await deleteStale(jsm, o.stream, o.stale);
  await placeConsumer(jsm, o.stream, config, o.signal);
  o.signal?.throwIfAborted();
  const consumer = await nc.jetstream().consumers.get(o.stream, o.durable);
  // The consumer's delivery sequence of the last message handed to the callback.
  let received = 0;
  const callback = o.callback;
  const messages = await consumer.consume({
    max_messages: o.batch ?? 512,
    expires: 5_000,
    ...(callback
      ? {
          callback: (m: JsMsg) => {
            received = m.info.deliverySequence;
            callback(m);
          },
        }
      : {}),
  });
  // A one-replica consumer dies with its server; pulls then only report it. End the iteration
  // with an error so the caller's supervisor starts again on a new consumer.
  endOnConsumerLoss(messages, `consumer ${o.durable}`, 3, {
    nc,
    stream: o.stream,
    consumer: o.durable,
    ...(callback ? { received: () => received } : {}),
  });
  return messages;
}

/**
 * Deletes the stream's consumers `names` and, with `match`, those whose names it matches (a
 * listing of the stream's consumers; without it, one request per name). Best effort, as
 * deleteStale: one left only costs the server a consumer.
 */
export async function deleteConsumers(
  nc: NatsConnection,
  stream: string,
  names: readonly string[],
  match?: (name: string) => boolean,
): Promise<void> {
  try {
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    if (match) await deleteStale(jsm, stream, (n) => names.includes(n) || match(n));
    else
      await Promise.all(names.map((n) => jsm.consumers.delete(stream, n).catch(() => undefined)));
  } catch {
    // Left as it is.
  }
}

/**
 * Deletes the consumers an earlier owner of the input left (SourceOptions.stale): its pulls then
 * end with "consumer deleted" or "not found", never served by our consumer. Best effort: one
 * that cannot be deleted now is left (it only costs the server a consumer).
 */
async function deleteStale(
  jsm: JetStreamManager,
  stream: string,
  stale: (name: string) => boolean,
): Promise<void> {
  const names = await consumerInfos(jsm, stream).then(
    (cs) => cs.map((c) => c.name).filter(stale),
    () => undefined,
  );
  if (names === undefined) return;
  await Promise.all(names.map((n) => jsm.consumers.delete(stream, n).catch(() => undefined)));
}

const isTimeout = (err: unknown) => (err as { code?: string })?.code === "TIMEOUT";
/**
 * The add found the durable still there with another start (10012 "deliver policy can not be
 * updated"): a timed-out delete had not reached it after all. Deleted and placed again, like a
 * timed-out add, rather than failing the instance into its restart backoff (seen for ~15 s in
 * the cluster test after a node kill).
 */
const isStillThere = (err: unknown) =>
  (err as { api_error?: { err_code?: number } })?.api_error?.err_code === 10012;

/**
 * Deletes the durable and adds it again. On a cluster that lost a node, the meta leader may
 * place a one-replica consumer on the dead node: the add then times out, and so does every later
 * add of that name, until a delete (which also times out, but does unassign it) lets the next add
 * be placed again (measured on nats-server 2.9.10 with one of three nodes down: 15-35% of adds
 * timed out, each time on the dead node). So a timed-out delete counts as done, and a timed-out
 * add is deleted and placed again, a few times, before the caller's supervisor takes over.
 */
async function placeConsumer(
  jsm: JetStreamManager,
  stream: string,
  config: Partial<ConsumerConfig> & { durable_name: string },
  signal?: AbortSignal,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      await jsm.consumers.delete(stream, config.durable_name);
    } catch (err) {
      if (!isNotFound(err) && !isTimeout(err)) throw err;
    }
    try {
      await jsm.consumers.add(stream, config);
      return;
    } catch (err) {
      if ((!isTimeout(err) && !isStillThere(err)) || attempt >= 4) throw err;
    }
  }
}

/**
 * Messages the server holds for a durable consumer now (`num_pending`: not yet delivered), or
 * undefined when it does not answer.
 */
export async function consumerPending(
  nc: NatsConnection,
  stream: string,
  durable: string,
): Promise<number | undefined> {
  try {
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    return (await jsm.consumers.info(stream, durable)).num_pending;
  } catch {
    return undefined;
  }
}

/** Where a consumer lives, to ask the server about it after a reconnect. */
export interface ConsumerProbe {
  nc: NatsConnection;
  stream: string;
  consumer: string;
  /**
   * The delivery sequence of the last message received. After a reconnect, deliveries the
   * server counts beyond it (once those in flight had time to arrive) were lost with the old
   * connection: the iteration ends at once. Otherwise the loss shows only when a later delivery
   * comes, and with every delivery in flight lost (few are: see actors/host/host.ts HOPS_IN_FLIGHT)
   * or the last one of a burst, none comes until ack_wait (60 s) redelivers.
   */
  received?: () => number;
}

/** How long deliveries counted by the server get to arrive before they are called lost. */
const IN_FLIGHT_GRACE_MS = 1_000;

/**
 * Ends `messages` with an error once the server says its consumer or stream is gone, or after
 * `missedHeartbeats` missed heartbeats: a consumer on a server that died is only reported by the
 * pulls, and the iteration would otherwise wait forever.
 *
 * With `probe`, also after a reconnect that leaves the consumer unreachable. The client stops
 * its heartbeat watch while disconnected and restarts it only once `consumer.info()` answers;
 * for a one-replica consumer whose server died that never happens, and it retries silently
 * forever (nats 2.29, seen killing a node of a 3-node cluster). We ask the server ourselves.
 */
export function endOnConsumerLoss(
  messages: ConsumerMessages,
  what: string,
  missedHeartbeats: number,
  probe?: ConsumerProbe,
): void {
  let ended = false;
  const end = (err: Error) => {
    if (ended) return;
    ended = true;
    messages.stop(err);
  };
  void (async () => {
    for await (const st of await messages.status()) {
      const lost =
        st.type === ConsumerEvents.ConsumerNotFound ||
        st.type === ConsumerEvents.ConsumerDeleted ||
        st.type === ConsumerEvents.StreamNotFound ||
        (st.type === ConsumerEvents.HeartbeatsMissed && Number(st.data) >= missedHeartbeats);
      if (lost) {
        end(new Error(`${what} lost (${st.type})`));
        return;
      }
    }
  })();
  if (probe === undefined) return;
  const status = probe.nc.status();
  void messages.closed().finally(() => {
    ended = true;
    (status as unknown as { stop?: () => void }).stop?.();
  });
  void (async () => {
    for await (const s of status) {
      if (ended) return;
      if (s.type !== Events.Reconnect) continue;
      const answer = await unreachable(probe);
      if ("error" in answer) {
        const err = answer.error;
        end(new Error(`${what} unreachable after a reconnect: ${String(err)}`, { cause: err }));
        return;
      }
      const lost = await lostDeliveries(probe, answer.delivered);
      if (lost !== undefined) {
        end(new Error(`${what}: ${lost} after a reconnect: restarting`));
        return;
      }
    }
  })().catch(() => undefined);
}

/**
 * The error of two `consumer.info` attempts (one if it is not found), or the consumer's
 * delivered count once one answers (0 when the connection closed meanwhile).
 */
async function unreachable(p: ConsumerProbe): Promise<{ error: unknown } | { delivered: number }> {
  let last: unknown;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const jsm = await p.nc.jetstreamManager({ checkAPI: false });
      const ci = await jsm.consumers.info(p.stream, p.consumer);
      return { delivered: ci.delivered.consumer_seq };
    } catch (err) {
      if (p.nc.isClosed()) return { delivered: 0 }; // the caller's iteration ends anyway
      last = err;
      if (isNotFound(err)) break;
    }
  }
  return { error: last };
}

/**
 * What was lost, if the server counts deliveries beyond what arrived and nothing more arrives
 * within a grace (while deliveries keep coming, a gap among them is the caller's to see); else
 * undefined.
 */
async function lostDeliveries(p: ConsumerProbe, delivered: number): Promise<string | undefined> {
  const received = p.received;
  if (received === undefined) return undefined;
  let before = received();
  for (let wait = 0; before < delivered && wait < 10; wait++) {
    await new Promise((resolve) => setTimeout(resolve, IN_FLIGHT_GRACE_MS));
    // After a held loop timers run before the I/O that may carry those deliveries: let one
    // poll phase read the socket first (setImmediate runs after it).
    await new Promise((resolve) => setImmediate(resolve));
    const got = received();
    if (got >= delivered || p.nc.isClosed()) return undefined;
    if (got === before)
      return `deliveries ${got + 1}-${delivered} lost with the connection (received ${got})`;
    before = got;
  }
  return undefined;
}

export type { JsMsg };

/** A probe of a durable consumer for {@link IdleOptions.probe}. */
export function consumerProbe(
  jsm: JetStreamManager,
  stream: string,
  durable: string | (() => string),
): () => Promise<ConsumerView> {
  return async () => {
    const ci = await jsm.consumers.info(stream, typeof durable === "string" ? durable : durable());
    return {
      pending: ci.num_pending,
      delivered: ci.delivered.stream_seq,
      ackFloor: ci.ack_floor.stream_seq,
      waiting: ci.num_waiting,
    };
  };
}
