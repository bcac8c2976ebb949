import { describe, expect, it } from "vitest";
import type { SourceLists } from "../actors/sources/index.js";
import { seededRandom, SOURCE_NAMES, type Scored } from "../actors/sources/index.js";
import type { Case } from "../bin/eval/run.js";
import { chooseWeights } from "../bin/eval/weights.js";

/** Random cases: five sources of 15 scored items from 40, targets among them, some touched. */
function cases(n: number, seed: number): Case[] {
  const r = seededRandom(seed);
  const pick = () => `i${Math.floor(r() * r() * 40)}`;
  const list = (): Scored[] => {
    const m = new Map<string, number>();
    while (m.size < 15) m.set(pick(), r() * 10);
    return [...m]
      .map(([item, score]) => ({ item, score, why: "" }))
      .sort((a, b) => b.score - a.score);
  };
  return Array.from({ length: n }, (_, x) => {
    const lists: SourceLists = {};
    for (const s of SOURCE_NAMES) if (s !== "PERSONALIZED") lists[s] = list();
    const touched = new Set([pick(), pick(), pick()]);
    const targets = new Set([pick(), pick()]);
    return {
      cut: x % 2 === 0 ? 0.2 : 0.25,
      user: `u${x}`,
      targets,
      newTargets: new Set([...targets].filter((i) => !touched.has(i))),
      touched,
      done: new Set([pick()]),
      lists,
      listsNew: lists,
      explicit: [],
      design: [],
    };
  });
}

describe("reco eval --validation's weight grid", () => {
  it("scores each grid point as blend() does: the chosen point's HR is the same both ways", () => {
    for (const mode of ["seen", "new"] as const) {
      const v = chooseWeights(cases(60, mode === "seen" ? 1 : 2), [0.2, 0.25], mode, 10);
      expect(v.cases).toBeGreaterThan(30);
      expect(v.gridHr, JSON.stringify(v.chosen)).toBe(v.hr);
      expect(Object.keys(v.chosen.weights).length).toBeGreaterThan(0);
    }
  });
});
