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

export function encodeNeighbours(m: Neighbours): Uint8Array {
  const n = m.size;
  let ids = "";
  for (const id of m.keys()) ids += id;
  const enc = WIDE.test(ids) ? UTF16 : LATIN1;
  const at = 8 + 18 * n;
  const bytes = new Uint8Array(at + ids.length * (enc === UTF16 ? 2 : 1));
  const view = new DataView(bytes.buffer);
  bytes[0] = 0x4e;
  bytes[1] = 0x42;
  bytes[2] = VERSION;
  bytes[3] = enc;
  view.setUint32(4, n, true);
  // A fresh buffer: offset 8 is aligned for Float64Array.
  const f = new Float64Array(bytes.buffer, 8, 2 * n);
  const lens = new DataView(bytes.buffer, 8 + 16 * n, 2 * n);
  let x = 0;
  for (const [id, e] of m) {
    f[x] = e[0];
    f[n + x] = e[1];
    lens.setUint16(2 * x, id.length, true);
    x++;
  }
  Buffer.from(bytes.buffer).write(ids, at, enc === UTF16 ? "utf16le" : "latin1");
  return bytes;
}

/**
 * The neighbours back from their stored form: bytes (above), or what snapshots held before
 * (JSON text of the entries, from when the map was a text map, or the entries themselves).
 */
export function decodeNeighbours(stored: unknown): Neighbours {
  if (typeof stored === "string") return new Neighbours(JSON.parse(stored) as [string, Edge][]);
  if (!(stored instanceof Uint8Array)) return new Neighbours(stored as [string, Edge][]);
  const b = stored;
  if (b[0] !== 0x4e || b[1] !== 0x42 || b[2] !== VERSION)
    throw new Error(`co-visitation neighbours: unknown stored form (${b[0]},${b[1]},${b[2]})`);
  const view = new DataView(b.buffer, b.byteOffset, b.length);
  const n = view.getUint32(4, true);
  const at = 8 + 18 * n;
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const ids = buf.toString(b[3] === UTF16 ? "utf16le" : "latin1", at);
  // Float64Array needs an 8-aligned offset; bytes from a pooled Buffer may not have one.
  const aligned = (b.byteOffset & 7) === 0;
  const f = aligned ? new Float64Array(b.buffer, b.byteOffset + 8, 2 * n) : undefined;
  const m = new Neighbours();
  let p = 0;
  for (let x = 0; x < n; x++) {
    const len = view.getUint16(8 + 16 * n + 2 * x, true);
    const id = ids.slice(p, p + len);
    p += len;
    const s = f ? f[x]! : view.getFloat64(8 + 8 * x, true);
    const ts = f ? f[n + x]! : view.getFloat64(8 + 8 * (n + x), true);
    m.set(id, [s, ts]);
  }
  return m;
}

/** The codec of a stage's neighbour map (state/stage-state.ts `codec`). */
export const neighboursCodec = { encode: encodeNeighbours, decode: decodeNeighbours };
