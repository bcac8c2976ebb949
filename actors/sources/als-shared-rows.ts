import type { Ratings } from "./als-matrix-rows.js";
import type { AlsSettings } from "./als-settings.js";

/**
 * Where each user's factors live when single-entry users share rows: rows [0, own) are users of
 * their own (in user order), rows [own, rows) one per distinct (item, value) of the single-entry
 * users, whose item and value are `idx`/`val` at (row − own): a one-entry row's CSR, solved as a
 * user of that row would be. Users without entries have no row (−1: their factors are 0).
 * `itemRows` is the item columns' user index mapped to those rows. Undefined where sharing
 * would change the factors (a single-entry row solved by warm-started CG) or saves nothing.
 */
export interface SharedRows {
  rowOf: Int32Array;
  own: number;
  rows: number;
  shared: number;
  /** Users without a row (rowOf COMPUTED): 2 entries, solved again where read. */
  computed: number;
  idx: Int32Array;
  val: Float32Array;
  /** The item columns' user rows; a computed user as −2 − user. */
  itemRows: Int32Array;
}

/** rowOf of a user whose factors are solved again where read (trainAls `computeShort`). */
export const COMPUTED = -3;
/**
 * The most entries of a user whose factors are solved again where read rather than held: the
 * item half-step solves such a user once per entry, so the extra CPU grows with the entries
 * while the saving is one row (256 B at rank 64). Measured (bench/als-train.ts, 15 iterations,
 * rank 64, CPU of the training): 20k users × 8 events 10.1 s with a row each, 28.5 s with every
 * user of 2-16 entries solved again; 100k users × 2 events +15%.
 */
const COMPUTE_MAX_ENTRIES = 2;

export function sharedRows(
  r: Ratings,
  s: AlsSettings,
  k: number,
  computeShort: boolean,
): SharedRows | undefined {
  const nUsers = r.userPtr.length - 1;
  const nItems = r.itemPtr.length - 1;
  const ptr = r.userPtr;
  let singles = 0;
  let short = 0;
  let pairs = 0;
  const maxRow = Math.max(4, Math.floor(2 * Math.sqrt(k)));
  for (let u = 0; u < nUsers; u++) {
    const m = ptr[u + 1]! - ptr[u]!;
    if (m === 1) singles++;
    if (m <= maxRow) short++;
    if (m >= 2 && m <= COMPUTE_MAX_ENTRIES) pairs++;
  }
  // Exact for a one-entry row: Woodbury (implicit, on when halfStep's plan is: woodburyPlan's
  // test with the items as the fixed side) or Cholesky (explicit, or the cholesky solver).
  const woodbury = s.kind === "implicit" && s.woodbury !== false && short * 4 > nItems;
  const exact = woodbury || s.kind === "explicit" || s.solver === "cholesky";
  // Rows of 2 to maxRow entries are Woodbury's too (halfStep's plan): a function of the entries
  // and the item factors, as a single entry's. Only those of up to COMPUTE_MAX_ENTRIES go
  // without a row: solving one again costs about its entries × its own solve per iteration.
  const compute = woodbury && computeShort;
  const computed = compute ? pairs : 0;
  if (!exact || (singles < 2 && computed === 0) || nItems >= 2 ** 21) return undefined;
  const rowOf = new Int32Array(nUsers);
  let own = 0;
  for (let u = 0; u < nUsers; u++) {
    const m = ptr[u + 1]! - ptr[u]!;
    rowOf[u] = m === 0 ? -1 : m === 1 ? -2 : compute && m <= COMPUTE_MAX_ENTRIES ? COMPUTED : own++;
  }
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  const at = new Map<number, number>();
  const idx: number[] = [];
  const val: number[] = [];
  for (let u = 0; u < nUsers; u++) {
    if (rowOf[u] !== -2) continue;
    const e = ptr[u]!;
    const j = r.userCols[e]!;
    asFloat[0] = r.userVals[e]!;
    const key = j * 2 ** 32 + bits[0]!;
    let t = at.get(key);
    if (t === undefined) {
      at.set(key, (t = idx.length));
      idx.push(j);
      val.push(asFloat[0]);
    }
    rowOf[u] = own + t;
  }
  const itemRows = new Int32Array(r.itemRows.length);
  for (let q = 0; q < itemRows.length; q++) {
    const u = r.itemRows[q]!;
    const row = rowOf[u]!;
    itemRows[q] = row === COMPUTED ? -2 - u : row;
  }
  return {
    rowOf,
    own,
    rows: own + idx.length,
    shared: singles,
    computed,
    idx: Int32Array.from(idx),
    val: Float32Array.from(val),
    itemRows,
  };
}
