/**
 * The snapshot store's contract: the database (StateDb), one instance's store (SnapshotStore), a
 * captured batch, the archive's raw format and the store's options. Opened by store.ts.
 */

import type { StageStateInternal } from "./stage-state.js";

/** A LevelDB database holding the snapshots of every stage instance of one process. */
export interface StateDb {
  /** The snapshot store of one stage instance (a sublevel "<stage>/<partition>"). */
  instance(stage: string, partition: number): SnapshotStore;
  /**
   * Compacts the whole store: deleted keys (expired windows, horizons, forgotten event ids)
   * leave tombstones until LevelDB compacts their range; this makes the disk follow the state.
   */
  compact(): Promise<void>;
  /** Bytes on disk under the store's directory. */
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

/** A snapshot serialised and ready to write: `commit()` writes it as one atomic batch. */
export interface SnapshotBatch {
  /** Keys changed since the previous snapshot (puts + deletions). */
  readonly keys: number;
  commit(): Promise<void>;
}

export interface SnapshotStore {
  /**
   * Loads the last snapshot into a fresh state (empty if none). `skipMaps`: those maps are left
   * out (a reader that needs only some of them: the split's blend replica); such a state must not
   * be snapshotted (the store's bookkeeping of what is on disk counts what it loaded).
   */
  load(options?: { skipMaps?: ReadonlySet<string> }): Promise<StageStateInternal>;
  /**
   * Starts reading the snapshot's entries now, for the next load() to use instead of reading
   * them then (unless something is written meanwhile): a load waiting its turn behind another
   * one's CPU work reads from LevelDB (its thread pool) while it waits.
   */
  readAhead?(): void;
  /**
   * Takes the dirty keys and the metadata now (synchronously: the state may change right after)
   * and serialises them. Batches must be committed in the order they were captured, each after
   * the previous one succeeded; after a failed commit, load() again before capturing more.
   */
  capture(state: StageStateInternal): SnapshotBatch;
  /** Writes the dirty keys and the metadata in one atomic batch. Returns the number of keys written. */
  write(state: StageStateInternal): Promise<number>;
  /** Removes the instance's snapshot entirely. */
  clear(): Promise<void>;
  /**
   * The snapshot as logical entries ("<map>\0<key>" -> value), whatever the on-disk layout, for
   * the archive (state/archive.ts).
   */
  exportRaw(): Promise<RawSnapshot>;
  /** The input sequence the snapshot covers (its metadata's `seq`; 0: none), read alone. */
  metaSeq(): Promise<number>;
  /** Replaces the instance's snapshot with logical entries from the archive, in one batch. */
  importRaw(s: RawSnapshot): Promise<void>;
}

/** A snapshot as logical entries: the archive's format (state/archive.ts). */
export interface RawSnapshot {
  meta: Record<string, unknown>;
  entries: [string, unknown][];
}

export interface StateDbOptions {
  /**
   * Deltas may hold this many keys, or twice the live state if more, before a snapshot is a
   * checkpoint instead (default 100,000).
   */
  checkpointMinKeys?: number;
  /**
   * The deltas' JSON parts may hold this many keys, or twice the plain maps' keys at the last
   * JSON checkpoint if more, before a snapshot rewrites the plain maps (default 20,000).
   */
  plainCheckpointMinKeys?: number;
  /** The same in bytes of JSON (default 16 MiB). */
  plainCheckpointMinBytes?: number;
  /**
   * A plain map's byte value (Uint8Array) of at least this many bytes is written as a LevelDB
   * entry of its own, not as base64 in the JSON (default 64 KiB; Infinity: never, the layout
   * before raw entries).
   */
  rawMinBytes?: number;
  /**
   * A test's fault hook, called while each snapshot batch is being written (after the batch is
   * built, before LevelDB has it): the chaos test SIGKILLs the process there (bin/test-faults.ts).
   */
  onSnapshotWrite?: () => void;
}
