import { describe, expect, it } from "vitest";
import { recommendationsJson } from "../connectors/http/api-views.js";

// The JSON API printed `averagePrice: 254.81999999999996`.
describe("JSON answers for people", () => {
  it("give prices to the cent and scores without float noise", () => {
    const json = recommendationsJson({
      userId: "u",
      items: [
        {
          itemId: "i",
          score: 0.1 + 0.2,
          rank: 1,
          category: "c",
          brand: "",
          averagePrice: (254.82 * 3) / 3 + 1e-12,
          source: "PERSONALIZED",
          purchases: 3,
        },
      ],
      topCategories: [],
      watermark: null,
      statusMessage: "",
    });
    expect(json.items[0]).toMatchObject({ averagePrice: 254.82, score: 0.3 });
    expect(JSON.stringify(json)).not.toMatch(/\d\.\d{9,}/);
  });
});
