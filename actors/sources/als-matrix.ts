import type { Ratings } from "./als-matrix-rows.js";
import { createMatrixRows, grown, type MatrixRows } from "./als-matrix-rows.js";
import { memStore, type KeyStore } from "./store.js";

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
 *
 * The stores are the state; the matrix itself is kept up to date beside them as rows change
 * (als-matrix-rows.ts), so a training copies typed arrays instead of decoding every stored row
 * again. A restored builder reads the stored rows into it once, at its first build.
 */
export function createRatingsBuilder(
  stores: RatingsStores = { rows: memStore(), items: memStore() },
) {
  const { rows, items } = stores;
  const marked = stores.marked as KeyStore<RatingRow> | undefined;
  const markedAt = () => stores.marked?.get(MARK) as { users: number; items: number } | undefined;
  /**
   * The matrix as rows change: undefined until read from the stores (a restored builder, at its
   * first build); null if the stores' first-seen orders are not 0..n-1 (never so when a builder
   * wrote them), which then builds from the stored rows every time, as before. `items` is asked
   * first: a row holds an item, and a restored stage's rows are a lazily indexed map whose size
   * indexes every user's key (~190 ms with 1M users, before a restart's first right answers).
   */
  let held: MatrixRows | null | undefined =
    items.size === 0 && rows.size === 0 ? createMatrixRows() : undefined;
  const matrix = (): MatrixRows | null => {
    if (held === undefined) held = readRows(rows, items);
    return held;
  };
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
      if (row === undefined) {
        row = [rows.size, at];
        if (held?.users === rows.size) held.addUser(user);
        else if (held) held = null;
      } else if (marked) {
        const m = markedAt();
        if (m && (row[0] as number) < m.users && marked.get(user) === undefined)
          marked.set(user, row.slice());
      }
      let i = items.get(item);
      if (i === undefined) {
        i = items.size;
        items.set(item, i);
        if (held?.items === i) held.addItem(item);
        else if (held) held = null;
      }
      let q = 2;
      while (q < row.length && row[q] !== item) q += 2;
      if (q < row.length) row[q + 1] = replace ? value : (row[q + 1] as number) + value;
      else {
        row.push(item, value);
        if (nnz >= 0) nnz++;
      }
      row[1] = at;
      rows.set(user, row);
      held?.set(row[0] as number, i, row[q + 1] as number);
    },
    get nnz() {
      if (held) return held.nnz;
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
      const mx = matrix();
      if (!mx) return buildRows(items, () => markedEntries(rows, marked!, m.users), m.items);
      // The held rows, but the marked copies of those changed since the point.
      const own = new Map<number, { cols: Int32Array; vals: Float32Array }>();
      for (const [u, row] of marked!.entries())
        if (u !== MARK && (row[0] as number) < m.users)
          own.set(row[0] as number, sortedRow(row, items));
      return mx.ratings(m.users, m.items, own);
    },
    build(): Ratings {
      const mx = matrix();
      const r = mx ? mx.ratings(mx.users, mx.items) : buildRows(items, () => rows.entries());
      nnz = r.userCols.length;
      return r;
    },
  };
}

/**
 * The matrix built from the stored rows alone (what a builder's incremental matrix must equal:
 * test/als-matrix-incremental), at the marked point with `marked`.
 */
export function ratingsFromStores(stores: RatingsStores, marked = false): Ratings | undefined {
  if (!marked) return buildRows(stores.items, () => stores.rows.entries());
  const m = stores.marked?.get(MARK) as { users: number; items: number } | undefined;
  if (!m) return undefined;
  const copies = stores.marked as KeyStore<RatingRow>;
  return buildRows(stores.items, () => markedEntries(stores.rows, copies, m.users), m.items);
}

/** The rows of the first `users` users as they were at the marked point. */
function* markedEntries(
  rows: KeyStore<RatingRow>,
  marked: KeyStore<RatingRow>,
  users: number,
): Iterable<[string, RatingRow]> {
  for (const [u, row] of rows.entries())
    if ((row[0] as number) < users) yield [u, marked.get(u) ?? row];
}

/** A stored row's entries as item indexes ascending and their values. */
function sortedRow(row: RatingRow, items: KeyStore<number>) {
  const n = pairs(row);
  const order = Array.from({ length: n }, (_, e) => e);
  const at = order.map((e) => items.get(row[2 + 2 * e] as string)!);
  order.sort((a, b) => at[a]! - at[b]!);
  return {
    cols: Int32Array.from(order, (e) => at[e]!),
    vals: Float32Array.from(order, (e) => row[3 + 2 * e] as number),
  };
}

/**
 * The stored rows read into a {@link MatrixRows} (a restored builder's first build), or null if
 * their first-seen orders or the items' indexes are not 0..n-1. One pass, each row decoded once
 * and dropped (a text map's scan peeks).
 */
