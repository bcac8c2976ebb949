import type { Ratings } from "./als-matrix-rows.js";
import { byItem, createMatrixRows, grown, type MatrixRows } from "./als-matrix-rows.js";
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
   * The matrix at marked input points (training points whose model is not there yet), copy on
   * write in layers: a mark's layer holds the rows as they were at it of the users changed after
   * it and before the next mark, and (key `#<mark>`) how many users and items there were. So the
   * matrix of any mark still kept can be built, also after a restart from a later snapshot.
   * Absent: no marks.
   */
  marked?: KeyStore<RatingRow | LayerMeta>;
  /**
   * The stamp (`at`) each user's row and each item was first added at, by first-seen order, in
   * chunks (keys `u<k>`, `i<k>`: orders 1024k to 1024k + 1023): a user partition's matrix keeps
   * them so that the partitions' matrices gather in the order one instance fed everything would
   * have (als-gather.ts). Absent: not kept.
   */
  firstSeen?: KeyStore<number[]>;
}

/**
 * What changed in a builder's rows between two takes: the items added (in their index order,
 * with the stamp each was first added at) and the changed users' rows as they are now (in
 * first-seen order, with the stamp each user was first added at). Applied to a builder that
 * holds the rows as they were at the earlier take, it makes the same stores.
 */
export interface RowsDelta {
  items: [item: string, first: number][];
  /**
   * A user's whole row with their first stamp; or, `first` {@link CONTINUED}, more of the row of
   * the entry before (a long row cut in parts); or, `first` {@link PATCH}, the entries of the row
   * that changed, as `[order, at, q, item, value, ...]` (`q`: the entry's place in the row).
   */
  users: [user: string, first: number, row: RatingRow][];
}

/** A delta entry that continues the row of the entry before it (collaborative-copy.ts). */
export const CONTINUED = -2;
/** A delta entry that holds only a row's changed entries, by place (a long row sent once). */
export const PATCH = -3;

const CHUNK = 1024;

