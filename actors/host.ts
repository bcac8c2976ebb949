import type { JsMsg, NatsConnection } from "nats";
import { createActor, type Actor } from "../runtime/index.js";
import { createJetStreamPublisher, type JetStreamPublisher } from "../connectors/nats/publisher.js";
import { openDurableSource } from "../connectors/nats/source.js";
import type { SnapshotStore, StageState, StageStateInternal } from "../state/index.js";

/**
 * The stage host: runs one stage instance (stage × partition) as an actor.
 *
 * Input: a durable pull consumer on one subject, recreated at start from the snapshot's sequence,
 * so acks only pace delivery and the snapshot is the truth about what was processed.
 * Output: records buffered per subject and published as one batch message ("hop") with a
 * deterministic Nats-Msg-Id; the envelope carries `upTo`, the input sequence it covers, so the
 * next stage drops a batch it has already seen even outside JetStream's duplicate window.
 * Snapshots: outputs flushed and acked by the server first, then dirty keys + metadata in one
 * LevelDB batch. A crash between the two replays from the older snapshot; outputs repeat with the
 * same ids and `upTo`, and are dropped downstream.
 */

/** A hop message: a batch of records from one stage instance to the next. */
export interface Envelope<R> {
  /** Producer's input sequence (or, for parse, the last event sequence) this batch covers. */
  upTo: number;
  /** Event-time progress: max event time (ms) over the whole input prefix, -1 before any. */
  wm: number;
  recs: R[];
}

/** An input message as a stage handler sees it. */
export interface InputMessage {
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
}

export interface StageOutput {
  /** Adds a record to the batch for `subject`. */
  emit(subject: string, record: unknown): void;
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
  create(state: StageState, out: StageOutput): H;
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
}

export interface HostMetrics {
  input(stage: string, partition: number, n: number): void;
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
  | { kind: "snapshot"; done?: () => void };

export interface StageInstance<H extends StageHandler> {
  readonly actor: Actor<HostMsg>;
  /** The live handler (for queries); undefined until started. */
  handler(): H | undefined;
  /** Last input sequence processed. */
  position(): number;
  /** The persisted counts (see StageOutput.count). */
  stats(): Readonly<Record<string, number>>;
  /** Keys of per-key state held now. */
  stateKeys(): number;
  /** Stops taking input: what is already in the mailbox is still processed. */
  stopInput(): void;
  /** Forces a snapshot now (flush, wait for acks, write). */
  snapshotNow(): Promise<void>;
}

/** Failures per input sequence (attempts, last error), kept across restarts of one instance. */
export type PoisonLedger = Map<number, { attempts: number; error: string }>;

const enc = new TextEncoder();
const dec = new TextDecoder();

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
  let progress = -1;
  let sinceSnapshot = 0;
  let sinceAck = 0;
  let lastMsg: JsMsg | undefined;
  let bufferedRecords = 0;
  let firstBufferedAt = 0;
  let current: InputMessage | undefined;
  let stats: Record<string, number> = {};
  let closeInput: () => void = () => undefined;
  // Bound the mailbox by what a message holds: an event, or a batch of up to B records.
  const mailboxLimit = spec.input === "raw" ? 2048 : 32;
  const buffers = new Map<string, unknown[]>();
  const raws: { subject: string; data: Uint8Array; headers: Record<string, string>; id: string }[] =
    [];
  const kvPuts = new Map<string, { bucket: string; key: string; value: unknown }>();
  const timers: NodeJS.Timeout[] = [];

