import {
  CONTINUED,
  PATCH,
  type RatingRow,
  type RatingsStores,
  type RowsDelta,
} from "./als-matrix.js";
import type { Crossing } from "./collaborative-points.js";
import {
  createCollaborativeRows,
  type CollaborativeRows,
  type ModelKind,
} from "./collaborative.js";
import { memStore } from "./store.js";
import type { SourcePreset } from "./preset.js";

/**
 * The trainer's copy of one user partition's rows (DESIGN §3.7). At each of its crossings a
 * partition sends what changed in its rows since its last crossing (als-matrix.ts RowsDelta:
 * the items it added, the changed users' rows as they are there), then the crossing itself. The
 * copy applies the changes and marks its rows at the crossing, so it holds the partition's rows
 * at every crossing it keeps, with the same first-seen orders and stamps: the matrix it builds at
 * a crossing is the partition's there, wherever the partition runs (another process, another
 * machine), and the partition keeps no marks of its own.
 */
export interface RowsCopy {
  rows: CollaborativeRows;
  /** The partition's crossings received and kept (ascending). */
  crossings(): readonly Crossing[];
  /** A kind's changes, as the partition sent them before a crossing. */
  apply(kind: ModelKind, delta: RowsDelta): void;
  /** The partition's crossing: the rows as applied so far are its rows there. */
  cross(x: Crossing): void;
  /** Forgets the crossings (and their marks) below mark `c`. */
  keep(c: number): void;
}

export function createRowsCopy(
  preset: SourcePreset,
  stores: { implicit: RatingsStores; explicit: RatingsStores },
  /** Where the crossings kept are stored (the trainer's state). */
  kept: { get(): Crossing[] | undefined; set(list: Crossing[]): void },
): RowsCopy {
  const rows = createCollaborativeRows(preset, stores);
  let list: Crossing[] = kept.get() ?? [];
  return {
    rows,
    crossings: () => list,
    apply: (kind, delta) => rows.apply(kind, delta),
    cross(x) {
      // A crossing already here (a partition sends again what its restart replays) changes nothing.
      if (list.length > 0 && list[list.length - 1]!.c >= x.c) return;
      rows.mark(x.c);
      // In place (the store serialises it at the next snapshot): a copy of the list at every
      // crossing was quadratic while a training keeps its point's crossings.
      list.push(x);
      kept.set(list);
    },
    keep(c) {
      if (list.length === 0 || list[0]!.c >= c) return;
      list = list.filter((cr) => cr.c >= c);
      rows.dropBefore(c);
      kept.set(list);
    },
  };
}

/** In-memory stores of a partition's rows or of a copy (tests, the trainer's stand-ins). */
export function memRowsStores(copy: boolean): {
  implicit: RatingsStores;
  explicit: RatingsStores;
} {
  const one = (): RatingsStores => ({
    rows: memStore(),
    items: memStore(),
    firstSeen: memStore(),
    ...(copy ? { marked: memStore() } : {}),
  });
  return { implicit: one(), explicit: one() };
}

/** An upper bound of a value's bytes in a hop (JSON escapes: 6 per UTF-16 unit). */
const bytesOf = (v: string | number) => (typeof v === "string" ? 10 + 6 * v.length : 25);

const rowBytes = (row: RatingRow) => {
  let n = 10;
  for (const v of row) n += bytesOf(v);
  return n;
};

/** An upper bound of a delta's bytes in a hop (what `deltaChunks` cuts by). */
export function deltaBytes(delta: RowsDelta): number {
  let n = 10;
  for (const [item] of delta.items) n += bytesOf(item) + 25;
  for (const [user, , row] of delta.users) n += bytesOf(user) + 25 + rowBytes(row);
  return n;
}

/**
 * A delta cut in parts of at most about `maxBytes` each (a hop message has a size limit): items
 * first, then users, each part applied in turn does what the whole does. A row larger than
 * `maxBytes` is cut too: a whole row's first part as the row, the rest as entries that continue
 * it; a patch's as several patches.
 */
export function deltaChunks(delta: RowsDelta, maxBytes: number): RowsDelta[] {
  const out: RowsDelta[] = [];
  let cur: RowsDelta = { items: [], users: [] };
  let bytes = 0;
  const add = (size: number, put: (d: RowsDelta) => void) => {
    if (bytes > 0 && bytes + size > maxBytes) {
      out.push(cur);
      cur = { items: [], users: [] };
      bytes = 0;
    }
    put(cur);
    bytes += size;
  };
  for (const it of delta.items) add(bytesOf(it[0]) + 25, (d) => d.items.push(it));
  for (const u of delta.users) {
    const [user, first, row] = u;
    const head = bytesOf(user) + 25;
    if (rowBytes(row) <= maxBytes) {
      add(head + rowBytes(row), (d) => d.users.push(u));
      continue;
    }
    const stride = first === PATCH ? 3 : 2;
    const rest = first === PATCH ? PATCH : CONTINUED;
    let part: RatingRow = [row[0]!, row[1]!];
    let size = rowBytes(part);
    let mark = first;
    const flush = () => {
      const entry: [string, number, RatingRow] = [user, mark, part];
      add(head + size, (d) => d.users.push(entry));
      mark = rest;
      part = [row[0]!, row[1]!];
      size = rowBytes(part);
    };
    for (let q = 2; q < row.length; q += stride) {
      let piece = 0;
      for (let k = 0; k < stride; k++) piece += bytesOf(row[q + k]!);
      if (part.length > 2 && size + piece > maxBytes) flush();
      for (let k = 0; k < stride; k++) part.push(row[q + k]!);
      size += piece;
    }
    flush();
  }
  if (bytes > 0) out.push(cur);
  return out;
}
