import type { JsMsg, NatsConnection } from "nats";
import { createActor, type Actor, type ActorContext } from "../runtime/index.js";
import { createJetStreamPublisher, type JetStreamPublisher } from "../connectors/nats/publisher.js";
import { openDurableSource } from "../connectors/nats/source.js";
import { encodeEnvelope, peekHead, readShared, recordsOfLastDecode, withHead } from "./envelope.js";
import { createHopOrder } from "./hop-order.js";
import {
  deadLetterHeaders,
  DEFAULT_MAX_PAYLOAD,
  fitRawOutput,
  isPermanentPublishError,
} from "./dead-letter.js";
import type { SnapshotStore, StageState, StageStateInternal } from "../state/index.js";

/**
 * The stage host: runs one stage instance (stage × partition) as an actor.
 *
 * Input: a durable pull consumer on one subject, recreated at start from the snapshot's sequence,
 * so acks only pace delivery and the snapshot is the truth about what was processed.
 * Output: records buffered per subject and published as one batch message ("hop") with a
 * deterministic Nats-Msg-Id; the envelope carries `upTo`, the input sequence it covers, so the
 * next stage drops a batch it has already seen even outside JetStream's duplicate window.
 * Snapshots: outputs flushed, dirty keys + metadata captured (serialised) at that input
 * position, then written in one LevelDB batch once the server has acked those outputs; input is
 * processed meanwhile. A crash before the write replays from the older snapshot; outputs repeat
 * with the same ids and `upTo`, and are dropped downstream.
 */

export type { Envelope } from "./envelope.js";
export { decodeEnvelope } from "./envelope.js";

/**
 * Fault injection for the delivery-gap test: RECO_TEST_DROP_DELIVERY="<stage>/<partition>:<n>"
 * makes that instance ignore the n-th message its consumer delivers, once per process, as if it
 * had been lost in flight with a dying connection.
 */
let dropSpec: string | undefined | null = null; // read at the first delivery
let dropped = false;
function dropForTest(id: string, delivery: number): boolean {
  if (dropSpec === null) dropSpec = process.env.RECO_TEST_DROP_DELIVERY;
  if (dropSpec === undefined || dropped || dropSpec !== `${id}:${delivery}`) return false;
  dropped = true;
  return true;
}

/**
 * Fault injection for tests: RECO_TEST_SLOW_START=<stage>/<partition>:<ms> holds that instance's
 * start (before its snapshot loads) for ms, like a large snapshot would. Never set in production.
 */
async function slowStartForTest(id: string): Promise<void> {
  const [who, ms] = (process.env.RECO_TEST_SLOW_START ?? "").split(":");
  if (who === id) await new Promise((resolve) => setTimeout(resolve, Number(ms)));
}

/** An input message as a stage handler sees it. */
export interface InputMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
  /**
   * When JetStream stored the message (epoch ms), raw input only. Part of the log, so a replay
   * sees the same value: parse judges "too far in the future" against it, not against now().
   */
  time?: number;
}

export interface StageOutput {
  /**
   * Adds a record to the batch for `subject`. `bytes`, if given, bounds the record's encoded size
   * from above: a batch is then also sent once its records may pass half the server's
   * max_payload, so B large records never make a hop the server refuses (a refused hop failed
   * the stage at every snapshot, for ever).
   */
  emit(subject: string, record: unknown, bytes?: number): void;
  /**
   * Emits `recs`, the records of the input hop message `data` in their order, to `subject`. When
   * nothing else goes to `subject` in the same batch, the host sends `data` with its own head
   * (upTo, progress) instead of encoding the records again. Optional: without it, emit each.
   */
  forward?(subject: string, data: Uint8Array, recs: readonly unknown[]): void;
  /** Makes sure a batch (possibly empty) is sent to `subject` at the next flush: carries progress. */
  touch(subject: string): void;
  /** Sets the event-time progress stamped on every outgoing batch. */
  setProgress(wm: number): void;
  /** Publishes raw bytes (dead letters, late events) with a deterministic id. */
  raw(subject: string, data: Uint8Array, headers: Record<string, string>, msgId: string): void;
  /** An idempotent upsert into a KV bucket (processing-time outputs). */
  kvPut(bucket: string, key: string, value: unknown): void;
  /**
   * Adds to a named count kept in the snapshot with the input position, so counts (accepted,
   * duplicates, late, ...) are exact across crashes: a replay recounts only what the snapshot
   * did not cover.
   */
  count(name: string, n?: number): void;
}

