import { hashString, sameKey } from "../../state/cold-index.js";

/**
 * A map from string keys to small non-negative integers, held in typed arrays: the keys' UTF-8
 * bytes in one growing buffer, an open-addressing table of (hash, key offset, value). A key costs
 * its bytes plus ~30 B, where a JS Map entry and its key string cost ~100 B (interest-ranking's
 * per-user aggregates: 102 B per user at 100k users in bench step 7's heap snapshot). In memory
 * only (derived state).
 */
export interface PackedKeys {
  get(k: string): number | undefined;
  /** `v`: an integer from −2^31 to 2^31 − 1. */
  set(k: string, v: number): void;
  delete(k: string): boolean;
  readonly size: number;
}

const EMPTY = -1;
const TOMB = -2;

export function createPackedKeys(): PackedKeys {
  let cap = 16;
  let hashes = new Uint32Array(cap);
  let offs = new Int32Array(cap).fill(EMPTY);
  let vals = new Int32Array(cap);
  let count = 0;
  let used = 0; // live + tombstones
  let arena = Buffer.allocUnsafe(1024);
  let top = 0;
  let garbage = 0;

  const keyBytes = (off: number) => arena[off]! | (arena[off + 1]! << 8);
  const find = (k: string, h: number): number => {
    const mask = cap - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const off = offs[i]!;
      if (off === EMPTY) return -1 - i; // where it would go
      if (off >= 0 && hashes[i] === h && sameKey(k, arena, off)) return i;
    }
  };
  /** A table for `min` keys at most half full, the keys' bytes copied anew (garbage goes). */
  const rebuild = (min: number) => {
    let n = 16;
    while (n * 0.5 < min) n *= 2;
    const oh = hashes;
    const oo = offs;
    const ov = vals;
    const oa = arena;
    hashes = new Uint32Array(n);
    offs = new Int32Array(n).fill(EMPTY);
    vals = new Int32Array(n);
    arena = Buffer.allocUnsafe(Math.max(1024, top - garbage + 1024));
    top = 0;
    garbage = 0;
    cap = n;
    used = count;
    const mask = n - 1;
    for (let x = 0; x < oo.length; x++) {
      const off = oo[x]!;
      if (off < 0) continue;
      const len = 2 + (oa[off]! | (oa[off + 1]! << 8));
      oa.copy(arena, top, off, off + len);
      let i = oh[x]! & mask;
      while (offs[i] !== EMPTY) i = (i + 1) & mask;
      hashes[i] = oh[x]!;
      offs[i] = top;
      vals[i] = ov[x]!;
      top += len;
    }
  };

  return {
    get(k) {
      if (count === 0) return undefined;
      const i = find(k, hashString(k));
      return i < 0 ? undefined : vals[i]!;
    },
    set(k, v) {
      const h = hashString(k);
      let i = find(k, h);
      if (i >= 0) {
        vals[i] = v;
        return;
      }
      if ((used + 1) * 4 > cap * 3) {
        rebuild(count + 1);
        i = find(k, h);
      }
      i = -1 - i;
      const n = Buffer.byteLength(k);
      if (n > 0xffff) throw new Error(`key of ${n} bytes (max 65,535)`);
      if (top + 2 + n > arena.length) {
        const grown = Buffer.allocUnsafe(Math.max(arena.length * 2, top + 2 + n));
        arena.copy(grown, 0, 0, top);
        arena = grown;
      }
      arena[top] = n & 0xff;
      arena[top + 1] = n >>> 8;
      arena.write(k, top + 2, "utf8");
      hashes[i] = h;
      offs[i] = top;
      vals[i] = v;
      top += 2 + n;
      count++;
      used++;
    },
    delete(k) {
      if (count === 0) return false;
      const i = find(k, hashString(k));
      if (i < 0) return false;
      garbage += 2 + keyBytes(offs[i]!);
      offs[i] = TOMB;
      count--;
      // Deleted keys' bytes and tombstones go when they are most of what is held.
      if (garbage > 1 << 16 && garbage * 2 > top) rebuild(count);
      return true;
    },
    get size() {
      return count;
    },
  };
}

/**
 * Slots of two int32s each in one growing Int32Array, freed slots reused (a free slot's first
 * int links the next free one): where a PackedKeys value that needs two numbers points (as a
 * negative value, −1 − slot). 8 B a slot, where an object holding the two costs ~100 B.
 */
export interface IntPairs {
  /** A new slot holding (a, b). */
  add(a: number, b: number): number;
  set(slot: number, a: number, b: number): void;
  first(slot: number): number;
  second(slot: number): number;
  free(slot: number): void;
  /** Slots in use. */
  readonly size: number;
}

export function createIntPairs(): IntPairs {
  let data = new Int32Array(32);
  let top = 0; // slots ever handed out
  let freeHead = -1;
  let size = 0;
  return {
    add(a, b) {
      let slot = freeHead;
      if (slot >= 0) freeHead = data[2 * slot]!;
      else {
        if (2 * top + 2 > data.length) {
          const grown = new Int32Array(data.length * 2);
          grown.set(data);
          data = grown;
        }
        slot = top++;
      }
      data[2 * slot] = a;
      data[2 * slot + 1] = b;
      size++;
      return slot;
    },
    set(slot, a, b) {
      data[2 * slot] = a;
      data[2 * slot + 1] = b;
    },
    first: (slot) => data[2 * slot]!,
    second: (slot) => data[2 * slot + 1]!,
    free(slot) {
      data[2 * slot] = freeHead;
      freeHead = slot;
      size--;
    },
    get size() {
      return size;
    },
  };
}
