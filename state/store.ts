import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Level } from "level";
import type { StageStateInternal } from "./stage-state.js";
import { createRawValues } from "./raw-values.js";
import { openFailure, StateStoreWriteError, storeFailure } from "./store-errors.js";
import {
  CHECKPOINT_MIN,
  emptyDisk,
  forgetDisk,
  META_KEY,
  PLAIN_CHECKPOINT_MIN,
  PLAIN_CHECKPOINT_MIN_BYTES,
  RAW_MIN_BYTES,
  type Chunk,
  type Op,
} from "./store-layout.js";
import { readSnapshot } from "./store-loader.js";
import { rawOf, stateOfRaw } from "./store-raw.js";
import type { SnapshotBatch, StateDb, StateDbOptions } from "./store-types.js";
import { captureOps, checkpointOps, type CheckpointLimits } from "./store-writer.js";

/**
 * Snapshots of stage instances in LevelDB: written as a delta of the keys changed since the
 * previous one (or a checkpoint), read back into a live state (stage-state.ts). Failures are
 * store-errors.ts's.
 *
 * This file opens the database and each instance's sublevel (reopening after a write error,
 * reading ahead, committing batches); the layout is store-layout.ts, loading store-loader.ts,
 * what a snapshot writes store-writer.ts, the archive's raw entries store-raw.ts, the contract
 * store-types.ts (re-exported here with every other name this file exported before).
 */

export { createStageState } from "./stage-state.js";
export type { KeyedMap, StageState, StageStateInternal, StateDelta } from "./stage-state.js";
export {
  StateStoreCorruptError,
  StateStoreOpenError,
  StateStoreWriteError,
} from "./store-errors.js";
export type {
  RawSnapshot,
  SnapshotBatch,
  SnapshotStore,
  StateDb,
  StateDbOptions,
} from "./store-types.js";

/**
 * How a load reads an instance's entries (classic-level's iterator options; `level`'s types name
 * only the abstract ones). Up to 1 MiB per nextv call instead of 16 KiB: each call is a trip to
 * LevelDB's thread and back (a restart with 1M users, bench step 6: 333 ms of the main thread in
 * classic-level's `_nextv`, 86 ms with this; 40 MB of 1 KB entries read in 112 ms, 70 ms with
 * this). Blocks read once at a load are not kept in LevelDB's 8 MB block cache, which they would
 * only churn.
 */
const BULK_READ = {
  valueEncoding: "buffer",
  highWaterMarkBytes: 1 << 20,
  fillCache: false,
} as { valueEncoding: "buffer" };

