import type { InputSource, SourceMessage, SourceOptions } from "../../actors/host/index.js";

/**
 * One durable consumer for every stage instance of a process that reads the same input (the
 * hops of one partition: `reco.parse.<p>` is read by the user path's chain, history, drift and
 * collaborative; `reco.items.<q>` by catalogue, popularity and trending). Without it each reader
 * had a consumer of its own, and the server delivered, and the client received, handled and
 * acked, every hop once per reader (bench/README "What limits": at 1,000 events/s the fan-out
 * of each hop to its readers was most of the 1.2-1.3 ms of CPU spent per event). Like a Kafka
 * Streams task reading a partition once for all the processors of its sub-topology.
 *
 * Each reader (a "tap") keeps what it had alone: its own start (its snapshot's sequence + 1),
 * its own delivery numbering (1, 2, … from its open: the host checks it for lost deliveries),
 * and cumulative acks. The consumer is placed at the lowest start of the taps; a tap that joins
 * behind what was delivered places it again at its start, and the taps that have a message
 * already skip it. A message is acked to the server once every tap has acked it or skipped it,
 * so the slowest reader paces delivery, as one mailbox of a chain does. A gap in the consumer's
 * own delivery sequence (a delivery lost with a connection), or the consumer's end, ends every
 * tap with the error: their instances restart from their snapshots on a new consumer.
 */

/** Opens the one consumer of a group (connectors/nats/source.ts openDurableSource). */
export type OpenShared = (o: SourceOptions) => Promise<InputSource>;

interface Tap {
  callback: (m: SourceMessage) => void;
  maxAckPending: number;
  /** Highest stream sequence handed to this tap or skipped by it (its start − 1 at first). */
  last: number;
  /** Highest stream sequence this tap acked (cumulatively). */
  acked: number;
  /** Deliveries handed to this tap since its open. */
  delivered: number;
  done: boolean;
  end(err?: Error): void;
  ended: Promise<void | Error>;
}

/** One placement of the group's consumer. */
interface Generation {
  source?: InputSource;
  /** The consumer's delivery sequence of the last message received. */
  delivery: number;
  /** Stream sequence of the last message received (its start − 1 before any). */
  reached: number;
  /** Received and not yet acked to the server, in delivery order. */
  unacked: SourceMessage[];
  over: boolean;
}

interface Group {
  key: string;
  stream: string;
  durable: string;
  filterSubject: string;
  /** The consumers of the group's name under older leases: deleted before it is placed. */
  stale?: (name: string) => boolean;
  /** Taps' own consumer names already deleted (see `open`). */
  cleaned: Set<string>;
  taps: Set<Tap>;
  /** Opens waiting for their turn: the group stays while any does. */
  joining: number;
  /** A message is being handed to the taps (acks wait until every tap has it). */
  handing: boolean;
  gen?: Generation;
  /** Placements and joins, one at a time. */
  turn: Promise<unknown>;
}

/** A tap's view of a message: its own delivery numbering and acks. */
function tapMessage(m: SourceMessage, delivery: number, ack: () => void): SourceMessage {
  const info = m.info;
  return {
    seq: m.seq,
    subject: m.subject,
    data: m.data,
    headers: m.headers,
    info: {
      timestampNanos: info.timestampNanos,
      deliverySequence: delivery,
      pending: info.pending,
    },
    ack,
  };
}

export interface SharedSources {
  /** Opens `o` as a tap of the group named `o.shared.durable` (one consumer per name). */
  open(o: SourceOptions & { shared: NonNullable<SourceOptions["shared"]> }): Promise<InputSource>;
}

