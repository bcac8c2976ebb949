import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { toBinary } from "@bufbuild/protobuf";
import { GetRecommendationsResponseSchema } from "../proto/gen/reco/v1/reco_pb.js";
import type { Recommendations, Source } from "../actors/contract/index.js";
import { recoServiceDefinition, toRecommendationsResponse } from "../connectors/grpc/codec.js";

// GetRecommendations keeps the encoded items of an answer served again (response-bytes.ts) and
// encodes only the rest per call: the bytes must be exactly protobuf-es's for the whole message.
const serialize = recoServiceDefinition.GetRecommendations.responseSerialize;
const reference = (r: Recommendations) =>
  Buffer.from(toBinary(GetRecommendationsResponseSchema, toRecommendationsResponse(r)));

const sources: Source[] = [
  "PERSONALIZED",
  "POPULAR_FALLBACK",
  "HISTORY",
  "SIMILAR_ITEMS",
  "COLLABORATIVE",
  "TRENDING",
];
const item = fc.record(
  {
    itemId: fc.string({ unit: "grapheme", maxLength: 40 }),
    score: fc.double({ noNaN: true }),
    rank: fc.integer({ min: 0, max: 1000 }),
    category: fc.string({ maxLength: 30 }),
    brand: fc.string({ maxLength: 30 }),
    averagePrice: fc.double({ noNaN: true }),
    source: fc.constantFrom(...sources),
    purchases: fc.integer({ min: 0, max: 2 ** 40 }),
    explanation: fc.string({ maxLength: 200 }),
  },
  {
    requiredKeys: [
      "itemId",
      "score",
      "rank",
      "category",
      "brand",
      "averagePrice",
      "source",
      "purchases",
    ],
  },
);
const rest = fc.record({
  // Long ids too: the user id's length takes more than one varint byte.
  userId: fc.oneof(fc.string({ maxLength: 5 }), fc.string({ minLength: 120, maxLength: 400 })),
  topCategories: fc.array(
    fc.record({
      category: fc.string({ maxLength: 20 }),
      interest: fc.integer({ min: 0, max: 1e6 }),
    }),
    { maxLength: 4 },
  ),
  watermark: fc.option(fc.integer({ min: 0, max: 2 ** 42 }), { nil: null }),
  statusMessage: fc.string({ maxLength: 40 }),
  stalenessMs: fc.option(fc.integer({ min: 0, max: 1e6 }), { nil: undefined }),
  arm: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
});

describe("GetRecommendations response bytes", () => {
  it("are protobuf-es's for the whole message, the first time and when an answer's items are served again", () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 12 }), rest, rest, (items, a, b) => {
        const first: Recommendations = { ...a, items } as Recommendations;
        expect(serialize(toRecommendationsResponse(first))).toEqual(reference(first));
        // The same answer again (its items' bytes kept) ...
        expect(serialize(toRecommendationsResponse(first))).toEqual(reference(first));
        // ... and the same items under another user, top categories, watermark (serving.ts
        // adds the top categories to a memoised answer): only the items are shared.
        const second: Recommendations = { ...b, items } as Recommendations;
        expect(serialize(toRecommendationsResponse(second))).toEqual(reference(second));
      }),
      { numRuns: 300 },
    );
  });

  it("encode a message that was not built from an answer as it is", () => {
    const r: Recommendations = {
      userId: "u1",
      items: [
        {
          itemId: "p1",
          score: 1,
          rank: 1,
          category: "c",
          brand: "b",
          averagePrice: 2,
          source: "HISTORY",
          purchases: 3,
        },
      ],
      topCategories: [],
      watermark: 5,
      statusMessage: "",
    };
    // A message of its own (as the bench's echo builds one): changing it changes its bytes.
    const msg = { ...toRecommendationsResponse(r), items: [...toRecommendationsResponse(r).items] };
    const before = Buffer.from(serialize(msg));
    msg.items[0] = { ...msg.items[0]!, itemId: "p2" };
    const after = serialize(msg);
    expect(after).not.toEqual(before);
    expect(after).toEqual(Buffer.from(toBinary(GetRecommendationsResponseSchema, msg)));
  });
});
