import { describe, expect, it } from "vitest";
import {
  decodeEnvelope,
  encodeEnvelope,
  peekHead,
  peekUpTo,
  readShared,
  sharedHeld,
  withHead,
} from "../actors/host/index.js";

const dec = new TextDecoder();
const enc = new TextEncoder();
const wire = (data: Uint8Array) => JSON.parse(dec.decode(data)) as Record<string, unknown>;
/** What a record looks like after the objects form (a JSON round trip). */
const viaJson = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe("the hop envelope", () => {
  it("writes records of one shape as rows and reads them back as the same objects", () => {
    const recs = [
      { u: "a", i: "p1", n: 1, top: [["books", 2]] },
      { u: "b", i: "p2", n: 2, top: [] },
    ];
    const data = encodeEnvelope(7, 5, recs, undefined, "rows");
    expect(wire(data)).toEqual({
      upTo: 7,
      wm: 5,
      k: ["u", "i", "n", "top"],
      rows: [
        ["a", "p1", 1, [["books", 2]]],
        ["b", "p2", 2, []],
      ],
    });
    expect(decodeEnvelope(data)).toEqual({ upTo: 7, wm: 5, recs });
    expect(peekUpTo(data)).toBe(7);
  });

  it("keeps a record of another shape as an object among the rows", () => {
    const recs = [{ w: 1, n: 2 }, { close: 300 }, { n: 3, w: 2 }, { w: 4, n: 5, extra: true }];
    const back = decodeEnvelope(encodeEnvelope(9, -1, recs)).recs;
    expect(back).toEqual(recs);
    // Key order survives too: a reordered record is not a row of the first shape.
    expect(back.map((r) => Object.keys(r as object))).toEqual(recs.map((r) => Object.keys(r)));
  });

  it("gives what the objects form gives for values JSON writes differently in arrays", () => {
    const recs: unknown[] = [
      { a: 1, b: "x" },
      { a: undefined, b: "y" },
      { a: () => 1, b: "z" },
      { a: NaN, b: -0 },
      { a: new Date(0), b: null },
    ];
    expect(decodeEnvelope(encodeEnvelope(1, 0, recs, undefined, "rows")).recs).toEqual(
      viaJson(recs),
    );
  });

  it("keeps the objects form when a record is an array, a single record or none", () => {
    for (const recs of [[{ a: 1 }, [1, 2]], [{ a: 1 }], [], [1, 2]] as unknown[][]) {
      const data = encodeEnvelope(3, 2, recs, undefined, "rows");
      expect(wire(data)).toEqual({ upTo: 3, wm: 2, recs: viaJson(recs) });
      expect(decodeEnvelope(data)).toEqual({ upTo: 3, wm: 2, recs: viaJson(recs) });
    }
  });

  it("reads a __proto__ key as a property, as JSON.parse does", () => {
    const recs = JSON.parse('[{"__proto__":1,"b":2},{"__proto__":3,"b":4}]') as object[];
    const back = decodeEnvelope(encodeEnvelope(1, 0, recs, undefined, "rows")).recs as Record<
      string,
      unknown
    >[];
    expect(back.map((r) => Object.getOwnPropertyDescriptor(r, "__proto__")?.value)).toEqual([1, 3]);
    expect(Object.getPrototypeOf(back[0])).toBe(Object.prototype);
  });

  it("still reads the objects form written before rows, and an envelope with null recs", () => {
    const old = enc.encode(JSON.stringify({ upTo: 4, wm: 1, recs: [{ u: "a" }, { u: "b" }] }));
    expect(decodeEnvelope(old)).toEqual({ upTo: 4, wm: 1, recs: [{ u: "a" }, { u: "b" }] });
    const poison = enc.encode('{"upTo":999999999,"wm":0,"recs":null}');
    expect(decodeEnvelope(poison).recs).toBeNull();
    expect(peekUpTo(poison)).toBe(999999999);
  });

  it("carries parse's idle markers in every form, and keeps them under another head", () => {
    const recs = [
      { u: "a", s: 4 },
      { u: "b", s: 6 },
    ];
    const ix = [5, 1_700_000_000_000, 7, 1_700_000_100_000];
    for (const form of ["binary", "rows", "objects"] as const) {
      const data = encodeEnvelope(9, 5, recs, 3, form, ix);
      expect(decodeEnvelope(data)).toEqual({ upTo: 9, prev: 3, wm: 5, recs, ix });
      // Without markers, the envelope is as it was (no field, binary format version 1).
      const plain = encodeEnvelope(9, 5, recs, 3, form);
      expect(decodeEnvelope(plain)).toEqual({ upTo: 9, prev: 3, wm: 5, recs });
      if (form === "binary") expect([plain[1], data[1]]).toEqual([1, 2]);
      const moved = withHead(data, 12, 8, 9);
      if (moved) expect(decodeEnvelope(moved)).toEqual({ upTo: 12, prev: 9, wm: 8, recs, ix });
    }
  });

  it("gives a message another head, upTo and wm, with its records as they were", () => {
    const recs = [
      { u: "é ✓ 😀", n: 1 },
      { u: "b", n: 2.5 },
    ];
    for (const data of [
      encodeEnvelope(7, -1, recs, undefined, "rows"),
      encodeEnvelope(7, 1e21, recs.slice(1), undefined, "rows"),
    ]) {
      const moved = withHead(data, 123456789, 1732212345678)!;
      expect(decodeEnvelope(moved)).toEqual({
        upTo: 123456789,
        wm: 1732212345678,
        recs: decodeEnvelope(data).recs,
      });
      expect(peekUpTo(moved)).toBe(123456789);
      expect(withHead(moved, 1, -1)).toEqual(
        encodeEnvelope(1, -1, decodeEnvelope(data).recs, undefined, "rows"),
      );
    }
    // Not written by encodeEnvelope: no rewrite, the caller encodes.
    expect(withHead(enc.encode('{"wm":1,"upTo":2,"recs":[]}'), 3, 4)).toBeUndefined();
    expect(withHead(enc.encode('{"upTo":2,"wm":1}'), 3, 4)).toBeUndefined();
  });

  it("decodes a message once for two readers of it, and not across messages", () => {
    const recs = [
      { i: "p1", t: "view" },
      { i: "p2", t: "purchase" },
    ];
    const first = encodeEnvelope(5, 1, recs);
    const second = encodeEnvelope(5, 1, recs); // same bytes, another message object
    const a = readShared("hops#10", first, () => decodeEnvelope(first));
    const b = readShared("hops#10", second, () => decodeEnvelope(second));
    expect(b).toBe(a);
    // Taken by the second reader: a third decodes again. Another key never shares.
    expect(readShared("hops#10", second, () => decodeEnvelope(second))).not.toBe(a);
    expect(readShared("hops#11", first, () => decodeEnvelope(first))).not.toBe(a);
    // Outside readShared nothing is kept.
    expect(decodeEnvelope(first)).not.toBe(decodeEnvelope(first));
    expect(decodeEnvelope(first)).toEqual({ upTo: 5, wm: 1, recs });
  });

  it("keeps a decoding for as many readers as the message has, then lets it go", () => {
    const recs = [{ i: "p1", t: "view" }];
    const data = (): Uint8Array => encodeEnvelope(7, 1, recs); // each reader its own bytes
    const readers = [data(), data(), data(), data()];
    const seen = readers.map((d) => readShared("hops#20", d, () => decodeEnvelope(d), 3));
    // Three readers share one decoding; a fourth read of the same key decodes again.
    expect(seen[1]).toBe(seen[0]);
    expect(seen[2]).toBe(seen[0]);
    expect(seen[3]).not.toBe(seen[0]);
    // One reader keeps nothing for anybody.
    const one = data();
    const a = readShared("hops#21", one, () => decodeEnvelope(one), 1);
    expect(readShared("hops#21", one, () => decodeEnvelope(one), 1)).not.toBe(a);
  });

  it("keeps a bounded number of decodings nobody takes, hops without records too", () => {
    // Hops of progress only, each read by one of its two readers: the other skipped them.
    const empty = encodeEnvelope(9, 1, []);
    for (let n = 0; n < 100_000; n++)
      readShared(`idle#${n}`, empty, () => decodeEnvelope(empty), 2);
    expect(sharedHeld().entries).toBeLessThanOrEqual(40_000);
    // Hops with records alike: the bound is on records, at least one per decoding.
    const full = encodeEnvelope(9, 1, [{ i: "p1" }, { i: "p2" }]);
    for (let n = 0; n < 50_000; n++) readShared(`full#${n}`, full, () => decodeEnvelope(full), 2);
    expect(sharedHeld().weight).toBeLessThanOrEqual(40_000);
    expect(sharedHeld().entries).toBeLessThanOrEqual(20_000);
  });

  describe("the binary form (the default)", () => {
    // Parse's record shape, as the pipeline's hops carry it most.
    const parsed = (k: number) => ({
      id: `00000000-0000-4000-8000-${String(k).padStart(12, "0")}`,
      t: k % 3 ? "view" : "purchase",
      ts: 1763800000000 + k * 13,
      u: `u${k % 7} é ✓ 😀`,
      i: `i${k}`,
      c: "",
      b: "brand",
      pr: 12.5 + k,
      r: 0,
      s: 1000 + k,
      wb: -1,
    });

    it("reads back what the JSON forms read back, in fewer bytes, under a head read without decoding", () => {
      const recs = [
        ...Array.from({ length: 50 }, (_, k) => parsed(k)),
        { close: 300 },
        { u: "a", top: [["books", 2]], nested: { n: null, ok: true } },
      ];
      const bin = encodeEnvelope(1_234_567, 1763800000000, recs, 1_234_000);
      const rows = encodeEnvelope(1_234_567, 1763800000000, recs, 1_234_000, "rows");
      expect(bin[0]).toBe(0xc1);
      expect(decodeEnvelope(bin)).toEqual(decodeEnvelope(rows));
      expect(decodeEnvelope(bin)).toEqual({
        upTo: 1_234_567,
        prev: 1_234_000,
        wm: 1763800000000,
        recs: viaJson(recs),
      });
      expect(bin.length).toBeLessThan(rows.length);
      expect(peekHead(bin)).toEqual({ upTo: 1_234_567, prev: 1_234_000 });
      expect(peekUpTo(bin)).toBe(1_234_567);
      // Records keep their key order (the rows of a later JSON hop follow it).
      expect(Object.keys(decodeEnvelope<object>(bin).recs[0]!)).toEqual(Object.keys(parsed(0)));
    });

    it("gives a message another head without touching its records; no prev reads as none", () => {
      const data = encodeEnvelope(7, -1, [parsed(1), parsed(2)]);
      expect(peekHead(data)).toEqual({ upTo: 7, prev: 0 });
      expect(decodeEnvelope(data)).toEqual({ upTo: 7, wm: -1, recs: [parsed(1), parsed(2)] });
      const moved = withHead(data, 9, 1732212345678, 7)!;
      expect(decodeEnvelope(moved)).toEqual({
        upTo: 9,
        prev: 7,
        wm: 1732212345678,
        recs: [parsed(1), parsed(2)],
      });
      expect(moved.subarray(26)).toEqual(data.subarray(26));
      expect(moved).toEqual(encodeEnvelope(9, 1732212345678, [parsed(1), parsed(2)], 7));
    });

    it("decodes each message alone (no record shape carried over from an earlier one)", () => {
      const a = encodeEnvelope(1, 0, [{ x: 1, y: "a" }]);
      const b = encodeEnvelope(2, 0, [{ x: 2, y: "b" }, { z: true }]);
      expect(decodeEnvelope(b).recs).toEqual([{ x: 2, y: "b" }, { z: true }]);
      expect(decodeEnvelope(a).recs).toEqual([{ x: 1, y: "a" }]);
      expect(decodeEnvelope(encodeEnvelope(3, 0, [])).recs).toEqual([]);
    });

    it("refuses a binary hop of an unknown format version instead of misreading it", () => {
      const data = encodeEnvelope(7, -1, [parsed(1)]);
      data[1] = 9;
      expect(() => decodeEnvelope(data)).toThrow(/version 9/);
    });
  });
});