function readRows(rows: KeyStore<RatingRow>, items: KeyStore<number>): MatrixRows | null {
  const mx = createMatrixRows();
  const nItems = items.size;
  const itemIds = new Array<string | undefined>(nItems);
  for (const [item, x] of items.entries()) {
    if (!Number.isInteger(x) || x < 0 || x >= nItems || itemIds[x] !== undefined) return null;
    itemIds[x] = item;
  }
  for (const id of itemIds) mx.addItem(id!);
  const nUsers = rows.size;
  const seen = new Uint8Array(nUsers);
  for (const [u, row] of rows.entries()) {
    const o = row[0] as number;
    if (!Number.isInteger(o) || o < 0 || o >= nUsers || seen[o]) return null;
    seen[o] = 1;
    mx.addUser(u, o);
    for (let q = 2; q < row.length; q += 2) {
      const i = items.get(row[q] as string);
      if (i === undefined) return null;
      mx.set(o, i, row[q + 1] as number);
    }
  }
  return mx;
}

/**
 * The matrix of the rows `entries` gives, users in first-seen order, the first `nItems` items.
 * One pass over the rows, each decoded once and dropped: their entries go straight into typed
 * arrays (~8 B per non-zero). Holding every decoded row, a tuple per user and an entry pair per
 * non-zero until the end (as before) was ~150 B per user of garbage at each build, which set the
 * heap's high-water mark (bench step 7: a training runs at most measures).
 */
function buildRows(
  items: KeyStore<number>,
  entries: () => Iterable<[string, RatingRow]>,
  nItems = items.size,
): Ratings {
  const itemList: string[] = new Array<string>(nItems);
  for (const [item, x] of items.entries()) if (x < nItems) itemList[x] = item;
  // In the order `entries` gives: each user's id, first-seen order, and entries (sorted by item).
  const ids: string[] = [];
  let order = new Float64Array(1024);
  let from = new Int32Array(1025);
  let cols = new Int32Array(4096);
  let vals = new Float32Array(4096);
  let total = 0;
  for (const [u, row] of entries()) {
    const v = ids.length;
    ids.push(u);
    if (v + 1 >= from.length) {
      order = grown(order, new Float64Array(2 * from.length));
      from = grown(from, new Int32Array(2 * from.length));
    }
    order[v] = row[0] as number;
    from[v] = total;
    const m = pairs(row);
    if (total + m > cols.length) {
      const cap = Math.max(2 * cols.length, total + m);
      cols = grown(cols, new Int32Array(cap));
      vals = grown(vals, new Float32Array(cap));
    }
    for (let q = 2; q < row.length; q += 2) {
      // Insertion by item index: rows are short (a handful of items for most users).
      const i = items.get(row[q] as string)!;
      const value = row[q + 1] as number;
      let at = total++;
      while (at > from[v]! && cols[at - 1]! > i) {
        cols[at] = cols[at - 1]!;
        vals[at] = vals[at - 1]!;
        at--;
      }
      cols[at] = i;
      vals[at] = value;
    }
  }
  const nUsers = ids.length;
  from[nUsers] = total;
  // Users by first-seen order (ties, which a builder never makes, in the order given).
  const perm = byOrder(order, nUsers);
  const users = new Array<string>(nUsers);
  const userPtr = new Int32Array(nUsers + 1);
  const userCols = new Int32Array(total);
  const userVals = new Float32Array(total);
  const counts = new Int32Array(itemList.length + 1);
  let p = 0;
  for (let u = 0; u < nUsers; u++) {
    const v = perm[u]!;
    users[u] = ids[v]!;
    userPtr[u] = p;
    for (let q = from[v]!; q < from[v + 1]!; q++) {
      const i = cols[q]!;
      userCols[p] = i;
      userVals[p++] = vals[q]!;
      counts[i + 1]!++;
    }
  }
  userPtr[nUsers] = p;
  const itemPtr = new Int32Array(itemList.length + 1);
  for (let i = 0; i < itemList.length; i++) itemPtr[i + 1] = itemPtr[i]! + counts[i + 1]!;
  const fill = itemPtr.slice(0, itemList.length);
  const itemRows = new Int32Array(total);
  const itemVals = new Float32Array(total);
  for (let u = 0; u < nUsers; u++)
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

/**
 * The indexes 0..n-1 of `order` sorted by its values, ties in index order (a stable sort). The
 * first-seen orders of a builder's rows are 0..n-1 (or the first n of them): placed directly.
 */
function byOrder(order: Float64Array, n: number): Int32Array {
  const perm = new Int32Array(n).fill(-1);
  let direct = true;
  for (let v = 0; v < n && direct; v++) {
    const o = order[v]!;
    if (Number.isInteger(o) && o >= 0 && o < n && perm[o] === -1) perm[o] = v;
    else direct = false;
  }
  if (direct) return perm;
  const idx = Array.from({ length: n }, (_, v) => v);
  idx.sort((a, b) => order[a]! - order[b]! || a - b);
  return Int32Array.from(idx);
}

/** The key of the marked point's sizes (never a user id: ids are not empty). */
const MARK = "";

export type RatingsBuilder = ReturnType<typeof createRatingsBuilder>;
