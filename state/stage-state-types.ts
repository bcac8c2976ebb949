import type { StateMap, StateValue, ValueCodec } from "../runtime/index.js";

/**
 * Per-key state of one stage instance, held in memory and persisted by snapshots.
 * Hot state stays in maps (LevelDB gets cost ~120 µs each, see NATS-NOTES.md); a snapshot writes
 * only the keys changed since the previous one, with the stage's metadata, in one atomic batch.
 *
 * This file holds the contract (StageState, StageStateInternal, StateDelta) and the full-key
 * separator; createStageState is stage-state.ts.
 */

/** A named map of a stage's state: the stage contract's StateMap; `set` marks the key dirty. */
export type KeyedMap<V> = StateMap<V>;

/** The live state of a stage instance: named maps plus metadata (input positions, watermark). */
export interface StageState {
  /**
   * The named map. With `text`, its values are persisted as JSON text and stay text in memory
   * after a load until read (parsed on first `get`): a map read for few of its keys (profiles,
   * read when a user asks) loads ~5x faster and holds ~half the memory. Values must then be
   * objects or arrays, never strings. With `codec`, the same with the codec's bytes instead of
   * JSON text (runtime/stage.ts ValueCodec).
   */
  map<V>(name: string, options?: { text?: boolean; codec?: ValueCodec<V> }): KeyedMap<V>;
  /** Stage metadata, written with every snapshot (JSON-serialisable). */
  meta: Record<string, unknown>;
  /** One entry of `meta` as a value (the stage contract's StateValue). */
  value<V>(name: string): StateValue<V>;
  /** Number of keys changed since the last snapshot. */
  dirtyCount(): number;
  /** Number of keys held, over all maps (state is bounded by open windows and horizons). */
  keyCount(): number;
}

/** The keys changed since the last snapshot, per map: `puts` alternates key and value. */
export interface StateDelta {
  /**
   * Every map's changes. A map in `binary` has its values in their stored form (JSON text, a
   * codec's bytes) and is persisted by `bin`, not as JSON.
   */
  maps: [name: string, puts: unknown[], dels: string[]][];
  /** Keys in the delta (puts + dels). */
  size: number;
  /** The maps whose changes are in `bin` (sections.ts). */
  binary: Set<string>;
  /** Their changes as one binary entry, already what those maps hold for their cold keys. */
  bin: Buffer | undefined;
}

export interface StageStateInternal extends StageState {
  /**
   * The dirty keys as full keys "<map>\0<key>" (values read from the live maps); clears them. A
   * key created and removed since the last take is in neither list.
   */
  takeDirty(): { puts: [string, unknown][]; dels: string[] };
  /**
   * The dirty keys per map (values read from the live maps), as takeDirty; clears them. A plain
   * map's byte value (Uint8Array) is put as `bytes` gives it (store.ts: a raw entry's reference),
   * else as base64 text (persisted()).
   */
  takeDelta(bytes?: (map: string, key: string, v: Uint8Array) => unknown): StateDelta;
  /**
   * Every map with its live entries (for a full checkpoint), values as persisted except binary
   * ones (Uint8Array), which the writer encodes.
   */
  allMaps(): IterableIterator<[string, Iterable<[string, unknown]>]>;
  /**
   * The maps held as binary sections (stored-form maps, cold-index.ts), rewritten into chunks
   * of at most `perChunk` keys that replace their buffers in memory too (dropping superseded
   * values). Call right after takeDelta: the chunks hold everything up to it.
   */
  binaryCheckpoint(perChunk: number): { binary: Set<string>; chunks: Buffer[] };
  /** Bytes held for cold keys (buffers and indexes), over all maps. */
  coldBytes(): number;
  /**
   * keyCount(), or undefined while a lazy load's records are pending in some map (counting
   * would place them all at once: cold-index.ts settle).
   */
  keyCountSettled(): number | undefined;
  /** Times a map's cold-key index grew (re-inserting every key it held), over all maps. */
  coldIndexGrowths(): number;
  /**
   * Loads a binary entry (a delta or a checkpoint chunk): its keys stay bytes. Returns keys.
   * Maps in `skip` are left out.
   */
  loadBinary(entry: Buffer, skip?: ReadonlySet<string>): number;
  /**
   * Loads the sections of these binary entries (in order: a checkpoint's chunks, then deltas)
   * that belong to maps in `only`, as loadBinary of each entry in turn would, into maps whose
   * cold keys are empty so far; in steps, each yielding its work (cold-index.ts adoptAll: two
   * units per key). With `lazy`, the sections are only taken (no unit): each index reads and
   * partitions them when a lookup first needs a record, then places them as lookups need them, or
   * all at once when something needs every key (size, keys, a snapshot's compaction), and both
   * in the background while no load is busy (cold-settle.ts settleInBackground): the same state
   * either way. A map that no answer reads is then not read before a restart's first answers.
   */
  loadBinaryAll(
    entries: readonly Buffer[],
    only: ReadonlySet<string>,
    lazy?: boolean,
  ): Generator<number, void>;
  /**
   * Sizes each map's cold index for the keys of these binary entries, about to be loaded (a
   * checkpoint's chunks: distinct keys), so that loading them never grows an index. Maps in
   * `skip` are left out.
   */
  reserveBinary(entries: readonly Buffer[], skip?: ReadonlySet<string>): void;
  /** Shrinks cold-key indexes that a reservation left much larger than their keys need. */
  fitCold(): void;
  loadEntry(fullKey: string, value: unknown): void;
  /** Loads (or, with `deleted`, removes) one key of a map without marking it dirty. */
  loadMapEntry(map: string, key: string, value: unknown, deleted?: boolean): void;
  /**
   * Loads keys of a map without marking them dirty: `kv` alternates key and value. A value that
   * refers to a raw entry (RAW_TAG) is what `raw` gives for it (left as it is without `raw`).
   */
  loadMapEntries(map: string, kv: readonly unknown[], raw?: RawResolver): void;
}

export const SEP = "\u0000";

/** The value of a key whose JSON value refers to raw entry `n` (store.ts, raw-values.ts). */
export type RawResolver = (key: string, n: string) => unknown;
