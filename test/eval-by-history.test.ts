import { describe, expect, it } from "vitest";
import { defaultBlend, ECOMMERCE, type Scored } from "../actors/sources/index.js";
import { historyBucket, score, type Case } from "../bin/eval/run.js";

const scored = (...items: string[]): Scored[] =>
  items.map((item, x) => ({ item, score: items.length - x, why: "" }));

/** A case at cut 0.5 of a user who touched `touched` items, with HISTORY and COLLABORATIVE lists. */
function caseOf(user: string, touched: number, target: string, history: string[], cf: string[]) {
  const seen = new Set(Array.from({ length: touched }, (_, x) => `${user}-seen${x}`));
  return {
    cut: 0.5,
    user,
    targets: new Set([target]),
    newTargets: new Set([target]),
    touched: seen,
    done: new Set<string>(),
    lists: { HISTORY: scored(...history), COLLABORATIVE: scored(...cf) },
    listsNew: { COLLABORATIVE: scored(...cf) },
    explicit: [],
    design: [],
  } satisfies Case;
}

describe("reco eval --by-history: HR per method by the items a user touched before the cut", () => {
  it("labels history lengths 1, 2, 3–4, 5–9 and 10+", () => {
    expect([1, 2, 3, 4, 5, 9, 10, 250].map(historyBucket)).toEqual([
      "1",
      "2",
      "3–4",
      "3–4",
      "5–9",
      "5–9",
      "10+",
      "10+",
    ]);
  });

  it("pools each case into its length's row, so a source ahead on short histories shows", () => {
    const cases: Case[] = [
      // One item touched: only COLLABORATIVE lists the target.
      caseOf("a", 1, "t", ["x"], ["t"]),
      caseOf("b", 1, "t", ["x"], ["y"]),
      // Twelve touched: HISTORY lists the target, COLLABORATIVE does not.
      caseOf("c", 12, "t", ["t"], ["z"]),
    ];
    const bs = { ...defaultBlend(ECOMMERCE), weights: { HISTORY: 1 } };
    const { byHistory, rows } = score(cases, [0.5], bs, 10, 100, [
      "blend",
      "HISTORY",
      "COLLABORATIVE",
    ]);
    const row = (mode: string, history: string) =>
      byHistory.find((h) => h.mode === mode && h.history === history);
    expect(row("seen", "1")).toEqual({
      mode: "seen",
      history: "1",
      cases: 2,
      hr: { blend: 0, HISTORY: 0, COLLABORATIVE: 0.5 },
    });
    expect(row("seen", "10+")?.hr).toEqual({ blend: 1, HISTORY: 1, COLLABORATIVE: 0 });
    expect(row("seen", "2")).toBeUndefined();
    // The rows split the pooled figure: 1 hit of 3 for COLLABORATIVE.
    expect(rows.COLLABORATIVE!.seen.hr).toBeCloseTo(1 / 3, 12);
    expect(byHistory.filter((h) => h.mode === "seen").reduce((n, h) => n + h.cases, 0)).toBe(3);
  });
});
