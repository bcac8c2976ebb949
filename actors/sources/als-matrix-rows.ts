/**
 * The rating rows as the matrix holds them (item indexes and Float32 values, each row sorted by
 * item index), kept up to date as interactions arrive, so a training takes a copy of typed arrays
 * instead of building the matrix from every stored row again. Building it from the stored rows
 * (decoding each, looking up each item's index, sorting) was ~120 ms per matrix at the end of a
 * MovieLens replay and, were every training point's matrix built, 99% of the replay's main thread
 * (docs/QUALITY.md "ALS matrix").
 *
 * Rows live in one arena of typed arrays: row u's entries are [start[u], start[u] + len[u]),
 * in a slot of `slot(len)` entries; a row that outgrows its slot moves to the arena's end, and the
 * arena is compacted (rows in user order) once a quarter of it is vacated slots. 8 B per user
 * and ~11 B per entry, beside the stored rows (~600 B per user of 10 entries).
 */
export interface MatrixRows {
  readonly users: number;
  readonly items: number;
  /** Entries in all rows. */
  readonly nnz: number;
  /**
   * Appends a user with an empty row: the next index (first-seen order), or index `u` (a load
   * from stored rows in any order: every index below `users` must then be added before use).
   */
  addUser(id: string, u?: number): void;
  /** Appends an item (the next index: first-seen order). */
  addItem(id: string): void;
  /** Sets user u's value of item i (inserted in item order if new). */
  set(u: number, i: number, value: number): void;
  /**
   * The matrix of the first `users` users and `items` items; `own` gives the rows that differ
   * from the held ones (a marked point's rows as they were: item indexes ascending, values).
   */
  ratings(
    users: number,
    items: number,
    own?: ReadonlyMap<number, { cols: Int32Array; vals: Float32Array }>,
  ): Ratings;
}

/**
 * The CSC form of a CSR matrix: the same entries by item, users ascending within each item (a
 * counting sort).
 */
export function byItem(
  userPtr: Int32Array,
  userCols: Int32Array,
  userVals: Float32Array,
  nItems: number,
): Pick<Ratings, "itemPtr" | "itemRows" | "itemVals"> {
  const nUsers = userPtr.length - 1;
  const total = userPtr[nUsers]!;
  const itemPtr = new Int32Array(nItems + 1);
  for (let q = 0; q < total; q++) itemPtr[userCols[q]! + 1]!++;
  for (let i = 0; i < nItems; i++) itemPtr[i + 1]! += itemPtr[i]!;
  const fill = itemPtr.slice(0, nItems);
  const itemRows = new Int32Array(total);
  const itemVals = new Float32Array(total);
  for (let u = 0; u < nUsers; u++)
    for (let q = userPtr[u]!; q < userPtr[u + 1]!; q++) {
      const at = fill[userCols[q]!]!++;
      itemRows[at] = u;
      itemVals[at] = userVals[q]!;
    }
  return { itemPtr, itemRows, itemVals };
}

/**
 * Slot sizes, each ~1.4× the last (1, 2, 3, 5, 7, 10, 14, ...). Doubling slots held 33 MB of
 * arrays at 100k users × 10 entries (1M entries: half-empty slots, vacated ones, the arena's
 * headroom); these, with compaction at a quarter vacated and 1.25× growth, 11 MB, ~0.03 µs more
 * per add (docs/QUALITY.md "ALS matrix").
 */
const SLOTS: number[] = [1];
while (SLOTS.at(-1)! < 2 ** 31) SLOTS.push(Math.ceil(SLOTS.at(-1)! * 1.4));

