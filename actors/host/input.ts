import type { HostTransport, SourceMessage, SourceOptions } from "./transport.js";

/**
 * A stage instance's input: the transport's durable source opened at the snapshot's sequence,
 * messages handed on by callback (they queue in the actor's mailbox, which serialises them with
 * flushes, ticks and snapshots). The client pulls again on receipt, so what waits there is bounded
 * by `maxAckPending` and the host's acks.
 */
export interface InputOptions {
  transport: HostTransport;
  /** "<stage>/<partition>", for messages and the fault hook. */
  id: string;
  stream: string;
  durable: string;
  /** Consumers of an earlier owner of this input, deleted first (SourceOptions.stale). */
  stale?: (name: string) => boolean;
  /** The consumer shared with the process's other readers of the subject (SourceOptions.shared). */
  shared?: SourceOptions["shared"];
  filterSubject: string;
  startSeq: number;
  maxAckPending: number;
  /** A test's fault: ignore this delivery, as if lost in flight. */
  dropDelivery?: (id: string, delivery: number) => boolean;
  onMessage(m: SourceMessage): void;
  /** The input broke (a lost delivery, the consumer gone, the connection closed). */
  fail(err: unknown): void;
  /** The instance's stop: opening gives up (see SourceOptions.signal). */
  signal?: AbortSignal;
}

export interface Input {
  /** Stops taking input; safe to call more than once, and before the source is open. */
  close(): void;
  /** Messages the server holds for the input now, if the transport can tell (InputSource). */
  pending(): Promise<number | undefined>;
}

/**
 * Opens the input. The consumer's delivery sequence of the last message received is checked: a
 * message the server sent but we never received (lost with the connection to a dying node) would
 * come again only after ack_wait, behind later ones already processed, and be skipped as covered;
 * worse, a later cumulative ack would cover it. A gap in the delivery sequence therefore fails
 * the instance, which restarts on a new consumer at its last processed sequence.
 */
export async function openInput(o: InputOptions, closedBefore: () => boolean): Promise<Input> {
  // `ignoring`: messages are dropped (after a gap, or closed); `closed`: the source was closed.
  let ignoring = false;
  let closed = false;
  let delivered = 0;
  const source = await o.transport.openSource({
    stream: o.stream,
    durable: o.durable,
    ...(o.stale ? { stale: o.stale } : {}),
    ...(o.shared ? { shared: o.shared } : {}),
    filterSubject: o.filterSubject,
    startSeq: o.startSeq,
    maxAckPending: o.maxAckPending,
    ...(o.signal ? { signal: o.signal } : {}),
    callback: (m) => {
      if (ignoring) return;
      const d = m.info.deliverySequence;
      if (o.dropDelivery?.(o.id, d)) return;
      if (d !== delivered + 1) {
        ignoring = true;
        o.fail(
          new Error(`${o.durable}: delivery ${delivered + 1} lost (received ${d}): restarting`),
        );
        return;
      }
      delivered = d;
      o.onMessage(m);
    },
  });
  const close = () => {
    ignoring = true;
    if (closed) return;
    closed = true;
    void source.close();
  };
  // Delivery that ends without our asking (consumer lost, connection closed) fails the instance:
  // its supervisor starts it again on a new consumer.
  void source.closed().then(
    (err) => {
      if (ignoring || closedBefore()) return;
      o.fail(err ?? new Error(`input of ${o.id} ended`));
    },
    (err: unknown) => {
      if (!ignoring && !closedBefore()) o.fail(err);
    },
  );
  const pending = async () => (source.pending ? source.pending() : undefined);
  return { close, pending };
}
