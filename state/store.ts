import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Level } from "level";

/**
 * Per-key state of one stage instance, held in memory and persisted by snapshots.
 * Hot state stays in maps (LevelDB gets cost ~120 µs each, see NATS-NOTES.md); a snapshot writes
 * only the keys changed since the previous one, with the stage's metadata, in one atomic batch.
 */
export interface KeyedMap<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  /** Marks the key dirty. Values are treated as immutable once set: set a new object to change one. */
  set(key: string, value: V): void;
  delete(key: string): void;
  readonly size: number;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
}

/** The live state of a stage instance: named maps plus metadata (input positions, watermark). */
export interface StageState {
  /**
   * The named map. With `text`, its values are persisted as JSON text and stay text in memory
   * after a load until read (parsed on first `get`): a map read for few of its keys (profiles,
   * read when a user asks) loads ~5x faster and holds ~half the memory. Values must then be
   * objects or arrays, never strings.
   */
  map<V>(name: string, options?: { text?: boolean }): KeyedMap<V>;
  /** Stage metadata, written with every snapshot (JSON-serialisable). */
  meta: Record<string, unknown>;
  /** One entry of `meta` as a value (the stage contract's StateValue). */
  value<V>(name: string): { get(): V | undefined; set(value: V): void };
  /** Number of keys changed since the last snapshot. */
  dirtyCount(): number;
  /** Number of keys held, over all maps (state is bounded by open windows and horizons). */
  keyCount(): number;
}

/** The keys changed since the last snapshot, per map: `puts` alternates key and value. */
export interface StateDelta {
  maps: [name: string, puts: unknown[], dels: string[]][];
  /** Keys in the delta (puts + dels). */
  size: number;
}

export interface StageStateInternal extends StageState {
  /**
   * The dirty keys as full keys "<map>\0<key>" (values read from the live maps); clears them. A
   * key created and removed since the last take is in neither list.
   */
  takeDirty(): { puts: [string, unknown][]; dels: string[] };
  /** The dirty keys per map (values read from the live maps), as takeDirty; clears them. */
  takeDelta(): StateDelta;
  /**
   * Every map with its live entries (for a full checkpoint), values as persisted except binary
   * ones (Uint8Array), which the writer encodes.
   */
  allMaps(): IterableIterator<[string, Iterable<[string, unknown]>]>;
  loadEntry(fullKey: string, value: unknown): void;
  /** Loads (or, with `deleted`, removes) one key of a map without marking it dirty. */
  loadMapEntry(map: string, key: string, value: unknown, deleted?: boolean): void;
}

const SEP = "\u0000";

/** A value of a text map as persisted: its JSON text (loaded values are text already). */
const asText = (v: unknown): unknown => (typeof v === "string" ? v : JSON.stringify(v));

/**
 * Binary values (a Uint8Array as a map's value, e.g. parse's dedupe segments) are persisted as
 * BINARY_TAG + base64 inside the JSON, and come back as Uint8Array on load: base64 is ~1.37
 * bytes per byte where JSON's {"0":..} form of a typed array is ~6, and is decoded natively.
 * (Strings never start with the tag: a JSON text starts with a printable character, and map
 * values that are plain strings are names and ids.)
 */
const BINARY_TAG = "\u0000b64:";
const persisted = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? BINARY_TAG + Buffer.from(v.buffer, v.byteOffset, v.length).toString("base64")
    : v;
const restored = (v: unknown): unknown =>
  typeof v === "string" && v.startsWith(BINARY_TAG)
    ? new Uint8Array(Buffer.from(v.slice(BINARY_TAG.length), "base64"))
    : v;
/** A value as persisted, for its map's kind. */
const asPersisted = (v: unknown, text: boolean): unknown => (text ? asText(v) : persisted(v));