/** The slot of a row of `n` entries: the smallest slot size ≥ n. */
function slot(n: number): number {
  let lo = 0;
  let hi = SLOTS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (SLOTS[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return SLOTS[lo]!;
}

export function createMatrixRows(): MatrixRows {
  const ids: string[] = [];
  const itemIds: string[] = [];
  let start = new Int32Array(1024);
  let len = new Int32Array(1024);
  let cols = new Int32Array(4096);
  let vals = new Float32Array(4096);
  /** The arena's used end, and how much of it is vacated slots. */
  let top = 0;
  let vacated = 0;
  let nnz = 0;

  /** Room for `n` more entries at the arena's end (compacting first if a quarter is vacated). */
  const reserve = (n: number) => {
    if (vacated * 4 > top) compact();
    if (top + n <= cols.length) return;
    const cap = Math.max(Math.ceil(1.25 * cols.length), top + n);
    cols = grown(cols, new Int32Array(cap));
    vals = grown(vals, new Float32Array(cap));
  };

  /** Moves every row, in user order, to the start of fresh arrays, slots as their lengths give. */
  const compact = () => {
    let need = 0;
    for (let u = 0; u < ids.length; u++) need += slot(len[u]!);
    const size = Math.max(4096, need + (need >> 3));
    const c = new Int32Array(size);
    const v = new Float32Array(size);
    let at = 0;
    for (let u = 0; u < ids.length; u++) {
      const s = start[u]!;
      const n = len[u]!;
      for (let q = 0; q < n; q++) {
        c[at + q] = cols[s + q]!;
        v[at + q] = vals[s + q]!;
      }
      start[u] = at;
      at += slot(n);
    }
    cols = c;
    vals = v;
    top = at;
    vacated = 0;
  };

  return {
    get users() {
      return ids.length;
    },
    get items() {
      return itemIds.length;
    },
    get nnz() {
      return nnz;
    },
    addUser(id, u = ids.length) {
      if (u >= start.length) {
        const cap = Math.max(2 * start.length, u + 1);
        start = grown(start, new Int32Array(cap));
        len = grown(len, new Int32Array(cap));
      }
      len[u] = 0; // before reserve(): a compaction reads it
      ids[u] = id;
      reserve(1);
      start[u] = top;
      top += slot(0);
    },
    addItem(id) {
      itemIds.push(id);
    },
    set(u, i, value) {
      let s = start[u]!;
      const n = len[u]!;
      let c = cols;
      // Binary search: rows are sorted by item index (a film's raters run to thousands of items);
      // an item newer than the row's last (items are numbered as first seen) goes at its end.
      let lo = n === 0 || c[s + n - 1]! < i ? n : 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (c[s + mid]! < i) lo = mid + 1;
        else hi = mid;
      }
      if (lo < n && c[s + lo] === i) {
        vals[s + lo] = value;
        return;
      }
      if (n === slot(n)) {
        // Full: the row moves to the next slot size, at the arena's end.
        const next = slot(n + 1);
        reserve(next);
        s = start[u]!; // compaction may have moved it
        c = cols;
        const to = top;
        c.copyWithin(to, s, s + n);
        vals.copyWithin(to, s, s + n);
        vacated += n;
        top += next;
        start[u] = s = to;
      }
      const v = vals;
      if (lo < n) {
        c.copyWithin(s + lo + 1, s + lo, s + n);
        v.copyWithin(s + lo + 1, s + lo, s + n);
      }
      c[s + lo] = i;
      v[s + lo] = value;
      len[u] = n + 1;
      nnz++;
    },
    ratings(nUsers, nItems, own) {
      const mine = own && own.size > 0 ? own : undefined;
      const userPtr = new Int32Array(nUsers + 1);
      for (let u = 0; u < nUsers; u++)
        userPtr[u + 1] = userPtr[u]! + (mine?.get(u)?.cols.length ?? len[u]!);
      const total = userPtr[nUsers]!;
      const userCols = new Int32Array(total);
      const userVals = new Float32Array(total);
      for (let u = 0; u < nUsers; u++) {
        const row = mine?.get(u);
        const c = row ? row.cols : cols;
        const v = row ? row.vals : vals;
        const s = row ? 0 : start[u]!;
        let p = userPtr[u]!;
        const end = userPtr[u + 1]!;
        for (let q = s; p < end; q++, p++) {
          userCols[p] = c[q]!;
          userVals[p] = v[q]!;
        }
      }
      const { itemPtr, itemRows, itemVals } = byItem(userPtr, userCols, userVals, nItems);
      return {
        users: ids.slice(0, nUsers),
        items: itemIds.slice(0, nItems),
        userPtr,
        userCols,
        userVals,
        itemPtr,
        itemRows,
        itemVals,
      };
    },
  };
}

/** `out` (larger) with `a`'s elements first. */
export function grown<T extends { set(a: ArrayLike<number>): void }>(
  a: ArrayLike<number>,
  out: T,
): T {
  out.set(a);
  return out;
}

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
