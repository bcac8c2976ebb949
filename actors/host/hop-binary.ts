import { Packr } from "msgpackr";

/**
 * The binary form of a hop message (envelope.ts): a fixed 26-byte head, then the records as
 * MessagePack with msgpackr's record extension (each shape's keys written once per message, as
 * the JSON rows form does; every message carries its own shapes, so any message decodes alone).
 *
 *   byte 0      0xC1: never a MessagePack byte, never the '{' a JSON hop starts with
 *   byte 1      format version (1)
 *   bytes 2-25  upTo, prev (0: none), wm: float64, little-endian
 *   bytes 26-   the records array (version 1), or [records, idle marks] (version 2: a hop
 *               that carries parse's idle marks, envelope.ts `ix`)
 *
 * Against the JSON rows form on parse's records (.scratch/codec-bench.ts, 256 records a batch):
 * encode ~1.1-1.4 vs ~0.8-4.9 µs, decode ~0.55-0.6 vs ~1.4-3.6 µs per record (a noisy machine),
 * 94 vs 116 bytes. Records are plain data: numbers, strings, booleans, null, arrays and objects.
 * Unlike JSON, NaN stays NaN and an undefined property stays (as undefined) rather than vanish;
 * a "__proto__" key is dropped rather than kept as a property.
 */
export const BINARY_MAGIC = 0xc1;
const VERSION = 1;
const WITH_IDLE = 2;
export const BINARY_HEAD = 26;

const packr = new Packr({ useRecords: true });

export const isBinaryHop = (data: Uint8Array): boolean =>
  data.length >= BINARY_HEAD && data[0] === BINARY_MAGIC;

function writeHead(out: Uint8Array, upTo: number, wm: number, prev: number): void {
  const v = new DataView(out.buffer, out.byteOffset, BINARY_HEAD);
  v.setUint8(0, BINARY_MAGIC);
  v.setUint8(1, VERSION);
  v.setFloat64(2, upTo, true);
  v.setFloat64(10, prev, true);
  v.setFloat64(18, wm, true);
}

export function encodeBinaryHop(
  upTo: number,
  wm: number,
  recs: readonly unknown[],
  prev?: number,
  ix?: readonly number[],
): Uint8Array {
  const idle = ix !== undefined && ix.length > 0;
  const body = packr.pack(idle ? [recs, ix] : recs);
  const out = new Uint8Array(BINARY_HEAD + body.length);
  writeHead(out, upTo, wm, prev ?? 0);
  if (idle) out[1] = WITH_IDLE;
  out.set(body, BINARY_HEAD);
  return out;
}

export function peekBinaryHead(data: Uint8Array): { upTo: number; prev: number; wm: number } {
  if (data[1] !== VERSION && data[1] !== WITH_IDLE)
    throw new Error(`hop format version ${data[1]} is not known here`);
  const v = new DataView(data.buffer, data.byteOffset, BINARY_HEAD);
  return { upTo: v.getFloat64(2, true), prev: v.getFloat64(10, true), wm: v.getFloat64(18, true) };
}

export function decodeBinaryHop<R>(data: Uint8Array): {
  upTo: number;
  prev?: number;
  wm: number;
  recs: R[];
  ix?: number[];
} {
  const { upTo, prev, wm } = peekBinaryHead(data);
  const body = packr.unpack(data.subarray(BINARY_HEAD)) as unknown;
  const [recs, ix] = data[1] === WITH_IDLE ? (body as [R[], number[]]) : [body as R[], undefined];
  const head = prev === 0 ? { upTo, wm } : { upTo, prev, wm };
  return ix === undefined ? { ...head, recs } : { ...head, recs, ix };
}

/** The same message under another head: the records' bytes are copied, not re-encoded. */
export function binaryWithHead(
  data: Uint8Array,
  upTo: number,
  wm: number,
  prev?: number,
): Uint8Array {
  const out = new Uint8Array(data.length);
  out.set(data.subarray(BINARY_HEAD), BINARY_HEAD);
  writeHead(out, upTo, wm, prev ?? 0);
  out[1] = data[1]!; // the records' format stays theirs
  return out;
}