interface MapRecord {
  readonly data: Map<string, unknown>;
  /** Values persisted as JSON text; loaded ones are text until read (StageState.map). */
  text: boolean;
  /**
   * Dirty keys of this map (the map's own key strings, so no concatenation or re-hashing per
   * set), each with whether the key was held when it was first changed after the last snapshot,
   * i.e. whether the snapshots have it. A key created and removed between two snapshots is
   * written as nothing: there is nothing to delete. (A window's cells, replayed fast, mostly
   * open and close between two snapshots: their deletions were half of the window stage's
   * snapshot keys.)
   */
  readonly dirty: Map<string, boolean>;
  /**
   * Text maps: the JSON text of values parsed by a read since the last snapshot (clean ones).
   * A snapshot puts every value of a text map back to its text (these, and the dirty ones it
   * serialises anyway), so between snapshots only the values read or written since are objects.
   */
  readonly parsedText: Map<string, string>;
}

export function createStageState(): StageStateInternal {
  const maps = new Map<string, MapRecord>();
  const mapOf = (name: string): MapRecord => {
    let m = maps.get(name);
    if (!m) {
      m = { data: new Map(), dirty: new Map(), text: false, parsedText: new Map() };
      maps.set(name, m);
    }
    return m;
  };
  /** Puts the values of a text map that a read parsed back to their text (they are clean). */
  const compactText = (rec: MapRecord): void => {
    for (const [k, t] of rec.parsedText)
      if (typeof rec.data.get(k) !== "string") rec.data.set(k, t);
    rec.parsedText.clear();
  };
  const countDirty = () => {
    let n = 0;
    for (const m of maps.values()) n += m.dirty.size;
    return n;
  };
  const state: StageStateInternal = {
    meta: {},
    // Reads `state.meta` at each call: a load or snapshot replaces the object.
    value: <V>(name: string) => ({
      get: () => state.meta[name] as V | undefined,
      set: (v: V) => void (state.meta[name] = v),
    }),
    map<V>(name: string, options: { text?: boolean } = {}): KeyedMap<V> {
      const rec = mapOf(name);
      if (options.text) rec.text = true;
      const m = rec.data as Map<string, V>;
      const dirty = rec.dirty;
      const parsedText = rec.parsedText;
      // A text value is parsed when first read and kept parsed until the next snapshot (the same
      // value: not dirty), its text beside it; the snapshot puts the text back (compactText).
      const get = !rec.text
        ? (k: string) => m.get(k)
        : (k: string) => {
            const v = m.get(k);
            if (typeof v !== "string") return v;
            const parsed = JSON.parse(v) as V;
            m.set(k, parsed);
            parsedText.set(k, v);
            return parsed;
          };
      return {
        get,
        has: (k) => m.has(k),
        set: (k, v) => {
          if (dirty.get(k) === undefined) dirty.set(k, m.has(k));
          m.set(k, v);
          if (rec.text) parsedText.delete(k);
        },
        delete: (k) => {
          if (m.delete(k) && dirty.get(k) === undefined) dirty.set(k, true);
          if (rec.text) parsedText.delete(k);
        },
        get size() {
          return m.size;
        },
        keys: () => m.keys(),
        entries: !rec.text
          ? () => m.entries()
          : function* () {
              for (const k of m.keys()) yield [k, get(k) as V];
            },
      };
    },
    dirtyCount: countDirty,
    keyCount: () => {
      let n = 0;
      for (const m of maps.values()) n += m.data.size;
      return n;
    },
    takeDirty() {
      const puts: [string, unknown][] = [];
      const dels: string[] = [];
      for (const [name, rec] of maps) {
        const { data, dirty, text } = rec;
        for (const [k, held] of dirty) {
          if (data.has(k)) {
            const v = asPersisted(data.get(k), text);
            if (text) data.set(k, v);
            puts.push([name + SEP + k, v]);
          } else if (held) dels.push(name + SEP + k);
        }
        dirty.clear();
        if (text) compactText(rec);
      }
      return { puts, dels };
    },
    takeDelta() {
      const out: StateDelta = { maps: [], size: 0 };
      for (const [name, rec] of maps) {
        const { data, dirty, text } = rec;
        if (text) compactText(rec);
        if (dirty.size === 0) continue;
        const puts: unknown[] = [];
        const dels: string[] = [];
        for (const [k, held] of dirty) {
          const v = data.get(k);
          if (v !== undefined || data.has(k)) {
            const p = asPersisted(v, text);
            // A text map keeps the text it persists: one string instead of an object graph
            // (profiles: ~1/3 of the memory), parsed again when next read.
            if (text) data.set(k, p);
            puts.push(k, p);
          } else if (held) dels.push(k);
        }
        dirty.clear();
        const size = puts.length / 2 + dels.length;
        if (size === 0) continue;
        out.size += size;
        out.maps.push([name, puts, dels]);
      }
      return out;
    },
    *allMaps() {
      for (const [name, { data, text }] of maps)
        yield [
          name,
          !text
            ? data // binary values are encoded by the writer (persisted())
            : (function* () {
                for (const [k, v] of data) yield [k, asText(v)] as [string, unknown];
              })(),
        ];
    },
    loadEntry(full, value) {
      const at = full.indexOf(SEP);
      mapOf(full.slice(0, at)).data.set(full.slice(at + 1), restored(value));
    },
    loadMapEntry(name, key, value, deleted = false) {
      const { data } = mapOf(name);
      if (deleted) data.delete(key);
      else data.set(key, restored(value));
    },
  };
  return state;
}

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
  /** Loads the last snapshot into a fresh state (empty if none). */
  load(): Promise<StageStateInternal>;
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
 *   "\x02b\0<n>"          checkpoint chunk n: [[map, [k, v, k, v, ...]], ...], up to CHUNK keys
 *   "\x03d\0<seq>"        delta seq (12 digits): [[map, [k, v, ...], [deleted k, ...]], ...]
 *   "<map>\0<key>"        one key per entry: the layout before deltas, still read on load
 *
 * A snapshot is one delta and the metadata in one batch: one LevelDB value however many keys
 * changed (writing a LevelDB entry per key cost more than the stages' own work at 60k events/s:
 * ~7 keys per event). Load applies the checkpoint, then the deltas in order. When the deltas
 * hold more keys than twice the live state (at least CHECKPOINT_MIN), the snapshot is a
 * checkpoint instead: the whole state in chunks, with every delta deleted, in the same batch, so
 * disk and load time stay proportional to the live state (amortised: each change is written at
 * most ~1.5 times).
 */
