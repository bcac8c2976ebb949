import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Level } from "level";
import {
  createStageState,
  persisted,
  SEP,
  type StageStateInternal,
  type StateDelta,
} from "./stage-state.js";
import { readSections } from "./sections.js";
import { loadsBusy } from "./cold-index.js";
import { createRawReader, createRawValues, RAW_PREFIX, type Loaded } from "./raw-values.js";
import { openFailure, storeFailure } from "./store-errors.js";

/**
 * Snapshots of stage instances in LevelDB: written as a delta of the keys changed since the
 * previous one (or a checkpoint), read back into a live state (stage-state.ts). Failures are
 * store-errors.ts's.
 */

export { createStageState } from "./stage-state.js";
export type { KeyedMap, StageState, StageStateInternal, StateDelta } from "./stage-state.js";
export {
  StateStoreCorruptError,
  StateStoreOpenError,
  StateStoreWriteError,
} from "./store-errors.js";

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
  /** Replaces the instance's snapshot with logical entries from the archive, in one batch. */
  importRaw(s: RawSnapshot): Promise<void>;
}

/** A snapshot as logical entries: the archive's format (state/archive.ts). */
export interface RawSnapshot {
  meta: Record<string, unknown>;
  entries: [string, unknown][];
}

/*
 * Layout of one instance's sublevel (values are UTF-8 JSON):
 *
 *   "\x01meta"            the metadata of the last snapshot (input sequence, progress, counts)
 *   "\x02a\0<n>"          a large byte value of a plain map, raw (raw-values.ts): the JSON parts
 *                         refer to it by n
 *   "\x02b\0<n>"          checkpoint chunk n: [[map, [k, v, k, v, ...]], ...], up to CHUNK keys
 *   "\x02c\0<n>"          binary checkpoint chunk n (sections.ts) of the stored-form maps
 *   "\x03d\0<seq>"        delta seq (12 digits): [[map, [k, v, ...], [deleted k, ...]], ...]
 *   "\x03d\0<seq>b"       the same delta's stored-form maps, binary (sections.ts)
 *   "<map>\0<key>"        one key per entry: the layout before deltas, still read on load
 *
 * A snapshot is one delta and the metadata in one batch: one LevelDB value however many keys
 * changed (writing a LevelDB entry per key cost more than the stages' own work at 60k events/s:
 * ~7 keys per event). Load applies the checkpoint, then the deltas in order. When the deltas
 * hold more keys than twice the live state (at least CHECKPOINT_MIN), the snapshot is a
 * checkpoint instead: the whole state in chunks, with every delta deleted, in the same batch, so
 * disk and load time stay proportional to the live state (amortised: each change is written at
 * most ~1.5 times).
 *
 * The plain maps' JSON is held to the same rule on its own (a plain checkpoint): when the deltas'
 * JSON parts hold more than twice the keys of the last JSON checkpoint (at least
 * PLAIN_CHECKPOINT_MIN), or twice its bytes (at least PLAIN_CHECKPOINT_MIN_BYTES), the snapshot rewrites the JSON checkpoint chunks from the plain maps and
 * deletes every delta's JSON part, keeping the binary parts. A JSON entry costs ~8x a binary
 * one to load, and a few thousand plain keys rewritten at every snapshot (covisit's per-item
 * counters) never brought the deltas near twice a state of a million binary keys: with 1M users
 * a restart parsed 306k JSON entries of covisit's ~20k plain keys before the blend could answer.
 * Plain and binary maps are apart on disk (a delta's JSON part holds only plain maps, its binary
 * part only binary ones), so the JSON checkpoint and the binary deltas load in either order.
 *
 * Maps with a stored form (text and codec maps: per-user profiles, histories, lists) are written
 * as binary sections, and a load keeps those entries' bytes as the maps' cold keys (cold-index.ts)
 * instead of parsing them: a restart reads bytes and indexes keys, and a key is decoded when the
 * stage first reads it.
 */
