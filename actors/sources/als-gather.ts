import { byItem, type Ratings } from "./als-matrix-rows.js";

/**
 * One user partition's matrix at a training point (users and items in their first-seen order
 * there), and where in the input each of its users and items was first added (EVENTS sequence).
 */
export interface PartRatings {
  ratings: Ratings;
  userFirst(u: number): number;
  itemFirst(i: number): number;
}

/**
 * The matrix ALS trains on, gathered from the user partitions' matrices at one training point:
 * users and items in the order they were first added in the whole input (a user's is its
 * partition's; an item's the least over the partitions), so the matrix is the one a single
 * instance fed every event in input order builds, whatever the number of partitions and however
 * they were fed. CSR by user and CSC by item, as Ratings has them.
 */
export function gatherRatings(parts: readonly PartRatings[]): Ratings {
  // Items: every partition's, ordered by first input position.
  const first = new Map<string, number>();
  for (const { ratings, itemFirst } of parts)
    for (let i = 0; i < ratings.items.length; i++) {
      const item = ratings.items[i]!;
      const s = itemFirst(i);
      const had = first.get(item);
      if (had === undefined || s < had) first.set(item, s);
    }
  const items = [...first.keys()].sort((a, b) => first.get(a)! - first.get(b)!);
  const index = new Map<string, number>();
  for (let x = 0; x < items.length; x++) index.set(items[x]!, x);

  let users = 0;
  let nnz = 0;
  for (const { ratings } of parts) {
    users += ratings.users.length;
    nnz += ratings.userCols.length;
  }
  const ids: string[] = new Array<string>(users);
  const userPtr = new Int32Array(users + 1);
  const userCols = new Int32Array(nnz);
  const userVals = new Float32Array(nnz);
  // Users: the partitions' lists (each in first-seen order) merged by first input position.
  const globals = parts.map(({ ratings: r }) => Int32Array.from(r.items, (x) => index.get(x)!));
  const next = new Int32Array(parts.length);
  let at = 0;
  for (let u = 0; u < users; u++) {
    let p = -1;
    let best = Infinity;
    for (let x = 0; x < parts.length; x++) {
      if (next[x]! >= parts[x]!.ratings.users.length) continue;
      const f = parts[x]!.userFirst(next[x]!);
      if (f < best) {
        best = f;
        p = x;
      }
    }
    const r = parts[p]!.ratings;
    const global = globals[p]!;
    const v = next[p]!++;
    ids[u] = r.users[v]!;
    userPtr[u] = at;
    const from = r.userPtr[v]!;
    const to = r.userPtr[v + 1]!;
    // The row's entries by global item index (local order differs): insertion, rows are short.
    for (let q = from; q < to; q++) {
      const c = global[r.userCols[q]!]!;
      const val = r.userVals[q]!;
      let w = at + (q - from);
      while (w > at && userCols[w - 1]! > c) {
        userCols[w] = userCols[w - 1]!;
        userVals[w] = userVals[w - 1]!;
        w--;
      }
      userCols[w] = c;
      userVals[w] = val;
    }
    at += to - from;
  }
  userPtr[users] = at;

  const { itemPtr, itemRows, itemVals } = byItem(userPtr, userCols, userVals, items.length);
  return { users: ids, items, userPtr, userCols, userVals, itemPtr, itemRows, itemVals };
}
