import { persisted, RAW_TAG } from "./stage-state.js";

/**
 * Large byte values of plain maps (collaborative's trained model: 256 B per user at rank 64) as
 * LevelDB entries of their own, written with LevelDB's own `buffer` value encoding, instead of
 * base64 text inside the JSON snapshot parts (1.37x the bytes, parsed and decoded at every
 * restart, and written again by every checkpoint of the plain maps: up to ~3 copies on disk).
 *
 * A value of at least `minBytes` gets an entry "\x02a\0<n>" (store.ts's layout) when its key is
 * written, and the JSON holds RAW_TAG + n in its place. A checkpoint of the plain maps refers to
 * the entry again instead of writing the bytes again, as long as the key still holds the same
 * object. The entry of a key's previous value is deleted in the batch that supersedes the key
 * (a new value, a deletion): JSON parts written before that batch may still refer to it, but a
 * load applies that batch after them, so a reference whose entry is gone is always superseded
 * (a load checks it). Entry numbers come from a counter above every entry on disk; a number
 * freed by a deletion may come back, which the same argument covers.
 *
 * A load reads the entries first (they sort before the JSON parts) and hands each reference its
 * entry's bytes as a Uint8Array over the Buffer LevelDB gave (its own memory, so 4-byte aligned:
 * the served model's factors are views on it, als-model.ts).
 */
export const RAW_PREFIX = "\u0002a\u0000";
const pad = (n: number) => String(n).padStart(12, "0");

/** A key whose value is a raw entry: the entry's number (as in the JSON) and the value held. */
interface Held {
  n: string;
  value: Uint8Array;
}

export type RawOp =
  | { type: "put"; key: string; value: Buffer; valueEncoding: "buffer" }
  | { type: "del"; key: string };
/** Where a snapshot's batch operations go (its list of ops). */
export interface RawOps {
  push(op: RawOp): unknown;
}

/** The raw entries of one instance, as last loaded or written. */
export interface RawValues {
  /** Bytes of a raw entry's value (what is on disk), over all entries held. */
  readonly bytes: number;
  /**
   * The JSON value of a byte value of `map`'s `key`: a reference to its raw entry (written now
   * if `fresh`, or if the key holds another object than the one last written), or base64 text
   * if it is small. Puts and deletions go to `ops`.
   */
  value(ops: RawOps, map: string, key: string, v: Uint8Array, fresh: boolean): unknown;
  /**
   * A key of a plain map written (`json` its JSON value) or deleted (undefined): its previous
   * raw entry, unless `json` refers to it, is deleted.
   */
  written(ops: RawOps, map: string, key: string, json: unknown): void;
  /** Deletions of entries that no key holds (found by the last load). */
  orphans(ops: RawOps): void;
  /** Whether any key holds a raw entry (else written() need not be called). */
  readonly held: boolean;
}

const fullKey = (map: string, key: string) => map + "\u0000" + key;

export function createRawValues(minBytes: number, at?: Loaded): RawValues {
  const held = new Map<string, Held>(at?.held);
  let orphans = at?.orphans ?? [];
  let next = at?.next ?? 1;
  let bytes = 0;
  for (const h of held.values()) bytes += h.value.byteLength;
  const drop = (ops: RawOps, k: string) => {
    const h = held.get(k);
    if (!h) return;
    held.delete(k);
    bytes -= h.value.byteLength;
    ops.push({ type: "del", key: RAW_PREFIX + h.n });
  };
  return {
    get bytes() {
      return bytes;
    },
    get held() {
      return held.size > 0;
    },
    value(ops, map, key, v, fresh) {
      const k = fullKey(map, key);
      if (v.byteLength < minBytes) {
        drop(ops, k);
        return persisted(v);
      }
      const h = held.get(k);
      if (h && !fresh && h.value === v) return RAW_TAG + h.n;
      drop(ops, k);
      const n = pad(next++);
      const value = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      ops.push({ type: "put", key: RAW_PREFIX + n, value, valueEncoding: "buffer" });
      held.set(k, { n, value: v });
      bytes += v.byteLength;
      return RAW_TAG + n;
    },
    written(ops, map, key, json) {
      const k = fullKey(map, key);
      const h = held.get(k);
      if (h && json !== RAW_TAG + h.n) drop(ops, k);
    },
    orphans(ops) {
      for (const n of orphans) ops.push({ type: "del", key: RAW_PREFIX + n });
      orphans = [];
    },
  };
}

/** What a load found: the keys that hold a raw entry, entries no key holds, the next number. */
export interface Loaded {
  held: [string, Held][];
  orphans: string[];
  next: number;
}

/** The raw entries as a load reads them, and the references the JSON parts hold to them. */
export interface RawReader {
  /** An entry under RAW_PREFIX (read before any JSON part). */
  entry(key: string, value: Buffer): void;
  /** The value for a reference `n` held by `map`'s `key`: the entry's bytes. */
  resolve(map: string, key: string, n: string): unknown;
  /**
   * After the load: which keys still hold their entry's bytes (`current` reads a key's value),
   * and which entries no key holds. Throws if a key still holds a reference to a missing entry.
   */
  done(current: (map: string, key: string) => unknown): Loaded;
}

export function createRawReader(): RawReader {
  const entries = new Map<string, Uint8Array>();
  const refs = new Map<string, { map: string; key: string; n: string }>();
  let next = 1;
  return {
    entry(key, value) {
      const n = key.slice(RAW_PREFIX.length);
      // A plain Uint8Array over the Buffer's memory (no copy).
      entries.set(n, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      next = Math.max(next, parseInt(n, 10) + 1);
    },
    resolve(map, key, n) {
      refs.set(fullKey(map, key), { map, key, n });
      // A missing entry leaves the reference: a later part must supersede the key (done()).
      return entries.get(n) ?? RAW_TAG + n;
    },
    done(current) {
      const held: [string, Held][] = [];
      const used = new Set<string>();
      for (const [k, { map, key, n }] of refs) {
        const v = current(map, key);
        const value = entries.get(n);
        if (value !== undefined && v === value) {
          held.push([k, { n, value }]);
          used.add(n);
        } else if (v === RAW_TAG + n)
          throw new Error(`Corruption: ${map}/${key} refers to raw entry ${n}, which is missing`);
      }
      const orphans = [...entries.keys()].filter((n) => !used.has(n));
      return { held, orphans, next };
    },
  };
}
