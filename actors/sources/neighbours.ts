/**
 * An item's co-visitation neighbours (actors/sources/covisit.ts) and their stored form.
 *
 * A hot item's list (up to 3k = 150 entries of an id and two exact doubles) is written whole at
 * every snapshot that finds it changed. As JSON (`[["id",[s,ts]],...]`, numbers printed to their
 * shortest exact decimal) JSON.stringify and JSON.parse of these lists were most of the step-2
 * snapshot cost (bench/README.md "What limits"). The bytes below copy the doubles as they are and
 * the ids as one run of characters: no number printing or parsing, and ~40% fewer bytes.
 *
 * Layout (version 1), little-endian:
 *   0   "N" "B" 1 enc          magic, version, ids' encoding (0 latin1, 1 utf16le)
 *   4   u32 n                  entries
 *   8   f64 × n                decayed weights (s)
 *   8+8n  f64 × n              their reference times (ts)
 *   8+16n u16 × n              id lengths (UTF-16 units)
 *   8+18n ids                  concatenated, in `enc` (exact for any string: lone surrogates too)
 */

/** A decayed weight as stored: value as of `ts`, and `ts`. */
export type Edge = [s: number, ts: number];

/**
 * An item's neighbours: a Map (the hot path of `add`: an object dictionary was 1.5× slower),
 * stored as its entries in JSON (memory stores, `reco eval`) and as bytes in a stage's state.
 */
export class Neighbours extends Map<string, Edge> {
  toJSON(): [string, Edge][] {
    return [...this];
  }
}

const VERSION = 1;
const LATIN1 = 0;
const UTF16 = 1;
/** A character outside latin1 (then the ids are written as UTF-16 code units). */
const WIDE = /[\u0100-\uffff]/;

/**
 * The stored form of n entries: `id(x)`, `s(x)`, `ts(x)` give entry x (in the order written). Shared
 * with co-visitation's live form (item-edges.ts), so either decodes what the other wrote.
 */
export function writeNeighbourBytes(
  n: number,
  id: (x: number) => string,
  s: (x: number) => number,
  ts: (x: number) => number,
): Uint8Array {
  // The ids' length and whether one needs UTF-16, without joining them into one string first
  // (a string per entry and the joined copy were most of a snapshot's allocation here).
  let chars = 0;
  let enc = LATIN1;
  for (let x = 0; x < n; x++) {
    const i = id(x);
    chars += i.length;
    if (enc === LATIN1 && WIDE.test(i)) enc = UTF16;
  }
  const at = 8 + 18 * n;
  const bytes = new Uint8Array(at + chars * (enc === UTF16 ? 2 : 1));
  bytes[0] = 0x4e;
  bytes[1] = 0x42;
  bytes[2] = VERSION;
  bytes[3] = enc;
  bytes[4] = n & 0xff; // n: uint32, little-endian
  bytes[5] = (n >>> 8) & 0xff;
  bytes[6] = (n >>> 16) & 0xff;
  bytes[7] = n >>> 24;
  // A fresh buffer: offset 8 is aligned for Float64Array.
  const f = new Float64Array(bytes.buffer, 8, 2 * n);
  let len = 8 + 16 * n; // each id's length: uint16, little-endian
  let p = at; // the ids, one after another: latin1 bytes, or UTF-16 code units little-endian
  for (let x = 0; x < n; x++) {
    f[x] = s(x);
    f[n + x] = ts(x);
    const i = id(x);
    const l = i.length;
    bytes[len++] = l & 0xff;
    bytes[len++] = l >>> 8;
    if (enc === LATIN1) for (let c = 0; c < l; c++) bytes[p++] = i.charCodeAt(c);
    else
      for (let c = 0; c < l; c++) {
        const u = i.charCodeAt(c);
        bytes[p++] = u & 0xff;
        bytes[p++] = u >>> 8;
      }
  }
  return bytes;
}

/** Reads the stored form (above): `n` first, then `each` entry in the order written. */
export function readNeighbourBytes(
  b: Uint8Array,
  n: (count: number) => void,
  each: (id: string, s: number, ts: number) => void,
): void {
  if (b[0] !== 0x4e || b[1] !== 0x42 || b[2] !== VERSION)
    throw new Error(`co-visitation neighbours: unknown stored form (${b[0]},${b[1]},${b[2]})`);
  const view = new DataView(b.buffer, b.byteOffset, b.length);
  const count = view.getUint32(4, true);
  n(count);
  const at = 8 + 18 * count;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const ids = buf.toString(b[3] === UTF16 ? "utf16le" : "latin1", at);
  // Float64Array needs an 8-aligned offset; bytes from a pooled Buffer may not have one.
  const aligned = (b.byteOffset & 7) === 0;
  const f = aligned ? new Float64Array(b.buffer, b.byteOffset + 8, 2 * count) : undefined;
  let p = 0;
  for (let x = 0; x < count; x++) {
    const len = view.getUint16(8 + 16 * count + 2 * x, true);
    const id = ids.slice(p, p + len);
    p += len;
    const s = f ? f[x]! : view.getFloat64(8 + 8 * x, true);
    const ts = f ? f[count + x]! : view.getFloat64(8 + 8 * (count + x), true);
    each(id, s, ts);
  }
}

/** A list that writes its own stored form (co-visitation's live form, item-edges.ts). */
export interface NeighbourBytes {
  toBytes(): Uint8Array;
}

export function encodeNeighbours(m: Neighbours | NeighbourBytes): Uint8Array {
  if (!(m instanceof Neighbours)) return m.toBytes();
  const entries = [...m];
  return writeNeighbourBytes(
    entries.length,
    (x) => entries[x]![0],
    (x) => entries[x]![1][0],
    (x) => entries[x]![1][1],
  );
}

/**
 * The neighbours back from their stored form: bytes (above), or what snapshots held before
 * (JSON text of the entries, from when the map was a text map, or the entries themselves).
 */
export function decodeNeighbours(stored: unknown): Neighbours {
  if (typeof stored === "string") return new Neighbours(JSON.parse(stored) as [string, Edge][]);
  if (!(stored instanceof Uint8Array)) return new Neighbours(stored as [string, Edge][]);
  const m = new Neighbours();
  readNeighbourBytes(
    stored,
    () => undefined,
    (id, s, ts) => m.set(id, [s, ts]),
  );
  return m;
}

/**
 * The codec of a stage's neighbour map (state/stage-state.ts `codec`). Its values are Neighbours;
 * co-visitation also sets its live form there (item-edges.ts), which writes its own bytes.
 */
export const neighboursCodec = {
  encode: encodeNeighbours as (m: Neighbours) => Uint8Array,
  decode: decodeNeighbours,
};