const META_KEY = "\u0001meta";
const BASE_PREFIX = "\u0002b\u0000";
const BIN_BASE_PREFIX = "\u0002c\u0000";
const DELTA_PREFIX = "\u0003d\u0000";
/** Suffix of a delta's binary part (sorts right after its JSON part). */
const BIN_DELTA = "b";
const CHUNK = 10_000;
/** Keys loaded between two turns of the event loop (~20-30 ms of work). */
const LOAD_SLICE = 10_000;
const CHECKPOINT_MIN = 100_000;
const PLAIN_CHECKPOINT_MIN = 20_000;
const PLAIN_CHECKPOINT_MIN_BYTES = 16 << 20;
/** Byte values this large get a raw entry (parse's 32 KiB dedupe segments stay base64). */
const RAW_MIN_BYTES = 64 << 10;
const pad = (n: number) => String(n).padStart(12, "0");

type Op =
  | { type: "put"; key: string; value: string }
  | { type: "put"; key: string; value: Buffer; valueEncoding: "buffer" }
  | { type: "del"; key: string };

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

export async function openStateDb(path: string, options: StateDbOptions = {}): Promise<StateDb> {
  const checkpointMin = options.checkpointMinKeys ?? CHECKPOINT_MIN;
  const plainMin = options.plainCheckpointMinKeys ?? PLAIN_CHECKPOINT_MIN;
  const plainMinBytes = options.plainCheckpointMinBytes ?? PLAIN_CHECKPOINT_MIN_BYTES;
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
  const reopen = () =>
    (reopening ??= (async () => {
      await db.close().catch(() => undefined);
      if (closed) return;
      const next = new Level<string, string>(path, { valueEncoding: "utf8" });
      await next.open();
      db = next;
      generation++;
    })()
      .catch(() => undefined)
      .finally(() => (reopening = undefined)));
  /** Waits for a reopen under way; reopens a store that a failed reopen left closed. */
  const ready = async () => {
    await reopening;
    if (db.status !== "open" && !closed) await reopen();
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
      let baseChunks = 0;
      let binChunks = 0;
      let deltaKeys: string[] = [];
      let legacyKeys: string[] = [];
      let nextDelta = 1;
      let deltaEntries = 0;
      /** Keys and bytes in the deltas' JSON parts, and in the JSON checkpoint chunks. */
      let jsonEntries = 0;
      let baseKeys = 0;
      let jsonBytes = 0;
      let baseBytes = 0;
      /** The raw entries on disk and the keys that hold them. */
      let raws = createRawValues(rawMin);

      type Chunk = [string, Buffer][];
      /**
       * The entries in order, as nextv reads them (one call per key, for await, was most of the
       * start-up time). Values as bytes: binary entries stay the maps' memory; JSON ones are
       * decoded by the load. One LevelDB iterator: a consistent view.
       */
      const entries = async function* (): AsyncGenerator<Chunk> {
        await ready();
        const it = sub().iterator<string, Buffer>({ valueEncoding: "buffer" });
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
        readRaw(chunks ?? entries(), skip).catch((err: unknown) => {
          throw storeFailure(path, err, false);
        });
      const readRaw = async (
        chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
        skip?: ReadonlySet<string>,
      ) => {
        const state = createStageState();
        // Loading is CPU work on the event loop that also serves gRPC: give it back every
        // LOAD_SLICE keys. (Applying the deltas of a 125k-user partition in one go held the loop
        // for ~1 s per instance while a restarted process was already answering.)
        let sinceYield = 0;
        const pace = async (keys: number) => {
          loadsBusy();
          sinceYield += keys;
          if (sinceYield < LOAD_SLICE) return;
          sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        };
        const deltas: (Buffer | StateDelta["maps"])[] = [];
        // Binary checkpoint chunks, loaded once all are read: their key counts size the maps'
        // indexes first (see ColdIndex.reserve).
        const binBase: Buffer[] = [];
        const legacy: [string, unknown][] = [];
        /**
         * Maps that a JSON part (checkpoint chunk, delta, one-key entry) holds keys of: their
         * binary parts are loaded in order with those, key by key. Every other map's binary
         * parts are loaded at once, in the order of their indexes' slots (loadBinaryAll).
         */
        const jsonMaps = new Set<string>();
        const binaryMaps = new Set<string>();
        const layout = {
          baseChunks: 0,
          binChunks: 0,
          deltaKeys: [] as string[],
          legacyKeys: [] as string[],
          nextDelta: 1,
          deltaEntries: 0,
          jsonEntries: 0,
          baseKeys: 0,
          jsonBytes: 0,
          baseBytes: 0,
          raw: undefined as Loaded | undefined,
        };
        const raw = createRawReader();
        // Keys come in order: metadata, checkpoint chunks, deltas, then one-key entries.
        const json = (v: Buffer): unknown => JSON.parse(v.toString("utf8"));
        for await (const chunk of chunks) {
          for (const [k, v] of chunk) {
            // Raw entries sort before every JSON part that refers to them.
            if (k.startsWith(RAW_PREFIX)) raw.entry(k, v);
            else if (k.startsWith(BIN_BASE_PREFIX)) {
              layout.binChunks++;
              binBase.push(v);
              for (const s of readSections(v)) binaryMaps.add(s.name);
            } else if (k === META_KEY) state.meta = json(v) as Record<string, unknown>;
            else if (k.startsWith(BASE_PREFIX)) {
              layout.baseChunks++;
              layout.baseBytes += v.length;
              for (const [name, kv] of json(v) as [string, unknown[]][]) {
                if (skip?.has(name)) continue;
                jsonMaps.add(name);
                state.loadMapEntries(name, kv, (key, n) => raw.resolve(name, key, n));
                layout.baseKeys += kv.length / 2;
                await pace(kv.length / 2);
              }
            } else if (k.startsWith(DELTA_PREFIX)) {
              layout.deltaKeys.push(k);
              layout.nextDelta = parseInt(k.slice(DELTA_PREFIX.length), 10) + 1;
              if (k.endsWith(BIN_DELTA)) {
                deltas.push(v);
                for (const s of readSections(v)) {
                  binaryMaps.add(s.name);
                  layout.deltaEntries += s.count;
                }
              } else {
                layout.jsonBytes += v.length;
                const maps = json(v) as StateDelta["maps"];
                for (const [name] of maps) jsonMaps.add(name);
                deltas.push(maps);
              }
            } else if (!skip?.has(k.slice(0, k.indexOf(SEP)))) {
              layout.legacyKeys.push(k);
              legacy.push([k, json(v)]);
              jsonMaps.add(k.slice(0, k.indexOf(SEP)));
            }
          }
        }
        const binDeltas = deltas.filter((v): v is Buffer => Buffer.isBuffer(v));
        const bulk = new Set(
          [...binaryMaps].filter((name) => !jsonMaps.has(name) && !skip?.has(name)),
        );
        // The binary maps loaded key by key below leave out those loaded in bulk, and skipped.
        const apart = skip ? new Set([...bulk, ...skip]) : bulk;
        // Indexing is ~8x cheaper per key than a JSON entry's parse and Map.set (its steps
        // count two units per key).
        // Lazily: the records are partitioned now and placed in their indexes as lookups need
        // them, then in the background once loads are over (cold-index.ts loadsBusy): ~half of
        // this step's CPU (1M keys: ~0.1-0.2 s) leaves the path to a restart's first answers.
        for (const n of state.loadBinaryAll([...binBase, ...binDeltas], bulk, true))
          await pace(n / 16);
        // The rest in the order of their keys: the checkpoint's binary chunks (their key counts
        // size the indexes first), one-key entries, then the deltas.
        state.reserveBinary(binBase, apart);
        for (const v of binBase) await pace(state.loadBinary(v, apart) / 8);
        for (const [k, v] of legacy) state.loadEntry(k, v);
        // The binary deltas' keys are reserved for too (without a checkpoint, as after an
        // ingest of new users, they are all of them), the indexes shrunk after if that was much
        // too many (keys repeated across deltas).
        state.reserveBinary(binDeltas, apart);
        // One-key entries and deltas never coexist: the first snapshot after loading one-key
        // entries is a checkpoint that deletes them.
        for (const v of deltas) {
          if (Buffer.isBuffer(v)) {
            await pace(state.loadBinary(v, apart) / 8);
            continue;
          }
          for (const [name, kv, dels] of v) {
            if (skip?.has(name)) continue;
            state.loadMapEntries(name, kv, (key, n) => raw.resolve(name, key, n));
            for (const k of dels) state.loadMapEntry(name, k, undefined, true);
            layout.deltaEntries += kv.length / 2 + dels.length;
            layout.jsonEntries += kv.length / 2 + dels.length;
            await pace(kv.length / 2 + dels.length);
          }
        }
        state.fitCold();
        layout.raw = raw.done((name, key) => state.map(name).get(key));
        return { state, layout };
      };

      /**
       * A checkpoint: the whole state in chunks, replacing the old checkpoint, every delta and
       * any one-key entries, plus the metadata.
       */
      const checkpointOps = (state: StageStateInternal): Op[] => {
        const ops: Op[] = [];
        const { binary, chunks: bin } = state.binaryCheckpoint(CHUNK);
        bin.forEach((value, n) =>
          ops.push({ type: "put", key: BIN_BASE_PREFIX + pad(n), value, valueEncoding: "buffer" }),
        );
        for (let n = bin.length; n < binChunks; n++)
          ops.push({ type: "del", key: BIN_BASE_PREFIX + pad(n) });
        binChunks = bin.length;
        jsonBaseOps(state, binary, ops);
        for (const k of deltaKeys) ops.push({ type: "del", key: k });
        for (const k of legacyKeys) ops.push({ type: "del", key: k });
        ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
        deltaKeys = [];
        legacyKeys = [];
        deltaEntries = 0;
        jsonEntries = 0;
        jsonBytes = 0;
        return ops;
      };

      /** The JSON checkpoint chunks: every map not in `binary`, replacing the old chunks. */
      const jsonBaseOps = (state: StageStateInternal, binary: Set<string>, ops: Op[]) => {
        let chunks = 0;
        let chunk: [string, unknown[]][] = [];
        let inChunk = 0;
        let keys = 0;
        let bytes = 0;
        const put = () => {
          const value = JSON.stringify(chunk);
          bytes += value.length;
          ops.push({ type: "put", key: BASE_PREFIX + pad(chunks++), value });
          chunk = [];
          inChunk = 0;
        };
        for (const [name, data] of state.allMaps()) {
          if (binary.has(name)) continue;
          let kv: unknown[] = [];
          for (const [k, v] of data) {
            // A byte value written before is referred to again, not written again.
            kv.push(k, v instanceof Uint8Array ? raws.value(ops, name, k, v, false) : v);
            keys++;
            if (++inChunk >= CHUNK) {
              chunk.push([name, kv]);
              kv = [];
              put();
            }
          }
          if (kv.length > 0) chunk.push([name, kv]);
        }
        if (inChunk > 0) put();
        for (let n = chunks; n < baseChunks; n++)
          ops.push({ type: "del", key: BASE_PREFIX + pad(n) });
        baseChunks = chunks;
        baseKeys = keys;
        baseBytes = bytes;
      };

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
        // Raw entries of byte values written now, and of those superseded or deleted.
        const rawOps: Op[] = [];
        raws.orphans(rawOps);
        const delta = state.takeDelta((map, key, v) => raws.value(rawOps, map, key, v, true));
        if (raws.held)
          for (const [name, puts, dels] of delta.maps) {
            if (delta.binary.has(name)) continue;
            for (let i = 0; i < puts.length; i += 2)
              raws.written(rawOps, name, puts[i] as string, puts[i + 1]);
            for (const k of dels) raws.written(rawOps, name, k, undefined);
          }
        let ops: Op[];
        // Twice the live keys, known once a restart's lazy load has placed its records (in the
        // background, seconds after the load): until then no checkpoint by this rule, which only
        // bounds what the deltas may hold (the next snapshots see it again).
        const entries = deltaEntries + delta.size;
        const live = entries > checkpointMin ? state.keyCountSettled() : 0;
        if (
          legacyKeys.length > 0 ||
          (live !== undefined && entries > Math.max(checkpointMin, 2 * live))
        ) {
          ops = checkpointOps(state);
        } else {
          ops = [];
          const maps = delta.maps.filter(([name]) => !delta.binary.has(name));
          let jsonSize = 0;
          for (const [, puts, dels] of maps) jsonSize += puts.length / 2 + dels.length;
          const text = maps.length > 0 ? JSON.stringify(maps) : "";
          // A plain checkpoint: the plain maps as they are now (this delta's JSON part included)
          // replace the JSON checkpoint chunks, and every delta's JSON part goes. Bytes count
          // too: a few keys with large values (collaborative's model, ~60 MB of JSON at 1M
          // users, one key rewritten at each training) piled up in the deltas by the key rule.
          const plain =
            jsonEntries + jsonSize > Math.max(plainMin, 2 * baseKeys) ||
            jsonBytes + text.length > Math.max(plainMinBytes, 2 * baseBytes);
          if (plain) {
            jsonBaseOps(state, delta.binary, ops);
            const json = deltaKeys.filter((k) => !k.endsWith(BIN_DELTA));
            for (const k of json) ops.push({ type: "del", key: k });
            deltaKeys = deltaKeys.filter((k) => k.endsWith(BIN_DELTA));
            deltaEntries -= jsonEntries;
            jsonEntries = 0;
            jsonBytes = 0;
          }
          if (delta.size > 0) {
            const key = DELTA_PREFIX + pad(nextDelta++);
            if (maps.length > 0 && !plain) {
              ops.push({ type: "put", key, value: text });
              deltaKeys.push(key);
              jsonEntries += jsonSize;
              jsonBytes += text.length;
            }
            if (delta.bin) {
              const value = delta.bin;
              ops.push({ type: "put", key: key + BIN_DELTA, value, valueEncoding: "buffer" });
              deltaKeys.push(key + BIN_DELTA);
            }
            deltaEntries += delta.size - (plain ? jsonSize : 0);
          }
          ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
        }
        if (rawOps.length > 0) ops.push(...rawOps);
        return { keys: delta.size, commit: () => commitOps(ops) };
      };

      return {
        async load(options) {
          const chunks = await takeAhead();
          const { state, layout } = await read(chunks, options?.skipMaps);
          ({
            baseChunks,
            binChunks,
            deltaKeys,
            legacyKeys,
            nextDelta,
            deltaEntries,
            jsonEntries,
            baseKeys,
            jsonBytes,
            baseBytes,
          } = layout);
          raws = createRawValues(rawMin, layout.raw);
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
          baseChunks = 0;
          binChunks = 0;
          deltaKeys = [];
          legacyKeys = [];
          deltaEntries = 0;
          jsonEntries = 0;
          baseKeys = 0;
          jsonBytes = 0;
          baseBytes = 0;
          raws = createRawValues(rawMin);
        },
        async exportRaw() {
          const { state } = await read();
          const entries: [string, unknown][] = [];
          for (const [name, data] of state.allMaps())
            for (const [k, v] of data) entries.push([name + SEP + k, persisted(v)]);
          return { meta: state.meta, entries };
        },
        async importRaw(snap) {
          writesBegun++;
          await sub().clear();
          const state = createStageState();
          for (const [k, v] of snap.entries) state.loadEntry(k, v);
          state.meta = snap.meta;
          baseChunks = 0;
          binChunks = 0;
          deltaKeys = [];
          legacyKeys = [];
          deltaEntries = 0;
          jsonEntries = 0;
          baseKeys = 0;
          jsonBytes = 0;
          baseBytes = 0;
          raws = createRawValues(rawMin);
          // A checkpoint of everything (not counted by the fault injection).
          await sub().batch(checkpointOps(state));
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
