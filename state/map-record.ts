/**
 * One named map of a stage's state: its record (hot keys, dirty keys, cold keys and the values
 * decoded from them), the KeyedMap a stage reads and writes it through, and its binary part of a
 * snapshot. The state that holds the maps is stage-state.ts.
 */

import type { ValueCodec } from "../runtime/index.js";
import { createColdIndex, type ColdIndex } from "./cold-index.js";
import { TAG_TEXT } from "./cold-records.js";
import type { KeyedMap } from "./stage-state-types.js";
import { codecForm, decodeCold, JSON_FORM, TEXT, type StoredForm } from "./value-forms.js";

export interface MapRecord {
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

/** A map's record before any key. */
export const newMapRecord = (): MapRecord => ({
  data: new Map(),
  dirty: new Map(),
  form: undefined,
  parsedText: new Map(),
  cold: createColdIndex(),
  readNow: new Set(),
  warm: new Map(),
  extra: 0,
  migrated: false,
});

/** Keys of `data` not in `cold` (counted again after a load made it unknown). */
export const extraOf = (rec: MapRecord): number => {
  if (rec.extra < 0) {
    let n = 0;
    if (rec.cold.empty) n = rec.data.size;
    else for (const k of rec.data.keys()) if (!rec.cold.has(k)) n++;
    rec.extra = n;
  }
  return rec.extra;
};
export const sizeOf = (rec: MapRecord) => rec.cold.count + extraOf(rec);
/** A map held as binary sections: it has a stored form, or cold keys from a load. */
export const binaryForm = (rec: MapRecord): StoredForm | undefined =>
  rec.form ?? (!rec.cold.empty ? JSON_FORM : undefined);

/** The KeyedMap over `rec` (StageState.map): `options` set the map's stored form. */
export function keyedMap<V>(
  rec: MapRecord,
  options: { text?: boolean; codec?: ValueCodec<V> },
): KeyedMap<V> {
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
      // Whether the key was in `data` is whether the set grew it: one lookup, not two (a set
      // is on every stage's per-record path).
      const size = m.size;
      m.set(k, v);
      const held = m.size === size || (!cold.empty && cold.has(k));
      if (!dirty.has(k)) dirty.set(k, held);
      if (!held && rec.extra >= 0) rec.extra++;
      if (form && parsedText.size > 0) parsedText.delete(k);
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
    settle: (records: number) => (cold.empty ? 0 : cold.settle(records)),
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
}

/**
 * A binary map's part of a snapshot: JSON-loaded keys go to `cold` the first time; clean
 * values leave `data` (their bytes are in `cold`), those read since the previous snapshot into
 * `warm` for one more interval; dirty values are encoded. A value written since the previous
 * snapshot stays decoded in `data` until the next one finds it unwritten (a hot key is not
 * decoded again after every snapshot: co-visitation's neighbour lists were ~10% of step 2's
 * CPU that way).
 */
export const binaryPart = (rec: MapRecord, form: StoredForm, puts: unknown[], dels: string[]) => {
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
