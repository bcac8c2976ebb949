import type { StateMap, StateValue, ValueCodec } from "../runtime/index.js";

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
  /** Loads keys of a map without marking them dirty: `kv` alternates key and value. */
  loadMapEntries(map: string, kv: readonly unknown[]): void;
}

export const SEP = "\u0000";

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
const restored = (v: unknown): unknown =>
  typeof v === "string" && v.startsWith(BINARY_TAG)
    ? new Uint8Array(Buffer.from(v.slice(BINARY_TAG.length), "base64"))
    : v;
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

interface MapRecord {
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
   * Maps with a stored form: the stored form (JSON text, bytes) of values decoded by a read
   * since the last snapshot (clean ones). A snapshot puts every value of such a map back to its
   * stored form (these, and the dirty ones it encodes anyway), so between snapshots only the
   * values read or written since are objects.
   */
  readonly parsedText: Map<string, unknown>;
}

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
      };
      maps.set(name, m);
    }
    return m;
  };
  /** Puts the values that a read decoded back to their stored form (they are clean). */
  const compactText = (rec: MapRecord): void => {
    const form = rec.form!;
    for (const [k, t] of rec.parsedText) if (!form.stored(rec.data.get(k))) rec.data.set(k, t);
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
    map<V>(name: string, options: { text?: boolean; codec?: ValueCodec<V> } = {}): KeyedMap<V> {
      const rec = mapOf(name);
      if (options.codec) rec.form = codecForm(options.codec as ValueCodec<unknown>);
      else if (options.text) rec.form = TEXT;
      const m = rec.data as Map<string, V>;
      const dirty = rec.dirty;
      const parsedText = rec.parsedText;
      const form = rec.form;
      // A stored value is decoded when first read and kept decoded until the next snapshot (the
      // same value: not dirty), its stored form beside it; the snapshot puts that back
      // (compactText).
      const get = !form
        ? (k: string) => m.get(k)
        : (k: string) => {
            const v = m.get(k);
            if (v === undefined || !form.stored(v)) return v;
            const parsed = form.decode(v) as V;
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
          if (form) parsedText.delete(k);
        },
        delete: (k) => {
          if (m.delete(k) && dirty.get(k) === undefined) dirty.set(k, true);
          if (form) parsedText.delete(k);
        },
        get size() {
          return m.size;
        },
        keys: () => m.keys(),
        // A text map's (or a plain map's) value as JSON text; a codec map has no text.
        ...(form && form !== TEXT
          ? {}
          : {
              peekText: (k: string) => {
                const v = m.get(k);
                if (v === undefined) return undefined;
                return typeof v === "string"
                  ? v
                  : ((parsedText.get(k) as string | undefined) ?? JSON.stringify(v));
              },
            }),
        entries: !form
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
        const { data, dirty, form } = rec;
        for (const [k, held] of dirty) {
          if (data.has(k)) {
            const v = form ? form.encode(data.get(k)) : data.get(k);
            if (form) data.set(k, v);
            puts.push([name + SEP + k, persisted(v)]);
          } else if (held) dels.push(name + SEP + k);
        }
        dirty.clear();
        if (form) compactText(rec);
      }
      return { puts, dels };
    },
    takeDelta() {
      const out: StateDelta = { maps: [], size: 0 };
      for (const [name, rec] of maps) {
        const { data, dirty, form, parsedText } = rec;
        if (form) compactText(rec);
        if (dirty.size === 0) continue;
        const puts: unknown[] = [];
        const dels: string[] = [];
        for (const [k, held] of dirty) {
          const v = data.get(k);
          if (v !== undefined || data.has(k)) {
            if (!form) {
              puts.push(k, persisted(v));
              continue;
            }
            const p = form.encode(v);
            // A text (or codec) map keeps the form it persists (one string instead of an object
            // graph: profiles ~1/3 of the memory), but a value written since the last snapshot
            // stays an object until the next one finds it unwritten (compactText above): a hot
            // key used to be parsed again after every snapshot (co-visitation's neighbour lists:
            // JSON.parse of values just serialised was ~10% of the app's CPU at step 2 of the
            // bench).
            if (!form.stored(v)) parsedText.set(k, p);
            puts.push(k, persisted(p));
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
      for (const [name, { data, form }] of maps)
        yield [
          name,
          !form
            ? data // binary values are encoded by the writer (persisted())
            : (function* () {
                // As persisted (a codec's bytes as their base64 text): JSON-safe.
                for (const [k, v] of data)
                  yield [k, persisted(form.encode(v))] as [string, unknown];
              })(),
        ];
    },
    loadEntry(full, value) {
      const at = full.indexOf(SEP);
      mapOf(full.slice(0, at)).data.set(full.slice(at + 1), restored(value));
    },
    loadMapEntries(name, kv) {
      // One map lookup per chunk, and the binary tag tested on a string's first character only:
      // this loop is most of a restart's snapshot loading (~1.3-1.5 µs of CPU per key).
      const { data } = mapOf(name);
      for (let i = 0; i < kv.length; i += 2) {
        const v = kv[i + 1];
        data.set(kv[i] as string, typeof v === "string" && v.charCodeAt(0) === 0 ? restored(v) : v);
      }
    },
    loadMapEntry(name, key, value, deleted = false) {
      const { data } = mapOf(name);
      if (deleted) data.delete(key);
      else data.set(key, restored(value));
    },
  };
  return state;
}
