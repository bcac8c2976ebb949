import { hashString, sameKey } from "../../state/cold-index.js";

/**
 * A model's user ids packed: their UTF-8 bytes end to end, where each starts (Uint32Array), and
 * an open-addressing table of their indexes by hash (Int32Array, load ≤ 0.5), so a served model
 * finds a user's row without a string per id. An id array plus the Map<string, number> a lookup
 * needed held ~90 B per user at 1M users (bench step 7, a model of every user); packed it is the
 * id's bytes plus 12 B (offset and two table slots). The bytes and offsets are those of the
 * stored model (als-model.ts), so a restart indexes them instead of parsing a million strings.
 */
export interface PackedIds {
  readonly length: number;
  /** The id at index x (decoded: for tools and tests, not the serving path). */
  at(x: number): string | undefined;
  /** The index of `id`, -1 if not held. */
  indexOf(id: string): number;
  /** Bytes of the ids, each preceded by its length (u16 little-endian), as `starts` index them. */
  readonly bytes: Uint8Array;
  /** Where id x's record (u16 length, bytes) starts in `bytes`. */
  readonly starts: Uint32Array;
  /** Bytes held by the lookup table (built at the first indexOf; the rest is the stored model's). */
  readonly tableBytes: number;
}

/** Ids in index order: a plain array (training) or packed (a stored model). */
export type IdList = readonly string[] | PackedIds;

export const isPacked = (ids: IdList): ids is PackedIds => !Array.isArray(ids);

/** The records (u16 length, UTF-8 bytes) of `ids`, end to end, and where each starts. */
export function encodeIds(ids: readonly string[]): { bytes: Uint8Array; starts: Uint32Array } {
  let total = 0;
  for (const id of ids) total += 2 + Buffer.byteLength(id, "utf8");
  const bytes = Buffer.allocUnsafe(total);
  const starts = new Uint32Array(ids.length);
  let at = 0;
  for (let x = 0; x < ids.length; x++) {
    const id = ids[x]!;
    starts[x] = at;
    const n = bytes.write(id, at + 2, "utf8");
    if (n > 0xffff) throw new Error(`an id of ${n} bytes is too long`);
    bytes[at] = n & 0xff;
    bytes[at + 1] = n >> 8;
    at += 2 + n;
  }
  return { bytes, starts };
}

/** The ids whose records are in `bytes` at `starts` (views kept, not copied), indexed. */
export function packedIds(bytes: Uint8Array, starts: Uint32Array): PackedIds {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = starts.length;
  let cap = 8;
  while (cap < n * 2) cap *= 2;
  const mask = cap - 1;
  // Slot value: index + 1 (0 = empty). Built when first asked: a model being trained holds its
  // ids packed until it is stored, and never looks one up.
  let table: Int32Array | undefined;
  const build = (): Int32Array => {
    const t = new Int32Array(cap);
    for (let x = 0; x < n; x++) {
      const s = starts[x]!;
      const len = b[s]! | (b[s + 1]! << 8);
      // ASCII ids (the usual) hash from their bytes: FNV-1a over bytes = over UTF-16 code units.
      let h = 0x811c9dc5;
      let q = s + 2;
      for (; q < s + 2 + len; q++) {
        const c = b[q]!;
        if (c >= 0x80) break;
        h = Math.imul(h ^ c, 16777619);
      }
      if (q < s + 2 + len) h = hashString(b.toString("utf8", s + 2, s + 2 + len));
      let slot = (h >>> 0) & mask;
      while (t[slot] !== 0) slot = (slot + 1) & mask;
      t[slot] = x + 1;
    }
    return t;
  };
  return {
    length: n,
    bytes,
    starts,
    get tableBytes() {
      return table?.byteLength ?? 0;
    },
    at(x) {
      if (!(x >= 0 && x < n)) return undefined;
      const s = starts[x]!;
      return b.toString("utf8", s + 2, s + 2 + (b[s]! | (b[s + 1]! << 8)));
    },
    indexOf(id) {
      const t = (table ??= build());
      let slot = hashString(id) & mask;
      for (;;) {
        const v = t[slot]!;
        if (v === 0) return -1;
        if (sameKey(id, b, starts[v - 1]!)) return v - 1;
        slot = (slot + 1) & mask;
      }
    },
  };
}

/** `ids` packed (an array is encoded; packed ids are returned as they are). */
export function packIds(ids: IdList): PackedIds {
  if (isPacked(ids)) return ids;
  const { bytes, starts } = encodeIds(ids);
  return packedIds(bytes, starts);
}
