/**
 * The cold keys of one state map: their stored values (JSON text or a codec's bytes) left in the
 * binary snapshot entries they were read from or written to (Buffers), found by an open-addressing
 * index on a hash of the key. A key costs its encoded bytes plus ~20 B of index, where a JS
 * Map entry with its key string and a decoded (or text) value cost ~200-300 B (bench step 7),
 * and a load only indexes the bytes: nothing is parsed until a key is read.
 *
 * Record layout (state/sections.ts writes it): u16 key length, key (UTF-8), u8 tag, u32 value
 * length, value. Tags: TAG_DEL (a deletion, only in deltas), TAG_TEXT (JSON text), TAG_BYTES.
 */

export const TAG_DEL = 0;
export const TAG_TEXT = 1;
export const TAG_BYTES = 2;

const EMPTY = -1;
const TOMB = -2;
const TWO32 = 2 ** 32;

/** FNV-1a over UTF-16 code units (= the bytes of an ASCII key). */
export function hashString(k: string): number {
  let h = 0x811c9dc5;
  for (let x = 0; x < k.length; x++) h = Math.imul(h ^ k.charCodeAt(x), 16777619);
  return h >>> 0;
}

/** The same hash from a key's UTF-8 bytes (decoded first when not ASCII). */
function hashBytes(b: Buffer, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let x = s; x < e; x++) {
    const c = b[x]!;
    if (c >= 0x80) return hashString(b.toString("utf8", s, e));
    h = Math.imul(h ^ c, 16777619);
  }
  return h >>> 0;
}

/** The UTF-8 length of the key of the record at `off` (u16, little-endian). */
const keyLen = (b: Buffer, off: number) => b[off]! | (b[off + 1]! << 8);
/** Whether the record (or key entry: u16 length, UTF-8 bytes) at `off` of `b` has the key `k`. */
export const sameKey = (k: string, b: Buffer, off: number): boolean => {
  const n = keyLen(b, off);
  const s = off + 2;
  if (n === k.length) {
    let x = 0;
    for (; x < n; x++) {
      const c = b[s + x]!;
      if (c >= 0x80) break;
      if (c !== k.charCodeAt(x)) return false;
    }
    if (x === n) return true;
  }
  // Not ASCII (or lengths differ, which non-ASCII UTF-8 allows): compare as strings.
  for (let x = 0; x < n; x++) if (b[s + x]! >= 0x80) return b.toString("utf8", s, s + n) === k;
  return false;
};

/** A stored value: its tag and where its bytes are. */
export interface ColdValue {
  tag: number;
  buf: Buffer;
  start: number;
  end: number;
}

/** Records of one map in an entry (a section, sections.ts): adoptAll's input. */
export interface ColdSection {
  buf: Buffer;
  start: number;
  end: number;
  /** Records in it. */
  count: number;
}

/**
 * wasteful(): the buffers may hold this many times the live records' bytes (plus 256 KiB). At 2,
 * keys rewritten often (a Zipf of users) held up to 1.9x their records between compactions.
 * bench/cold-index-micro.ts, 125k keys then 500k Zipf rewrites in deltas of 2,000: at 2, 91 B per
 * key on average and 115 at the peak (records 45 B, index 25); at 1.5, 81 and 93 B, for ~11%
 * more CPU per record adopted (compactions copy the live records: 3 -> 7); at 1.25, 75 and 82 B
 * for ~30% more.
 */
export const WASTE_FACTOR = 1.5;

/**
 * The table's size is any number of slots (a key's home slot is its hash scaled to the size, not
 * its low bits): it grows when a key would take it past MAX_LOAD full, to GROW_LOAD full (10 B
 * a slot: 12.5-17 B of index per key). A power-of-two table grown at 3/4 full was 3/8 to 3/4 full,
 * and a load reserved the next power of two: 125k keys (a 1M-user partition) in 262,144 slots,
 * 25 B of index per key where the records of a user's profile are ~50 (bench step 7).
 */
const MAX_LOAD = 0.8;
const GROW_LOAD = 0.6;
const TWO_M32 = 2 ** -32;
/** The table's size for a new table or a growth that must hold `keys`. */
const sizeFor = (keys: number) => Math.max(16, Math.ceil(keys / GROW_LOAD));
/**
 * The size a table grown key by key from empty has once it holds `keys` (no deletions): what a
 * load reserves and fits to, so a restarted map is no larger than one never restarted.
 */
export function grownSize(keys: number): number {
  let n = sizeFor(1);
  while (keys > n * MAX_LOAD) n = sizeFor(Math.floor(n * MAX_LOAD) + 1);
  return n;
}

