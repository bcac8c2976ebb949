import { asyncScheduler, type Subscription } from "rxjs";
import { createActor, type ActorContext } from "../../runtime/index.js";
import type { StageStateInternal } from "../../state/index.js";
import { createHopOrder } from "./hop-order.js";
import { createHostReaders, type HostReaders } from "./readers.js";
import { DEFAULT_MAX_PAYLOAD } from "./dead-letter.js";
import { envelopeCodec } from "./codec.js";
import { createHostOutputs, errorText, type PoisonLedger } from "./outputs.js";
import { BACKLOG_BATCHES } from "./batching.js";
import { headersOf, setAside } from "./poison.js";
import { startHostTimers } from "./timers.js";
import type { HostMsg } from "./types.js";
import { createMetricsTally } from "./metrics.js";
import { isChainHandler } from "./host-chain.js";
import { createSnapshotter } from "./snapshots.js";
import { openInput } from "./input.js";
import { createAlignGroups, type AlignGroups, type AlignedInput } from "./align.js";
import type { HopPublisher, HostTransport, SourceMessage } from "./transport.js";
import type { HostDeps, InputMessage, StageHandler, StageInstance, StageSpec } from "./types.js";

/**
 * The stage host: runs one stage instance (stage × partition) as an actor, on an injected
 * transport (HostDeps.transport), hop codec and scheduler.
 *
 * Input (input.ts): a durable consumer on one subject, recreated at start from the
 * snapshot's sequence, so acks only pace delivery and the snapshot is the truth about what was
 * processed. Hops already applied are dropped, hops ahead of a missing one wait (hop-order.ts),
 * a message that keeps failing goes to reco.dlq.poison.
 * Output (outputs.ts, batching.ts): records buffered per subject and published as one
 * hop with a deterministic id and `upTo`, the input position it covers, so the next stage drops
 * a batch it has already seen even outside JetStream's duplicate window.
 * Snapshots (snapshots.ts): outputs flushed, state captured at that input position, written
 * once the server has acked those outputs; input is processed meanwhile. A crash before the write
 * replays from the older snapshot; outputs repeat with the same ids and `upTo`, and are dropped
 * downstream.
 */

export type * from "./types.js";
export type { PoisonLedger } from "./outputs.js";
export type { Envelope } from "./envelope.js";
export { decodeEnvelope } from "./envelope.js";

/**
 * What the instances of one transport (one app) share in a process. `readers`: running stage
 * instances per input: the readers of a hop message share its decoding, under a key naming the
 * transport (`#<n>`) as well as the message. A stream sequence names one message only on its own
 * server: two apps in one process, each on a server of its own (nats-stall.test.ts runs an engine
 * and its reference side by side), hold different hops at the same HOPS sequence, and a reader of
 * one took the other's decoding when subject and length matched (an idle marker's empty hop on
 * both), a hop of another `upTo` and marker. `align`: input alignment's groups (align.ts), made
 * by the first instance that aligns (an app's instances share one HostDeps.alignAhead).
 */
