import type { KeyedMap } from "../../state/index.js";
import { hash64 } from "../contract/index.js";
import { createPositionSet } from "./seen-positions.js";

/**
 * The dedupe memory of parse: event ids seen, with the time each is remembered from, bounded in
 * time (expireBefore) and size (maxIds).
 *
 * Compact: an id is held as a 64-bit hash (hash64) in typed arrays, 16 bytes in a FIFO log (hash
 * and time) plus 4–8 in an open-addressing hash set of log positions, instead of its string in a
 * Map (~200 bytes of heap and one LevelDB key per event). Two distinct ids with equal 64-bit
 * hashes would be taken for one (odds ~n²/2⁶⁵: 1 in ~10⁷ with 2M ids held), the same way in
 * every run.
 *
 * Which ids are remembered must be a function of the input alone, never of when snapshots were
 * taken. Ids are forgotten in the order they were added: parse adds each id with the
 * progress after it (the later of its event time and the progress before), which never
 * decreases, so "oldest time first" is "first added first"; a time below the previous one is
 * taken as the previous one. The log is persisted in that order, so a reload forgets the same ids
 * in the same sequence.
 *
 * Persisted in the state map: "\x01h" = [first, next] (global indices of the live entries) and
 * "\x01s<n>" = segment n, a Uint8Array of SEG entries (times as float64, then hashes as uint32
 * pairs, machine byte order), which the state store persists as base64 text in its JSON parts
 * (stage-state.ts BINARY_TAG). A snapshot rewrites only the segments changed since the last one.
 * A segment's bytes change in place, unlike a state map's other values: exact only because a
 * snapshot turns them into text when it is captured, not when it is written (the host goes on
 * processing meanwhile). Held by reference until the write, as a raw entry is (raw-values.ts; a
 * store with rawMinBytes at most 32 KiB), a slot forgotten after the capture would be written as
 * forgotten, and a reload would lose an id the snapshot held. Any other key is an event id of
 * the earlier layout (key = id, value = time): loaded in (time, id) order, as that layout forgot
 * them, and removed.
 */
export interface SeenIds {
  has(id: string): boolean;
  /**
   * Remembers `id` unless it is held already (then returns false and changes nothing); if more
   * than `maxIds` are held, the oldest are forgotten (possibly `id`).
   */
  add(id: string, ts: number): boolean;
  /** Forgets every id whose time is before `horizon`. */
  expireBefore(horizon: number): void;
  readonly size: number;
  /** Bytes of the typed arrays held: the log's segments and the hash set. */
  readonly bytes: number;
  /**
   * Times the hash set grew, re-inserting every id it held: a load sizes it for the ids loaded,
   * so growing starts from there.
   */
  readonly growths: number;
}

/** Entries per persisted segment (32 KiB each). */
export const SEG = 2048;
const HEAD = "\u0001h";
const SEG_PREFIX = "\u0001s";
const segKey = (n: number) => SEG_PREFIX + String(n).padStart(12, "0");

interface Segment {
  bytes: Uint8Array<ArrayBufferLike>;
  times: Float64Array;
  /** hi, lo per entry. */
  hashes: Uint32Array;
}

function newSegment(bytes: Uint8Array = new Uint8Array(SEG * 16)): Segment {
  return {
    bytes,
    times: new Float64Array(bytes.buffer, bytes.byteOffset, SEG),
    hashes: new Uint32Array(bytes.buffer, bytes.byteOffset + SEG * 8, SEG * 2),
  };
}

/** A loaded segment over the loaded bytes, or over a copy when they are not 8-byte aligned. */
function segmentOf(v: unknown): Segment | undefined {
  if (!(v instanceof Uint8Array) || v.length !== SEG * 16) return undefined;
  return newSegment(v.byteOffset % 8 === 0 ? v : new Uint8Array(v));
}

