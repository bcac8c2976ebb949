import type { SnapshotStore, StageStateInternal } from "../../state/index.js";
import type { HopPublisher } from "./transport.js";
import type { PoisonLedger } from "./outputs.js";

/**
 * Snapshots of one stage instance (DESIGN §4): outputs flushed, the dirty keys and the metadata
 * captured now, then written once the server has acked every output published before the
 * capture. Input is processed while the acks and the write are awaited; a crash before the write
 * replays from the previous snapshot (the repeated outputs carry the same ids and `upTo`).
 */

export interface SnapshotterOptions {
  snapshots: SnapshotStore;
  ledger: PoisonLedger;
  /** The loaded state (undefined before the load: no snapshot then). */
  state(): StageStateInternal | undefined;
  /** Sends every buffered output. */
  flush(): void;
  publisher(): HopPublisher;
  /**
   * The input position the snapshot covers, its metadata, and the message to ack once written
   * (undefined: nothing to ack, e.g. while hops wait for a missing one).
   */
  capture(): { seq: number; meta: Record<string, unknown>; ack: (() => void) | undefined };
  /** A snapshot was written: `seconds` from capture to write, `keys` written. */
  written(seconds: number, keys: number): void;
  /** The write failed: the on-disk layout may not match what the store expects now. */
  failed(err: unknown): void;
}

export interface Snapshotter {
  /**
   * One snapshot in flight at a time: a periodic one (`force` false) is skipped while another is
   * written; `force` waits for it and then snapshots, so the returned promise covers everything
   * processed so far. Throws the failure of an earlier write.
   */
  snapshot(force: boolean): Promise<void> | undefined;
  /** The write in flight, if any (a stop waits for it). */
  inFlight(): Promise<void> | undefined;
  /** The input position of the last snapshot written by this incarnation (undefined: none). */
  writtenSeq(): number | undefined;
}

export function createSnapshotter(o: SnapshotterOptions): Snapshotter {
  let inFlight: Promise<void> | undefined;
  let failure: unknown;
  let writtenSeq: number | undefined;

  const snapshot = (force: boolean): Promise<void> | undefined => {
    const state = o.state();
    if (!state) return undefined;
    if (failure !== undefined) throw failure;
    if (inFlight) {
      if (!force) return undefined;
      return inFlight.then(() => snapshot(true));
    }
    o.flush();
    const t0 = performance.now();
    const { seq, meta, ack } = o.capture();
    state.meta = { ...state.meta, ...meta };
    const batch = o.snapshots.capture(state);
    const acked = o.publisher().flush();
    const written = (async () => {
      await acked;
      await batch.commit();
      // Outputs up to here were stored: failures of their publishes no longer matter.
      if (o.ledger.size > 0) for (const s of o.ledger.keys()) if (s <= seq) o.ledger.delete(s);
      writtenSeq = seq;
      o.written((performance.now() - t0) / 1000, batch.keys);
      // Cumulative ack (AckPolicy.All): paces delivery only, the snapshot is the truth.
      ack?.();
    })();
    inFlight = written;
    written.then(
      () => {
        if (inFlight === written) inFlight = undefined;
      },
      (err: unknown) => {
        failure = err;
        if (inFlight === written) inFlight = undefined;
        o.failed(err);
      },
    );
    return written;
  };

  return { snapshot, inFlight: () => inFlight, writtenSeq: () => writtenSeq };
}
