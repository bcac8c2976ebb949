/**
 * Compaction of a cold index's buffers (cold-index.ts compact): the live records copied into new
 * buffers, superseded values left behind.
 */

import { keyLen, TWO32 } from "./cold-records.js";

/**
 * Copies the records of the live slots of `locs` into new buffers of at most `perChunk` records,
 * each with `headerBytes` left at its start, and marks each slot with its record's place in them
 * (negative: see relocate()). Returns the buffers with their counts.
 */
export function copyLive(
  locs: Float64Array,
  cap: number,
  bufOf: (loc: number) => Buffer,
  offOf: (loc: number) => number,
  perChunk: number,
  headerBytes: number,
): { buf: Buffer; count: number }[] {
  const out: { buf: Buffer; count: number }[] = [];
  const slots: number[] = [];
  let bytes = 0;
  const flush = () => {
    const b = Buffer.allocUnsafeSlow(headerBytes + bytes);
    let at = headerBytes;
    for (const i of slots) {
      const loc = locs[i]!;
      const src = bufOf(loc);
      const off = offOf(loc);
      const v = off + 2 + keyLen(src, off);
      const end = v + 5 + src.readUInt32LE(v + 1);
      src.copy(b, at, off, end);
      locs[i] = at; // buffer index set by relocate(), once the old buffers are gone
      at += end - off;
    }
    out.push({ buf: b, count: slots.length });
    // Remember which new buffer each slot is in: its place in `out`, offset by TWO32 later.
    for (const i of slots) locs[i] = -(3 + (out.length - 1) * TWO32 + locs[i]!);
    slots.length = 0;
    bytes = 0;
  };
  for (let i = 0; i < cap; i++) {
    const loc = locs[i]!;
    if (loc < 0) continue;
    const src = bufOf(loc);
    const off = offOf(loc);
    const v = off + 2 + keyLen(src, off);
    bytes += v + 5 + src.readUInt32LE(v + 1) - off;
    slots.push(i);
    if (slots.length >= perChunk) flush();
  }
  if (slots.length > 0) flush();
  return out;
}

/** Once the new buffers replace the old ones (in `out`'s order): each marked slot's location. */
export function relocate(locs: Float64Array, cap: number): void {
  for (let i = 0; i < cap; i++) {
    const loc = locs[i]!;
    if (loc <= -3) locs[i] = -loc - 3;
  }
}
