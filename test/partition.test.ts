import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { partitionOf } from "../actors/contract/index.js";

/**
 * Reference FNV-1a (32 bit) over the UTF-8 bytes, written independently of the implementation:
 * TextEncoder for the bytes, BigInt for the multiplication modulo 2^32.
 */
function fnv1a32(key: string): number {
  let h = 0x811c9dc5n;
  for (const byte of new TextEncoder().encode(key)) {
    h ^= BigInt(byte);
    h = (h * 0x01000193n) % 0x1_0000_0000n;
  }
  return Number(h);
}

/** With 2^32 partitions the modulo is the identity: partitionOf exposes the whole hash. */
const FULL = 2 ** 32;

describe("partitionOf", () => {
  it("should agree with the published FNV-1a 32 test vectors (reference check)", () => {
    // From the FNV reference (isthe.com/chongo/tech/comp/fnv): "", "a", "foobar".
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    expect(partitionOf("", FULL)).toBe(0x811c9dc5);
    expect(partitionOf("a", FULL)).toBe(0xe40c292c);
    expect(partitionOf("foobar", FULL)).toBe(0xbf9cf968);
  });

  it.each([
    ["an ASCII user id", "user-42"],
    ["a numeric id", "1234567"],
    ["two-byte UTF-8 (é)", "café"],
    ["three-byte UTF-8 (€, 日本)", "€-日本"],
    ["a four-byte emoji (surrogate pair)", "😀"],
    ["mixed scripts with an emoji", "user-Ω-😀-x"],
  ])("should hash %s over its UTF-8 bytes", (_, key) => {
    expect(partitionOf(key, FULL)).toBe(fnv1a32(key));
    for (const p of [1, 2, 3, 8, 16, 100]) expect(partitionOf(key, p)).toBe(fnv1a32(key) % p);
  });

  it("should give the same partition on every call (stable)", () => {
    for (const key of ["u1", "café", "😀"]) {
      const first = partitionOf(key, 8);
      for (let k = 0; k < 5; k++) expect(partitionOf(key, 8)).toBe(first);
    }
  });

  it("should match the reference for any string of whole code points", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (key) => {
        expect(partitionOf(key, FULL)).toBe(fnv1a32(key));
      }),
      { numRuns: 500 },
    );
  });

  it("should always answer a partition from 0 to P-1", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), fc.integer({ min: 1, max: 1024 }), (key, p) => {
        const q = partitionOf(key, p);
        expect(Number.isInteger(q)).toBe(true);
        expect(q).toBeGreaterThanOrEqual(0);
        expect(q).toBeLessThan(p);
      }),
      { numRuns: 500 },
    );
  });

  it("should spread 10,000 keys roughly evenly over 8 partitions", () => {
    const counts = new Array<number>(8).fill(0);
    for (let k = 0; k < 10_000; k++) counts[partitionOf(`user-${k}`, 8)]!++;
    // Expected 10,000 / 8 = 1,250 each; binomial sd = sqrt(10,000 × 1/8 × 7/8) ≈ 33.
    // ±150 is about 4.5 sd: a fair hash stays inside, a skewed one does not.
    for (const c of counts) {
      expect(c).toBeGreaterThan(1250 - 150);
      expect(c).toBeLessThan(1250 + 150);
    }
    expect(counts.reduce((a, b) => a + b, 0)).toBe(10_000);
  });
});
