import { Packr } from "msgpackr";
import type { ValueCodec } from "../../runtime/index.js";
import { keyOfTail } from "./interest-ranking-keys.js";

/**
 * interest-ranking's aggregates: the window cells as stored, each user's interactions per main
 * category and purchases, and the top categories (ties by name) a profile is made of.
 */

/**
 * A window cell as persisted: key (w, t, u, i) as interest-ranking-keys.ts writes it, value
 * [count, main category].
 */
export type Cell = [number, string];

/**
 * Cells as bytes (state/cold-index.ts: a cold cell costs its record, ~60 B, where a plain map's
 * entry, key string and [count, category] array cost ~200 B): MessagePack (msgpackr, the hops'
 * codec) of the pair, 3 B plus the category's UTF-8 for a small count. Bytes of the layout
 * before (a u8 form 0 or 1, the count as u32 or float64, the category; never a MessagePack pair,
 * which starts with 0x92) and snapshots of the plain map (JSON arrays) still load, and move to
 * MessagePack at the next snapshot that writes the cell.
 */
export const cellPackr = new Packr({ useRecords: false });
export const MSGPACK_PAIR = 0x92;
export const cellCodec: ValueCodec<Cell> = {
  encode: ([n, c]) => cellPackr.pack([n, c]),
  decode(stored) {
    if (Array.isArray(stored)) return stored as Cell;
    if (typeof stored === "string") return JSON.parse(stored) as Cell;
    const v = stored as Uint8Array;
    if (v[0] === MSGPACK_PAIR) return cellPackr.unpack(v) as Cell;
    const b = Buffer.from(v.buffer, v.byteOffset, v.length);
    return b[0] === 0
      ? [b.readUInt32LE(1), b.toString("utf8", 5)]
      : [b.readDoubleLE(1), b.toString("utf8", 9)];
  },
};

/**
 * A user's aggregates, held for every user with a live cell, so kept small: two Maps per user
 * (categories and purchases, most users having none) were ~490 of the ~2,500 bytes of live heap
 * per user at 100k users (heap snapshot of bench step 7). Categories are a flat array of pairs
 * (a user has a few), purchases a flat array only once the user has one (two Maps, items and
 * their windows, were ~250 B more per user with a purchase). A user with one or two categories
 * and no purchase (most of them) is held as a number instead ({@link PACKED}).
 */
export interface UserAgg {
  /** Interactions per main category over the live windows: [category, count, ...], unordered. */
  cats: (string | number)[];
  /**
   * The live purchase cells as [item, window start, ...] (a user has a few; a cell's count does
   * not matter here, only that it is above 0), unordered; undefined while there are none.
   */
  pur: (string | number)[] | undefined;
  /** The profile's `pur` list, built when asked and dropped when `pur` changes (never mutated). */
  purList: [string, number][] | undefined;
}

/**
 * Adds `delta` to category `c` of a flat pairs array; a count reaching 0 leaves it. Returns the
 * array, a new one when the category is new: arrays grown by push get room for ~17 elements
 * (152 bytes) where a user mostly has one category.
 */
export function addToCategory(
  cats: (string | number)[],
  c: string,
  delta: number,
): (string | number)[] {
  for (let x = 0; x < cats.length; x += 2) {
    if (cats[x] !== c) continue;
    const v = (cats[x + 1] as number) + delta;
    if (v !== 0) cats[x + 1] = v;
    else {
      // Order is free (topOf ranks by count, then name): the last pair fills the hole.
      const last = cats.length - 2;
      cats[x] = cats[last]!;
      cats[x + 1] = cats[last + 1]!;
      cats.length = last;
    }
    return cats;
  }
  if (delta === 0) return cats;
  return cats.length === 0 ? [c, delta] : cats.concat([c, delta]);
}

/**
 * A user with one category and no purchases, packed: category number × PACKED + count (1 to
 * PACKED − 1), a small integer the users Map holds in its entry, where the object, its pairs
 * array and the category string cost ~150 B per user (heap snapshot of bench step 7 at 100k
 * users). Category numbers are per instance, for the first MAX_PACKED_CATEGORIES categories
 * (a small integer stays below 2^31); other users keep the object. A user with two categories
 * (each packable so) and no purchases is packed too: the two numbers in a slot of `pairs`
 * (packed-keys.ts IntPairs), the user's packed value −1 − slot. Bench step 7's 2× events point
 * (every user two events, mostly in two categories) held ~200 B of heap per such user as objects.
 */
export const PACKED = 2 ** 21;
export const MAX_PACKED_CATEGORIES = 1024;

/**
 * A window's cell keys, in the order first indexed: see `byWindow`. Each without its window's
 * start: listed as what follows its first comma (interest-ranking-keys.ts keyTail).
 */
export interface WindowKeys {
  /** Full runs of JOIN_KEYS key tails, each joined by "\n" (JSON holds no raw newline). */
  joined: string[];
  recent: string[];
}
export const JOIN_KEYS = 256;

/** The keys of window `w`. */
export function* keysOf(w: number, k: WindowKeys): Generator<string> {
  const keyOf = keyOfTail(w);
  for (const run of k.joined) for (const tail of run.split("\n")) yield keyOf(tail);
  for (const tail of k.recent) yield keyOf(tail);
}

/** What a profile says besides its user and progress. */
export interface ProfileParts {
  top: [string, number][];
  pur: [string, number][];
}

export const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
export const NO_PURCHASES: [string, number][] = [];

/** Whether category c with interest n ranks before y: interest descending, ties by name. */
export const ranksBefore = (c: string, n: number, y: [string, number]) =>
  n > y[1] || (n === y[1] && c < y[0]);

/**
 * The `k` best categories, ranked: a selection over a user's few categories (flat pairs), no
 * full sort; only the top ones get a pair array.
 */
export function topOf(cats: readonly (string | number)[], k: number): [string, number][] {
  const top: [string, number][] = [];
  for (let x = 0; x < cats.length; x += 2) {
    const c = cats[x] as string;
    const n = cats[x + 1] as number;
    if (top.length === k && !ranksBefore(c, n, top[k - 1]!)) continue;
    let at = top.length < k ? top.length : k - 1;
    while (at > 0 && ranksBefore(c, n, top[at - 1]!)) {
      top[at] = top[at - 1]!;
      at--;
    }
    top[at] = [c, n];
  }
  return top;
}

export function samePairs(a: readonly [string, number][], b: readonly [string, number][]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let x = 0; x < a.length; x++) {
    const p = a[x]!;
    const q = b[x]!;
    if (p[0] !== q[0] || p[1] !== q[1]) return false;
  }
  return true;
}
