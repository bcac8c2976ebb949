import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
  EVENT_TYPES,
  isPurchase,
  normaliseEvent,
  parseJsonEvent,
  type Interaction,
  type ParseOptions,
  type ParseResult,
} from "../actors/contract/index.js";

/** The event contract v1 (DESIGN.md §2), rule by rule. */

const enc = new TextEncoder();
const ID = "0b6f3d0e-6c1a-4e8b-9a57-3c2d1e0f9a7b";
const TS = "2024-03-01T12:00:00Z";
const TS_MS = Date.UTC(2024, 2, 1, 12, 0, 0);

function base(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: ID,
    event_type: "view",
    event_ts: TS,
    user_id: "u1",
    item_id: "p1",
    ...overrides,
  };
}

function without(...fields: string[]): Record<string, unknown> {
  const o = base();
  for (const f of fields) delete o[f];
  return o;
}

function parse(o: unknown, options?: ParseOptions): ParseResult {
  return parseJsonEvent(enc.encode(JSON.stringify(o)), options);
}

function reasonOf(r: ParseResult): string {
  return r.ok ? "ok" : r.reason;
}

function accepted(r: ParseResult): Interaction {
  if (!r.ok) throw new Error(`rejected: ${r.reason}`);
  return r.event;
}

describe("the event contract v1", () => {
  it("should accept a minimal valid event and normalise it to the short record", () => {
    expect(accepted(parse(base()))).toEqual({
      id: ID,
      t: "view",
      ts: TS_MS,
      u: "u1",
      i: "p1",
      c: "",
      b: "",
      pr: -1,
      r: -1,
    });
  });

  describe("required fields", () => {
    const required = ["event_id", "event_type", "event_ts", "user_id", "item_id"];
    it.each(required)("should reject an event without %s as missing_field:<name>", (f) => {
      expect(reasonOf(parse(without(f)))).toBe(`missing_field:${f}`);
    });
    it.each(required)("should treat %s set to null or to an empty string as missing", (f) => {
      expect(reasonOf(parse(base({ [f]: null })))).toBe(`missing_field:${f}`);
      expect(reasonOf(parse(base({ [f]: "" })))).toBe(`missing_field:${f}`);
    });
    it("should report the first missing field in contract order", () => {
      expect(reasonOf(parse({}))).toBe("missing_field:event_id");
      expect(reasonOf(parse(without("user_id", "item_id")))).toBe("missing_field:user_id");
    });
  });

  describe("event_id", () => {
    it.each([
      ["not a uuid", "abc"],
      ["a uuid without dashes", "0b6f3d0e6c1a4e8b9a573c2d1e0f9a7b"],
      ["a uuid with a non-hex digit", "0b6f3d0e-6c1a-4e8b-9a57-3c2d1e0f9a7g"],
      ["a uuid with extra characters", `${ID}0`],
      ["a number", 12345],
    ])("should reject %s as invalid_field:event_id", (_, id) => {
      expect(reasonOf(parse(base({ event_id: id })))).toBe("invalid_field:event_id");
    });
    it("should accept an upper-case uuid and normalise it to lower case (same id, same event)", () => {
      expect(accepted(parse(base({ event_id: ID.toUpperCase() }))).id).toBe(ID);
    });
  });

  describe("event_type", () => {
    it.each([...EVENT_TYPES])("should accept event_type %s", (t) => {
      const extra = t === "rating" ? { rating: 3 } : {};
      expect(accepted(parse(base({ event_type: t, ...extra }))).t).toBe(t);
    });
    it.each([["like"], ["VIEW"], ["page_view"], [3], [true]])(
      "should reject event_type %j as invalid_field:event_type",
      (t) => {
        expect(reasonOf(parse(base({ event_type: t })))).toBe("invalid_field:event_type");
      },
    );
  });

  describe("event_ts", () => {
    it.each([
      ["UTC with Z", "2024-03-01T12:00:00Z", TS_MS],
      ["a +hh:mm offset", "2024-03-01T14:00:00+02:00", TS_MS],
      ["a -hh:mm offset", "2024-03-01T07:30:00-04:30", TS_MS],
      ["a space instead of T", "2024-03-01 12:00:00Z", TS_MS],
      ["milliseconds", "2024-03-01T12:00:00.250Z", TS_MS + 250],
      ["epoch millis as a number", TS_MS, TS_MS],
      ["epoch millis as a string", String(TS_MS), TS_MS],
    ])("should accept ISO-8601 with %s", (_, ts, ms) => {
      expect(accepted(parse(base({ event_ts: ts }))).ts).toBe(ms);
    });
    it.each([
      ["an ISO time without a zone", "2024-03-01T12:00:00"],
      ["a date alone", "2024-03-01"],
      ["free text", "yesterday at noon"],
      ["month 13", "2024-13-01T12:00:00Z"],
      ["a negative number", -1],
      ["a fractional number", 1709294400000.5],
      ["a boolean", true],
      ["an object", { ms: TS_MS }],
    ])("should reject %s as invalid_field:event_ts", (_, ts) => {
      expect(reasonOf(parse(base({ event_ts: ts })))).toBe("invalid_field:event_ts");
    });
  });

  describe("calendar dates and decimal numbers", () => {
    it.each([
      ["30 February", "2019-02-30T00:00:00Z"],
      ["29 February of a common year", "2019-02-29T00:00:00Z"],
      ["31 April", "2019-04-31T12:00:00Z"],
      ["day 0", "2019-04-00T12:00:00Z"],
      ["hour 24", "2019-04-01T24:00:00Z"],
      ["minute 60", "2019-04-01T12:60:00Z"],
      ["second 60", "2019-04-01T12:00:60Z"],
      ["a zone offset of 24 h", "2019-04-01T12:00:00+24:00"],
    ])("rejects %s as invalid_field:event_ts (Date.parse rolls it over)", (_, ts) => {
      expect(reasonOf(parse(base({ event_ts: ts })))).toBe("invalid_field:event_ts");
    });
    it("accepts 29 February of leap years, 2000 included", () => {
      expect(accepted(parse(base({ event_ts: "2020-02-29T00:00:00Z" }))).ts).toBe(
        Date.UTC(2020, 1, 29),
      );
      expect(accepted(parse(base({ event_ts: "2000-02-29T00:00:00Z" }))).ts).toBe(
        Date.UTC(2000, 1, 29),
      );
      expect(reasonOf(parse(base({ event_ts: "1900-02-29T00:00:00Z" })))).toBe(
        "invalid_field:event_ts",
      );
    });
    it.each(["0x10", "0b1", "0o7", "Infinity", " ", "1_000", "12 "])(
      "rejects the price text %j: only decimal numbers",
      (p) => {
        expect(reasonOf(parse(base({ price: p })))).toBe("invalid_field:price");
      },
    );
    it.each([
      ["16", 16],
      ["12.50", 12.5],
      [".5", 0.5],
      ["1e3", 1000],
    ])("accepts the decimal price text %j", (p, v) => {
      expect(accepted(parse(base({ price: p }))).pr).toBe(v);
    });
    it("rejects a hexadecimal rating text", () => {
      expect(reasonOf(parse(base({ event_type: "rating", rating: "0x4" })))).toBe(
        "invalid_field:rating",
      );
      expect(accepted(parse(base({ event_type: "rating", rating: "4.5" }))).r).toBe(4.5);
    });
  });

  describe("field lengths (ids become KV keys and subjects)", () => {
    it.each([
      ["item_id", 256],
      ["category_code", 256],
      ["brand", 256],
      ["session_id", 256],
      ["device_type", 256],
      ["click_type", 256],
      ["page_url", 2048],
      ["referrer", 2048],
    ])("accepts %s at its limit and dead-letters one more as field_too_long", (field, max) => {
      expect(parse(base({ [field]: "x".repeat(max) })).ok).toBe(true);
      expect(reasonOf(parse(base({ [field]: "x".repeat(max + 1) })))).toBe(
        `field_too_long:${field}`,
      );
    });
    it("limits product_id and movie_id like item_id, and a 10,240-char item_id", () => {
      expect(reasonOf(parse({ ...without("item_id"), product_id: "p".repeat(257) }))).toBe(
        "field_too_long:item_id",
      );
      expect(reasonOf(parse({ ...without("item_id"), movie_id: "m".repeat(10_240) }))).toBe(
        "field_too_long:item_id",
      );
    });
    it("rejects ids holding an unpaired surrogate (no UTF-8 form: two ids would share a key)", () => {
      expect(reasonOf(parse(base({ item_id: "a\ud800" })))).toBe("invalid_field:item_id");
      expect(reasonOf(parse(base({ user_id: "u\udfff" })))).toBe("invalid_field:user_id");
      expect(accepted(parse(base({ item_id: "a\ud83d\ude00" }))).i).toBe("a\u{1f600}");
    });
  });

  describe("regressions", () => {
    it("rejects epoch times beyond what a Date can hold, which would stall every window", () => {
      for (const ts of [8.64e15 + 1, 1e300, "9999999999999999"])
        expect(reasonOf(parse(base({ event_ts: ts })))).toBe("invalid_field:event_ts");
      expect(accepted(parse(base({ event_ts: 8.64e15 }))).ts).toBe(8.64e15);
    });

    it("takes product_id when item_id is present but empty", () => {
      expect(accepted(parse(base({ item_id: "", product_id: 44 }))).i).toBe("44");
      expect(accepted(parse(base({ item_id: null, movie_id: "m1" }))).i).toBe("m1");
    });
  });

  describe("user_id", () => {
    it("should keep a string user id as it is", () => {
      expect(accepted(parse(base({ user_id: "Alice 42" }))).u).toBe("Alice 42");
    });
    it("should normalise a positive integer user id to its decimal string", () => {
      expect(accepted(parse(base({ user_id: 42 }))).u).toBe("42");
    });
    it.each([
      ["zero", 0],
      ["a negative integer", -3],
      ["a fractional number", 1.5],
      ["a boolean", true],
      ["an object", { id: 1 }],
      ["an array", ["u1"]],
      ["a blank string", "   "],
    ])("should reject %s as invalid_field:user_id", (_, u) => {
      expect(reasonOf(parse(base({ user_id: u })))).toBe("invalid_field:user_id");
    });
    it("should accept 128 characters and reject 129 as user_id_too_long", () => {
      expect(accepted(parse(base({ user_id: "u".repeat(128) }))).u).toHaveLength(128);
      expect(reasonOf(parse(base({ user_id: "u".repeat(129) })))).toBe("user_id_too_long");
    });
    it("should take the maximum length from the options", () => {
      expect(reasonOf(parse(base({ user_id: "abcd" }), { maxUserIdLength: 3 }))).toBe(
        "user_id_too_long",
      );
      expect(accepted(parse(base({ user_id: "abc" }), { maxUserIdLength: 3 })).u).toBe("abc");
    });
  });

  describe("item_id", () => {
    it("should accept product_id as an alias of item_id", () => {
      expect(accepted(parse({ ...without("item_id"), product_id: "sku-9" })).i).toBe("sku-9");
    });
    it("should accept movie_id as an alias of item_id and normalise an integer", () => {
      expect(accepted(parse({ ...without("item_id"), movie_id: 318 })).i).toBe("318");
    });
    it("should prefer item_id when an alias is also present", () => {
      expect(accepted(parse(base({ item_id: "a", product_id: "b", movie_id: "c" }))).i).toBe("a");
    });
    it.each([
      ["zero", 0],
      ["a negative integer", -1],
      ["a fractional number", 2.5],
      ["a boolean", false],
    ])("should reject %s as invalid_field:item_id", (_, i) => {
      expect(reasonOf(parse(base({ item_id: i })))).toBe("invalid_field:item_id");
    });
  });

  describe("category_code and brand", () => {
    it("should keep the first segment of a dotted category code as the main category", () => {
      const e = accepted(parse(base({ category_code: "electronics.smartphone.android" })));
      expect(e.c).toBe("electronics");
    });
    it("should keep an undotted category code whole", () => {
      expect(accepted(parse(base({ category_code: "books" }))).c).toBe("books");
    });
    it("should reject a non-string category code", () => {
      expect(reasonOf(parse(base({ category_code: 7 })))).toBe("invalid_field:category_code");
    });
    it("should keep a string brand and reject another type", () => {
      expect(accepted(parse(base({ brand: "acme" }))).b).toBe("acme");
      expect(reasonOf(parse(base({ brand: 1 })))).toBe("invalid_field:brand");
    });
  });

  describe("price", () => {
    it.each([0, 12.5, 1e6])("should accept price %d", (p) => {
      expect(accepted(parse(base({ price: p }))).pr).toBe(p);
    });
    it.each([
      ["a negative price", -0.01],
      ["a non-numeric string", "cheap"],
      ["a boolean", true],
    ])("should reject %s as invalid_field:price", (_, p) => {
      expect(reasonOf(parse(base({ price: p })))).toBe("invalid_field:price");
    });
    it("should reject an infinite price (1e400 in the JSON text)", () => {
      const json = JSON.stringify(base()).replace(/}$/, ',"price":1e400}');
      expect(reasonOf(parseJsonEvent(enc.encode(json)))).toBe("invalid_field:price");
    });
  });

  describe("rating", () => {
    it.each([0.5, 3, 5])("should accept rating %d on a rating event", (r) => {
      expect(accepted(parse(base({ event_type: "rating", rating: r }))).r).toBe(r);
    });
    it.each([0, 0.49, 5.01, 10, -1])("should reject rating %d as rating_out_of_range", (r) => {
      expect(reasonOf(parse(base({ event_type: "rating", rating: r })))).toBe(
        "rating_out_of_range",
      );
    });
    it("should require a rating on a rating event", () => {
      expect(reasonOf(parse(base({ event_type: "rating" })))).toBe("missing_field:rating");
      expect(reasonOf(parse(base({ event_type: "rating", rating: null })))).toBe(
        "missing_field:rating",
      );
    });
    it("should reject a non-numeric rating", () => {
      expect(reasonOf(parse(base({ event_type: "rating", rating: "great" })))).toBe(
        "invalid_field:rating",
      );
    });
    it("should leave the rating optional on other events, -1 when absent", () => {
      expect(accepted(parse(base())).r).toBe(-1);
      expect(accepted(parse(base({ rating: 4 }))).r).toBe(4);
    });
  });

  describe("review_text", () => {
    it("should accept 5,000 characters and reject 5,001 as review_text_too_long", () => {
      expect(parse(base({ review_text: "x".repeat(5000) })).ok).toBe(true);
      expect(reasonOf(parse(base({ review_text: "x".repeat(5001) })))).toBe("review_text_too_long");
    });
    it("should take the maximum length from the options", () => {
      expect(reasonOf(parse(base({ review_text: "abcdef" }), { maxReviewLength: 5 }))).toBe(
        "review_text_too_long",
      );
    });
    it("should reject a non-string review", () => {
      expect(reasonOf(parse(base({ review_text: 5 })))).toBe("invalid_field:review_text");
    });
  });

  describe("optional string fields", () => {
    const fields = ["session_id", "page_url", "device_type", "click_type", "referrer"];
    it.each(fields)("should accept a string %s", (f) => {
      expect(parse(base({ [f]: "some text" })).ok).toBe(true);
    });
    it.each(fields)("should reject a non-string %s as invalid_field:<name>", (f) => {
      expect(reasonOf(parse(base({ [f]: 12 })))).toBe(`invalid_field:${f}`);
      expect(reasonOf(parse(base({ [f]: { nested: true } })))).toBe(`invalid_field:${f}`);
    });
  });

  describe("bad bytes", () => {
    it.each([
      ["truncated JSON", "{"],
      ["an empty message", ""],
      ["plain text", "hello"],
    ])("should reject %s as bad_json", (_, text) => {
      expect(reasonOf(parseJsonEvent(enc.encode(text)))).toBe("bad_json");
    });
    it("should reject invalid UTF-8 as bad_json", () => {
      const json = enc.encode(JSON.stringify(base({ brand: "X" })));
      const broken = Uint8Array.from(json, (b) => (b === "X".charCodeAt(0) ? 0xff : b));
      expect(reasonOf(parseJsonEvent(broken))).toBe("bad_json");
    });
    it.each([["[]"], ["42"], ["null"], ['"event"']])(
      "should reject the JSON value %s as not_object",
      (text) => {
        expect(reasonOf(parseJsonEvent(enc.encode(text)))).toBe("not_object");
      },
    );
  });

  it("should validate a decoded object (the protobuf path) by the same rules", () => {
    expect(normaliseEvent(base({ user_id: 7 }))).toEqual({
      ok: true,
      event: { id: ID, t: "view", ts: TS_MS, u: "7", i: "p1", c: "", b: "", pr: -1, r: -1 },
    });
    expect(normaliseEvent(base({ rating: 9 }))).toEqual({
      ok: false,
      reason: "rating_out_of_range",
    });
  });

  describe("properties", () => {
    const wellFormed = (r: ParseResult) =>
      r.ok ? typeof r.event.id === "string" : typeof r.reason === "string" && r.reason.length > 0;

    it("should never throw on arbitrary bytes, and answer ok or a non-empty reason", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
          expect(wellFormed(parseJsonEvent(bytes))).toBe(true);
        }),
        { numRuns: 500 },
      );
    });

    it("should never throw on arbitrary JSON values, and answer ok or a non-empty reason", () => {
      fc.assert(
        fc.property(fc.jsonValue(), (v) => {
          expect(wellFormed(parseJsonEvent(enc.encode(JSON.stringify(v) ?? "null")))).toBe(true);
        }),
        { numRuns: 500 },
      );
    });

    it("should never throw when any contract field holds an arbitrary JSON value", () => {
      const field = fc.constantFrom(
        "event_id",
        "event_type",
        "event_ts",
        "user_id",
        "item_id",
        "product_id",
        "category_code",
        "brand",
        "price",
        "rating",
        "session_id",
        "review_text",
      );
      fc.assert(
        fc.property(fc.dictionary(field, fc.jsonValue()), (patch) => {
          expect(wellFormed(parse(base(patch)))).toBe(true);
        }),
        { numRuns: 500 },
      );
    });

    it("should normalise every positive safe integer user id to its decimal text", () => {
      fc.assert(
        fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (n) => {
          expect(accepted(parse(base({ user_id: n }))).u).toBe(String(n));
        }),
      );
    });

    it("should accept every valid rating from 0.5 to 5 on a rating event", () => {
      fc.assert(
        fc.property(fc.double({ min: 0.5, max: 5, noNaN: true }), (r) => {
          expect(accepted(parse(base({ event_type: "rating", rating: r }))).r).toBe(r);
        }),
      );
    });
  });
});

describe("isPurchase", () => {
  it("should count only purchase events in the ecommerce preset", () => {
    expect(isPurchase({ t: "purchase", r: -1 }, "ecommerce")).toBe(true);
    expect(isPurchase({ t: "rating", r: 5 }, "ecommerce")).toBe(false);
    expect(isPurchase({ t: "cart", r: -1 }, "ecommerce")).toBe(false);
    expect(isPurchase({ t: "view", r: -1 }, "ecommerce")).toBe(false);
  });

  it("should count a rating of 4 or more as a purchase in the movies preset", () => {
    expect(isPurchase({ t: "rating", r: 4 }, "movies")).toBe(true);
    expect(isPurchase({ t: "rating", r: 5 }, "movies")).toBe(true);
    expect(isPurchase({ t: "rating", r: 3.5 }, "movies")).toBe(false);
    expect(isPurchase({ t: "rating", r: 0.5 }, "movies")).toBe(false);
    expect(isPurchase({ t: "view", r: -1 }, "movies")).toBe(false);
  });
});
