import type { ValueCodec } from "../runtime/index.js";
import { settleInBackground, type ColdSection } from "./cold-index.js";
import {
  binaryForm,
  binaryPart,
  keyedMap,
  newMapRecord,
  sizeOf,
  type MapRecord,
} from "./map-record.js";
import { encodeSections, readSections, SECTION_HEADER, writeHeader } from "./sections.js";
import {
  SEP,
  type KeyedMap,
  type StageStateInternal,
  type StateDelta,
} from "./stage-state-types.js";
import { persisted, restored, storedCold } from "./value-forms.js";

/**
 * createStageState: the maps of one stage instance with its metadata, what a snapshot takes of
 * them (deltas, binary checkpoints) and how a load puts keys back. The contract is
 * stage-state-types.ts, one map map-record.ts, value encodings value-forms.ts; the names this
 * file exported before are re-exported here.
 */

export type {
  KeyedMap,
  RawResolver,
  StageState,
  StageStateInternal,
  StateDelta,
} from "./stage-state-types.js";
export { SEP } from "./stage-state-types.js";
export { persisted, RAW_TAG } from "./value-forms.js";

/** Keys per buffer when a map's cold keys are compacted in memory (~1 MB of profiles). */
const COMPACT_KEYS = 10_000;

export function createStageState(): StageStateInternal {
  const maps = new Map<string, MapRecord>();
  const mapOf = (name: string): MapRecord => {
    let m = maps.get(name);
    if (!m) {
      m = newMapRecord();
      maps.set(name, m);
    }
    return m;
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
      return keyedMap(mapOf(name), options);
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
