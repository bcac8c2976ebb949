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
 * Accumulates (user, item, value) triples — summed per pair — and builds {@link Ratings} with
 * users and items in first-seen order (deterministic for a given input order).
 */
export function createRatingsBuilder() {
  const userIndex = new Map<string, number>();
  const itemIndex = new Map<string, number>();
  const users: string[] = [];
  const items: string[] = [];
  const rows: Map<number, number>[] = [];
  let nnz = 0;
  return {
    /** Adds `value` to (user, item); `replace` sets it instead (explicit ratings: the latest wins). */
    add(user: string, item: string, value: number, replace = false) {
      let u = userIndex.get(user);
      if (u === undefined) {
        userIndex.set(user, (u = users.length));
        users.push(user);
        rows.push(new Map());
      }
      let i = itemIndex.get(item);
      if (i === undefined) {
        itemIndex.set(item, (i = items.length));
        items.push(item);
      }
      const row = rows[u]!;
      const prev = row.get(i);
      if (prev === undefined) nnz++;
      row.set(i, replace || prev === undefined ? value : prev + value);
    },
    get nnz() {
      return nnz;
    },
    build(): Ratings {
      const userPtr = new Int32Array(users.length + 1);
      const userCols = new Int32Array(nnz);
      const userVals = new Float32Array(nnz);
      const counts = new Int32Array(items.length + 1);
      let p = 0;
      for (let u = 0; u < rows.length; u++) {
        userPtr[u] = p;
        const entries = [...rows[u]!].sort((a, b) => a[0] - b[0]);
        for (const [i, v] of entries) {
          userCols[p] = i;
          userVals[p++] = v;
          counts[i + 1]!++;
        }
      }
      userPtr[users.length] = p;
      const itemPtr = new Int32Array(items.length + 1);
      for (let i = 0; i < items.length; i++) itemPtr[i + 1] = itemPtr[i]! + counts[i + 1]!;
      const fill = itemPtr.slice(0, items.length);
      const itemRows = new Int32Array(nnz);
      const itemVals = new Float32Array(nnz);
      for (let u = 0; u < users.length; u++)
        for (let q = userPtr[u]!; q < userPtr[u + 1]!; q++) {
          const i = userCols[q]!;
          const at = fill[i]!++;
          itemRows[at] = u;
          itemVals[at] = userVals[q]!;
        }
      return { users, items, userPtr, userCols, userVals, itemPtr, itemRows, itemVals };
    },
  };
}