export function createSharedSources(
  openOne: OpenShared,
  /**
   * Deletes consumers (best effort): `names`, and with `match` every consumer of the stream it
   * matches.
   */
  deleteConsumers: (
    stream: string,
    names: readonly string[],
    match?: (name: string) => boolean,
  ) => Promise<void>,
): SharedSources {
  const groups = new Map<string, Group>();

  /** What a tap holds back: its acks, while it has messages handed and not acked. */
  const floorOf = (t: Tap) => (t.last <= t.acked ? Infinity : t.acked);

  const ackTo = (g: Group, gen: Generation) => {
    if (gen.over || gen.unacked.length === 0) return;
    let floor = Infinity;
    for (const t of g.taps) floor = Math.min(floor, floorOf(t));
    let x = -1;
    while (x + 1 < gen.unacked.length && gen.unacked[x + 1]!.seq <= floor) x++;
    if (x < 0) return;
    // AckPolicy.All: acking a delivery acks every one before it.
    gen.unacked[x]!.ack();
    gen.unacked.splice(0, x + 1);
  };

  /** Stops the group's consumer; the group goes once no tap holds it or waits to. */
  const stopConsumer = (g: Group) => {
    const gen = g.gen;
    g.gen = undefined;
    if (gen && !gen.over) {
      gen.over = true;
      void gen.source?.close();
    }
    if (g.taps.size === 0 && g.joining === 0 && groups.get(g.key) === g) groups.delete(g.key);
  };

  /** Ends every tap with `err` (their instances restart); a tap opening later starts anew. */
  const endGroup = (g: Group, err?: Error) => {
    const taps = [...g.taps];
    g.taps.clear();
    stopConsumer(g);
    for (const t of taps) t.end(err);
  };

  const receive = (g: Group, gen: Generation, m: SourceMessage) => {
    if (gen.over) return;
    const d = m.info.deliverySequence;
    if (d !== gen.delivery + 1) {
      endGroup(
        g,
        new Error(`${g.durable}: delivery ${gen.delivery + 1} lost (received ${d}): restarting`),
      );
      return;
    }
    gen.delivery = d;
    gen.reached = Math.max(gen.reached, m.seq);
    gen.unacked.push(m);
    // A tap that acks from its callback must not ack for the taps not handed the message yet.
    g.handing = true;
    try {
      for (const t of g.taps) {
        if (t.done || m.seq <= t.last) continue;
        t.last = m.seq;
        const seq = m.seq;
        t.callback(
          tapMessage(m, ++t.delivered, () => {
            if (seq <= t.acked || t.done) return;
            t.acked = seq;
            if (g.gen && !g.handing) ackTo(g, g.gen);
          }),
        );
      }
    } finally {
      g.handing = false;
    }
    ackTo(g, gen);
  };

  /** Places the group's consumer at the lowest next sequence of its taps. */
  const place = async (g: Group): Promise<void> => {
    const old = g.gen;
    if (old) {
      old.over = true;
      void old.source?.close();
    }
    g.gen = undefined;
    if (g.taps.size === 0) return;
    let from = Infinity;
    let maxAckPending = 0;
    for (const t of g.taps) {
      from = Math.min(from, t.last + 1);
      maxAckPending += t.maxAckPending;
    }
    const gen: Generation = { delivery: 0, reached: from - 1, unacked: [], over: false };
    g.gen = gen;
    const stale = g.stale;
    let source: InputSource;
    try {
      source = await openOne({
        stream: g.stream,
        durable: g.durable,
        ...(stale ? { stale: (n: string) => n !== g.durable && stale(n) } : {}),
        filterSubject: g.filterSubject,
        startSeq: from,
        maxAckPending,
        callback: (m) => receive(g, gen, m),
      });
    } catch (err) {
      // The taps already reading had their consumer closed for this placement: they end too.
      if (g.gen === gen) endGroup(g, err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    gen.source = source;
    if (gen.over) {
      void source.close();
      return;
    }
    void source.closed().then(
      (err) => {
        if (!gen.over) endGroup(g, err ?? new Error(`input ${g.durable} ended`));
      },
      (err: unknown) => {
        if (!gen.over) endGroup(g, err instanceof Error ? err : new Error(String(err)));
      },
    );
  };

  return {
    async open(o) {
      const { durable, stale } = o.shared;
      const key = `${o.stream}\u0000${durable}\u0000${o.filterSubject}`;
      let g = groups.get(key);
      if (!g) {
        g = {
          key,
          stream: o.stream,
          durable,
          filterSubject: o.filterSubject,
          ...(stale ? { stale } : {}),
          cleaned: new Set(),
          taps: new Set(),
          joining: 0,
          handing: false,
          turn: Promise.resolve(),
        };
        groups.set(key, g);
      }
      const group = g;
      // The consumer this reader had alone (a start of the layout before, or under an older
      // lease): deleted once, so that the server stops keeping deliveries for it. By name, or by
      // listing the stream's consumers when older leases' names are to go too.
      const own = o.durable;
      const ownStale = o.stale;
      const cleanUp = () => {
        if (group.cleaned.has(own)) return;
        group.cleaned.add(own);
        void deleteConsumers(o.stream, [own], ownStale);
      };
      let resolveEnded: (v: void | Error) => void = () => undefined;
      const tap: Tap = {
        callback: o.callback,
        maxAckPending: o.maxAckPending,
        last: o.startSeq - 1,
        acked: o.startSeq - 1,
        delivered: 0,
        done: false,
        end(err) {
          if (tap.done) return;
          tap.done = true;
          resolveEnded(err);
        },
        ended: new Promise<void | Error>((r) => (resolveEnded = r)),
      };
      const join = async () => {
        group.joining--;
        if (tap.done) return; // given up (aborted) while waiting for its turn
        o.signal?.throwIfAborted();
        group.taps.add(tap);
        const gen = group.gen;
        // No consumer, or this tap starts behind what it delivered: placed (again) at the
        // lowest start.
        cleanUp();
        if (gen === undefined || gen.over || tap.last < gen.reached) await place(group);
      };
      group.joining++;
      const joined = group.turn.then(join);
      group.turn = joined.catch(() => undefined);
      const aborted =
        o.signal &&
        new Promise<never>((_, reject) => {
          const stop = () => reject(o.signal!.reason as Error);
          if (o.signal!.aborted) stop();
          else o.signal!.addEventListener("abort", stop, { once: true });
        });
      try {
        await (aborted ? Promise.race([joined, aborted]) : joined);
      } catch (err) {
        leave(group, tap);
        throw err;
      }
      return {
        close: async () => leave(group, tap),
        closed: () => tap.ended,
        // What the server holds for the group's consumer, which is this tap's too once the tap
        // has every message the group received (taps are handed them as they come).
        pending: async () => {
          const gen = group.gen;
          if (gen?.source?.pending === undefined || gen.over || tap.last < gen.reached)
            return undefined;
          return gen.source.pending();
        },
      };
    },
  };

  function leave(g: Group, t: Tap): void {
    const had = g.taps.delete(t);
    t.end();
    if (!had) return;
    if (g.taps.size === 0) stopConsumer(g);
    else if (g.gen) ackTo(g, g.gen);
  }
}
