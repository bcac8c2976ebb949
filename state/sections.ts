import { TAG_BYTES, TAG_DEL, TAG_TEXT } from "./cold-index.js";

/**
 * Binary snapshot entries of the maps whose values have a stored form (text and codec maps): a
 * sequence of sections, one per map, each `u8 name length, name, u32 records, u32 record bytes`
 * then its records (cold-index.ts's layout). The bytes are what LevelDB holds and, once read or
 * written, what the map keeps in memory for its cold keys (cold-index.ts): no JSON.parse of a
 * chunk at load, no string per key or value.
 */

/** One map's records to write: keys with their stored values (undefined: deleted). */
export interface SectionInput {
  name: string;
  keys: string[];
  values: (string | Uint8Array | undefined)[];
}

/** Where a section's records are in an entry. */
export interface SectionAt {
  name: string;
  count: number;
  start: number;
  end: number;
}

export const SECTION_HEADER = (name: string) => 1 + Buffer.byteLength(name) + 8;

/** Writes a section header at `at`; returns where its records start. */
export function writeHeader(b: Buffer, at: number, name: string, count: number, bytes: number) {
  const n = b.write(name, at + 1, "utf8");
  b[at] = n;
  b.writeUInt32LE(count, at + 1 + n);
  b.writeUInt32LE(bytes, at + 5 + n);
  return at + 9 + n;
}

const MAX_KEY = 0xffff;

/** One entry holding the given sections; with where each one's records are. */
export function encodeSections(list: readonly SectionInput[]): {
  buf: Buffer;
  at: SectionAt[];
} {
  let total = 0;
  const sizes: number[] = [];
  for (const s of list) {
    let bytes = 0;
    for (let x = 0; x < s.keys.length; x++) {
      const v = s.values[x];
      const kl = Buffer.byteLength(s.keys[x]!);
      if (kl > MAX_KEY)
        throw new Error(`state key of ${kl} bytes in map ${s.name} (max ${MAX_KEY})`);
      bytes +=
        7 + kl + (v === undefined ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.length);
    }
    sizes.push(bytes);
    total += SECTION_HEADER(s.name) + bytes;
  }
  const b = Buffer.allocUnsafeSlow(total);
  const at: SectionAt[] = [];
  let p = 0;
  list.forEach((s, i) => {
    p = writeHeader(b, p, s.name, s.keys.length, sizes[i]!);
    const start = p;
    for (let x = 0; x < s.keys.length; x++) {
      const kl = b.write(s.keys[x]!, p + 2, "utf8");
      b[p] = kl & 0xff;
      b[p + 1] = kl >>> 8;
      p += 2 + kl;
      const v = s.values[x];
      let vl = 0;
      if (v === undefined) b[p] = TAG_DEL;
      else if (typeof v === "string") {
        b[p] = TAG_TEXT;
        vl = b.write(v, p + 5, "utf8");
      } else {
        b[p] = TAG_BYTES;
        b.set(v, p + 5);
        vl = v.length;
      }
      b.writeUInt32LE(vl, p + 1);
      p += 5 + vl;
    }
    at.push({ name: s.name, count: s.keys.length, start, end: p });
  });
  return { buf: b, at };
}

/** The sections of an entry. */
export function readSections(b: Buffer): SectionAt[] {
  const out: SectionAt[] = [];
  for (let p = 0; p < b.length;) {
    const n = b[p]!;
    const name = b.toString("utf8", p + 1, p + 1 + n);
    const count = b.readUInt32LE(p + 1 + n);
    const bytes = b.readUInt32LE(p + 5 + n);
    const start = p + 9 + n;
    out.push({ name, count, start, end: start + bytes });
    p = start + bytes;
  }
  return out;
}
