/**
 * The cold keys of one state map: their stored values (JSON text or a codec's bytes) left in the
 * binary snapshot entries they were read from or written to (Buffers), found by an open-addressing
 * index on a hash of the key. A key costs its encoded bytes plus ~20 B of index, where a JS
 * Map entry with its key string and a decoded (or text) value cost ~200-300 B (bench step 7),
 * and a load only indexes the bytes: nothing is parsed until a key is read.
 *
 * createColdIndex holds the table and places records in it; its parts are files of their own:
 * the record format (cold-records.ts, which says the layout), the buffers held (cold-buffers.ts),
 * the table's sizing (cold-sizing.ts), the contract (cold-index-types.ts), lazy adoption's
 * partition (cold-partition.ts), compaction's copy (cold-compact.ts) and background settling
 * (cold-settle.ts). Every name this file exported is re-exported here.
 */

import { createColdBuffers } from "./cold-buffers.js";
import { copyLive, relocate } from "./cold-compact.js";
import { WASTE_FACTOR, type ColdIndex } from "./cold-index-types.js";
import { partition, type Owned, type Partitioned, type Pending } from "./cold-partition.js";
import {
  hashBytes,
  hashString,
  keyLen,
  offOf,
  ownSection,
  sameBytes,
  sameKey,
  TAG_DEL,
  TWO32,
  type ColdSection,
  type ColdValue,
} from "./cold-records.js";
import { grownSize, MAX_LOAD, sizeFor } from "./cold-sizing.js";

export {
  hashString,
  sameKey,
  TAG_BYTES,
  TAG_DEL,
  TAG_TEXT,
  type ColdSection,
  type ColdValue,
} from "./cold-records.js";
export { WASTE_FACTOR, type ColdIndex } from "./cold-index-types.js";
export { grownSize } from "./cold-sizing.js";
export { loadRunning, loadsBusy, settleInBackground } from "./cold-settle.js";

const EMPTY = -1;
const TOMB = -2;
const TWO_M32 = 2 ** -32;
/** Records adoptAll inserts between two of its steps. */
const STEP_RECORDS = 50_000;

