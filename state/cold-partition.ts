/**
 * adoptAll's partition (cold-index.ts): the records of many sections read and sorted by bucket of
 * home slots, so that they are placed in the order of the table's slots, at once or lazily.
 */

import { hashBytes, keyLen, TWO32 } from "./cold-records.js";

/** adoptAll partitions records into at most 2^BUCKET_BITS runs of slots (~12 KB of table each). */
const BUCKET_BITS = 11;

/** adoptAll's sections, each in a buffer of its index's (ownSection, addBuf). */
export type Owned = { buf: Buffer; start: number; end: number; bi: number };
/** Records partitioned by bucket: hash, location, tag and size each, `ends` per bucket. */
export type Partitioned = {
  sh: Uint32Array;
  sl: Float64Array;
  st: Uint8Array;
  ss: Uint32Array;
  ends: Uint32Array;
  shift: number;
  n: number;
};
/**
 * Reads every record of `list` and partitions them by bucket of home slots in the table as
 * sized now: a stable counting sort (each key's records stay in the sections' order), moving
 * the records' fields themselves (reading them through a permutation was a cache miss per
 * record again). Yields each section's records, then 0 after the sort. `cap` is the table's size
 * and `home` a hash's home slot in it.
 */
export function* partition(
  list: readonly Owned[],
  total: number,
  cap: number,
  home: (h: number) => number,
): Generator<number, Partitioned> {
  const shift = Math.max(0, Math.ceil(Math.log2(cap)) - BUCKET_BITS);
  const hs = new Uint32Array(total);
  const ls = new Float64Array(total);
  const tags = new Uint8Array(total);
  const sizes = new Uint32Array(total);
  const starts = new Uint32Array(((cap - 1) >>> shift) + 2);
  let n = 0;
  for (const { buf, start, end, bi } of list) {
    const before = n;
    for (let off = start; off < end;) {
      const kl = keyLen(buf, off);
      const h = hashBytes(buf, off + 2, off + 2 + kl);
      const v = off + 2 + kl;
      const next = v + 5 + buf.readUInt32LE(v + 1);
      hs[n] = h;
      ls[n] = bi * TWO32 + off;
      tags[n] = buf[v]!;
      sizes[n] = next - off;
      starts[(home(h) >>> shift) + 1]!++;
      n++;
      off = next;
    }
    yield n - before;
  }
  if (n !== total) throw new Error(`sections hold ${n} records, their headers say ${total}`);
  for (let b = 1; b < starts.length; b++) starts[b]! += starts[b - 1]!;
  const sh = new Uint32Array(n);
  const sl = new Float64Array(n);
  const st = new Uint8Array(n);
  const ss = new Uint32Array(n);
  for (let x = 0; x < n; x++) {
    const to = starts[home(hs[x]!) >>> shift]!++;
    sh[to] = hs[x]!;
    sl[to] = ls[x]!;
    st[to] = tags[x]!;
    ss[to] = sizes[x]!;
  }
  yield 0;
  return { sh, sl, st, ss, ends: starts.subarray(0, starts.length - 1), shift, n };
}

/**
 * Partitioned records a lazy adoptAll left pending: `done[b]` once bucket b is placed, `left`
 * records in all, `next` the bucket settle() places next, `fitAfter` a fit() asked for meanwhile.
 */
export type Pending = Partitioned & {
  done: Uint8Array;
  left: number;
  next: number;
  fitAfter: boolean;
};
