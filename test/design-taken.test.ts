import { describe, expect, it } from "vitest";
import { designTaken } from "../actors/serving/index.js";

/*
 * Whether the design ranking's answer may already count a case (the prequential scorer then
 * leaves the design out of it): the case's item has a popularity row computed at or past the
 * case, or the user's profile lists it as purchased with an exclusion ending after the case.
 */
describe("designTaken", () => {
  const TS = 1_000;
  // Purchases as interest-ranking writes them: ordered by item id, the binary-searched form.
  const sorted: [string, number][] = ["a", "c", "e", "g", "i", "k", "m"].map((i, k) => [
    i,
    TS - 3 + k,
  ]);
  // The same purchases out of order: searched one by one.
  const unsorted: [string, number][] = [...sorted].reverse();

  it("finds an item purchased with an end after the case, in either order", () => {
    for (const pur of [sorted, unsorted]) {
      const profile = { pur };
      // "k" ends at TS + 2, "m" at TS + 3: after the case.
      expect(designTaken(undefined, profile, "k", TS)).toBe(true);
      expect(designTaken(undefined, profile, "m", TS)).toBe(true);
      // "a" ends at TS - 3 and "g" at TS: not after it.
      expect(designTaken(undefined, profile, "a", TS)).toBe(false);
      expect(designTaken(undefined, profile, "g", TS)).toBe(false);
      // Not purchased at all, between purchased ids and past the last one.
      expect(designTaken(undefined, profile, "b", TS)).toBe(false);
      expect(designTaken(undefined, profile, "z", TS)).toBe(false);
    }
  });

  it("counts the item's popularity row only once it is computed at or past the case", () => {
    expect(designTaken({ wm: TS }, undefined, "x", TS)).toBe(true);
    expect(designTaken({ wm: TS + 5 }, { pur: [] }, "x", TS)).toBe(true);
    expect(designTaken({ wm: TS - 1 }, { pur: [] }, "x", TS)).toBe(false);
    expect(designTaken(undefined, undefined, "x", TS)).toBe(false);
  });
});