export interface StageHandler {
  /**
   * Processes one input message synchronously. `lastUpTo` is the highest upstream position seen
   * before it (records at or below it were processed before a restart). Throwing fails the
   * instance: its supervisor restarts it from the last snapshot.
   */
  handle(msg: InputMessage, lastUpTo: number): void;
  /** Processing-time trigger, called every `tickMs` of the spec (broadcasts, trending pushes). */
  tick?(): void;
}

export interface StageSpec<H extends StageHandler> {
  stage: string;
  partition: number;
  stream: string;
  subject: string;
  /** "envelope": input messages are hop batches (dedupe by `upTo`); "raw": published events. */
  input: "envelope" | "raw";
  /** Flush outputs after every input message, or when `maxRecords`/`maxDelayMs` is reached. */
  batching: "per-input" | { maxRecords: number; maxDelayMs: number };
  /** Period of `handler.tick()`, if the handler has one. */
  tickMs?: number;
  /** May return a promise: a handler that rebuilds a large index gives the loop back meanwhile. */
  create(state: StageState, out: StageOutput): H | Promise<H>;
}

export interface HostDeps {
  nc: NatsConnection;
  snapshots: SnapshotStore;
  snapshotIntervalMs: number;
  /** Snapshot also after this many input messages. */
  snapshotEveryMessages: number;
  /** Deliveries of one message that fail before it goes to reco.dlq.poison. */
  maxAttempts: number;
  metrics?: HostMetrics;
  log?: (obj: object, msg: string) => void;
  /**
   * Runs the instance's snapshot load and handler creation (CPU work on the event loop) in turn
   * with the other instances' (a FIFO shared by a process); default: at once.
   */
  loadInTurn?: <T>(load: () => Promise<T>) => Promise<T>;
}

export interface HostMetrics {
  /** `n` input messages holding `records` records (events for parse, hop records after it). */
  input(stage: string, partition: number, n: number, records: number): void;
  output(stage: string, partition: number, n: number): void;
  lag(stage: string, partition: number, pending: number): void;
  mailbox(stage: string, partition: number, depth: number): void;
  snapshot(stage: string, partition: number, seconds: number, keys: number): void;
  poison(stage: string, partition: number): void;
  duplicateBatch(stage: string, partition: number): void;
}

type HostMsg =
  | { kind: "input"; m: JsMsg }
  | { kind: "flush" }
  | { kind: "tick" }
  | { kind: "snapshot"; force?: boolean };

export interface StageInstance<H extends StageHandler> {
  readonly actor: Actor<HostMsg>;
  /** The live handler (for queries); undefined until started. */
  handler(): H | undefined;
  /** Last input sequence processed. */
  position(): number;
  /** Event-time progress (epoch ms) stamped on its outputs; -1 before any. */
  progress(): number;
  /** The persisted counts (see StageOutput.count). */
  stats(): Readonly<Record<string, number>>;
  /** Keys of per-key state held now. */
  stateKeys(): number;
  /** Stops taking input: what is already in the mailbox is still processed. */
  stopInput(): void;
  /** Forces a snapshot now (flush, wait for acks, write). */
  snapshotNow(): Promise<void>;
}

/**
 * Failures per input sequence (attempts, last error), kept across restarts of one instance.
 * `publish`: the failure was a raw output of that input the server or client refused for good
 * (handle itself succeeded, so a success of handle does not clear it; a snapshot past it does).
 */