export function createSeenIds(map: KeyedMap<unknown>, maxIds: number): SeenIds {
  const segments = new Map<number, Segment>();
  let first = 0; // global index of the oldest slot not yet released (live or forgotten)
  let next = 0; // global index of the next slot
  let live = 0; // ids held
  let lastTime = -Infinity;

  const seg = (g: number) => segments.get(Math.floor(g / SEG))!;
  const timeAt = (g: number) => seg(g).times[g % SEG]!;
  const hiAt = (g: number) => seg(g).hashes[2 * (g % SEG)]!;
  const loAt = (g: number) => seg(g).hashes[2 * (g % SEG) + 1]!;
  const writeHead = () => map.set(HEAD, [first, next]);
  // Live slots' positions, found by their hashes in the log (slots at or after `first`).
  const set = createPositionSet(hiAt, loAt, () => first);

  /** Releases forgotten slots at the front, and segments left with none in use. */
  const releaseFront = (): void => {
    while (first < next && Number.isNaN(timeAt(first))) {
      first++;
      if (first % SEG === 0) {
        const n = first / SEG - 1;
        segments.delete(n);
        map.delete(segKey(n));
      }
    }
  };
  /** Forgets the id in slot g (NaN marks a forgotten slot; the segment is dirty). */
  const forget = (g: number): void => {
    const n = Math.floor(g / SEG);
    const s = segments.get(n)!;
    const o = g % SEG;
    set.remove(g);
    s.times[o] = NaN;
    live--;
    map.set(segKey(n), s.bytes);
  };

  /*
   * The size bound forgets the least (time, hash) first. Times never decrease along the log, so
   * the oldest time's ids are the run at its front; a min-heap over that run's slots, by hash, is
   * built when the bound first forgets from it (and fed by appends of that same time). Its order
   * is total, so a reload (which rebuilds it) forgets the same ids in the same sequence.
   */
  let heap: number[] | undefined;
  let heapTime = NaN;
  const less = (a: number, b: number): boolean => {
    const ha = hiAt(a);
    const hb = hiAt(b);
    return ha < hb || (ha === hb && loAt(a) < loAt(b));
  };
  const siftUp = (h: number[], k: number): void => {
    while (k > 0) {
      const p = (k - 1) >> 1;
      if (!less(h[k]!, h[p]!)) return;
      [h[k], h[p]] = [h[p]!, h[k]!];
      k = p;
    }
  };
  const siftDown = (h: number[], k: number): void => {
    for (;;) {
      const l = 2 * k + 1;
      if (l >= h.length) return;
      const r = l + 1;
      const c = r < h.length && less(h[r]!, h[l]!) ? r : l;
      if (!less(h[c]!, h[k]!)) return;
      [h[k], h[c]] = [h[c]!, h[k]!];
      k = c;
    }
  };
  const forgetLeast = (): void => {
    if (heap === undefined) {
      heapTime = timeAt(first); // releaseFront() keeps slot `first` live while any is
      heap = [];
      for (let g = first; g < next; g++) {
        const t = timeAt(g);
        if (t === heapTime) heap.push(g);
        else if (!Number.isNaN(t)) break;
      }
      for (let k = (heap.length >> 1) - 1; k >= 0; k--) siftDown(heap, k);
    }
    const g = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      siftDown(heap, 0);
    } else heap = undefined;
    forget(g);
    releaseFront();
  };

  // The segment being appended to, with its key (no string built per event).
  let tail: { n: number; key: string; s: Segment } | undefined;
  const append = (hi: number, lo: number, ts: number): void => {
    const n = Math.floor(next / SEG);
    if (tail === undefined || tail.n !== n) {
      let s = segments.get(n);
      if (s === undefined) {
        s = newSegment();
        segments.set(n, s);
      }
      tail = { n, key: segKey(n), s };
    }
    const s = tail.s;
    const o = next % SEG;
    s.times[o] = ts;
    s.hashes[2 * o] = hi;
    s.hashes[2 * o + 1] = lo;
    if (heap !== undefined && ts === heapTime) {
      heap.push(next);
      siftUp(heap, heap.length - 1);
    }
    set.add(next);
    next++;
    live++;
    lastTime = ts;
    map.set(tail.key, s.bytes); // marks it dirty: the bytes changed in place
  };

  // Load: the head and segments, then ids of the earlier layout.
  const head = map.get(HEAD);
  const legacy: [string, number][] = [];
  if (Array.isArray(head)) {
    first = Number(head[0]);
    next = Number(head[1]);
  }
  for (const [k, v] of [...map.entries()]) {
    if (k === HEAD) continue;
    if (k.startsWith(SEG_PREFIX)) {
      const n = Number(k.slice(SEG_PREFIX.length));
      const s = segmentOf(v);
      // A segment wholly before `first` (its deletion not yet persisted) or damaged: not held.
      if (s === undefined || (n + 1) * SEG <= first || n * SEG >= next) map.delete(k);
      else {
        segments.set(n, s);
        if (s.bytes !== v) map.set(k, s.bytes); // a copy: the map holds the live bytes
      }
      continue;
    }
    // A value that is not a time (a damaged snapshot) sorts first: it is forgotten first.
    legacy.push([k, typeof v === "number" && !Number.isNaN(v) ? v : -Infinity]);
    map.delete(k);
  }
  // The live slots, a segment at a time: counted first, so that the hash set is sized once for
  // them (grown by doubling, it re-read every position's hash from the log: ~2M insertions at
  // 1M ids, ~0.4 s of a restart's CPU), then added with the hashes read in place.
  const lastSeg = first < next ? Math.floor((next - 1) / SEG) : -1;
  for (let n = Math.floor(first / SEG); n <= lastSeg; n++) {
    if (segments.has(n)) continue;
    // A missing segment (a damaged snapshot): an empty one, all forgotten.
    const fresh = newSegment();
    fresh.times.fill(NaN);
    segments.set(n, fresh);
  }
  const inSegments = (each: (s: Segment, n: number, from: number, to: number) => void) => {
    for (let n = Math.floor(first / SEG); n <= lastSeg; n++)
      each(segments.get(n)!, n, n * SEG < first ? first % SEG : 0, Math.min(SEG, next - n * SEG));
  };
  inSegments(({ times }, _, from, to) => {
    for (let o = from; o < to; o++) {
      const t = times[o]!;
      if (Number.isNaN(t)) continue;
      live++;
      lastTime = t;
    }
  });
  set.reserve(live + legacy.length);
  inSegments(({ times, hashes }, n, from, to) => {
    for (let o = from; o < to; o++)
      if (!Number.isNaN(times[o]!)) set.add(n * SEG + o, hashes[2 * o + 1]!);
  });
  releaseFront();
  if (legacy.length > 0) {
    legacy.sort((a, b) => (a[1] !== b[1] ? a[1] - b[1] : a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    for (const [id, ts] of legacy) {
      const h = hash64(id);
      if (!set.has(h.hi, h.lo)) append(h.hi, h.lo, ts >= lastTime ? ts : lastTime);
    }
    writeHead();
  }
  if (live > maxIds) {
    while (live > maxIds) forgetLeast();
    writeHead();
  }

  return {
    has(id) {
      const h = hash64(id);
      return set.has(h.hi, h.lo);
    },
    add(id, ts) {
      const h = hash64(id);
      if (set.has(h.hi, h.lo)) return false;
      append(h.hi, h.lo, ts >= lastTime ? ts : lastTime);
      while (live > maxIds) forgetLeast();
      writeHead();
      return true;
    },
    expireBefore(horizon) {
      if (first === next || !(timeAt(first) < horizon)) return;
      if (heap !== undefined && heapTime < horizon) heap = undefined; // its whole run goes
      // Slots before `first` are released: no need to mark them forgotten in their segment.
      while (first < next) {
        const t = timeAt(first);
        if (t >= horizon) break;
        if (!Number.isNaN(t)) {
          set.remove(first);
          live--;
        }
        first++;
        if (first % SEG === 0) {
          const n = first / SEG - 1;
          segments.delete(n);
          map.delete(segKey(n));
        }
      }
      releaseFront();
      writeHead();
    },
    get size() {
      return live;
    },
    get bytes() {
      return segments.size * SEG * 16 + set.bytes();
    },
    get growths() {
      return set.growths();
    },
  };
}