const META_KEY = "\u0001meta";
const BASE_PREFIX = "\u0002b\u0000";
const DELTA_PREFIX = "\u0003d\u0000";
const CHUNK = 10_000;
/** Keys loaded between two turns of the event loop (~20-30 ms of work). */
const LOAD_SLICE = 10_000;
const CHECKPOINT_MIN = 100_000;
const pad = (n: number) => String(n).padStart(12, "0");

type Op = { type: "put"; key: string; value: string } | { type: "del"; key: string };

export interface StateDbOptions {
  /**
   * Deltas may hold this many keys, or twice the live state if more, before a snapshot is a
   * checkpoint instead (default 100,000).
   */
  checkpointMinKeys?: number;
  /**
   * A test's fault hook, called while each snapshot batch is being written (after the batch is
   * built, before LevelDB has it): the chaos test SIGKILLs the process there (bin/test-faults.ts).
   */
  onSnapshotWrite?: () => void;
}

/** How to get out of a broken state store: one sentence, with the path. */
const wayOut = (path: string) =>
  `stop reco-stream, delete ${path} (the stages' state there is rebuilt from the streams, as far back as they keep messages) and start again`;

/**
 * The state store is corrupt (a LevelDB table, log or manifest that cannot be read): the stages
 * that live in it cannot load or write their snapshots, and retrying will not change that.
 * Names the directory and the way out; the process exits on it rather than retry forever.
 */
export class StateStoreCorruptError extends Error {
  override readonly name = "StateStoreCorruptError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`the state store ${path} is corrupt (${causeText(cause)}): ${wayOut(path)}`, { cause });
  }
}

/** The state store could not be opened for another reason than a lock held by another process. */
export class StateStoreOpenError extends Error {
  override readonly name = "StateStoreOpenError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(
      `cannot open the state store ${path} (${causeText(cause)}); if it is damaged, ${wayOut(path)}`,
      { cause },
    );
  }
}

/** A snapshot could not be written (disk full, I/O error): the stage retries from its last one. */
export class StateStoreWriteError extends Error {
  override readonly name = "StateStoreWriteError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot write to the state store ${path}: ${causeText(cause)}`, { cause });
  }
}

