import { describe, expect, it } from "vitest";
import { filterDesign } from "../actors/serving/index.js";
import { BackendUnavailableError, type Recommendations } from "../actors/contract/index.js";

const item = (itemId: string, category: string, rank: number) => ({
  itemId,
  score: 1 / rank,
  rank,
  category,
  brand: "",
  averagePrice: 0,
  source: "PERSONALIZED" as const,
  purchases: 1,
});

describe("the design ranking with request options (RANKER=design, the gateway)", () => {
  const recs: Recommendations = {
    userId: "u",
    items: [
      item("a", "toys", 1),
      item("b", "shoes", 2),
      item("c", "toys", 3),
      item("d", "toys", 4),
    ],
    topCategories: [],
    watermark: 5,
    statusMessage: "",
  };
  it("filters by category and exclusions, ranks again, cuts to n", () => {
    const out = filterDesign(recs, 2, { category: "toys", exclude: new Set(["a"]) });
    expect(out).toEqual({
      ...recs,
      items: [
        { ...item("c", "toys", 3), rank: 1 },
        { ...item("d", "toys", 4), rank: 2 },
      ],
    });
  });
  it("passes an unavailable answer on", () => {
    const err = new BackendUnavailableError("starting");
    expect(filterDesign(err, 2, { category: "toys" })).toBe(err);
  });
});
