/** The ColdIndex contract (created by cold-index.ts) and its waste rule's default. */

import type { ColdSection, ColdValue } from "./cold-records.js";

/**
 * wasteful(): the buffers may hold this many times the live records' bytes (plus 256 KiB). At 2,
 * keys rewritten often (a Zipf of users) held up to 1.9x their records between compactions.
 * bench/cold-index-micro.ts, 125k keys then 500k Zipf rewrites in deltas of 2,000: at 2, 91 B per
 * key on average and 115 at the peak (records 45 B, index 25); at 1.5, 81 and 93 B, for ~11%
 * more CPU per record adopted (compactions copy the live records: 3 -> 7); at 1.25, 75 and 82 B
 * for ~30% more.
 */
export const WASTE_FACTOR = 1.5;

export interface ColdIndex {
  /** Live keys held (places every record a lazy load left pending first). */
  readonly count: number;
  /** Whether it holds no key (without placing pending records). */
  readonly empty: boolean;
  /** Records a lazy load (adoptAll with `lazy`) has not placed yet. */
  readonly pending: number;
  /** Times the table grew (re-inserting every key) since it was made. */
  readonly growths: number;
  has(k: string): boolean;
  /** The stored value of `k`, or undefined. */
  get(k: string): ColdValue | undefined;
  /** Removes `k`; whether it was held. */
  delete(k: string): boolean;
  /**
   * Indexes every record of `buf` from `start` to `end` (a section's records, in order): a put
   * replaces the key's earlier value, a deletion removes it. `onKey` is told each key as a
   * string when `wantKeys` (so the caller can drop a copy it holds).
   */
  adopt(buf: Buffer, start: number, end: number, onKey?: (k: string) => void): number;
  /**
   * What adopt() of each section in turn does (without `onKey`), in steps: a load of many
   * sections into one map. Each step yields the work it did, each record counting once when
   * read and once when inserted (twice the records in all). It inserts in the order of the table's
   * slots (records partitioned by the high bits of their home slot, each key's records kept in
   * order), so the probes of a 1M-key table stay in cache: inserted in the records' order, each
   * was two cache misses, ~320 ns of a restart's CPU per key (bench step 6). With `lazy` (into
   * an empty index) it only takes the sections: no step, no record read; they are read and
   * partitioned in settle()'s steps, or at once by anything that needs a record, and placed as
   * `pending` says.
   */
  adoptAll(sections: readonly ColdSection[], lazy?: boolean): Generator<number, void>;
  /**
   * Places up to about `records` of the records a lazy adoptAll left pending (whole buckets, in
   * slot order; a record read by its partition first counts as one); returns how many are left.
   * Every other call places what it needs first: a lookup its key's bucket (the records whose
   * home slots are in it: a key's records all are), anything that needs all keys (count, keys,
   * entries, compact, a growth) all of them.
   */
  settle(records: number): number;
  /**
   * Makes room for `keys` more keys at once (a load that knows how many its checkpoint holds):
   * the table grown one doubling at a time re-inserted every key ~2 times over, ~1.2 s of CPU in
   * a restart with 1M users. Never larger than growing would have made it.
   */
  reserve(keys: number): void;
  /**
   * After a load that reserved for more keys than it kept (deltas repeat keys and delete some):
   * shrinks the table to what growing would have made it, if it is 1.5 times that or more.
   */
  fit(): void;
  /** Every live key (decoded from its bytes) with its value's location. */
  entries(): IterableIterator<[string, ColdValue]>;
  /** Every live key (a load's scan of a map reads no value object). */
  keys(): IterableIterator<string>;
  /**
   * Copies the live records into new buffers of at most `perChunk` records each, which replace
   * every buffer held (garbage from superseded values goes). Each buffer starts with
   * `headerBytes` left for the caller. Returns them with their counts.
   */
  compact(perChunk: number, headerBytes: number): { buf: Buffer; count: number }[];
  /** Bytes of the buffers held and of the index. */
  bytes(): number;
  /**
   * Whether superseded values hold too much of the buffers' bytes (a key rewritten at every
   * snapshot, e.g. an item's neighbour list, keeps each delta's buffer alive): then compact().
   * With `factor`: whether the buffers hold more than that many times the live records' bytes
   * (default {@link WASTE_FACTOR}; bench/cold-index-micro.ts compares factors).
   */
  wasteful(factor?: number): boolean;
  /** Bytes of the buffers held (live records and superseded ones). */
  bufferBytes(): number;
  /** Bytes of the live records (what the buffers would hold after a compaction). */
  liveBytes(): number;
}
