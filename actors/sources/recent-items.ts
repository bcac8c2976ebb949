import type { ItemIds } from "./item-edges.js";

/** A user's recent item as stored: item, time, weight, session id (null: none). */
export type Recent = [i: string, ts: number, w: number, sess: string | null];

/**
 * Co-visitation's live form of a user's recent items (covisit.ts `add` pairs each event with
 * them): the items' numbers (item-edges.ts, per co-visitation instance), times and weights in
 * typed arrays, oldest first. As stored (and in memory before) each item was an array
 * `[id, ts, w, sess]`: an event read ~15 of them in bench step 2, each a separate array with its
 * time in a separate heap number, and looked its id's number up in a Map for every pair; those
 * reads were ~20% of `add`'s time (line profile of bench/sources-micro.ts). The stored form is
 * unchanged: `toJSON` gives those arrays (user-value-bytes.ts writes them, JSON text maps print
 * them), and a stored list is made live again on its first change (`recentItems`).
 */
export class RecentItems {
  size = 0;
  /** Item numbers (`ids`). */
  readonly nums: Int32Array;
  readonly ts: Float64Array;
  readonly w: Float64Array;
  /** Session ids (null: none). */
  readonly sess: (string | null)[];

  constructor(
    readonly ids: ItemIds,
    /** Items held at most (the list's cap, plus the one added before the oldest is dropped). */
    readonly cap: number,
  ) {
    this.nums = new Int32Array(cap);
    this.ts = new Float64Array(cap);
    this.w = new Float64Array(cap);
    this.sess = new Array<string | null>(cap).fill(null);
  }

  /** Removes entry x, keeping the order of the rest. */
  remove(x: number): void {
    const n = this.size;
    for (let y = x + 1; y < n; y++) {
      this.nums[y - 1] = this.nums[y]!;
      this.ts[y - 1] = this.ts[y]!;
      this.w[y - 1] = this.w[y]!;
      this.sess[y - 1] = this.sess[y]!;
    }
    this.sess[n - 1] = null;
    this.size = n - 1;
  }

  /** Appends an item (the list has room: size < cap). */
  push(num: number, ts: number, w: number, sess: string | null): void {
    const x = this.size++;
    this.nums[x] = num;
    this.ts[x] = ts;
    this.w[x] = w;
    this.sess[x] = sess;
  }

  /** The stored form: `[id, ts, w, sess]` per item, oldest first. */
  toJSON(): Recent[] {
    const out: Recent[] = [];
    for (let x = 0; x < this.size; x++) out.push(this.entry(x));
    return out;
  }

  /** Item `x` as stored, [id, ts, w, sess]: written into `row` when given (reused rows). */
  entry(x: number, row: unknown[] = new Array<unknown>(4)): Recent {
    row[0] = this.ids.names[this.nums[x]!]!;
    row[1] = this.ts[x]!;
    row[2] = this.w[x]!;
    row[3] = this.sess[x]!;
    return row as Recent;
  }
}

/**
 * A user's recent items as the live form numbered by `ids`, with room for `cap` items and one
 * more than it holds: `v` itself when it is one already, else a conversion of the stored form
 * (or of another numbering's).
 */
export function recentItems(
  v: RecentItems | Recent[] | undefined,
  ids: ItemIds,
  cap: number,
): RecentItems {
  if (v instanceof RecentItems && v.ids === ids && v.cap >= cap && v.cap > v.size) return v;
  const list = v === undefined ? [] : v instanceof RecentItems ? v.toJSON() : v;
  const out = new RecentItems(ids, Math.max(cap, list.length + 1));
  for (const r of list) out.push(ids.idOf(r[0]), r[1], r[2], r[3]);
  return out;
}