/** adoptAll partitions records into at most 2^BUCKET_BITS runs of slots (~12 KB of table each). */
const BUCKET_BITS = 11;
/** Records adoptAll inserts between two of its steps. */
const STEP_RECORDS = 50_000;

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

/**
 * Records lazy loads left pending are placed in the background once the loads are over: while a
 * load runs in its turn (loadRunning: bin/pipeline/load-turns.ts, whose turns include each stage's
 * start after its load) or has marked itself busy within SETTLE_QUIET_MS (loadsBusy, at each slice
 * of a store's load), nothing; then slices of SETTLE_RECORDS placements (~5-10 ms each). Until
 * then each lookup places its key's bucket: a restart's first answers wait for the buckets they
 * read, not for every key's placement.
 */
const SETTLE_RECORDS = 20_000;
const SETTLE_QUIET_MS = 100;
const unsettled = new Set<ColdIndex>();
let lastBusy = 0;
let settleTimer: ReturnType<typeof setTimeout> | undefined;
let loadsRunning = 0;
/** A load is running (its slices call this): background placement waits. */
export function loadsBusy(): void {
  lastBusy = performance.now();
}
/** A load in its turn begins: background placement waits until the returned call says it ended. */
export function loadRunning(): () => void {
  loadsRunning++;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    loadsRunning--;
    loadsBusy();
  };
}
const scheduleSettle = (ms: number) => {
  if (settleTimer !== undefined) return;
  settleTimer = setTimeout(settleSlice, ms);
  settleTimer.unref?.();
};
const settleSlice = () => {
  settleTimer = undefined;
  const quiet = performance.now() - lastBusy;
  if (loadsRunning > 0) return scheduleSettle(SETTLE_QUIET_MS);
  if (quiet < SETTLE_QUIET_MS) return scheduleSettle(SETTLE_QUIET_MS - quiet);
  // One slice places about SETTLE_RECORDS, over as many indexes as that takes.
  let budget = SETTLE_RECORDS;
  for (const c of unsettled) {
    const before = c.pending;
    const left = c.settle(budget);
    if (left === 0) unsettled.delete(c);
    budget -= before - left;
    if (budget <= 0) break;
  }
  if (unsettled.size > 0) scheduleSettle(0);
};
/** Places `c`'s pending records in the background (see loadsBusy). */
export function settleInBackground(c: ColdIndex): void {
  if (c.pending === 0) return;
  unsettled.add(c);
  scheduleSettle(SETTLE_QUIET_MS);
}

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
  const bufs: (Buffer | undefined)[] = [];
  /** Live records per buffer, and their bytes. */
  const live: number[] = [];
  const liveBytes: number[] = [];
  /** Bytes of the buffers held (their part this map owns) and of their live records. */
  const owned: number[] = [];
  let held = 0;
  let liveTotal = 0;
  const free: number[] = [];
  /** adoptAll is placing records: a buffer left without live records is dropped after. */
  let building = false;
  /**
   * A lazy adoptAll's records, partitioned by bucket of home slots (each key's records in
   * order), not yet placed: `ends[b]` is where bucket b's records end; `done[b]` once placed.
   * A lookup places its key's bucket first: a key's records are all in it, and a record placed
   * later (another bucket's, probing on past its run) only takes empty slots, so every placed
   * key stays reachable from its home slot.
   */
  let pend:
    | {
        sh: Uint32Array;
        sl: Float64Array;
        st: Uint8Array;
        ss: Uint32Array;
        ends: Uint32Array;
        done: Uint8Array;
        shift: number;
        left: number;
        next: number;
        fitAfter: boolean;
      }
    | undefined;
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

  const sameBytes = (b1: Buffer, o1: number, b2: Buffer, o2: number): boolean => {
    const n = keyLen(b1, o1);
    if (n !== keyLen(b2, o2)) return false;
    return b1.compare(b2, o2 + 2, o2 + 2 + n, o1 + 2, o1 + 2 + n) === 0;
  };
  const bufOf = (loc: number) => bufs[Math.floor(loc / TWO32)]!;
  // Not `loc % TWO32`: a double's remainder is a call (~13 ns against ~2.5).
  const offOf = (loc: number) => loc - Math.floor(loc / TWO32) * TWO32;
  const recordBytes = (b: Buffer, off: number) => {
    const v = off + 2 + keyLen(b, off);
    return v + 5 + b.readUInt32LE(v + 1) - off;
  };
  const dropBuf = (i: number) => {
    held -= owned[i]!;
    bufs[i] = undefined;
    free.push(i);
  };
  const release = (loc: number) => {
    const i = Math.floor(loc / TWO32);
    const n = recordBytes(bufs[i]!, offOf(loc));
    liveBytes[i]! -= n;
    liveTotal -= n;
    if (--live[i]! === 0 && !building) dropBuf(i);
  };
  const addBuf = (b: Buffer, bytes: number): number => {
    const i = free.length > 0 ? free.pop()! : bufs.length;
    bufs[i] = b;
    live[i] = 0;
    liveBytes[i] = 0;
    owned[i] = bytes;
    held += bytes;
    return i;
  };
  const hold = (bi: number, n: number) => {
    live[bi]!++;
    liveBytes[bi]! += n;
    liveTotal += n;
  };

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
    release(locs[i]!);
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
      release(locs[slot]!);
      locs[slot] = loc;
      hold(bi, bytes);
    } else {
      fps[i] = fp;
      locs[i] = loc;
      hold(bi, bytes);
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
    building = false;
    for (let i = 0; i < bufs.length; i++) if (bufs[i] && live[i] === 0) dropBuf(i);
    if (fitAfter) index.fit();
  };
  const settleAll = () => {
    if (deferred !== undefined) undefer();
    while (pend !== undefined) placeBucket(pend.next++);
  };

  /**
   * A section that is a small part of its entry (a delta's, with other maps' sections) gets its
   * own copy: this map's garbage must not be kept alive by another map's live keys.
   */
  const ownSection = (entry: Buffer, from: number, to: number) => {
    if ((to - from) * 10 >= entry.length * 9) return { buf: entry, start: from, end: to };
    const buf = Buffer.allocUnsafeSlow(to - from);
    entry.copy(buf, 0, from, to);
    return { buf, start: 0, end: buf.length };
  };

  /** adoptAll's sections, each in a buffer of this index's (ownSection, addBuf). */
  type Owned = { buf: Buffer; start: number; end: number; bi: number };
  const own = (sections: readonly ColdSection[]): Owned[] =>
    sections.map((s) => {
      const { buf, start, end } = ownSection(s.buf, s.start, s.end);
      return { buf, start, end, bi: addBuf(buf, end - start) };
    });
  /** Records partitioned by bucket: hash, location, tag and size each, `ends` per bucket. */
  type Partitioned = {
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
   * record again). Yields each section's records, then 0 after the sort.
   */
  function* partition(list: readonly Owned[], total: number): Generator<number, Partitioned> {
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
    // Its copies of small sections (ownSection) are made now too: ~0.1 s of a 1M-user restart.
    const list = own(sections);
    deferred!.bytes = 0;
    if (total > cap * MAX_LOAD) retable(grownSize(total));
    const p = yield* partition(list, total);
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
      const bi = addBuf(buf, end - start);
      let n = 0;
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
      if (live[bi] === 0) dropBuf(bi);
      return n;
    },
    *adoptAll(sections, lazy = false) {
      settleAll();
      cursorKey = undefined;
      let total = 0;
      for (const s of sections) total += s.count;
      // A buffer whose records are all superseded is dropped once every record is in: one
      // dropped earlier could still have records to come.
      building = true;
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
      const p = yield* partition(list, total);
      if (lazy && p.n > 0) return void pendAll(p, false);
      try {
        for (let k = 0; k < p.n; k++) {
          place(p.sh[k]!, p.sl[k]!, p.st[k]!, p.ss[k]!);
          if ((k + 1) % STEP_RECORDS === 0) yield STEP_RECORDS;
        }
      } finally {
        building = false;
        for (let i = 0; i < bufs.length; i++) if (bufs[i] && live[i] === 0) dropBuf(i);
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
          locs[i] = at; // buffer index set below, once the old buffers are gone
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
      bufs.length = 0;
      live.length = 0;
      liveBytes.length = 0;
      owned.length = 0;
      free.length = 0;
      held = 0;
      for (const c of out) {
        bufs.push(c.buf);
        live.push(c.count);
        liveBytes.push(c.buf.length - headerBytes);
        owned.push(c.buf.length);
        held += c.buf.length;
      }
      for (let i = 0; i < cap; i++) {
        const loc = locs[i]!;
        if (loc <= -3) locs[i] = -loc - 3;
      }
      // Tombstones go too.
      rehash(grownSize(count));
      return out;
    },
    bytes: () => cap * 10 + held + (deferred?.bytes ?? 0),
    // Pending records are not counted live yet: their buffers are not waste.
    wasteful: (factor = WASTE_FACTOR) =>
      pend === undefined && deferred === undefined && held > factor * liveTotal + (1 << 18),
    bufferBytes: () => held + (deferred?.bytes ?? 0),
    liveBytes: () => (settleAll(), liveTotal),
  };
  return index;
}
