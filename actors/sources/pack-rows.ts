import { Packr } from "msgpackr";

/**
 * Reused rows for packing a value's entries with msgpackr: the bytes of `packr.pack(rows)` are
 * those of a fresh array of fresh rows (`[...map]`, `RecentItems.toJSON()`), without allocating
 * them. Snapshots encode every user written since the previous one (the covisit stage's user
 * values, the history stage's histories): the entries' arrays and the Map iterator's results
 * were ~1 KB per event of the main process's allocation in bench step 2 (sampling heap
 * profile). The rows are only valid until the next `fill`: pack them at once, then `clear`.
 */
export class PackRows {
  private readonly pool: unknown[][] = [];
  /** The rows of the last fill (a packed array of `size` rows). */
  readonly rows: unknown[][] = [];

  constructor(private readonly width: number) {}

  /** The row at position n of the current fill, values to be written by the caller. */
  row(n: number): unknown[] {
    let r = this.pool[n];
    if (r === undefined) {
      r = new Array<unknown>(this.width).fill(undefined);
      this.pool.push(r);
    }
    // Appending at `n` keeps `rows` packed (every fill writes 0, 1, 2, ... in order).
    this.rows[n] = r;
    return r;
  }

  /** Ends a fill of n rows: `rows` is exactly those. */
  end(n: number): unknown[][] {
    if (this.rows.length > n) this.rows.length = n;
    return this.rows;
  }

  /** Drops the values the rows refer to (they would otherwise stay reachable until reused). */
  clear(): void {
    for (const r of this.rows) r.fill(undefined);
    this.rows.length = 0;
  }
}

// The fill in progress (module state, so that forEach's callback is one function, not a closure
// allocated per value).
let filling: PackRows | undefined;
let filled = 0;
function fillRow(v: unknown, k: unknown): void {
  const r = filling!.row(filled++);
  r[0] = k;
  r[1] = v;
}

/** `rows` filled with a Map's entries, as `[...m]` gives them. */
export function mapRows<K, V>(rows: PackRows, m: ReadonlyMap<K, V>): unknown[][] {
  filling = rows;
  filled = 0;
  try {
    m.forEach(fillRow);
    return rows.end(filled);
  } finally {
    filling = undefined;
  }
}

// Plain arrays: a value decodes alone, with no shared record shapes.
const plain = new Packr({ useRecords: false });

/**
 * A stored array value as a map with a MessagePack codec keeps it (the history's, a rating
 * row): MessagePack bytes of plain arrays, JSON text (stored before the codec), or the value
 * itself (not stored yet). `what` names the value in the error for anything else.
 */
export function decodeStoredArray(stored: unknown, what: string): unknown[] {
  if (typeof stored === "string") return JSON.parse(stored) as unknown[];
  if (!(stored instanceof Uint8Array)) return stored as unknown[];
  const v = plain.unpack(stored) as unknown;
  if (!Array.isArray(v)) throw new Error(`${what}: unknown stored form`);
  return v;
}
