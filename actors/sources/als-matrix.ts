import { memStore, type KeyStore } from "./store.js";

/**
 * The user × item matrix ALS trains on, in compressed sparse rows (by user) and columns (by
 * item). Typed arrays, not Maps: they cross to the training worker as transferable buffers and
 * cost 12 bytes per non-zero.
 */
export interface Ratings {
  users: string[];
  items: string[];
  /** CSR by user: row u's entries are [userPtr[u], userPtr[u+1]) of userCols/userVals. */
  userPtr: Int32Array;
  userCols: Int32Array;
  userVals: Float32Array;
  /** CSC by item: the same entries by item. */
  itemPtr: Int32Array;
  itemRows: Int32Array;
  itemVals: Float32Array;
}

/**
 * A user's row as stored: first-seen order of the user, the input point (events fed) of its
 * latest change, then item id and value pairs, flat (an object per row as a dictionary of items
 * held 900 B per user at 100k users against 540 B for a Map; a flat array is the smallest, and a
 * row's linear search is short: most users touch a handful of items).
 */
export type RatingRow = (string | number)[];

const pairs = (row: RatingRow) => (row.length - 2) / 2;

/** Where the matrix lives (the collaborative stage's state: one key per user, one per item). */
export interface RatingsStores {
  rows: KeyStore<RatingRow>;
  /** First-seen order of each item. */
  items: KeyStore<number>;
  /**
   * The matrix at a marked input point (a training point whose model is not there yet), copy on
   * write: the rows as they were at the point, of the users changed since, and (key "at") how
   * many users and items there were. So the matrix of the point can be built again after a
   * restart from a later snapshot. Absent: no marks.
   */
  marked?: KeyStore<RatingRow | { users: number; items: number }>;
}

/**
 * Accumulates (user, item, value) triples — summed per pair — and builds {@link Ratings} with
 * users and items in first-seen order (deterministic for a given input order; kept in the stores,
 * so a restored builder builds the same matrix).
 */
export function createRatingsBuilder(
  stores: RatingsStores = { rows: memStore(), items: memStore() },
) {
  const { rows, items } = stores;
  const marked = stores.marked as KeyStore<RatingRow> | undefined;
  const markedAt = () => stores.marked?.get(MARK) as { users: number; items: number } | undefined;
  let nnz = -1; // counted when first needed
  const countNnz = () => {
    let n = 0;
    for (const [, row] of rows.entries()) n += pairs(row);
    return n;
  };
  return {
    /**
     * Adds `value` to (user, item); `replace` sets it instead (explicit ratings: the latest wins).
     * `at`: the input point of the change (what fold-in compares with a model's point).
     */
    add(user: string, item: string, value: number, replace = false, at = 0) {
      let row = rows.get(user);
      if (row === undefined) row = [rows.size, at];
      else if (marked) {
        const m = markedAt();
        if (m && (row[0] as number) < m.users && marked.get(user) === undefined)
          marked.set(user, row.slice());
      }
      if (items.get(item) === undefined) items.set(item, items.size);
      let q = 2;
      while (q < row.length && row[q] !== item) q += 2;
      if (q < row.length) row[q + 1] = replace ? value : (row[q + 1] as number) + value;
      else {
        row.push(item, value);
        if (nnz >= 0) nnz++;
      }
      row[1] = at;
      rows.set(user, row);
    },
    get nnz() {
      if (nnz < 0) nnz = countNnz();
      return nnz;
    },
    /** The user's values by item id (fold-in), undefined if unknown. */
    row(user: string): ReadonlyMap<string, number> | undefined {
      const row = rows.get(user);
      if (!row) return undefined;
      const m = new Map<string, number>();
      for (let q = 2; q < row.length; q += 2) m.set(row[q] as string, row[q + 1] as number);
      return m;
    },
    /** The input point of the user's latest change; -1 if unknown. */
    changedAt: (user: string): number => (rows.get(user)?.[1] as number | undefined) ?? -1,
    /**
     * Marks the current point (a training point): until `unmark`, rows changed are copied first,
     * so `buildMarked` builds the matrix of this point. Needs `stores.marked`.
     */
    mark() {
      if (!stores.marked) return;
      for (const k of [...stores.marked.keys()]) stores.marked.delete(k);
      stores.marked.set(MARK, { users: rows.size, items: items.size });
    },
    unmark() {
      if (!stores.marked) return;
      for (const k of [...stores.marked.keys()]) stores.marked.delete(k);
    },
    /** Whether a point is marked. */
    isMarked: () => markedAt() !== undefined,
    /** The matrix at the marked point (undefined: none marked). */
    buildMarked(): Ratings | undefined {
      const m = markedAt();
      if (!m) return undefined;
      const at: [string, RatingRow][] = [];
      for (const [u, row] of rows.entries())
        if ((row[0] as number) < m.users) at.push([u, marked!.get(u) ?? row]);
      return build(at, m.items);
    },
    build(): Ratings {
      const r = build([...rows.entries()], items.size);
      nnz = r.userCols.length;
      return r;
    },
  };

  /** The matrix of `entries` (rows), users in first-seen order, the first `nItems` items. */
  function build(entries: [string, RatingRow][], nItems: number): Ratings {
    const byOrder = entries.sort((a, b) => (a[1][0] as number) - (b[1][0] as number));
    const users = byOrder.map(([u]) => u);
    const itemList: string[] = new Array<string>(nItems);
    for (const [item, x] of items.entries()) if (x < nItems) itemList[x] = item;
    let total = 0;
    for (const [, row] of byOrder) total += pairs(row);
    const userPtr = new Int32Array(users.length + 1);
    const userCols = new Int32Array(total);
    const userVals = new Float32Array(total);
    const counts = new Int32Array(itemList.length + 1);
    let p = 0;
    for (let u = 0; u < byOrder.length; u++) {
      userPtr[u] = p;
      const row = byOrder[u]![1];
      const entries: [number, number][] = [];
      for (let q = 2; q < row.length; q += 2)
        entries.push([items.get(row[q] as string)!, row[q + 1] as number]);
      entries.sort((a, b) => a[0] - b[0]);
      for (const [i, v] of entries) {
        userCols[p] = i;
        userVals[p++] = v;
        counts[i + 1]!++;
      }
    }
    userPtr[users.length] = p;
    const itemPtr = new Int32Array(itemList.length + 1);
    for (let i = 0; i < itemList.length; i++) itemPtr[i + 1] = itemPtr[i]! + counts[i + 1]!;
    const fill = itemPtr.slice(0, itemList.length);
    const itemRows = new Int32Array(total);
    const itemVals = new Float32Array(total);
    for (let u = 0; u < users.length; u++)
      for (let q = userPtr[u]!; q < userPtr[u + 1]!; q++) {
        const i = userCols[q]!;
        const at = fill[i]!++;
        itemRows[at] = u;
        itemVals[at] = userVals[q]!;
      }
    return {
      users,
      items: itemList,
      userPtr,
      userCols,
      userVals,
      itemPtr,
      itemRows,
      itemVals,
    };
  }
}

/** The key of the marked point's sizes (never a user id: ids are not empty). */
const MARK = "";

export type RatingsBuilder = ReturnType<typeof createRatingsBuilder>;
