/**
 * The records that cold keys are held as (cold-index.ts), and reading them: tags, the key hash,
 * key comparison, and where a value's bytes are.
 *
 * Record layout (state/sections.ts writes it): u16 key length, key (UTF-8), u8 tag, u32 value
 * length, value. Tags: TAG_DEL (a deletion, only in deltas), TAG_TEXT (JSON text), TAG_BYTES.
 */

export const TAG_DEL = 0;
export const TAG_TEXT = 1;
export const TAG_BYTES = 2;

/** A record's location: its buffer's index times TWO32 plus its offset in that buffer. */
export const TWO32 = 2 ** 32;
// Not `loc % TWO32`: a double's remainder is a call (~13 ns against ~2.5).
export const offOf = (loc: number) => loc - Math.floor(loc / TWO32) * TWO32;

/** FNV-1a over UTF-16 code units (= the bytes of an ASCII key). */
export function hashString(k: string): number {
  let h = 0x811c9dc5;
  for (let x = 0; x < k.length; x++) h = Math.imul(h ^ k.charCodeAt(x), 16777619);
  return h >>> 0;
}

/** The same hash from a key's UTF-8 bytes (decoded first when not ASCII). */
export function hashBytes(b: Buffer, s: number, e: number): number {
  let h = 0x811c9dc5;
  for (let x = s; x < e; x++) {
    const c = b[x]!;
    if (c >= 0x80) return hashString(b.toString("utf8", s, e));
    h = Math.imul(h ^ c, 16777619);
  }
  return h >>> 0;
}

/** The UTF-8 length of the key of the record at `off` (u16, little-endian). */
export const keyLen = (b: Buffer, off: number) => b[off]! | (b[off + 1]! << 8);
/** Whether the record (or key entry: u16 length, UTF-8 bytes) at `off` of `b` has the key `k`. */
export const sameKey = (k: string, b: Buffer, off: number): boolean => {
  const n = keyLen(b, off);
  const s = off + 2;
  if (n === k.length) {
    let x = 0;
    for (; x < n; x++) {
      const c = b[s + x]!;
      if (c >= 0x80) break;
      if (c !== k.charCodeAt(x)) return false;
    }
    if (x === n) return true;
  }
  // Not ASCII (or lengths differ, which non-ASCII UTF-8 allows): compare as strings.
  for (let x = 0; x < n; x++) if (b[s + x]! >= 0x80) return b.toString("utf8", s, s + n) === k;
  return false;
};

/** A stored value: its tag and where its bytes are. */
export interface ColdValue {
  tag: number;
  buf: Buffer;
  start: number;
  end: number;
}

/** Records of one map in an entry (a section, sections.ts): adoptAll's input. */
export interface ColdSection {
  buf: Buffer;
  start: number;
  end: number;
  /** Records in it. */
  count: number;
}

/** Whether the records (or key entries) at `o1` of `b1` and `o2` of `b2` have the same key. */
export const sameBytes = (b1: Buffer, o1: number, b2: Buffer, o2: number): boolean => {
  const n = keyLen(b1, o1);
  if (n !== keyLen(b2, o2)) return false;
  return b1.compare(b2, o2 + 2, o2 + 2 + n, o1 + 2, o1 + 2 + n) === 0;
};

/** The bytes of the record at `off`. */
export const recordBytes = (b: Buffer, off: number) => {
  const v = off + 2 + keyLen(b, off);
  return v + 5 + b.readUInt32LE(v + 1) - off;
};

/**
 * A section that is a small part of its entry (a delta's, with other maps' sections) gets its
 * own copy: this map's garbage must not be kept alive by another map's live keys.
 */
export const ownSection = (entry: Buffer, from: number, to: number) => {
  if ((to - from) * 10 >= entry.length * 9) return { buf: entry, start: from, end: to };
  const buf = Buffer.allocUnsafeSlow(to - from);
  entry.copy(buf, 0, from, to);
  return { buf, start: 0, end: buf.length };
};