  const out: StageOutput = {
    emit(subject, record) {
      let b = buffers.get(subject);
      if (!b) buffers.set(subject, (b = []));
      b.push(record);
      if (bufferedRecords++ === 0) firstBufferedAt = Date.now();
    },
    touch(subject) {
      if (!buffers.has(subject)) buffers.set(subject, []);
    },
    setProgress(wm) {
      progress = wm;
    },
    raw(subject, data, headers, id) {
      raws.push({ subject, data, headers, id });
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
  const flush = () => {
    const pub = publisher!;
    const upTo = lastSeq;
    for (const [subject, recs] of buffers) {
      const env: Envelope<unknown> = { upTo, wm: progress, recs };
      pub
        .publish(subject, enc.encode(JSON.stringify(env)), {
          msgId: `${stage}.${partition}.${upTo}.${subject}`,
        })
        .catch(ignore);
      deps.metrics?.output(stage, partition, recs.length);
    }
    buffers.clear();
    bufferedRecords = 0;
    for (const r of raws)
      pub.publish(r.subject, r.data, { msgId: r.id, headers: r.headers }).catch(ignore);
    raws.length = 0;
    // A KV put is a publish to $KV.<bucket>.<key>: through the same publisher, so the next
    // snapshot waits for it like for any other output (a crash cannot lose an upsert that the
    // snapshot claims). Only the last value per key of this flush is sent.
    // The id makes a retry after a timeout (e.g. a NATS restart) safe.
    for (const p of kvPuts.values())
      pub
        .publish(`$KV.${p.bucket}.${p.key}`, enc.encode(JSON.stringify(p.value)), {
          msgId: `${stage}.${partition}.${upTo}.kv.${p.key}`,
        })
        .catch(ignore);
    kvPuts.clear();
  };

  const snapshot = async () => {
    if (!state) return;
    flush();
    const t0 = performance.now();
    await publisher!.flush();
    state.meta = { ...state.meta, seq: lastSeq, upTo: lastUpTo, wm: progress, stats: { ...stats } };
    const keys = await deps.snapshots.write(state);
    deps.metrics?.snapshot(stage, partition, (performance.now() - t0) / 1000, keys);
    sinceSnapshot = 0;
    lastMsg?.ack();
    sinceAck = 0;
  };

  const process = (m: JsMsg) => {
    const seq = m.seq;
    if (seq <= lastSeq) return; // redelivery of something already covered
    const hdrs: Record<string, string> = {};
    if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0] ?? "";
    const input: InputMessage = { seq, subject: m.subject, data: m.data, headers: hdrs };
    current = input;
    const attempts = ledger.get(seq)?.attempts ?? 0;
    if (attempts >= deps.maxAttempts) {
      // A message that keeps failing goes to the poison DLQ instead of stalling the partition.
      out.raw(
        "reco.dlq.poison",
        m.data,
        {
          ...hdrs,
          "Reco-Stage": stage,
          "Reco-Partition": String(partition),
          "Reco-Subject": m.subject,
          "Reco-Seq": String(seq),
          "Reco-Error": (ledger.get(seq)?.error ?? "unknown").slice(0, 1000),
        },
        `poison.${stage}.${partition}.${seq}`,
      );
      ledger.delete(seq);
      deps.metrics?.poison(stage, partition);
    } else if (spec.input === "envelope") {
      const env = peekUpTo(m.data);
      if (env <= lastUpTo) {
        deps.metrics?.duplicateBatch(stage, partition);
      } else {
        ledger.set(seq, { attempts: attempts + 1, error: "" });
        handler!.handle(input, lastUpTo);
        ledger.delete(seq);
        lastUpTo = env;
      }
    } else {
      ledger.set(seq, { attempts: attempts + 1, error: "" });
      handler!.handle(input, lastUpTo);
      ledger.delete(seq);
    }
    current = undefined;
    lastSeq = seq;
    lastMsg = m;
    sinceSnapshot++;
    deps.metrics?.input(stage, partition, 1);
    if (m.info.pending !== undefined) deps.metrics?.lag(stage, partition, m.info.pending);
    if (spec.batching === "per-input") flush();
    else if (bufferedRecords >= spec.batching.maxRecords) flush();
    if (++sinceAck >= 256) {
      m.ack();
      sinceAck = 0;
    }
  };

  const actor = createActor<HostMsg>({
    id: `${stage}/${partition}`,
    behavior: {
      async start(ctx) {
        state = await deps.snapshots.load();
        lastSeq = Number(state.meta.seq ?? 0);
        lastUpTo = Number(state.meta.upTo ?? 0);
        progress = Number(state.meta.wm ?? -1);
        stats = { ...((state.meta.stats as Record<string, number> | undefined) ?? {}) };
        handler = spec.create(state, out);
        publisher = createJetStreamPublisher(deps.nc, { window: 256 });
        const iter = await openDurableSource(deps.nc, {
          stream: spec.stream,
          durable,
          filterSubject: spec.subject,
          startSeq: lastSeq + 1,
        });
        ctx.signal.addEventListener("abort", () => void iter.close());
        closeInput = () => void iter.close();
        // Background pump: the mailbox serialises input with flush and snapshot ticks.
        void (async () => {
          try {
            for await (const m of iter) {
              ctx.send({ kind: "input", m });
              if (publisher!.pending() > 512) await publisher!.ready();
              if (actor.mailboxDepth() > mailboxLimit) {
                deps.metrics?.mailbox(stage, partition, actor.mailboxDepth());
                await actor.idle();
              }
            }
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        if (spec.batching !== "per-input") {
          const { maxDelayMs } = spec.batching;
          timers.push(
            setInterval(
              () => {
                if (bufferedRecords > 0 && Date.now() - firstBufferedAt >= maxDelayMs)
                  ctx.send({ kind: "flush" });
                else if (buffers.size > 0) ctx.send({ kind: "flush" });
              },
              Math.max(5, Math.floor(maxDelayMs / 2)),
            ),
          );
        }
        timers.push(setInterval(() => ctx.send({ kind: "snapshot" }), deps.snapshotIntervalMs));
        if (handler.tick && spec.tickMs) {
          timers.push(setInterval(() => ctx.send({ kind: "tick" }), spec.tickMs));
        }
      },
      async receive(msg) {
        switch (msg.kind) {
          case "input":
            try {
              process(msg.m);
            } catch (err) {
              const entry = current && ledger.get(current.seq);
              if (entry) entry.error = errorText(err);
              throw err;
            }
            if (sinceSnapshot >= deps.snapshotEveryMessages) await snapshot();
            return;
          case "flush":
            flush();
            return;
          case "tick":
            handler?.tick?.();
            flush();
            return;
          case "snapshot":
            await snapshot();
            msg.done?.();
            return;
        }
      },
      async stop() {
        for (const t of timers) clearInterval(t);
        timers.length = 0;
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
    stats: () => stats,
    stateKeys: () => state?.keyCount() ?? 0,
    stopInput: () => closeInput(),
    snapshotNow: () =>
      new Promise<void>((resolve) => actor.send({ kind: "snapshot", done: resolve })),
  };
}

/** Reads `upTo` from an envelope without a full parse when it leads the JSON, as we write it. */
function peekUpTo(data: Uint8Array): number {
  const head = dec.decode(data.subarray(0, 40));
  const m = /^\{"upTo":(\d+)/.exec(head);
  if (m) return Number(m[1]);
  return Number((JSON.parse(dec.decode(data)) as Envelope<unknown>).upTo);
}

export function decodeEnvelope<R>(data: Uint8Array): Envelope<R> {
  return JSON.parse(dec.decode(data)) as Envelope<R>;
}

const ignore = () => undefined;

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
