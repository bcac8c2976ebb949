import type { StateMap, StateValue, ValueCodec } from "../runtime/index.js";
import {
  createColdIndex,
  settleInBackground,
  TAG_TEXT,
  type ColdIndex,
  type ColdSection,
  type ColdValue,
} from "./cold-index.js";
import { encodeSections, readSections, SECTION_HEADER, writeHeader } from "./sections.js";

/**
 * Per-key state of one stage instance, held in memory and persisted by snapshots.
 * Hot state stays in maps (LevelDB gets cost ~120 µs each, see NATS-NOTES.md); a snapshot writes
 * only the keys changed since the previous one, with the stage's metadata, in one atomic batch.
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
   * in the background once loads are over (cold-index.ts settleInBackground): the same state
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
export const persisted = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? BINARY_TAG + Buffer.from(v.buffer, v.byteOffset, v.length).toString("base64")
    : v;
/**
 * A large byte value held in a LevelDB entry of its own (raw-values.ts): RAW_TAG + the entry's
 * number stands in the JSON for it, and a load gives the entry's bytes back in its place.
 */
export const RAW_TAG = "\u0000raw:";
const restored = (v: unknown, key?: string, raw?: RawResolver): unknown => {
  if (typeof v !== "string") return v;
  if (v.startsWith(BINARY_TAG))
    return new Uint8Array(Buffer.from(v.slice(BINARY_TAG.length), "base64"));
  return raw && key !== undefined && v.startsWith(RAW_TAG) ? raw(key, v.slice(RAW_TAG.length)) : v;
};
/**
 * A map whose values are kept in a stored form until read: JSON text (text maps) or a codec's
 * bytes. `encode` gives a live value's stored form, `stored` tells the two apart.
 */
interface StoredForm {
  encode(v: unknown): unknown;
  decode(stored: unknown): unknown;
  stored(v: unknown): boolean;
}
const TEXT: StoredForm = {
  encode: asText,
  decode: (v) => JSON.parse(v as string),
  stored: (v) => typeof v === "string",
};
const codecForm = (c: ValueCodec<unknown>): StoredForm => ({
  encode: (v) => (v instanceof Uint8Array || typeof v === "string" ? v : c.encode(v)),
  decode: (v) => c.decode(v),
  // Bytes, or a value from before the map had a codec (a text map's JSON text).
  stored: (v) => v instanceof Uint8Array || typeof v === "string",
});

/** How a form-less map's cold values (written while it had a form) are stored. */
const JSON_FORM: StoredForm = {
  encode: (v) => JSON.stringify(v),
  decode: (v) => (v instanceof Uint8Array ? v : JSON.parse(v as string)),
  stored: () => false,
};

interface MapRecord {
  /** Hot keys: values read or written since the last snapshot (and every key of a plain map). */
  readonly data: Map<string, unknown>;
  /**
   * Values persisted in a stored form (JSON text, a codec's bytes); loaded ones stay in it until
   * read (StageState.map). Undefined: plain values.
   */
  form: StoredForm | undefined;
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
   * Values of `data` held in their stored form (loaded from a JSON entry: snapshots written
   * before binary entries) that a read decoded: the stored form, until the next snapshot.
   */
  readonly parsedText: Map<string, unknown>;
  /**
   * A stored-form map's cold keys: as of the last snapshot, as bytes (cold-index.ts). A key in
   * `data` too is either clean (a read decoded it: the next snapshot drops it from `data`) or
   * dirty (written since).
   */
  readonly cold: ColdIndex;
  /**
   * Clean values a read decoded (or took back from `warm`) since the last snapshot. The snapshot
   * keeps these decoded one more interval, in `warm`: a key read in every interval (a user who
   * keeps asking) is decoded once, not once per snapshot (popularity-join's profile for the
   * answer's top categories was ~15% of GetRecommendations' handler time, parsed again every 2 s).
   */
  readonly readNow: Set<string>;
  /**
   * Clean values decoded in the previous interval, kept until the next snapshot; a read moves
   * one back into `data`. Each is in `cold` with the same value's bytes (or shadowed by `data`).
   */
  warm: Map<string, unknown>;
  /** Keys of `data` not in `cold`; -1 once a load has made it unknown. */
  extra: number;
  /** Whether JSON-loaded keys of `data` have been written into `cold` (first snapshot). */
  migrated: boolean;
}

