import { describe, expect, it } from "vitest";
import { defaultBlend, ECOMMERCE, type Scored } from "../actors/sources/index.js";
import { listFor, score, type Case } from "../bin/eval/run.js";

const scored = (...items: string[]): Scored[] =>
  items.map((item, x) => ({ item, score: items.length - x, why: "" }));

/**
 * A user who bought "bought" before the cut and buys it again after it: the target is a done
 * item, which serving never returns.
 */
const repurchase: Case = {
  cut: 0.5,
  user: "u",
  targets: new Set(["bought"]),
  newTargets: new Set(),
  touched: new Set(["bought", "viewed"]),
  done: new Set(["bought"]),
  lists: {
    HISTORY: scored("bought", "viewed"),
    COLLABORATIVE: scored("bought", "other"),
    POPULAR_FALLBACK: scored("bought", "hit"),
  },
  listsNew: {},
  explicit: [],
  design: [
    { item: "bought", source: "PERSONALIZED" },
    { item: "hit", source: "POPULAR_FALLBACK" },
  ],
};

describe("reco eval scores every method as serving answers it", () => {
  it("leaves the user's done items out of popularity and of each source alone, as the blend does", () => {
    const bs = defaultBlend(ECOMMERCE);
    expect(listFor("blend", repurchase, "seen", bs, 10)).not.toContain("bought");
    for (const m of ["COLLABORATIVE", "HISTORY", "popularity"] as const)
      expect(listFor(m, repurchase, "seen", bs, 10), m).not.toContain("bought");
    expect(listFor("COLLABORATIVE", repurchase, "seen", bs, 10)).toEqual(["other"]);
    expect(listFor("popularity", repurchase, "seen", bs, 10)).toEqual(["hit"]);
    // The design ranking is scored as its stages answer (they keep no per-user items).
    expect(listFor("design", repurchase, "seen", bs, 10)).toEqual(["bought", "hit"]);
  });

  it("credits no single source with a done item the blend may not serve", () => {
    const { rows } = score([repurchase], [0.5], defaultBlend(ECOMMERCE), 10, 100, [
      "blend",
      "COLLABORATIVE",
      "HISTORY",
      "popularity",
    ]);
    for (const m of ["blend", "COLLABORATIVE", "HISTORY", "popularity"] as const)
      expect(rows[m]!.seen, m).toMatchObject({ cases: 1, hr: 0 });
  });
});
