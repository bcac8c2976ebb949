/**
 * A 64-bit hash of a string (its UTF-16 code units) as two uint32 halves: two murmur3-style
 * lanes with different seeds, each finished with murmur3's fmix32. Not cryptographic; used where
 * a compact fixed-size stand-in for an id is enough (parse's dedupe memory, seen-ids.ts).
 * Deterministic across processes and versions: changing it changes which ids a persisted
 * dedupe memory recognises.
 */
export function hash64(s: string): { hi: number; lo: number } {
  let h1 = 0x9747b28c ^ s.length;
  let h2 = 0x5bd1e995 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0xcc9e2d51);
    h1 = (h1 << 15) | (h1 >>> 17);
    h1 = Math.imul(h1, 0x1b873593) + 0xe6546b64;
    h2 = Math.imul(h2 ^ c, 0x85ebca6b);
    h2 = (h2 << 13) | (h2 >>> 19);
    h2 = Math.imul(h2, 0xc2b2ae35) + 0x27d4eb2f;
  }
  return { hi: fmix32(h1), lo: fmix32(h2) };
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