/** The innermost messages of an error chain ("Database failed to open" hides the reason). */
function causeText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.slice(-1)[0] ?? "unknown error";
}

function levelCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

/** LevelDB found damage: its own code, or "Corruption: ..." from the C++ status anywhere in the chain. */
function isCorruption(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (levelCode(e) === "LEVEL_CORRUPTION" || /^Corruption:/.test(e.message)) return true;
  }
  return false;
}

/**
 * Why opening failed, as one of our errors. A `CURRENT` that names a manifest that is not there
 * (overwritten or truncated) is damage too, reported by LevelDB as an I/O error on that file.
 */
function openFailure(path: string, err: unknown): unknown {
  if (levelCode(err) === "LEVEL_LOCKED" || levelCode((err as Error).cause) === "LEVEL_LOCKED")
    return err;
  const text = causeText(err);
  const missingInside = text.includes(path) && /No such file or directory/.test(text);
  if (isCorruption(err) || missingInside) return new StateStoreCorruptError(path, err);
  return new StateStoreOpenError(path, err);
}

/** Reads and writes fail with our errors, naming the store; a corrupt one says the way out. */
function storeFailure(path: string, err: unknown, writing: boolean): unknown {
  if (isCorruption(err)) return new StateStoreCorruptError(path, err);
  return writing ? new StateStoreWriteError(path, err) : err;
}

