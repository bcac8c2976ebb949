import type { SchedulerLike } from "rxjs";
import type { Actor } from "../../runtime/index.js";
import type { SnapshotStore, StageState } from "../../state/index.js";
import type { HopCodec } from "./codec.js";
import type { HostTransport, SourceMessage } from "./transport.js";

/** The stage host's interfaces: what a stage handler sees, and what the host is given. */

/**
 * Faults a test injects into a host through its dependencies (bin/test-faults.ts builds them at
 * the process edge). Never set in production.
 */
export interface HostFaults {
  /**
   * Whether instance `id` ("<stage>/<partition>") ignores the `delivery`-th message its consumer
   * delivers, as if it had been lost in flight with a dying connection (the delivery-gap test).
   */
  dropDelivery?(id: string, delivery: number): boolean;
  /** Awaited before instance `id` loads its snapshot: a slow start, as a large snapshot's. */
  beforeLoad?(id: string): Promise<void>;
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
  /**
   * Makes sure a batch (possibly empty) is sent to `subject` at the next flush: carries progress,
   * and `ix`, idle markers applied (envelope.ts), with the subject's next hop.
   */
  touch(subject: string, ix?: readonly number[]): void;
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
  /**
   * The lowest input sequence the handler holds without having applied it (a merged input's hop
   * waiting for the one before it), if any: the instance's snapshot stays before it, so a
   * restart reads it again.
   */
  heldFrom?(): number | undefined;
  /**
   * The message held longest, if any: what it waits for and since when (ms, processing time).
   * Held past the host's bound (HOP_WAIT_MS), the instance fails, as for a missing input hop.
   */
  heldLongest?(): { subject: string; prev: number; applied: number; since: number } | undefined;
}

export interface StageSpec<H extends StageHandler> {
  stage: string;
  partition: number;
  stream: string;
  subject: string;
  /** "envelope": input messages are hop batches (dedupe by `upTo`); "raw": published events. */
  input: "envelope" | "raw";
  /**
   * Input messages delivered and not yet acked, at most (the consumer's max_ack_pending). Default
   * 4096 for "raw" (events of ~250 bytes) and HOPS_IN_FLIGHT for "envelope"; a raw input of hop
   * messages (up to B records each: a merged stage) sets it as a hop input's.
   */
  inFlight?: number;
  /** Flush outputs after every input message, or when `maxRecords`/`maxDelayMs` is reached. */
  batching: "per-input" | { maxRecords: number; maxDelayMs: number };
  /** Period of `handler.tick()`, if the handler has one. */
  tickMs?: number;
  /**
   * Hops of one input larger than max_payload go as several messages with the same `upTo`
   * (ids `…#<part>`) instead of failing. Only for outputs whose readers drop records by their
   * own numbering, not a hop's `upTo` (a merged input: the collaborative rows' changes).
   */
  splitHops?: boolean;
  /**
   * Periodic snapshots every this many SNAPSHOT_INTERVALs (default 1). For a stage without
   * outputs that no answer waits for after a restart: each snapshot
   * rewrites every key changed since the last one, so fewer of them cost less CPU per event, and
   * a restart replays more of its input (exact either way: the snapshot records its position).
   */
  snapshotIntervals?: number;
  /** May return a promise: a handler that rebuilds a large index gives the loop back meanwhile. */
  create(state: StageState, out: StageOutput): H | Promise<H>;
}

export interface HostDeps {
  /** Where input comes from and outputs go (connectors/nats/host-transport.ts for NATS). */
  transport: HostTransport;
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
  /** How hops are written and read; default envelope.ts's. */
  codec?: HopCodec;
  /** The host's timers and clock (batching, snapshots, ticks); default RxJS's async scheduler. */
  scheduler?: SchedulerLike;
  faults?: HostFaults;
  /**
   * Input alignment (align.ts): the instances of a stage in this process that read hops of the
   * same stream take them lowest `upTo` first, none more than this far ahead of the group's
   * slowest. Absent: each takes its hops as they come.
   */
  alignAhead?: number;
  /**
   * The input consumer's name for an incarnation about to start, and the names it replaces
   * (default `<stage>_<partition>`, replacing none). Workers name it after the lease (epoch), so
   * an owner whose lease has moved on cannot take, ack or re-place the new owner's consumer.
   */
  consumer?: (subject: string) => {
    name: string;
    stale?: (name: string) => boolean;
    /** The consumer shared with the process's other readers of `subject` (SourceOptions.shared). */
    shared?: { durable: string; stale?: (name: string) => boolean };
  };
}

export interface HostMetrics {
  /** `n` input messages holding `records` records (events for parse, hop records after it). */
  input(stage: string, partition: number, n: number, records: number): void;
  output(stage: string, partition: number, n: number): void;
  /** Seconds of the event loop the instance spent handling its messages. */
  busy(stage: string, partition: number, seconds: number): void;
  /** The longest single message handling of the instance so far, seconds. */
  longest(stage: string, partition: number, seconds: number): void;
  lag(stage: string, partition: number, pending: number): void;
  mailbox(stage: string, partition: number, depth: number): void;
  snapshot(stage: string, partition: number, seconds: number, keys: number): void;
  /**
   * How long the instance's start took to restore its state: `stateSeconds` to read its
   * snapshot into the stage state (LevelDB, the cold index), `handlerSeconds` for the stage to
   * build its in-memory structures from it (the handler's creation).
   */
  restore(stage: string, partition: number, stateSeconds: number, handlerSeconds: number): void;
  poison(stage: string, partition: number): void;
  duplicateBatch(stage: string, partition: number): void;
}

/** A running stage instance (stage × partition), as its unit and queries use it. */
export interface StageInstance<H extends StageHandler> {
  readonly actor: Actor<HostMsg>;
  /** The live handler (for queries); undefined until started. */
  handler(): H | undefined;
  /** Last input sequence processed. */
  position(): number;
  /**
   * The input position its snapshot restored at this start (-1 until loaded): what a restart
   * replays is the position before it less this, exactly, whatever moved since.
   */
  restoredPosition(): number;
  /**
   * The input position its snapshot on disk covers: the last one it wrote, else the one it
   * restored (-1 until loaded).
   */
  snapshotPosition(): number;
  /** Event-time progress (epoch ms) stamped on its outputs; -1 before any. */
  progress(): number;
  /** The persisted counts (see StageOutput.count). */
  stats(): Readonly<Record<string, number>>;
  /** Keys of per-key state held now. */
  stateKeys(): number;
  /** Bytes its state holds for cold keys (stored-form records and their indexes, off-heap). */
  stateColdBytes(): number;
  /** Stops taking input: what is already in the mailbox is still processed. */
  stopInput(): void;
  /** Forces a snapshot now (flush, wait for acks, write). */
  snapshotNow(): Promise<void>;
}

/** What a stage instance's actor is sent: input, and what its timers ask for. */
export type HostMsg =
  | { kind: "input"; m: SourceMessage }
  | { kind: "flush" }
  | { kind: "tick" }
  | { kind: "snapshot"; force?: boolean };