export function createColdIndex(): ColdIndex {
  let cap = 0;
  /** cap / 2^32: a hash times this is its home slot. */
  let scale = 0;
  /**
   * Each slot's 16 low bits of its key's hash (the home slot comes from the high bits): a probe
   * reads a record only when they match. The full hash was 4 B a slot (12 B with `locs`, ~3 B
   * more per key, ~14 MiB at bench step 7's 1M users); a growth hashes the keys' bytes again.
   */
  let fps = new Uint16Array(0);
  let locs = new Float64Array(0);
  let count = 0;
  let used = 0; // live + tombstones
  const buffers = createColdBuffers();
  const { bufs, live } = buffers;
  /**
   * A lazy adoptAll's records, partitioned by bucket of home slots (each key's records in
   * order), not yet placed: `ends[b]` is where bucket b's records end; `done[b]` once placed.
   * A lookup places its key's bucket first: a key's records are all in it, and a record placed
   * later (another bucket's, probing on past its run) only takes empty slots, so every placed
   * key stays reachable from its home slot.
   */
  let pend: Pending | undefined;
  /**
   * A lazy adoptAll's records not partitioned yet either (its sections are held): the partition
   * (a pass over every record, then a counting sort) runs in steps in the background (settle)
   * or at once when anything needs a record. So a map that no answer reads (covisit's users'
   * last items, 1M records at 1M users) costs a restart's first answers nothing but its read.
   * While it is set, `pend` is not.
   */
  let deferred:
    { steps: Generator<number, void>; total: number; bytes: number; fitAfter: boolean } | undefined;
  const undefer = () => {
    while (deferred !== undefined) deferred.steps.next();
  };
  /** Whether any record is held: placed, pending or deferred (without placing any). */
  const holds = () => count > 0 || pend !== undefined || deferred !== undefined;
  /**
   * The key keys() yielded last and its location: a scan that reads each key's value right
   * after (popularity-join's look for empty profiles at load) finds it without a lookup. Any
   * change clears it.
   */
  let cursorKey: string | undefined;
  let cursorLoc = 0;

  const bufOf = (loc: number) => bufs[Math.floor(loc / TWO32)]!;

  /** The home slot of hash `h` (below cap: h < 2^32; `| 0` floors it, cap < 2^31). */
  const home = (h: number) => (h * scale) | 0;
  /** A new table of `n` slots (n > count). */
  let growths = 0;
  const rehash = (n: number) => {
    settleAll();
    retable(n);
  };
  /** rehash() of a table whose records are all placed. */
  const retable = (n: number) => {
    cursorKey = undefined;
    if (n > cap && count > 0) growths++;
    const ofp = fps;
    const ol = locs;
    fps = new Uint16Array(n);
    locs = new Float64Array(n).fill(EMPTY);
    cap = n;
    scale = n * TWO_M32;
    used = count;
    for (let x = 0; x < ol.length; x++) {
      const loc = ol[x]!;
      if (loc < 0) continue;
      const b = bufOf(loc);
      const off = offOf(loc);
      let i = home(hashBytes(b, off + 2, off + 2 + keyLen(b, off)));
      while (locs[i] !== EMPTY) if (++i === n) i = 0;
      fps[i] = ofp[x]!;
      locs[i] = loc;
    }
  };
  /** The slot of `k`, or -1. */
  const find = (k: string, h: number): number => {
    if (deferred !== undefined) undefer();
    if (pend !== undefined) ensure(h);
    else if (count === 0) return -1;
    for (let i = home(h); ;) {
      const loc = locs[i]!;
      if (loc === EMPTY) return -1;
      if (loc >= 0 && fps[i] === (h & 0xffff) && sameKey(k, bufOf(loc), offOf(loc))) return i;
      if (++i === cap) i = 0;
    }
  };
  const valueAt = (loc: number): ColdValue => {
    const buf = bufOf(loc);
    const off = offOf(loc);
    const v = off + 2 + keyLen(buf, off);
    const len = buf.readUInt32LE(v + 1);
    return { tag: buf[v]!, buf, start: v + 5, end: v + 5 + len };
  };
  const removeSlot = (i: number) => {
    cursorKey = undefined;
    buffers.release(locs[i]!);
    locs[i] = TOMB;
    count--;
  };

  /**
   * Puts (or, with TAG_DEL, deletes) the record of `bytes` bytes at `loc`, whose key hashes to
   * `h`, replacing the key's earlier value. The table has room (the caller grows it).
   */
  const place = (h: number, loc: number, tag: number, bytes: number) => {
    if (deferred !== undefined) undefer();
    if (pend !== undefined) ensure(h);
    placeRaw(h, loc, tag, bytes);
  };
  const placeRaw = (h: number, loc: number, tag: number, bytes: number) => {
    const buf = bufOf(loc);
    const off = offOf(loc);
    const fp = h & 0xffff;
    let i = home(h);
    let slot = -1;
    for (;;) {
      const at = locs[i]!;
      if (at === EMPTY) break;
      if (at >= 0 && fps[i] === fp && sameBytes(buf, off, bufOf(at), offOf(at))) {
        slot = i;
        break;
      }
      if (++i === cap) i = 0;
    }
    const bi = Math.floor(loc / TWO32);
    if (tag === TAG_DEL) {
      if (slot >= 0) removeSlot(slot);
    } else if (slot >= 0) {
      buffers.release(locs[slot]!);
      locs[slot] = loc;
      buffers.hold(bi, bytes);
    } else {
      fps[i] = fp;
      locs[i] = loc;
      buffers.hold(bi, bytes);
      count++;
      used++;
    }
  };
  /** Places the pending bucket of hash `h`'s home slot, if not yet. */
  const ensure = (h: number) => placeBucket(home(h) >>> pend!.shift);
  const placeBucket = (b: number): number => {
    const p = pend!;
    if (p.done[b] === 1) return 0;
    p.done[b] = 1;
    const from = b === 0 ? 0 : p.ends[b - 1]!;
    const to = p.ends[b]!;
    const { sh, sl, st, ss } = p;
    for (let k = from; k < to; k++) placeRaw(sh[k]!, sl[k]!, st[k]!, ss[k]!);
    p.left -= to - from;
    if (p.left === 0) finish();
    return to - from;
  };
  /** Every record placed: superseded buffers go, and a fit() asked for meanwhile is done. */
  const finish = () => {
    const fitAfter = pend?.fitAfter ?? false;
    pend = undefined;
    buffers.building = false;
    buffers.dropEmpty();
    if (fitAfter) index.fit();
  };
  const settleAll = () => {
    if (deferred !== undefined) undefer();
    while (pend !== undefined) placeBucket(pend.next++);
  };

  const ownOne = (s: ColdSection): Owned => {
    const { buf, start, end } = ownSection(s.buf, s.start, s.end);
    return { buf, start, end, bi: buffers.add(buf, end - start) };
  };
  const own = (sections: readonly ColdSection[]): Owned[] => sections.map(ownOne);
  /** Leaves partitioned records pending: placed by lookups, settle(), or what needs all keys. */
  const pendAll = (p: Partitioned, fitAfter: boolean) => {
    pend = { ...p, done: new Uint8Array(p.ends.length), left: p.n, next: 0, fitAfter };
  };
  /**
   * A deferred adoptAll (see `deferred`): sizes the table (empty until now, and untouched
   * meanwhile: everything else undefers first), partitions, then leaves the records pending.
   */
  function* deferredPartition(
    sections: readonly ColdSection[],
    total: number,
  ): Generator<number, void> {
    // Its copies of small sections (ownSection) are made now too, a step each (up to 0.5 s of
    // copies for a map of 1M users held the loop in one go): a section copied counts as its
    // records, as the partition's steps do.
    const list: Owned[] = [];
    for (const s of sections) {
      list.push(ownOne(s));
      deferred!.bytes -= s.end - s.start;
      yield s.count;
    }
    if (total > cap * MAX_LOAD) retable(grownSize(total));
    const p = yield* partition(list, total, cap, home);
    const fitAfter = deferred?.fitAfter ?? false;
    deferred = undefined;
    pendAll(p, fitAfter);
  }

  const index: ColdIndex = {
    get count() {
      settleAll();
      return count;
    },
    get empty() {
      return !holds();
    },
    get pending() {
      return deferred?.total ?? pend?.left ?? 0;
    },
    settle(records) {
      // A record read by the partition counts as one placed: both passes are ~the same work.
      let done = 0;
      while (deferred !== undefined && done < records) done += deferred.steps.next().value ?? 0;
      while (pend !== undefined && done < records) done += placeBucket(pend.next++);
      return index.pending;
    },
    get growths() {
      return growths;
    },
    has: (k) => holds() && find(k, hashString(k)) >= 0,
    get(k) {
      if (!holds()) return undefined;
      if (k === cursorKey) return valueAt(cursorLoc);
      const i = find(k, hashString(k));
      return i < 0 ? undefined : valueAt(locs[i]!);
    },
    delete(k) {
      if (!holds()) return false;
      const i = find(k, hashString(k));
      if (i < 0) return false;
      removeSlot(i);
      return true;
    },
    reserve(keys) {
      settleAll();
      // The smallest table that takes them without growing (adopt grows past 3/4 full).
      if (used + keys > cap * MAX_LOAD) rehash(Math.max(cap, grownSize(count + keys)));
    },
    fit() {
      // After the pending records are placed (their buckets are ranges of this table's slots).
      if (deferred !== undefined) return void (deferred.fitAfter = true);
      if (pend !== undefined) return void (pend.fitAfter = true);
      const n = grownSize(count);
      if (cap >= 1.5 * n) rehash(n);
    },
    adopt(entry, from, to, onKey) {
      if (deferred !== undefined) undefer();
      const { buf, start, end } = ownSection(entry, from, to);
      cursorKey = undefined;
      const bi = buffers.add(buf, end - start);
      let n = 0;
      // Placing a record may place the last of a lazy load's pending ones (a growth places them
      // all first), and finish() then drops the buffers without live records: not this one.
      buffers.adopting = bi;
      try {
        for (let off = start; off < end;) {
          const kl = keyLen(buf, off);
          const h = hashBytes(buf, off + 2, off + 2 + kl);
          const v = off + 2 + kl;
          const next = v + 5 + buf.readUInt32LE(v + 1);
          const left = pend?.left ?? 0;
          if (used + left + 1 > cap * MAX_LOAD) rehash(sizeFor(count + left + 1));
          place(h, bi * TWO32 + off, buf[v]!, next - off);
          onKey?.(buf.toString("utf8", off + 2, off + 2 + kl));
          n++;
          off = next;
        }
      } finally {
        buffers.adopting = -1;
      }
      if (live[bi] === 0) buffers.drop(bi);
      return n;
    },
    *adoptAll(sections, lazy = false) {
      settleAll();
      cursorKey = undefined;
      let total = 0;
      for (const s of sections) total += s.count;
      // A buffer whose records are all superseded is dropped once every record is in: one
      // dropped earlier could still have records to come.
      buffers.building = true;
      if (lazy && total > 0 && count === 0 && used === 0) {
        let bytes = 0;
        for (const s of sections) bytes += s.end - s.start;
        deferred = { steps: deferredPartition(sections, total), total, bytes, fitAfter: false };
        return;
      }
      const list = own(sections);
      // Sized once for every record (the caller may fit() after): no growth below, so the
      // slots the records were partitioned by stay theirs.
      index.reserve(total);
      const p = yield* partition(list, total, cap, home);
      if (lazy && p.n > 0) return void pendAll(p, false);
      try {
        for (let k = 0; k < p.n; k++) {
          place(p.sh[k]!, p.sl[k]!, p.st[k]!, p.ss[k]!);
          if ((k + 1) % STEP_RECORDS === 0) yield STEP_RECORDS;
        }
      } finally {
        buffers.building = false;
        buffers.dropEmpty();
      }
      yield p.n % STEP_RECORDS;
    },
    *entries() {
      settleAll();
      const ls = locs;
      for (let x = 0; x < ls.length; x++) {
        const loc = ls[x]!;
        if (loc < 0) continue;
        const buf = bufs[Math.floor(loc / TWO32)];
        if (!buf) continue; // released since (the table was replaced meanwhile)
        const off = offOf(loc);
        const k = buf.toString("utf8", off + 2, off + 2 + keyLen(buf, off));
        // Deleted or replaced since the iteration began: give the live value or nothing.
        if (ls !== locs) {
          const v = index.get(k);
          if (v) yield [k, v];
        } else yield [k, valueAt(loc)];
      }
    },
    *keys() {
      settleAll();
      const ls = locs;
      for (let x = 0; x < ls.length; x++) {
        const loc = ls[x]!;
        if (loc < 0) continue;
        const buf = bufs[Math.floor(loc / TWO32)];
        if (!buf) continue;
        const off = offOf(loc);
        const k = buf.toString("utf8", off + 2, off + 2 + keyLen(buf, off));
        if (ls === locs) {
          cursorKey = k;
          cursorLoc = loc;
          yield k;
        } else if (index.has(k)) yield k;
      }
    },
    compact(perChunk, headerBytes) {
      settleAll();
      cursorKey = undefined;
      const out = copyLive(locs, cap, bufOf, offOf, perChunk, headerBytes);
      buffers.replace(out, headerBytes);
      relocate(locs, cap);
      // Tombstones go too.
      rehash(grownSize(count));
      return out;
    },
    bytes: () => cap * 10 + buffers.held + (deferred?.bytes ?? 0),
    // Pending records are not counted live yet: their buffers are not waste.
    wasteful: (factor = WASTE_FACTOR) =>
      pend === undefined &&
      deferred === undefined &&
      buffers.held > factor * buffers.liveTotal + (1 << 18),
    bufferBytes: () => buffers.held + (deferred?.bytes ?? 0),
    liveBytes: () => (settleAll(), buffers.liveTotal),
  };
  return index;
}