export async function openStateDb(path: string, options: StateDbOptions = {}): Promise<StateDb> {
  const checkpointMin = options.checkpointMinKeys ?? CHECKPOINT_MIN;
  const db = new Level<string, string>(path, { valueEncoding: "utf8" });
  await db.open().catch((err: unknown) => {
    throw openFailure(path, err);
  });
  return {
    instance(stage, partition) {
      const sub = db.sublevel<string, string>(`${stage}/${partition}`, { valueEncoding: "utf8" });
      // What is on disk besides the metadata, as last loaded or written.
      let baseChunks = 0;
      let deltaKeys: string[] = [];
      let legacyKeys: string[] = [];
      let nextDelta = 1;
      let deltaEntries = 0;

      /** Reads the instance's snapshot (one LevelDB iterator: a consistent view) into a state. */
      const read = () =>
        readRaw().catch((err: unknown) => {
          throw storeFailure(path, err, false);
        });
      const readRaw = async () => {
        const state = createStageState();
        // Loading is CPU work on the event loop that also serves gRPC: give it back every
        // LOAD_SLICE keys. (Applying the deltas of a 125k-user partition in one go held the loop
        // for ~1 s per instance while a restarted process was already answering.)
        let sinceYield = 0;
        const pace = async (keys: number) => {
          sinceYield += keys;
          if (sinceYield < LOAD_SLICE) return;
          sinceYield = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        };
        const deltas: string[] = [];
        const layout = {
          baseChunks: 0,
          deltaKeys: [] as string[],
          legacyKeys: [] as string[],
          nextDelta: 1,
          deltaEntries: 0,
        };
        // nextv reads in chunks: one call per key (for await) was most of the start-up time.
        // Keys come in order: metadata, checkpoint chunks, deltas, then one-key entries.
        const it = sub.iterator();
        try {
          for (;;) {
            const chunk = await it.nextv(1000);
            if (chunk.length === 0) break;
            for (const [k, v] of chunk) {
              if (k === META_KEY) state.meta = JSON.parse(v) as Record<string, unknown>;
              else if (k.startsWith(BASE_PREFIX)) {
                layout.baseChunks++;
                for (const [name, kv] of JSON.parse(v) as [string, unknown[]][]) {
                  for (let i = 0; i < kv.length; i += 2)
                    state.loadMapEntry(name, kv[i] as string, kv[i + 1]);
                  await pace(kv.length / 2);
                }
              } else if (k.startsWith(DELTA_PREFIX)) {
                layout.deltaKeys.push(k);
                deltas.push(v);
                layout.nextDelta = Number(k.slice(DELTA_PREFIX.length)) + 1;
              } else {
                layout.legacyKeys.push(k);
                state.loadEntry(k, JSON.parse(v));
              }
            }
          }
        } finally {
          await it.close();
        }
        // One-key entries and deltas never coexist: the first snapshot after loading one-key
        // entries is a checkpoint that deletes them.
        for (const v of deltas) {
          for (const [name, kv, dels] of JSON.parse(v) as StateDelta["maps"]) {
            for (let i = 0; i < kv.length; i += 2)
              state.loadMapEntry(name, kv[i] as string, kv[i + 1]);
            for (const k of dels) state.loadMapEntry(name, k, undefined, true);
            layout.deltaEntries += kv.length / 2 + dels.length;
            await pace(kv.length / 2 + dels.length);
          }
        }
        return { state, layout };
      };

      /**
       * A checkpoint: the whole state in chunks, replacing the old checkpoint, every delta and
       * any one-key entries, plus the metadata.
       */
      const checkpointOps = (state: StageStateInternal): Op[] => {
        const ops: Op[] = [];
        let chunks = 0;
        let chunk: [string, unknown[]][] = [];
        let inChunk = 0;
        const put = () => {
          ops.push({ type: "put", key: BASE_PREFIX + pad(chunks++), value: JSON.stringify(chunk) });
          chunk = [];
          inChunk = 0;
        };
        for (const [name, data] of state.allMaps()) {
          let kv: unknown[] = [];
          for (const [k, v] of data) {
            kv.push(k, persisted(v));
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
        for (const k of deltaKeys) ops.push({ type: "del", key: k });
        for (const k of legacyKeys) ops.push({ type: "del", key: k });
        ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
        baseChunks = chunks;
        deltaKeys = [];
        legacyKeys = [];
        deltaEntries = 0;
        return ops;
      };

      const commitOps = async (ops: Op[]) => {
        const written = sub.batch(ops);
        options.onSnapshotWrite?.();
        await written.catch((err: unknown) => {
          throw storeFailure(path, err, true);
        });
      };

      const capture = (state: StageStateInternal): SnapshotBatch => {
        const delta = state.takeDelta();
        let ops: Op[];
        const limit = Math.max(checkpointMin, 2 * state.keyCount());
        if (legacyKeys.length > 0 || deltaEntries + delta.size > limit) {
          ops = checkpointOps(state);
        } else {
          ops = [];
          if (delta.size > 0) {
            const key = DELTA_PREFIX + pad(nextDelta++);
            ops.push({ type: "put", key, value: JSON.stringify(delta.maps) });
            deltaKeys.push(key);
            deltaEntries += delta.size;
          }
          ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
        }
        return { keys: delta.size, commit: () => commitOps(ops) };
      };

      return {
        async load() {
          const { state, layout } = await read();
          ({ baseChunks, deltaKeys, legacyKeys, nextDelta, deltaEntries } = layout);
          return state;
        },
        capture,
        async write(state) {
          const batch = capture(state);
          await batch.commit();
          return batch.keys;
        },
        async clear() {
          await sub.clear();
          baseChunks = 0;
          deltaKeys = [];
          legacyKeys = [];
          deltaEntries = 0;
        },
        async exportRaw() {
          const { state } = await read();
          const entries: [string, unknown][] = [];
          for (const [name, data] of state.allMaps())
            for (const [k, v] of data) entries.push([name + SEP + k, persisted(v)]);
          return { meta: state.meta, entries };
        },
        async importRaw(snap) {
          await sub.clear();
          const state = createStageState();
          for (const [k, v] of snap.entries) state.loadEntry(k, v);
          state.meta = snap.meta;
          baseChunks = 0;
          deltaKeys = [];
          legacyKeys = [];
          deltaEntries = 0;
          // A checkpoint of everything (not counted by the fault injection).
          await sub.batch(checkpointOps(state));
        },
      };
    },
    async compact() {
      // classic-level (what `level` is on Node) has compactRange; the abstract type does not.
      const c = db as unknown as { compactRange(a: string, b: string): Promise<void> };
      await c.compactRange("\u0000", "\uffff");
    },
    sizeBytes: () => dirSize(path),
    close: () => db.close(),
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