/** A mark's users and items (the first so many in first-seen order). */
export interface LayerMeta {
  users: number;
  items: number;
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
  options: {
    /** Keep the matrix beside the rows (a user partition that never builds need not). */
    hold?: boolean;
    /**
     * Track what changes for `takeChanges` (what a user partition sends the trainer's copy of
     * its rows at a crossing: collaborative-copy.ts), from the last take, which was at this
     * stamp: the users changed and items added after it are found in the stores at the first
     * take (a restored builder's), then tracked as they change. Absent: not tracked.
     */
    changesSince?: number;
  } = {},
) {
  const { rows, items } = stores;
  const marked = stores.marked as KeyStore<RatingRow> | undefined;
  const metaOf = (c: number) => stores.marked?.get(`#${c}`) as LayerMeta | undefined;
  /** The marks kept, ascending (read from the store once). */
  let marks: number[] | undefined;
  const markIds = (): number[] =>
    (marks ??= [...(stores.marked?.keys() ?? [])]
      .filter((k) => k.startsWith("#"))
      .map((k) => Number(k.slice(1)))
      .sort((a, b) => a - b));
  /**
   * The matrix as rows change: undefined until read from the stores (a restored builder, at its
   * first build); null if the stores' first-seen orders are not 0..n-1 (never so when a builder
   * wrote them), which then builds from the stored rows every time, as before. `items` is asked
   * first: a row holds an item, and a restored stage's rows are a lazily indexed map whose size
   * indexes every user's key (~190 ms with 1M users, before a restart's first right answers).
   */
  let held: MatrixRows | null | undefined =
    options.hold === false
      ? null
      : items.size === 0 && rows.size === 0
        ? createMatrixRows()
        : undefined;
  const matrix = (): MatrixRows | null => {
    if (held === undefined) held = readRows(rows, items);
    return held;
  };
  let nnz = -1; // counted when first needed
  const firstStore = stores.firstSeen;
  const firstOf = (kind: "u" | "i", x: number): number =>
    firstStore?.get(`${kind}${Math.floor(x / CHUNK)}`)?.[x % CHUNK] ?? -1;
  const noteFirst = (kind: "u" | "i", x: number, at: number) => {
    if (!firstStore) return;
    const key = `${kind}${Math.floor(x / CHUNK)}`;
    const chunk = firstStore.get(key) ?? [];
    chunk[x % CHUNK] = at;
    firstStore.set(key, chunk);
  };
  const tracking = options.changesSince !== undefined;
  /**
   * Users changed since the last take, with the places in their rows that changed (null: the
   * whole row, a user new since the take or found by a restore's scan), and items added (in
   * memory: see `changesSince`).
   */
  const changedUsers = new Map<string, Set<number> | null>();
  const addedItems = new Set<string>();
  /** Whether the stores were read for the changes before this builder (a restore's). */
  let scanned = !tracking || items.size === 0;
  /** A user's first row (empty), in first-seen order. */
  const newUser = (user: string, first: number): RatingRow => {
    noteFirst("u", rows.size, first);
    const row: RatingRow = [rows.size, first];
    if (held?.users === rows.size) held.addUser(user);
    else if (held) held = null;
    return row;
  };
  /** Keeps the user's row as it was at the newest mark, if it is in that mark's matrix. */
  const copyOnWrite = (user: string, row: RatingRow) => {
    if (!marked) return;
    const ids = markIds();
    const c = ids[ids.length - 1];
    if (c !== undefined && (row[0] as number) < metaOf(c)!.users) {
      const key = `${c}${SEP}${user}`;
      if (marked.get(key) === undefined) marked.set(key, row.slice());
    }
  };
  /** An item's index (the next one: first-seen order). */
  const newItem = (item: string, first: number): number => {
    const i = items.size;
    noteFirst("i", i, first);
    items.set(item, i);
    if (tracking) addedItems.add(item);
    if (held?.items === i) held.addItem(item);
    else if (held) held = null;
    return i;
  };
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
      const fresh = row === undefined;
      if (row === undefined) row = newUser(user, at);
      else copyOnWrite(user, row);
      let i = items.get(item);
      if (i === undefined) i = newItem(item, at);
      let q = 2;
      while (q < row.length && row[q] !== item) q += 2;
      if (tracking) {
        const had = changedUsers.get(user);
        if (had === undefined) changedUsers.set(user, fresh ? null : new Set([q]));
        else had?.add(q);
      }
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
     * Marks the current point as mark `c` (greater than every mark kept): from now on, rows
     * changed are copied first, so `buildAt(c)` builds the matrix of this point. Needs
     * `stores.marked`.
     */
    mark(c: number) {
      if (!stores.marked) return;
      stores.marked.set(`#${c}`, { users: rows.size, items: items.size });
      markIds().push(c);
    },
    /** Forgets the marks below `c` (`Infinity`: every mark). */
    dropBefore(c: number) {
      const ids = markIds();
      if (!stores.marked || ids.length === 0 || ids[0]! >= c) return;
      for (const k of [...stores.marked.keys()]) {
        const at = Number(k.startsWith("#") ? k.slice(1) : k.slice(0, k.indexOf(SEP)));
        if (at < c) stores.marked.delete(k);
      }
      marks = ids.filter((x) => x >= c);
    },
    /** The marks kept, ascending. */
    marks: (): readonly number[] => markIds(),
    /** The stamp the user of first-seen order `u` was first added at (-1: not kept). */
    userFirst: (u: number) => firstOf("u", u),
    /** The stamp the item of index `i` was first added at (-1: not kept). */
    itemFirst: (i: number) => firstOf("i", i),
    /** The matrix at mark `c` (undefined: not kept). */
    buildAt(c: number): Ratings | undefined {
      const at = rowsAtMark(stores, c);
      if (!at) return undefined;
      const mx = matrix();
      if (!mx) return buildRows(items, at.entries, at.meta.items);
      const own = new Map<number, { cols: Int32Array; vals: Float32Array }>();
      for (const row of at.copies.values())
        if ((row[0] as number) < at.meta.users) own.set(row[0] as number, sortedRow(row, items));
      return mx.ratings(at.meta.users, at.meta.items, own);
    },
    /** What changed since the last take (needs `changesSince`), and forgets it. */
    takeChanges(): RowsDelta {
      const delta: RowsDelta = { items: [], users: [] };
      if (!tracking) return delta;
      if (!scanned) {
        const since = options.changesSince!;
        for (const [u, row] of rows.entries())
          if ((row[1] as number) > since) changedUsers.set(u, null);
        for (const [item, x] of items.entries()) if (firstOf("i", x) > since) addedItems.add(item);
        scanned = true;
      }
      const added: [string, number][] = [];
      const users: [string, RatingRow, Set<number> | null][] = [];
      for (const id of addedItems) added.push([id, items.get(id)!]);
      // Read, not kept decoded: a crossing after a quiet spell finds every row changed since
      // the last one cold (at 100k users with two events each, ~90,000 rows held for two
      // snapshot intervals, at rest).
      for (const [id, places] of changedUsers)
        users.push([id, (rows.peek ? rows.peek(id) : rows.get(id))!, places]);
      addedItems.clear();
      changedUsers.clear();
      added.sort((a, b) => a[1] - b[1]);
      users.sort((a, b) => (a[1][0] as number) - (b[1][0] as number));
      for (const [id, x] of added) delta.items.push([id, firstOf("i", x)]);
      for (const [id, row, places] of users) {
        if (places === null) {
          delta.users.push([id, firstOf("u", row[0] as number), row.slice()]);
          continue;
        }
        // Only what changed: a long row's every entry at every crossing was quadratic (a
        // MovieLens rater of thousands of films rates across hundreds of hours).
        const patch: RatingRow = [row[0]!, row[1]!];
        for (const q of [...places].sort((a, b) => a - b)) patch.push(q, row[q]!, row[q + 1]!);
        delta.users.push([id, PATCH, patch]);
      }
      return delta;
    },
    /**
     * Applies another builder's delta (its rows as they are now, for users and items it added
     * in the same order as this one did: a copy fed every take of the original, in order).
     */
    apply(delta: RowsDelta) {
      for (const [item, first] of delta.items)
        if (items.get(item) === undefined) newItem(item, first);
      for (const [user, first, next] of delta.users) {
        if (first === PATCH) {
          const row = rows.get(user)!;
          copyOnWrite(user, row);
          for (let k = 2; k < next.length; k += 3) {
            const q = next[k] as number;
            const item = next[k + 1] as string;
            const value = next[k + 2] as number;
            // A place past the row's end is a new entry: they come in order.
            if (q < row.length) row[q + 1] = value;
            else {
              row.push(item, value);
              if (nnz >= 0) nnz++;
            }
            held?.set(row[0] as number, items.get(item)!, value);
          }
          row[1] = next[1]!;
          rows.set(user, row);
          continue;
        }
        if (first === CONTINUED) {
          const row = rows.get(user)!;
          for (let q = 2; q < next.length; q += 2) {
            row.push(next[q]!, next[q + 1]!);
            held?.set(row[0] as number, items.get(next[q] as string)!, next[q + 1] as number);
          }
          if (nnz >= 0) nnz += pairs(next);
          rows.set(user, row);
          continue;
        }
        const row = rows.get(user);
        if (row === undefined) newUser(user, first);
        else copyOnWrite(user, row);
        const had = row === undefined ? 0 : pairs(row);
        if (nnz >= 0) nnz += pairs(next) - had;
        const kept = next.slice();
        rows.set(user, kept);
        if (held)
          for (let q = 2; q < kept.length; q += 2)
            held.set(kept[0] as number, items.get(kept[q] as string)!, kept[q + 1] as number);
      }
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
 * test/als-matrix-incremental), at mark `c` when given.
 */
export function ratingsFromStores(stores: RatingsStores, c?: number): Ratings | undefined {
  if (c === undefined) return buildRows(stores.items, () => stores.rows.entries());
  const at = rowsAtMark(stores, c);
  return at && buildRows(stores.items, at.entries, at.meta.items);
}

/**
 * The rows as they were at mark `c`: the users then known, each with the copy in the earliest
 * layer from c on that holds one, else the current row. Undefined if c is not kept.
 */
function rowsAtMark(stores: RatingsStores, c: number) {
  const marked = stores.marked;
  const meta = marked?.get(`#${c}`) as LayerMeta | undefined;
  if (!marked || !meta) return undefined;
  const layerOf = new Map<string, number>();
  const copies = new Map<string, RatingRow>();
  for (const k of marked.keys()) {
    if (k.startsWith("#")) continue;
    const cut = k.indexOf(SEP);
    const layer = Number(k.slice(0, cut));
    if (layer < c) continue;
    const user = k.slice(cut + 1);
    const had = layerOf.get(user);
    if (had !== undefined && had < layer) continue;
    layerOf.set(user, layer);
    copies.set(user, marked.get(k) as RatingRow);
  }
  const entries = function* (): Iterable<[string, RatingRow]> {
    for (const [u, row] of stores.rows.entries())
      if ((row[0] as number) < meta.users) yield [u, copies.get(u) ?? row];
  };
  return { meta, copies, entries };
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
  let p = 0;
  for (let u = 0; u < nUsers; u++) {
    const v = perm[u]!;
    users[u] = ids[v]!;
    userPtr[u] = p;
    for (let q = from[v]!; q < from[v + 1]!; q++) {
      userCols[p] = cols[q]!;
      userVals[p++] = vals[q]!;
    }
  }
  userPtr[nUsers] = p;
  const { itemPtr, itemRows, itemVals } = byItem(userPtr, userCols, userVals, itemList.length);
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
/** Between a layer's mark and the user in its copies' keys. */
const SEP = "\u0000";

export type RatingsBuilder = ReturnType<typeof createRatingsBuilder>;