export type PoisonLedger = Map<number, { attempts: number; error: string; publish?: boolean }>;

const enc = new TextEncoder();
/** Running stage instances per input ("<stream>#<subject>"): several share decoded batches. */
const readers = new Map<string, number>();
const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

export function createStageInstance<H extends StageHandler>(
  spec: StageSpec<H>,
  deps: HostDeps,
  ledger: PoisonLedger,
): StageInstance<H> {
  const { stage, partition } = spec;
  const durable = `${stage}_${partition}`;
  let state: StageStateInternal | undefined;
  let handler: H | undefined;
  let lastSeq = 0;
  let lastUpTo = 0;
  // `upTo` of the last hop sent per output subject, kept with the snapshot: each hop carries its
  // subject's previous one as `prev`, so a reader sees a hop missing in between (hop-order.ts).
  let sent: Record<string, number> = {};
  // Input hops that do not follow on from what was applied yet: they wait for the missing one.
  const order = createHopOrder<InputMessage>();
  let progress = -1;
  let sinceSnapshot = 0;
  let sinceAck = 0;
  let lastMsg: JsMsg | undefined;
  let bufferedRecords = 0;
  let firstBufferedAt = 0;
  let current: InputMessage | undefined;
  let stats: Record<string, number> = {};
  let closeInput: () => void = () => undefined;
  let actorCtx: ActorContext<HostMsg> | undefined;
  // The snapshot being written (acks awaited, then the LevelDB batch): input goes on meanwhile.
  let snapshotInFlight: Promise<void> | undefined;
  let snapshotFailure: unknown;
  // Metrics are summed here and handed to prom-client on a timer: a labelled counter costs a
  // label hash per call, which per input message was a measurable share of the host's CPU.
  let inputCount = 0;
  let inputRecords = 0;
  let outputCount = 0;
  // Acks only pace delivery (the snapshot is the truth); they bound what waits in the mailbox
  // together with max_ack_pending: events are small, a hop message holds up to B records.
  const ackEvery = spec.input === "raw" ? 256 : 16;
  const inputKey = `${spec.stream}#${spec.subject}`;
  const buffers = new Map<string, unknown[]>();
  // Buffers that hold exactly the records of one input message (StageOutput.forward), with its
  // bytes and record count: unless something was emitted after them, they go out as those bytes.
  const forwarded = new Map<string, { data: Uint8Array; n: number }>();
  // Subjects whose buffer reached B records: sent after the current input, the others wait for T.
  const full: string[] = [];
  const maxRecords = spec.batching === "per-input" ? Infinity : spec.batching.maxRecords;
  const raws: {
    subject: string;
    data: Uint8Array;
    headers: Record<string, string>;
    id: string;
    /** The input that produced it (undefined from a tick). */
    seq: number | undefined;
  }[] = [];
  const kvPuts = new Map<string, { bucket: string; key: string; value: unknown }>();
  // Bytes emitted per subject since its last hop (StageOutput.emit's `bytes`), and the bound.
  const hopBytes = new Map<string, number>();
  const maxHopBytes = Math.floor((deps.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD) / 2);
  const timers: NodeJS.Timeout[] = [];

  const out: StageOutput = {
    emit(subject, record, bytes) {
      let b = buffers.get(subject);
      if (!b) buffers.set(subject, (b = []));
      if (b.push(record) === maxRecords) full.push(subject);
      if (bytes !== undefined) {
        const before = hopBytes.get(subject) ?? 0;
        hopBytes.set(subject, before + bytes);
        if (before < maxHopBytes && before + bytes >= maxHopBytes) full.push(subject);
      }
      if (bufferedRecords++ === 0) firstBufferedAt = Date.now();
    },
    forward(subject, data, recs) {
      const b = buffers.get(subject);
      if ((b !== undefined && b.length > 0) || recs.length === 0) {
        for (const r of recs) out.emit(subject, r);
        if (b === undefined) out.touch(subject);
        return;
      }
      // A copy: `recs` may be a decoded batch that other readers of the input share.
      const copy = recs.slice();
      buffers.set(subject, copy);
      forwarded.set(subject, { data, n: copy.length });
      if (copy.length >= maxRecords) full.push(subject);
      if (bufferedRecords === 0) firstBufferedAt = Date.now();
      bufferedRecords += copy.length;
    },
    touch(subject) {
      if (!buffers.has(subject)) buffers.set(subject, []);
    },
    setProgress(wm) {
      progress = wm;
    },
    raw(subject, data, headers, id) {
      raws.push({ subject, data, headers, id, seq: current?.seq });
    },
    kvPut(bucket, key, value) {
      kvPuts.set(`${bucket}\u0000${key}`, { bucket, key, value });
    },
    count(name, n = 1) {
      stats[name] = (stats[name] ?? 0) + n;
    },
  };

  let publisher: JetStreamPublisher | undefined;

  // Publish failures surface in publisher.flush() at the next snapshot, which then fails the
  // instance: it restarts from its snapshot and publishes again (same ids, dropped downstream).
  const publishHop = (subject: string, recs: unknown[]) => {
    const upTo = lastSeq;
    const prev = sent[subject] ?? 0;
    sent[subject] = upTo;
    if (hopBytes.size > 0) hopBytes.delete(subject);
    let data: Uint8Array | undefined;
    const f = forwarded.size > 0 ? forwarded.get(subject) : undefined;
    if (f !== undefined) {
      forwarded.delete(subject);
      // Emits only append: the same count means the same records.
      if (f.n === recs.length) data = withHead(f.data, upTo, progress, prev);
    }
    publisher!
      .publish(subject, data ?? encodeEnvelope(upTo, progress, recs, prev), {
        msgId: `${stage}.${partition}.${upTo}.${subject}`,
      })
      .catch(ignore);
    outputCount += recs.length;
  };

  /**
   * Sends the subjects whose buffer is full. A hop's `upTo` is the input position when it is
   * sent, and every record of its subject up to there is in it or an earlier hop, so a subject
   * may go ahead of the others (downstream dedupes per subject).
   */
  const flushFull = () => {
    for (const subject of full) {
      const recs = buffers.get(subject);
      if (recs === undefined || recs.length === 0) continue;
      publishHop(subject, recs);
      buffers.delete(subject);
      bufferedRecords -= recs.length;
    }
    full.length = 0;
  };

  /**
   * Whether the input is far behind: the server holds at least BACKLOG_BATCHES × B more messages
   * for this consumer (a catch-up or a replay, not a pause of a few hundred ms in a live stream).
   * Records then wait for a batch of B, or 10 T (see the flush timer and "tick"): fewer, fuller
   * hop messages (a 200k-event catch-up sent ~2.7 times fewer to each next stage), and nothing
   * is fresher for sending them early while the input is that far behind anyway.
   */
  const backlogged = () =>
    maxRecords !== Infinity && (lastMsg?.info.pending ?? 0) >= BACKLOG_BATCHES * maxRecords;

  /** Sends every batch, or with `all` false only the empty ones (progress) while backlogged. */
  const flush = (all = true) => {
    const pub = publisher!;
    if (all) {
      for (const [subject, recs] of buffers) publishHop(subject, recs);
      buffers.clear();
      forwarded.clear();
      full.length = 0;
      bufferedRecords = 0;
    } else {
      for (const [subject, recs] of buffers)
        if (recs.length === 0) {
          publishHop(subject, recs);
          buffers.delete(subject);
        }
    }
    // A raw output (dead letter, late event, poison copy) too large with its headers goes
    // truncated (actors/dead-letter.ts); one refused for good counts as a failure of its input,
    // so that input reaches reco.dlq.poison after maxAttempts instead of failing every snapshot.
    const maxPayload = deps.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    for (const r of raws) {
      const fit = fitRawOutput(r.data, r.headers, r.id, maxPayload);
      pub.publish(r.subject, fit.data, { msgId: r.id, headers: fit.headers }).catch((err) => {
        if (r.seq === undefined || !isPermanentPublishError(err)) return;
        const attempts = (ledger.get(r.seq)?.attempts ?? 0) + 1;
        ledger.set(r.seq, { attempts, error: errorText(err), publish: true });
      });
    }
    outputCount += raws.length;
    raws.length = 0;
    // A KV put is a publish to $KV.<bucket>.<key>: through the same publisher, so the next
    // snapshot waits for it like for any other output (a crash cannot lose an upsert that the
    // snapshot claims). Only the last value per key of this flush is sent.
    //
    // Without a Nats-Msg-Id, on purpose: a replay from the snapshot puts again, in order, every
    // value put since, so the bucket ends at the newest. With ids (they were "<stage>.<p>.<seq>
    // .kv.<key>"), a nats-server that restarted in between had rebuilt its duplicate map from
    // the messages it still held: a bucket keeps one per key, so the newest value's id was
    // known and the older ones' were not; the replay stored an older value and the newest was
    // dropped as a duplicate (issue 17: purchases lost from the popularity table, a stale
    // heartbeat watermark). A put without an id is not retried on a timeout either: the flush
    // of the next snapshot fails and the instance replays, in order, from its snapshot.
    for (const p of kvPuts.values())
      pub.publish(`$KV.${p.bucket}.${p.key}`, enc.encode(JSON.stringify(p.value))).catch(ignore);
    outputCount += kvPuts.size;
    kvPuts.clear();
  };

  /**
   * Snapshot (DESIGN §4): outputs flushed, the dirty keys and the metadata captured now, then
   * written once the server has acked every output published before the capture. Input is
   * processed while the acks and the write are awaited; a crash before the write replays from
   * the previous snapshot (the repeated outputs carry the same ids and `upTo`). One snapshot is
   * in flight at a time: a periodic one is skipped while another is written; `force` waits for
   * it and then snapshots, so the returned promise covers everything processed so far.
   */
  const snapshot = (force: boolean): Promise<void> | undefined => {
    if (!state) return undefined;
    if (snapshotFailure !== undefined) throw snapshotFailure;
    if (snapshotInFlight) {
      if (!force) return undefined;
      return snapshotInFlight.then(() => snapshot(true));
    }
    flush();
    const t0 = performance.now();
    // Hops waiting for a missing one are not applied: the snapshot stays before them, so a
    // restarted instance reads them again.
    const waitingFrom = order.firstSeq();
    const seq = waitingFrom === undefined ? lastSeq : Math.min(lastSeq, waitingFrom - 1);
    state.meta = {
      ...state.meta,
      seq,
      upTo: lastUpTo,
      wm: progress,
      stats: { ...stats },
      sent: { ...sent },
    };
    const batch = deps.snapshots.capture(state);
    const covered = waitingFrom === undefined ? lastMsg : undefined;
    const coveredSeq = seq;
    sinceSnapshot = 0;
    const acked = publisher!.flush();
    const written = (async () => {
      await acked;
      await batch.commit();
      // Outputs up to here were stored: failures of their publishes no longer matter.
      if (ledger.size > 0)
        for (const seq of ledger.keys()) if (seq <= coveredSeq) ledger.delete(seq);
      deps.metrics?.snapshot(stage, partition, (performance.now() - t0) / 1000, batch.keys);
      // Cumulative ack (AckPolicy.All): paces delivery only, the snapshot is the truth.
      covered?.ack();
      sinceAck = 0;
    })();
    snapshotInFlight = written;
    written.then(
      () => {
        if (snapshotInFlight === written) snapshotInFlight = undefined;
      },
      (err: unknown) => {
        // The on-disk layout may not match what the store expects now: restart from load().
        snapshotFailure = err;
        if (snapshotInFlight === written) snapshotInFlight = undefined;
        actorCtx?.fail(err);
      },
    );
    return written;
  };

  const reportMetrics = () => {
    const m = deps.metrics;
    if (!m) return;
    if (inputCount > 0) m.input(stage, partition, inputCount, inputRecords);
    if (outputCount > 0) m.output(stage, partition, outputCount);
    inputCount = 0;
    inputRecords = 0;
    outputCount = 0;
    // The pending count of the last message taken: 0 once caught up.
    const pending = lastMsg?.info.pending;
    if (pending !== undefined) m.lag(stage, partition, pending);
    m.mailbox(stage, partition, actor.mailboxDepth());
  };

  const headersOf = (m: JsMsg): Record<string, string> => {
    const hdrs: Record<string, string> = {};
    if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0] ?? "";
    return hdrs;
  };

  /** Hands one hop to the handler; its records at or below the position applied are old. */
  const applyHop = (input: InputMessage, upTo: number) => {
    const h = handler!;
    const before = lastUpTo;
    if ((readers.get(inputKey) ?? 0) > 1)
      readShared(
        `${inputKey}#${input.seq}#${input.subject}#${input.data.length}#${upTo}`,
        input.data,
        () => h.handle(input, before),
      );
    else h.handle(input, before);
    lastUpTo = upTo;
  };

  const process = (m: JsMsg) => {
    const seq = m.seq;
    if (seq <= lastSeq) return; // redelivery of something already covered
    // `m.data` is a getter that makes a new view of a message with headers: read it once, so
    // every reader of this input sees the same object (readShared matches on identity).
    const data = m.data;
    // Hop messages carry only Nats-Msg-Id, which no handler reads: parsing it per message cost.
    const input: InputMessage = {
      seq,
      subject: m.subject,
      data,
      headers: spec.input === "raw" ? headersOf(m) : NO_HEADERS,
    };
    if (spec.input === "raw") input.time = Math.floor(m.info.timestampNanos / 1e6);
    current = input;
    const failed = ledger.size > 0 ? ledger.get(seq) : undefined;
    if (failed !== undefined && failed.attempts >= 2 * deps.maxAttempts) {
      // Its poison copy was refused for good too: nothing more can keep it, so it is skipped,
      // loudly (a log line and a count), rather than failing the instance for ever.
      deps.log?.(
        { stage, partition, seq, subject: m.subject, error: failed.error },
        "message skipped: neither it nor its poison copy can be published",
      );
      out.count("poison_unpublishable");
      ledger.delete(seq);
    } else if (failed !== undefined && failed.attempts >= deps.maxAttempts) {
      // A message that keeps failing goes to the poison DLQ instead of stalling the partition.
      out.raw(
        "reco.dlq.poison",
        data,
        {
          ...deadLetterHeaders(headersOf(m)),
          "Reco-Stage": stage,
          "Reco-Partition": String(partition),
          "Reco-Subject": m.subject,
          "Reco-Seq": String(seq),
          "Reco-Error": failed.error.slice(0, 1000),
        },
        `poison.${stage}.${partition}.${seq}`,
      );
      // Kept (as a publish failure) until a snapshot covers the poison copy: if that copy is
      // refused too, the next attempt counts on from here.
      ledger.set(seq, { ...failed, publish: true });
      deps.metrics?.poison(stage, partition);
      // Kept with the snapshot like the other counts: exact across restarts (reco_stage_count).
      out.count("poison");
    } else if (spec.input === "envelope") {
      const { upTo, prev } = peekHead(data);
      const verdict = order.offer(input, seq, upTo, prev, lastUpTo);
      if (verdict === "duplicate") deps.metrics?.duplicateBatch(stage, partition);
      else if (verdict === "apply") {
        applyHop(input, upTo);
        // Hops that waited for this one, in order.
        for (;;) {
          const { hop, duplicates } = order.next(lastUpTo);
          for (let d = 0; d < duplicates; d++) deps.metrics?.duplicateBatch(stage, partition);
          if (hop === undefined) break;
          current = hop.item;
          applyHop(hop.item, hop.upTo);
        }
        current = input;
      } else
        deps.log?.(
          { stage, partition, seq, upTo, prev, applied: lastUpTo },
          "hop waits: the one before it on its subject has not arrived",
        );
    } else {
      handler!.handle(input, lastUpTo);
    }
    // Attempts are recorded when handle throws (see receive); a success clears them.
    if (failed !== undefined && ledger.get(seq)?.publish !== true) ledger.delete(seq);
    current = undefined;
    lastSeq = seq;
    lastMsg = m;
    sinceSnapshot++;
    inputCount++;
    // Records, not messages: a hop message holds a batch (one event for parse's raw input).
    inputRecords += spec.input === "raw" ? 1 : recordsOfLastDecode(data);
    if (spec.batching === "per-input") flush();
    else if (full.length > 0) flushFull();
    if (++sinceAck >= ackEvery) {
      m.ack();
      sinceAck = 0;
    }
  };

  const actor = createActor<HostMsg>({
    id: `${stage}/${partition}`,
    behavior: {
      async start(ctx) {
        actorCtx = ctx;
        const load = async () => {
          await slowStartForTest(`${stage}/${partition}`);
          state = await deps.snapshots.load();
          lastSeq = Number(state.meta.seq ?? 0);
          lastUpTo = Number(state.meta.upTo ?? 0);
          sent = { ...((state.meta.sent as Record<string, number> | undefined) ?? {}) };
          progress = Number(state.meta.wm ?? -1);
          stats = { ...((state.meta.stats as Record<string, number> | undefined) ?? {}) };
          handler = await spec.create(state, out);
        };
        await (deps.loadInTurn ? deps.loadInTurn(load) : load());
        // Stopped while loading (a lease revoked while the load waited its turn): open nothing.
        // An abort listener added from here on would never fire.
        if (ctx.signal.aborted) return;
        publisher = createJetStreamPublisher(deps.nc, { window: 256 });
        // Messages arrive by callback and queue in the mailbox, which serialises them with
        // flushes, ticks and snapshots. The client pulls again on receipt, so what waits here is
        // bounded by the consumer's max_ack_pending and our acks (every `ackEvery` processed).
        let inputClosed = false;
        readers.set(inputKey, (readers.get(inputKey) ?? 0) + 1);
        ctx.signal.addEventListener("abort", () => {
          readers.set(inputKey, (readers.get(inputKey) ?? 1) - 1);
        });
        // The consumer's delivery sequence of the last message received. A message the server
        // sent but we never received (lost with the connection to a dying node) would come
        // again only after ack_wait, behind later ones already processed, and be skipped as
        // covered; worse, a later cumulative ack would cover it. A gap in the delivery sequence
        // therefore restarts the instance, on a new consumer at its last processed sequence.
        let delivered = 0;
        const iter = await openDurableSource(deps.nc, {
          stream: spec.stream,
          durable,
          filterSubject: spec.subject,
          startSeq: lastSeq + 1,
          maxAckPending: spec.input === "raw" ? 4096 : 256,
          callback: (m) => {
            if (inputClosed) return;
            const d = m.info.deliverySequence;
            if (dropForTest(`${stage}/${partition}`, d)) return;
            if (d !== delivered + 1) {
              inputClosed = true;
              ctx.fail(
                new Error(`${durable}: delivery ${delivered + 1} lost (received ${d}): restarting`),
              );
              return;
            }
            delivered = d;
            ctx.send({ kind: "input", m });
          },
        });
        closeInput = () => {
          inputClosed = true;
          void iter.close();
        };
        ctx.signal.addEventListener("abort", closeInput);
        // Delivery that ends without our asking (consumer lost, connection closed) fails the
        // instance: its supervisor starts it again on a new consumer.
        void iter.closed().then(
          (err) => {
            if (inputClosed || ctx.signal.aborted) return;
            ctx.fail(err ?? new Error(`input of ${stage}/${partition} ended`));
          },
          (err: unknown) => {
            if (!inputClosed && !ctx.signal.aborted) ctx.fail(err);
          },
        );
        if (spec.batching !== "per-input") {
          const { maxDelayMs } = spec.batching;
          timers.push(
            setInterval(
              () => {
                // Records wait at most T, or while the input is backlogged for B records or
                // 10 T; a batch that only carries progress goes at once.
                if (bufferedRecords > 0) {
                  const waited = Date.now() - firstBufferedAt;
                  if (waited >= maxDelayMs && (waited >= 10 * maxDelayMs || !backlogged()))
                    ctx.send({ kind: "flush" });
                } else if (buffers.size > 0) ctx.send({ kind: "flush" });
              },
              Math.max(5, Math.floor(maxDelayMs / 2)),
            ),
          );
        }
        // Periodic snapshots, each instance at its own phase of the interval: started together,
        // ~50 instances captured in the same turn and stalled the event loop for ~80 ms every
        // interval (a freshness outlier each time).
        const every = deps.snapshotIntervalMs;
        const phase = Math.floor(every * phaseOf(`${stage}/${partition}`));
        const first = setTimeout(() => {
          ctx.send({ kind: "snapshot" });
          timers.push(setInterval(() => ctx.send({ kind: "snapshot" }), every));
        }, phase);
        timers.push(first);
        if (deps.metrics) timers.push(setInterval(reportMetrics, 250));
        if (spec.input === "envelope")
          timers.push(
            setInterval(() => {
              // The missing hop never came (its producer's retries and restarts would have sent
              // it by now): fail loudly, rather than apply what follows it and lose its records.
              const o = order.oldest();
              if (o !== undefined && Date.now() - o.since > HOP_WAIT_MS)
                ctx.fail(
                  new Error(
                    `${stage}/${partition}: the hop before ${o.upTo} on ${o.item.subject} (after ` +
                      `${o.prev}; applied ${lastUpTo}) has not arrived in ${HOP_WAIT_MS} ms`,
                  ),
                );
            }, 1000),
          );
        if (handler?.tick && spec.tickMs) {
          timers.push(setInterval(() => ctx.send({ kind: "tick" }), spec.tickMs));
        }
      },
      async receive(msg) {
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
            }
            if (sinceSnapshot >= deps.snapshotEveryMessages) snapshot(false);
            return;
          case "flush":
            flush();
            return;
          case "tick":
            handler?.tick?.();
            // What the tick emitted goes now; record batches of a backlogged input wait for B.
            flush(!backlogged());
            return;
          case "snapshot":
            if (msg.force) await snapshot(true);
            else snapshot(false);
            return;
        }
      },
      async stop() {
        // Also when the stop came while the input was being opened (its abort listener was
        // added after the abort, and never fires): a live subscription on the durable consumer
        // would take deliveries from the unit's next owner.
        closeInput();
        for (const t of timers) clearInterval(t);
        timers.length = 0;
        // A write in flight finishes before the instance is gone: a restarted incarnation loads
        // only after this (the supervisor waits for closed()), so it sees the write or not.
        await snapshotInFlight?.catch(ignore);
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
    progress: () => progress,
    stats: () => stats,
    stateKeys: () => state?.keyCount() ?? 0,
    stopInput: () => closeInput(),
    // Rejects if the instance fails or stops first (it used to wait forever then).
    snapshotNow: () => actor.sendAndWait({ kind: "snapshot", force: true }),
  };
}

const ignore = () => undefined;

/** How long a hop may wait for the one before it (see hop-order.ts) before the instance fails. */
const HOP_WAIT_MS = 60_000;

/** See `backlogged` in createStageInstance. */
const BACKLOG_BATCHES = 16;

/** A fixed fraction in [0, 1) per instance id (FNV-1a), to spread periodic work. */
function phaseOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 4294967296;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