export async function openStateDb(path: string, options: StateDbOptions = {}): Promise<StateDb> {
  const limits: CheckpointLimits = {
    checkpointMin: options.checkpointMinKeys ?? CHECKPOINT_MIN,
    plainMin: options.plainCheckpointMinKeys ?? PLAIN_CHECKPOINT_MIN,
    plainMinBytes: options.plainCheckpointMinBytes ?? PLAIN_CHECKPOINT_MIN_BYTES,
  };
  const rawMin = options.rawMinBytes ?? RAW_MIN_BYTES;
  let db = new Level<string, string>(path, { valueEncoding: "utf8" });
  await db.open().catch((err: unknown) => {
    throw openFailure(path, err);
  });
  /**
   * LevelDB keeps a background write error (a compaction or table file that hit a full disk) for
   * the life of the handle: every later write fails with it although space has come back. So a
   * write that fails with an I/O error, or finds the store closed by a reopen that failed, reopens
   * the store (one reopen at a time); the stage that failed restarts from its last snapshot and
   * writes to the new handle. Writes that failed were not applied (a batch is atomic).
   */
  let generation = 0;
  let reopening: Promise<void> | undefined;
  let closed = false;
  /** Why the last reopen failed (a full disk: no room for a new log); cleared by one that opens. */
  let reopenError: unknown;
  const reopen = () =>
    (reopening ??= (async () => {
      await db.close().catch(() => undefined);
      if (closed) return;
      const next = new Level<string, string>(path, { valueEncoding: "utf8" });
      await next.open();
      db = next;
      generation++;
      reopenError = undefined;
    })()
      .catch((err: unknown) => {
        reopenError = err;
      })
      .finally(() => (reopening = undefined)));
  /**
   * Waits for a reopen under way; reopens a store that a failed reopen left closed. A store that
   * still cannot be opened fails the read or write with the reopen's reason (a disk still full:
   * no room for a new log), not LevelDB's "Database is not open".
   */
  const ready = async () => {
    await reopening;
    if (db.status !== "open" && !closed) await reopen();
    if (db.status !== "open" && !closed && reopenError !== undefined)
      throw new StateStoreWriteError(path, reopenError);
  };
  const writeFailed = (err: unknown) => {
    const code = (err as { code?: string } | undefined)?.code;
    if (!closed && (code === "LEVEL_IO_ERROR" || code === "LEVEL_DATABASE_NOT_OPEN")) void reopen();
    return storeFailure(path, err, true);
  };
  return {
    instance(stage, partition) {
      // Values are UTF-8 JSON, or bytes for binary entries (each such put says so). The sublevel
      // of the store's current handle (a reopen replaces it).
      const open = () =>
        db.sublevel<string, string | Buffer>(`${stage}/${partition}`, { valueEncoding: "utf8" });
      let subOf = generation;
      let subLevel = open();
      const sub = () => {
        if (subOf !== generation) {
          subLevel = open();
          subOf = generation;
        }
        return subLevel;
      };
      // What is on disk besides the metadata, as last loaded or written.
      const disk = emptyDisk(rawMin);

      /**
       * The entries in order, as nextv reads them (one call per key, for await, was most of the
       * start-up time). Values as bytes: binary entries stay the maps' memory; JSON ones are
       * decoded by the load. One LevelDB iterator: a consistent view.
       */
      const entries = async function* (): AsyncGenerator<Chunk> {
        await ready();
        const it = sub().iterator<string, Buffer>(BULK_READ);
        try {
          for (;;) {
            const chunk = await it.nextv(1000);
            if (chunk.length === 0) return;
            yield chunk;
          }
        } finally {
          await it.close();
        }
      };
      /** Writes begun (a read ahead of one is stale) and writes under way. */
      let writesBegun = 0;
      let writing = 0;
      const writes = async <T>(write: () => Promise<T>): Promise<T> => {
        writesBegun++;
        writing++;
        try {
          return await write();
        } finally {
          writing--;
        }
      };
      let ahead: { chunks: Promise<Chunk[] | undefined>; writesBegun: number } | undefined;
      /** The read ahead, if one is under way or done and no write has begun since it began. */
      const takeAhead = () => {
        const a = ahead;
        ahead = undefined;
        return a && a.writesBegun === writesBegun && writing === 0 ? a.chunks : undefined;
      };

      /** Reads the instance's snapshot into a state. */
      const read = (chunks?: AsyncIterable<Chunk> | Iterable<Chunk>, skip?: ReadonlySet<string>) =>
        readSnapshot(chunks ?? entries(), skip).catch((err: unknown) => {
          throw storeFailure(path, err, false);
        });

      const commitOps = async (ops: Op[]) => {
        await writes(async () => {
          await ready();
          const written = sub().batch(ops);
          options.onSnapshotWrite?.();
          await written.catch((err: unknown) => {
            throw writeFailed(err);
          });
        });
      };

      const capture = (state: StageStateInternal): SnapshotBatch => {
        const { keys, ops } = captureOps(disk, limits, state);
        return { keys, commit: () => commitOps(ops) };
      };

      return {
        async load(options) {
          const chunks = await takeAhead();
          const { state, layout } = await read(chunks, options?.skipMaps);
          const { raw, ...counts } = layout;
          Object.assign(disk, counts);
          disk.raws = createRawValues(rawMin, raw);
          return state;
        },
        readAhead() {
          if (writing > 0) return;
          const chunks = (async () => {
            const out: Chunk[] = [];
            for await (const chunk of entries()) out.push(chunk);
            return out;
          })();
          // A read that fails here is made again by the load (and fails there if it must).
          ahead = { chunks: chunks.catch(() => undefined), writesBegun };
        },
        capture,
        async write(state) {
          const batch = capture(state);
          await batch.commit();
          return batch.keys;
        },
        async clear() {
          await writes(() => sub().clear());
          forgetDisk(disk, rawMin);
        },
        async exportRaw() {
          const { state } = await read();
          return rawOf(state);
        },
        async metaSeq() {
          await ready();
          const v = await sub()
            .get(META_KEY)
            .catch((err: unknown) => {
              throw storeFailure(path, err, false);
            });
          if (v === undefined) return 0;
          const meta = JSON.parse(typeof v === "string" ? v : v.toString("utf8")) as {
            seq?: unknown;
          };
          return Number(meta.seq ?? 0);
        },
        async importRaw(snap) {
          writesBegun++;
          await sub().clear();
          const state = stateOfRaw(snap);
          forgetDisk(disk, rawMin);
          // A checkpoint of everything (not counted by the fault injection).
          await sub().batch(checkpointOps(disk, state));
        },
      };
    },
    async compact() {
      // classic-level (what `level` is on Node) has compactRange; the abstract type does not.
      const c = db as unknown as { compactRange(a: string, b: string): Promise<void> };
      await c.compactRange("\u0000", "\uffff");
    },
    sizeBytes: () => dirSize(path),
    close: async () => {
      closed = true;
      await reopening;
      await db.close();
    },
  };
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