interface PerTransport {
  readers: HostReaders;
  key: string;
  align?: AlignGroups;
}
const perTransport = new WeakMap<HostTransport, PerTransport>();
let transports = 0;
function appShared(t: HostTransport): PerTransport {
  let r = perTransport.get(t);
  if (r === undefined)
    perTransport.set(t, (r = { readers: createHostReaders(), key: `#${++transports}` }));
  return r;
}
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * Hop messages a hop input may have delivered and not yet acked (its consumer's max_ack_pending;
 * StageSpec.inFlight). All of a process's inputs share one NATS connection, which reads its
 * socket only as fast as the stages process: in a catch-up every input's in-flight hops (up to B
 * records, 50-100 KB each) queue at the server for that one socket. At 256 per hop input (4096
 * for the merged stages, raw inputs of every partition's hops) that was 22-50 MB, more than a
 * loaded app reads within the server's write deadline (10 s): "Slow Consumer Detected", the
 * connection closed, deliveries lost, every stage restarted (bench step 2 at load 5-10;
 * heartbeats queued behind that data were missed first). Four keep a stage busy: it processes
 * one hop while the others wait, and its ack (every two) comes back within a turn of the loop.
 */
export const HOPS_IN_FLIGHT = 4;

/**
 * Input alignment (align.ts) holds an instance's hops back only while its input is this many
 * messages behind (the count its latest delivery carried): in a catch-up, not under live
 * traffic, where a hop of parse goes to each partition every T (20 ms) and 16 are ~0.3 s.
 */
export const ALIGN_BEHIND = 16;

/** How long an input must be quiet before its lag is asked of the server (see `lag`). */
const QUIET_LAG_MS = 1000;

export function createStageInstance<H extends StageHandler>(
  spec: StageSpec<H>,
  deps: HostDeps,
  ledger: PoisonLedger,
): StageInstance<H> {
  const { stage, partition } = spec;
  const id = `${stage}/${partition}`;
  const codec = deps.codec ?? envelopeCodec();
  const app = appShared(deps.transport);
  const { readers, key: transportKey } = app;
  const scheduler = deps.scheduler ?? asyncScheduler;
  let state: StageStateInternal | undefined;
  let handler: H | undefined;
  let lastSeq = 0;
  let restoredSeq = -1;
  let lastUpTo = 0;
  // Input hops that do not follow on from what was applied yet: they wait for the missing one.
  const order = createHopOrder<InputMessage>();
  let sinceSnapshot = 0;
  let sinceAck = 0;
  let lastMsg: SourceMessage | undefined;
  let current: InputMessage | undefined;
  let closeInput: () => void = () => undefined;
  let askPending: () => Promise<number | undefined> = () => Promise.resolve(undefined);
  // When the last message was taken (the scheduler's clock), and the server's count of what it
  // holds for the input, asked once the input went quiet (see `lag`).
  let lastTakenAt = 0;
  let quietPending: number | undefined;
  let askedAt = -Infinity;
  let asking = false;
  let actorCtx: ActorContext<HostMsg> | undefined;
  let aligned: AlignedInput<SourceMessage> | undefined;
  const tally = createMetricsTally(deps.metrics, stage, partition);
  // Acks only pace delivery (the snapshot is the truth); they bound what waits in the mailbox
  // together with max_ack_pending: events are small, a hop message holds up to B records.
  const inFlight = spec.inFlight ?? (spec.input === "raw" ? 4096 : HOPS_IN_FLIGHT);
  const ackEvery = Math.min(256, Math.max(1, inFlight >> 1));
  const maxRecords = spec.batching === "per-input" ? Infinity : spec.batching.maxRecords;
  const timers: Subscription[] = [];
  /** Arms the output batching's timer once something is buffered (batching.ts). */
  let pokeBatch: (flushed?: boolean) => void = () => undefined;
  let publisher: HopPublisher | undefined;

  const outputs = createHostOutputs({
    stage,
    partition,
    maxRecords,
    codec,
    publisher: () => publisher!,
    maxPayload: () => deps.transport.maxPayload() ?? DEFAULT_MAX_PAYLOAD,
    ...(spec.splitHops ? { splitHops: true } : {}),
    position: () => lastSeq,
    now: () => scheduler.now(),
    buffering: () => pokeBatch(),
    ledger,
  });
  const { out } = outputs;

  /**
   * Whether the input is far behind: the server holds at least BACKLOG_BATCHES × B more messages
   * for this consumer (see batching.ts).
   */
  const backlogged = () =>
    maxRecords !== Infinity && (lastMsg?.info.pending ?? 0) >= BACKLOG_BATCHES * maxRecords;

  const snapshots = createSnapshotter({
    snapshots: deps.snapshots,
    ledger,
    state: () => state,
    flush: () => outputs.flush(),
    publisher: () => publisher!,
    capture() {
      // Hops waiting for a missing one are not applied: the snapshot stays before them, so a
      // restarted instance reads them again. `upTo`, `sent` and the state may then be beyond
      // `seq` (a restarted producer's hop applied after the waiting one): on replay such a hop
      // is dropped as covered by `upTo`, and what it emitted was acked before this snapshot is
      // written (test/snapshot-waiting-hops.test.ts).
      // The first input not applied: a hop waiting here, or one the handler holds.
      const first = Math.min(order.firstSeq() ?? Infinity, handler?.heldFrom?.() ?? Infinity);
      const waitingFrom = first === Infinity ? undefined : first;
      const seq = waitingFrom === undefined ? lastSeq : Math.min(lastSeq, waitingFrom - 1);
      const covered = waitingFrom === undefined ? lastMsg : undefined;
      sinceSnapshot = 0;
      return {
        seq,
        meta: {
          seq,
          upTo: lastUpTo,
          wm: outputs.progress(),
          stats: { ...outputs.stats() },
          sent: { ...outputs.sent() },
        },
        ack: () => {
          covered?.ack();
          sinceAck = 0;
        },
      };
    },
    written: (seconds, keys) => deps.metrics?.snapshot(stage, partition, seconds, keys),
    // The on-disk layout may not match what the store expects now: restart from load().
    failed: (err) => actorCtx?.fail(err),
  });

  /**
   * The input's lag: the pending count of the last message taken, 0 once caught up. But the
   * count a delivery carries is the server's as it sent that message, and the last of a burst
   * may say a few more are left than ever come (2-7 on nats-server 2.9.10, seen in about one
   * ingest in three: the gauge then said "behind" for good on an input that had caught up). So
   * once the input has been quiet for QUIET_LAG_MS with that count above 0, the server is
   * asked what it holds (at most once per QUIET_LAG_MS, and no more once it said 0), and its
   * answer stands until the next message.
   */
  const lag = (): number | undefined => {
    const said = lastMsg?.info.pending;
    if (said === undefined || said === 0) return said;
    if (quietPending === 0) return 0;
    const now = scheduler.now();
    if (now - lastTakenAt >= QUIET_LAG_MS && now - askedAt >= QUIET_LAG_MS && !asking) {
      asking = true;
      askedAt = now;
      const at = lastMsg;
      askPending()
        .then((n) => {
          if (lastMsg === at && n !== undefined) quietPending = n;
        }, ignore)
        .finally(() => (asking = false));
    }
    return quietPending ?? said;
  };

  const reportMetrics = () =>
    tally.report({
      sent: outputs.takeSentCount(),
      pending: lag(),
      // Messages delivered and not yet handled: in the mailbox, or waiting for alignment.
      mailbox: actor.mailboxDepth() + (aligned?.waiting() ?? 0),
      members: isChainHandler(handler) ? handler.takeMemberLoad() : undefined,
    });

  /** Hands one hop to the handler; its records at or below the position applied are old. */
  const applyHop = (input: InputMessage, upTo: number) => {
    const h = handler!;
    const before = lastUpTo;
    const n = readers.of(spec.stream, input.subject);
    if (n > 1)
      codec.shared(
        `${spec.stream}#${input.seq}#${input.subject}#${input.data.length}${transportKey}`,
        input.data,
        () => h.handle(input, before),
        n,
      );
    else h.handle(input, before);
    lastUpTo = upTo;
  };

  const setCurrent = (input: InputMessage | undefined) => {
    current = input;
    outputs.setCurrent(input?.seq);
  };

  const process = (m: SourceMessage) => {
    const seq = m.seq;
    if (seq <= lastSeq) return; // redelivery of something already covered
    // `m.data` is a getter that makes a new view of a message with headers: read it once, so
    // every reader of this input sees the same object (codec.shared matches on identity).
    const data = m.data;
    // Hop messages carry only Nats-Msg-Id, which no handler reads: parsing it per message cost.
    const input: InputMessage = {
      seq,
      subject: m.subject,
      data,
      headers: spec.input === "raw" ? headersOf(m) : NO_HEADERS,
    };
    if (spec.input === "raw") input.time = Math.floor(m.info.timestampNanos / 1e6);
    setCurrent(input);
    const failed = ledger.size > 0 ? ledger.get(seq) : undefined;
    if (failed !== undefined && failed.attempts >= deps.maxAttempts) {
      setAside({ stage, partition, seq, subject: m.subject, data, headers: m.headers }, failed, {
        out,
        ledger,
        maxAttempts: deps.maxAttempts,
        ...(deps.log ? { log: deps.log } : {}),
        ...(deps.metrics ? { poisoned: () => deps.metrics!.poison(stage, partition) } : {}),
      });
    } else if (spec.input === "envelope") {
      const { upTo, prev } = codec.peekHead(data);
      const verdict = order.offer(input, seq, upTo, prev, lastUpTo);
      if (verdict === "duplicate") deps.metrics?.duplicateBatch(stage, partition);
      else if (verdict === "apply") {
        applyHop(input, upTo);
        // Hops that waited for this one, in order.
        for (;;) {
          const { hop, duplicates } = order.next(lastUpTo);
          for (let d = 0; d < duplicates; d++) deps.metrics?.duplicateBatch(stage, partition);
          if (hop === undefined) break;
          setCurrent(hop.item);
          applyHop(hop.item, hop.upTo);
        }
        setCurrent(input);
      } else
        deps.log?.(
          { stage, partition, seq, upTo, prev, applied: lastUpTo },
          "hop waits: the one before it on its subject has not arrived",
        );
    } else {
      // A merged stage's raw input of hop messages (merged-input.ts) is read by other instances
      // too; parse's input of events by parse alone.
      const n = readers.of(spec.stream, m.subject);
      if (n > 1)
        codec.shared(
          `${spec.stream}#${seq}#${m.subject}#${data.length}${transportKey}`,
          data,
          () => handler!.handle(input, lastUpTo),
          n,
        );
      else handler!.handle(input, lastUpTo);
    }
    // Attempts are recorded when handle throws (see receive); a success clears them.
    if (failed !== undefined && ledger.get(seq)?.publish !== true) ledger.delete(seq);
    setCurrent(undefined);
    lastSeq = seq;
    lastMsg = m;
    lastTakenAt = scheduler.now();
    quietPending = undefined;
    sinceSnapshot++;
    // Records, not messages: a hop message holds a batch (one event for parse's raw input).
    tally.input(spec.input === "raw" ? 1 : codec.recordsOfLastDecode(data));
    if (spec.batching === "per-input") outputs.flush();
    else if (outputs.hasFull()) outputs.flushFull();
    if (++sinceAck >= ackEvery) {
      m.ack();
      sinceAck = 0;
    }
  };

  /** Handles one message; a promise only for a forced snapshot (its write). */
  const receiveNow = (msg: HostMsg): Promise<void> | undefined => {
    switch (msg.kind) {
      case "input":
        try {
          process(msg.m);
        } catch (err) {
          if (current) {
            const attempts = (ledger.get(current.seq)?.attempts ?? 0) + 1;
            ledger.set(current.seq, { attempts, error: errorText(err) });
          }
          throw err;
        } finally {
          aligned?.taken();
        }
        if (sinceSnapshot >= deps.snapshotEveryMessages) snapshots.snapshot(false);
        return;
      case "flush":
        outputs.flush();
        pokeBatch(true);
        return;
      case "tick":
        handler?.tick?.();
        // What the tick emitted goes now; record batches of a backlogged input wait for B.
        outputs.flush(!backlogged());
        return;
      case "snapshot":
        if (msg.force) return snapshots.snapshot(true);
        snapshots.snapshot(false);
        return;
    }
  };

  const actor = createActor<HostMsg>({
    id,
    behavior: {
      async start(ctx) {
        actorCtx = ctx;
        const load = async () => {
          await deps.faults?.beforeLoad?.(id);
          const began = performance.now();
          state = await deps.snapshots.load();
          const read = performance.now();
          lastSeq = Number(state.meta.seq ?? 0);
          restoredSeq = lastSeq;
          lastUpTo = Number(state.meta.upTo ?? 0);
          outputs.load({
            progress: Number(state.meta.wm ?? -1),
            // `upTo` of the last hop per output subject: each hop names its subject's previous
            // one as `prev`, so a reader sees a hop missing in between (hop-order.ts).
            sent: (state.meta.sent as Record<string, number> | undefined) ?? {},
            stats: (state.meta.stats as Record<string, number> | undefined) ?? {},
          });
          handler = await spec.create(state, out);
          deps.metrics?.restore(
            stage,
            partition,
            (read - began) / 1000,
            (performance.now() - read) / 1000,
          );
        };
        await (deps.loadInTurn ? deps.loadInTurn(load) : load());
        // Stopped while loading (a lease revoked while the load waited its turn): open nothing.
        // An abort listener added from here on would never fire.
        if (ctx.signal.aborted) return;
        publisher = deps.transport.createPublisher({ window: 256 });
        ctx.signal.addEventListener("abort", readers.add(spec.stream, spec.subject));
        const consumer = deps.consumer?.(spec.subject) ?? { name: `${stage}_${partition}` };
        const send = (m: SourceMessage) => ctx.send({ kind: "input", m });
        let onMessage = send;
        if (spec.input === "envelope" && deps.alignAhead !== undefined) {
          const a = (app.align ??= createAlignGroups(deps.alignAhead)).join<SourceMessage>(
            `${stage}\u0000${spec.stream}`,
            send,
          );
          aligned = a;
          ctx.signal.addEventListener("abort", () => a.leave());
          onMessage = (m) =>
            a.receive(m, codec.peekHead(m.data).upTo, m.info.pending >= ALIGN_BEHIND);
        }
        const input = await openInput(
          {
            transport: deps.transport,
            id,
            stream: spec.stream,
            durable: consumer.name,
            ...(consumer.stale ? { stale: consumer.stale } : {}),
            ...(consumer.shared ? { shared: consumer.shared } : {}),
            filterSubject: spec.subject,
            startSeq: lastSeq + 1,
            maxAckPending: inFlight,
            ...(deps.faults?.dropDelivery ? { dropDelivery: deps.faults.dropDelivery } : {}),
            onMessage,
            fail: (err) => ctx.fail(err),
            // A stop while the consumer is placed (slow on a cluster that lost a node) does
            // not wait for every placement attempt: a unit's handover waits for its stops.
            signal: ctx.signal,
          },
          () => ctx.signal.aborted,
        );
        closeInput = input.close;
        askPending = input.pending;
        ctx.signal.addEventListener("abort", closeInput);
        const started = startHostTimers({
          id,
          spec,
          scheduler,
          snapshotIntervalMs: deps.snapshotIntervalMs,
          buffered: () => outputs.buffered(),
          backlogged,
          ...(deps.metrics ? { reportMetrics } : {}),
          oldestWaiting: () => order.oldest(),
          applied: () => lastUpTo,
          ...(handler?.heldLongest ? { heldLongest: () => handler?.heldLongest?.() } : {}),
          ticks: handler?.tick !== undefined,
          send: (msg) => ctx.send(msg),
          fail: (err) => ctx.fail(err),
        });
        timers.push(...started.timers);
        pokeBatch = started.batch.poke;
        pokeBatch(); // what the handler's creation emitted
      },
      receive(msg) {
        // The time this instance holds the loop (its share of the process's CPU: the bench
        // chooses which stages run in which process by it); a forced snapshot's write is not.
        const t0 = performance.now();
        try {
          return receiveNow(msg);
        } finally {
          tally.busy(performance.now() - t0);
        }
      },
      async stop() {
        // Also when the stop came while the input was being opened (its abort listener was
        // added after the abort, and never fires): a live subscription on the durable consumer
        // would take deliveries from the unit's next owner.
        closeInput();
        for (const t of timers) t.unsubscribe();
        timers.length = 0;
        // A write in flight finishes before the instance is gone: a restarted incarnation loads
        // only after this (the supervisor waits for closed()), so it sees the write or not.
        await snapshots.inFlight()?.catch(ignore);
        reportMetrics();
        const pub = publisher;
        publisher = undefined;
        await pub?.close().catch(ignore);
      },
    },
  });

  return {
    actor,
    handler: () => handler,
    position: () => lastSeq,
    restoredPosition: () => restoredSeq,
    snapshotPosition: () => snapshots.writtenSeq() ?? restoredSeq,
    progress: () => outputs.progress(),
    stats: () => outputs.stats(),
    stateKeys: () => state?.keyCount() ?? 0,
    stateColdBytes: () => state?.coldBytes() ?? 0,
    stopInput: () => closeInput(),
    // Rejects if the instance fails or stops first (it used to wait forever then).
    snapshotNow: () => actor.sendAndWait({ kind: "snapshot", force: true }),
  };
}

const ignore = () => undefined;
