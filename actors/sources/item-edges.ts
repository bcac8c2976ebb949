import {
  readNeighbourBytes,
  writeNeighbourBytes,
  type Edge,
  type NeighbourBytes,
} from "./neighbours.js";

/**
 * Co-visitation's live neighbour lists (covisit.ts): each pair of an event (~13 per event at bench
 * step 2) looks up an edge in two items' lists and adds to it. As Maps of id strings to `[s, ts]`
 * arrays each update walked a hash chain, compared id strings (new objects after every decode),
 * and read the edge's array: cache misses on a graph of tens of MB, and an array allocated per new
 * edge (GC). Here an item's list is three parallel typed arrays (neighbour number, weight, time)
 * with an open-addressed index of small integer keys: fewer memory reads per update, nothing
 * allocated per edge. The numbers are per co-visitation instance and never persisted: the
 * stored form is neighbours.ts's (ids as strings), which both forms read and write.
 *
 * Entries keep the order a Map would (appended when new; pruning keeps the survivors' order), so
 * the stored bytes are the ones the Map form wrote.
 */

/** Item ids as small integers, per co-visitation instance (in memory only). */
export interface ItemIds {
  /** The id of each number. */
  readonly names: string[];
  /** The number of an id (a new one is numbered next). */
  idOf(name: string): number;
}

export function createItemIds(): ItemIds {
  const ids = new Map<string, number>();
  const names: string[] = [];
  return {
    names,
    idOf(name) {
      let x = ids.get(name);
      if (x === undefined) {
        x = names.length;
        ids.set(name, x);
        names.push(name);
      }
      return x;
    },
  };
}

const MIN_CAP = 8;
/** Fibonacci hashing of a neighbour number into the index. */
const GOLDEN = 0x9e3779b1;
/** Doubles per entry in `d`: neighbour number, weight, time. */
const STRIDE = 3;

/**
 * One item's neighbours: entry x (0 <= x < size) is neighbour `keyOf(x)` with weight `sOf(x)` as
 * of time `tsOf(x)`, held together in one Float64Array (`d[3x]`, `d[3x + 1]`, `d[3x + 2]`). A
 * class (not a factory) so that a stored value is told apart by `instanceof`.
 *
 * Why one array: an update of an edge (covisit.ts `link`) reads the index slot, then the entry's
 * number, weight and time. As three typed arrays (and the index) that was up to four typed-array
 * objects and four data lines per update, each a likely cache miss on a graph of tens of MB;
 * here the entry's three doubles share a line, and two typed arrays are touched.
 */
export class ItemEdges implements NeighbourBytes {
  size = 0;
  /** Entries: neighbour number, weight, time, STRIDE doubles each. */
  d: Float64Array;
  /** Open addressing, linear probing: entry + 1 per slot, 0 free; at most half full. */
  private index: Int32Array;
  private shift: number;

  constructor(
    readonly ids: ItemIds,
    cap = MIN_CAP,
  ) {
    let c = MIN_CAP;
    while (c < cap) c *= 2;
    this.d = new Float64Array(STRIDE * c);
    this.index = new Int32Array(2 * c);
    this.shift = 32 - Math.log2(2 * c);
  }

  /** Neighbour number of entry x. */
  keyOf(x: number): number {
    return this.d[STRIDE * x]!;
  }
  /** Weight of entry x (as of its time). */
  sOf(x: number): number {
    return this.d[STRIDE * x + 1]!;
  }
  /** Time of entry x's weight. */
  tsOf(x: number): number {
    return this.d[STRIDE * x + 2]!;
  }

  /** The entry of neighbour `b`, or -1. */
  find(b: number): number {
    const index = this.index;
    const d = this.d;
    const mask = index.length - 1;
    for (let h = Math.imul(b, GOLDEN) >>> this.shift; ; h = (h + 1) & mask) {
      const e = index[h]!;
      if (e === 0) return -1;
      if (d[STRIDE * (e - 1)] === b) return e - 1;
    }
  }

  /** Appends neighbour `b` (not held) with weight s at ts. */
  push(b: number, s: number, ts: number): void {
    if (STRIDE * this.size === this.d.length) this.grow();
    const x = this.size++;
    const d = this.d;
    d[STRIDE * x] = b;
    d[STRIDE * x + 1] = s;
    d[STRIDE * x + 2] = ts;
    this.place(b, x);
  }

  /** Keeps the entries x with keep[x] (their order kept), dropping the rest. */
  retain(keep: Uint8Array): void {
    const d = this.d;
    let n = 0;
    for (let x = 0; x < this.size; x++) {
      if (!keep[x]) continue;
      if (n !== x) {
        d[STRIDE * n] = d[STRIDE * x]!;
        d[STRIDE * n + 1] = d[STRIDE * x + 1]!;
        d[STRIDE * n + 2] = d[STRIDE * x + 2]!;
      }
      n++;
    }
    this.size = n;
    this.index.fill(0);
    for (let x = 0; x < n; x++) this.place(d[STRIDE * x]!, x);
  }

  toBytes(): Uint8Array {
    const names = this.ids.names;
    const d = this.d;
    return writeNeighbourBytes(
      this.size,
      (x) => names[d[STRIDE * x]!]!,
      (x) => d[STRIDE * x + 1]!,
      (x) => d[STRIDE * x + 2]!,
    );
  }

  /** The entries with ids (memory stores, `reco eval`: as a Neighbours Map's JSON). */
  toJSON(): [string, Edge][] {
    const out: [string, Edge][] = [];
    const d = this.d;
    for (let x = 0; x < this.size; x++)
      out.push([this.ids.names[d[STRIDE * x]!]!, [d[STRIDE * x + 1]!, d[STRIDE * x + 2]!]]);
    return out;
  }

  private place(b: number, x: number): void {
    const index = this.index;
    const mask = index.length - 1;
    let h = Math.imul(b, GOLDEN) >>> this.shift;
    while (index[h] !== 0) h = (h + 1) & mask;
    index[h] = x + 1;
  }

  private grow(): void {
    const c = (2 * this.d.length) / STRIDE;
    const d = new Float64Array(STRIDE * c);
    d.set(this.d);
    this.d = d;
    this.index = new Int32Array(2 * c);
    this.shift = 32 - Math.log2(2 * c);
    for (let x = 0; x < this.size; x++) this.place(d[STRIDE * x]!, x);
  }
}

/** Entries (a Neighbours Map, JSON entries) as ItemEdges numbered by `ids`, in the same order. */
export function toItemEdges(entries: Iterable<[string, Edge]>, ids: ItemIds): ItemEdges {
  const m = new ItemEdges(ids);
  for (const [id, e] of entries) m.push(ids.idOf(id), e[0], e[1]);
  return m;
}

/**
 * The codec of a co-visitation instance's neighbour map, decoding straight to the live form
 * numbered by that instance's `ids` (pass the same `ids` to createCovisit).
 */
export function itemEdgesCodec(ids: ItemIds) {
  return {
    encode: (m: ItemEdges): Uint8Array => m.toBytes(),
    decode: (stored: unknown): ItemEdges => {
      if (!(stored instanceof Uint8Array))
        return toItemEdges(
          typeof stored === "string"
            ? (JSON.parse(stored) as [string, Edge][])
            : (stored as [string, Edge][]),
          ids,
        );
      let m: ItemEdges | undefined;
      readNeighbourBytes(
        stored,
        (n) => (m = new ItemEdges(ids, n)),
        (id, s, ts) => m!.push(ids.idOf(id), s, ts),
      );
      return m!;
    },
  };
}