/** A cold value decoded as the map's form reads it. */
const decodeCold = (c: ColdValue, form: StoredForm): unknown =>
  c.tag === TAG_TEXT
    ? form.decode(c.buf.toString("utf8", c.start, c.end))
    : form.decode(c.buf.subarray(c.start, c.end));
/** A cold value in the form a JSON load would have given (text, or a copy of the bytes). */
const storedCold = (c: ColdValue): string | Uint8Array =>
  c.tag === TAG_TEXT
    ? c.buf.toString("utf8", c.start, c.end)
    : new Uint8Array(c.buf.subarray(c.start, c.end));

/** Keys per buffer when a map's cold keys are compacted in memory (~1 MB of profiles). */
const COMPACT_KEYS = 10_000;

export function createStageState(): StageStateInternal {
  const maps = new Map<string, MapRecord>();
  const mapOf = (name: string): MapRecord => {
    let m = maps.get(name);
    if (!m) {
      m = {
        data: new Map(),
        dirty: new Map(),
        form: undefined,
        parsedText: new Map(),
        cold: createColdIndex(),
        readNow: new Set(),
        warm: new Map(),
        extra: 0,
        migrated: false,
      };
      maps.set(name, m);
    }
    return m;
  };
  const extraOf = (rec: MapRecord): number => {
    if (rec.extra < 0) {
      let n = 0;
      if (rec.cold.empty) n = rec.data.size;
      else for (const k of rec.data.keys()) if (!rec.cold.has(k)) n++;
      rec.extra = n;
    }
    return rec.extra;
  };
  const sizeOf = (rec: MapRecord) => rec.cold.count + extraOf(rec);
  /** A map held as binary sections: it has a stored form, or cold keys from a load. */
  const binaryForm = (rec: MapRecord): StoredForm | undefined =>
    rec.form ?? (!rec.cold.empty ? JSON_FORM : undefined);
  const countDirty = () => {
    let n = 0;
    for (const m of maps.values()) n += m.dirty.size;
    return n;
  };
  /**
   * A binary map's part of a snapshot: JSON-loaded keys go to `cold` the first time; clean
   * values leave `data` (their bytes are in `cold`), those read since the previous snapshot into
   * `warm` for one more interval; dirty values are encoded. A value written since the previous
   * snapshot stays decoded in `data` until the next one finds it unwritten (a hot key is not
   * decoded again after every snapshot: co-visitation's neighbour lists were ~10% of step 2's
   * CPU that way).
   */
  const binaryPart = (rec: MapRecord, form: StoredForm, puts: unknown[], dels: string[]) => {
    const { data, dirty, cold } = rec;
    if (!rec.migrated) {
      rec.migrated = true;
      for (const k of data.keys()) if (!dirty.has(k) && !cold.has(k)) dirty.set(k, true);
    }
    rec.parsedText.clear();
    const { readNow } = rec;
    const warm = new Map<string, unknown>();
    if (!cold.empty)
      for (const [k, v] of data)
        if (!dirty.has(k) && cold.has(k)) {
          if (readNow.has(k)) warm.set(k, v);
          data.delete(k);
        }
    rec.warm = warm;
    readNow.clear();
    const keys: string[] = [];
    const values: (string | Uint8Array | undefined)[] = [];
    for (const [k, held] of dirty) {
      const v = data.get(k);
      if (v !== undefined || data.has(k)) {
        const p = form.encode(v) as string | Uint8Array;
        keys.push(k);
        values.push(p);
        puts.push(k, p);
      } else if (held) {
        keys.push(k);
        values.push(undefined);
        dels.push(k);
      }
    }
    dirty.clear();
    return { keys, values };
  };

  const state: StageStateInternal = {
    meta: {},
    // Reads `state.meta` at each call: a load or snapshot replaces the object.
    value: <V>(name: string) => ({
      get: () => state.meta[name] as V | undefined,
      set: (v: V) => void (state.meta[name] = v),
    }),
    map<V>(name: string, options: { text?: boolean; codec?: ValueCodec<V> } = {}): KeyedMap<V> {
      const rec = mapOf(name);
      if (options.codec) rec.form = codecForm(options.codec as ValueCodec<unknown>);
      else if (options.text) rec.form = TEXT;
      const m = rec.data as Map<string, V>;
      const { dirty, parsedText, cold, form, readNow } = rec;
      const plain = !form && cold.empty;
      const coldForm = form ?? JSON_FORM;
      /** A key not in `data`: its value kept from the last interval, else its bytes decoded. */
      const fromCold = (k: string): V | undefined => {
        const kept = rec.warm.size > 0 ? (rec.warm.get(k) as V | undefined) : undefined;
        if (kept !== undefined) return kept;
        const c = cold.get(k);
        return c === undefined ? undefined : (decodeCold(c, coldForm) as V);
      };
      // A cold value is decoded when first read and kept in `data` until the next snapshot
      // (clean: the snapshot drops it, into `warm` for one more interval); a value in `data` in
      // its stored form (a JSON load) is decoded in place, its stored form kept beside it.
      const get = plain
        ? (k: string) => m.get(k)
        : (k: string): V | undefined => {
            const v = m.get(k);
            if (v === undefined) {
              if (cold.empty) return undefined;
              const decoded = fromCold(k);
              if (decoded === undefined) return undefined;
              if (rec.warm.size > 0) rec.warm.delete(k);
              m.set(k, decoded);
              readNow.add(k);
              return decoded;
            }
            if (!form || !form.stored(v)) return v;
            const parsed = form.decode(v) as V;
            m.set(k, parsed);
            parsedText.set(k, v);
            return parsed;
          };
      const peek = plain
        ? get
        : (k: string): V | undefined => {
            const v = m.get(k);
            if (v === undefined) return cold.empty ? undefined : fromCold(k);
            return form && form.stored(v) ? (form.decode(v) as V) : v;
          };
      const has = (k: string) => m.has(k) || (!cold.empty && cold.has(k));
      const keys = function* (): Generator<string> {
        if (cold.empty) return yield* m.keys();
        // Hot keys as they were when the cold ones begin: a read during the walk moves a cold
        // key into `data`, which must not hide it.
        const hot = new Set(m.keys());
        for (const k of hot) if (m.has(k)) yield k;
        for (const k of cold.keys()) if (!hot.has(k)) yield k;
      };
      return {
        get,
        peek,
        has,
        set: (k, v) => {
          const held = m.has(k) || (!cold.empty && cold.has(k));
          if (dirty.get(k) === undefined) dirty.set(k, held);
          if (!held && rec.extra >= 0) rec.extra++;
          m.set(k, v);
          if (form) parsedText.delete(k);
          if (rec.warm.size > 0) rec.warm.delete(k);
        },
        delete: (k) => {
          if (rec.warm.size > 0) rec.warm.delete(k);
          const inData = m.delete(k);
          const inCold = !cold.empty && cold.delete(k);
          if (inData && !inCold && rec.extra > 0) rec.extra--;
          if ((inData || inCold) && dirty.get(k) === undefined) dirty.set(k, true);
          if (form) parsedText.delete(k);
        },
        get size() {
          return plain && cold.empty ? m.size : sizeOf(rec);
        },
        keys: plain ? () => m.keys() : keys,
        // A text map's (or a plain map's) value as JSON text; a codec map's only while it is
        // still held as the text it had before the map had a codec (a load of older snapshots).
        peekText: (k: string) => {
          const v = m.get(k);
          if (v === undefined) {
            const c = !cold.empty ? cold.get(k) : undefined;
            return c?.tag === TAG_TEXT ? c.buf.toString("utf8", c.start, c.end) : undefined;
          }
          if (typeof v === "string") return v;
          const s = parsedText.get(k);
          if (typeof s === "string") return s;
          return form && form !== TEXT ? undefined : JSON.stringify(v);
        },
        entries: plain
          ? () => m.entries()
          : function* () {
              for (const k of keys()) {
                const v = get(k);
                if (v !== undefined || m.has(k)) yield [k, v as V];
              }
            },
      };
    },
    dirtyCount: countDirty,
    keyCount: () => {
      let n = 0;
      for (const m of maps.values()) n += sizeOf(m);
      return n;
    },
    takeDirty() {
      const puts: [string, unknown][] = [];
      const dels: string[] = [];
      for (const [name, p, d] of state.takeDelta().maps) {
        for (let x = 0; x < p.length; x += 2) puts.push([name + SEP + p[x], persisted(p[x + 1])]);
        for (const k of d) dels.push(name + SEP + k);
      }
      return { puts, dels };
    },
    takeDelta(bytes) {
      const out: StateDelta = { maps: [], size: 0, binary: new Set(), bin: undefined };
      const sections: {
        name: string;
        keys: string[];
        values: (string | Uint8Array | undefined)[];
      }[] = [];
      for (const [name, rec] of maps) {
        const { data, dirty, parsedText } = rec;
        const form = binaryForm(rec);
        if (form) {
          out.binary.add(name);
          const puts: unknown[] = [];
          const dels: string[] = [];
          const s = binaryPart(rec, form, puts, dels);
          if (s.keys.length === 0) continue;
          sections.push({ name, ...s });
          out.size += s.keys.length;
          out.maps.push([name, puts, dels]);
          continue;
        }
        if (dirty.size === 0) continue;
        const puts: unknown[] = [];
        const dels: string[] = [];
        for (const [k, held] of dirty) {
          const v = data.get(k);
          if (v !== undefined || data.has(k))
            puts.push(k, bytes && v instanceof Uint8Array ? bytes(name, k, v) : persisted(v));
          else if (held) dels.push(k);
        }
        dirty.clear();
        parsedText.clear();
        const size = puts.length / 2 + dels.length;
        if (size === 0) continue;
        out.size += size;
        out.maps.push([name, puts, dels]);
      }
      if (sections.length > 0) {
        const { buf, at } = encodeSections(sections);
        out.bin = buf;
        for (const s of at) {
          const rec = maps.get(s.name)!;
          // Written keys were in `data` and now are in `cold` too (deletions left both). (The
          // count only when `extra` is known: reading it places a lazy load's pending records.)
          const before = rec.extra >= 0 ? rec.cold.count : 0;
          rec.cold.adopt(buf, s.start, s.end);
          if (rec.extra >= 0) rec.extra -= rec.cold.count - before;
          if (rec.cold.wasteful()) rec.cold.compact(COMPACT_KEYS, 0);
        }
      }
      return out;
    },
    binaryCheckpoint(perChunk) {
      const binary = new Set<string>();
      const chunks: Buffer[] = [];
      for (const [name, rec] of maps) {
        if (!binaryForm(rec)) continue;
        binary.add(name);
        const head = SECTION_HEADER(name);
        for (const { buf, count } of rec.cold.compact(perChunk, head))
          chunks.push((writeHeader(buf, 0, name, count, buf.length - head), buf));
      }
      return { binary, chunks };
    },
    keyCountSettled: () => {
      for (const m of maps.values()) if (m.cold.pending > 0) return undefined;
      return state.keyCount();
    },
    coldIndexGrowths: () => {
      let n = 0;
      for (const m of maps.values()) n += m.cold.growths;
      return n;
    },
    coldBytes: () => {
      let n = 0;
      for (const m of maps.values()) n += m.cold.bytes();
      return n;
    },
    reserveBinary(entries, skip) {
      const keys = new Map<string, number>();
      for (const e of entries)
        for (const s of readSections(e))
          if (!skip?.has(s.name)) keys.set(s.name, (keys.get(s.name) ?? 0) + s.count);
      for (const [name, n] of keys) mapOf(name).cold.reserve(n);
    },
    fitCold() {
      for (const m of maps.values()) m.cold.fit();
    },
    *loadBinaryAll(entries, only, lazy = false) {
      const sections = new Map<string, ColdSection[]>();
      for (const buf of entries)
        for (const s of readSections(buf)) {
          if (!only.has(s.name)) continue;
          let list = sections.get(s.name);
          if (!list) sections.set(s.name, (list = []));
          list.push({ buf, start: s.start, end: s.end, count: s.count });
        }
      for (const [name, list] of sections) {
        const rec = mapOf(name);
        // Keys held already (in `data`, or cold) must be superseded key by key: loadBinary.
        if (rec.data.size > 0 || !rec.cold.empty)
          throw new Error(`map ${name}: loadBinaryAll into a map that holds keys`);
        rec.warm.clear();
        yield* rec.cold.adoptAll(list, lazy);
        rec.extra = -1;
        if (lazy) settleInBackground(rec.cold);
      }
    },
    loadBinary(entry, skip) {
      let n = 0;
      for (const s of readSections(entry)) {
        if (skip?.has(s.name)) continue;
        const rec = mapOf(s.name);
        const { data } = rec;
        rec.warm.clear();
        rec.cold.adopt(
          entry,
          s.start,
          s.end,
          data.size > 0 ? (k) => void data.delete(k) : undefined,
        );
        rec.extra = -1;
        n += s.count;
      }
      return n;
    },
    *allMaps() {
      for (const [name, rec] of maps) {
        const { data, form, cold } = rec;
        yield [
          name,
          !form && cold.empty
            ? data // binary values are encoded by the writer (persisted())
            : (function* () {
                // As persisted (a codec's bytes as their base64 text): JSON-safe.
                for (const [k, v] of data)
                  yield [k, persisted(form ? form.encode(v) : v)] as [string, unknown];
                for (const [k, c] of cold.entries())
                  if (!data.has(k)) yield [k, persisted(storedCold(c))] as [string, unknown];
              })(),
        ];
      }
    },
    loadEntry(full, value) {
      const at = full.indexOf(SEP);
      state.loadMapEntry(full.slice(0, at), full.slice(at + 1), value);
    },
    loadMapEntries(name, kv, raw) {
      // One map lookup per chunk, and the binary tag tested on a string's first character only:
      // this loop is most of a JSON entry's loading (~1.3-1.5 µs of CPU per key).
      const rec = mapOf(name);
      const { data, cold } = rec;
      rec.warm.clear();
      for (let i = 0; i < kv.length; i += 2) {
        const v = kv[i + 1];
        const k = kv[i] as string;
        data.set(k, typeof v === "string" && v.charCodeAt(0) === 0 ? restored(v, k, raw) : v);
      }
      if (!cold.empty) for (let i = 0; i < kv.length; i += 2) cold.delete(kv[i] as string);
      rec.extra = -1;
    },
    loadMapEntry(name, key, value, deleted = false) {
      const rec = mapOf(name);
      rec.warm.delete(key);
      if (deleted) rec.data.delete(key);
      else rec.data.set(key, restored(value));
      if (!rec.cold.empty) rec.cold.delete(key);
      rec.extra = -1;
    },
  };
  return state;
}
