import { describe, expect, it } from "vitest";
import { blend, type SourceLists, createPopular, createTrending } from "../actors/sources/index.js";
import type { SourceEvent } from "../actors/sources/index.js";

const H = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);
const s = (item: string, score: number, why = `why ${item}`) => ({ item, score, why });

const lists: SourceLists = {
  HISTORY: [s("h1", 4), s("h2", 2)],
  SIMILAR_ITEMS: [s("h2", 10, "viewed together with h1"), s("s1", 5)],
  COLLABORATIVE: [s("c1", 0.9), s("s1", 0.3)],
  POPULAR_FALLBACK: [s("p1", 50, "popular overall"), s("p2", 40), s("h1", 30)],
};

describe("blend", () => {
  it("sums weighted normalised scores and names the source that contributed most", () => {
    const out = blend(
      lists,
      { mode: "score", weights: { HISTORY: 1, SIMILAR_ITEMS: 1, COLLABORATIVE: 1 } },
      { n: 4 },
    );
    // h2: 0.5 (history) + 1 (similar); h1: 1; c1: 1; s1: 0.5 + 0.333
    expect(out.map((x) => [x.item, x.source])).toEqual([
      ["h2", "SIMILAR_ITEMS"],
      ["c1", "COLLABORATIVE"],
      ["h1", "HISTORY"],
      ["s1", "SIMILAR_ITEMS"],
    ]);
    expect(out[0]!.explanation).toBe("viewed together with h1");
    expect(out.map((x) => x.rank)).toEqual([1, 2, 3, 4]);
  });

  it("rank fusion weighs positions, not scores", () => {
    const out = blend(
      lists,
      { mode: "rank", rrfK: 1, weights: { HISTORY: 1, COLLABORATIVE: 1 } },
      { n: 2 },
    );
    // h1 and c1 are both first (1/2): ties by id
    expect(out.map((x) => x.item)).toEqual(["c1", "h1"]);
  });

  it("fills from the popular list and is never empty while anything is popular", () => {
    const out = blend(
      { POPULAR_FALLBACK: lists.POPULAR_FALLBACK },
      { mode: "score", weights: { HISTORY: 1 } },
      { n: 2 },
    );
    expect(out.map((x) => [x.item, x.source, x.explanation])).toEqual([
      ["p1", "POPULAR_FALLBACK", "popular overall"],
      ["p2", "POPULAR_FALLBACK", "why p2"],
    ]);
  });

  it("applies the request: excluded ids, touched items, main category", () => {
    const cats: Record<string, string> = {
      h1: "tv",
      h2: "phone",
      s1: "phone",
      c1: "tv",
      p1: "tv",
      p2: "phone",
    };
    const w = {
      mode: "score" as const,
      weights: { HISTORY: 1, SIMILAR_ITEMS: 1, COLLABORATIVE: 1 },
    };
    expect(blend(lists, w, { n: 10, exclude: new Set(["h2", "c1"]) }).map((x) => x.item)).toEqual([
      "s1", // normalised within what is allowed: 1 (similar) + 1 (collaborative)
      "h1",
      "p1",
      "p2",
    ]);
    const touched = new Set(["h1", "h2"]);
    expect(blend(lists, w, { n: 3, touched, excludeTouched: true }).map((x) => x.item)).toEqual([
      "s1",
      "c1",
      "p1",
    ]);
    expect(blend(lists, w, { n: 10, touched }).some((x) => x.item === "h1")).toBe(true);
    expect(
      blend(lists, w, { n: 10, category: "phone", categoryOf: (i) => cats[i] }).map((x) => x.item),
    ).toEqual(["h2", "s1", "p2"]);
  });

  it("a weighted popular list takes part like any source", () => {
    const out = blend(
      lists,
      { mode: "score", weights: { POPULAR_FALLBACK: 1, COLLABORATIVE: 0.5 } },
      { n: 2 },
    );
    expect(out.map((x) => [x.item, x.source])).toEqual([
      ["p1", "POPULAR_FALLBACK"],
      ["p2", "POPULAR_FALLBACK"],
    ]);
  });
});

const ev = (i: string, t: SourceEvent["t"], ts: number): SourceEvent => ({
  u: "u",
  i,
  t,
  ts,
  c: "",
  r: -1,
});

describe("trending and popular counters", () => {
  it("trending: views × 1 and clicks × 2, halved every half-life of event time", () => {
    const tr = createTrending({ halfLifeMs: H });
    tr.add(ev("a", "view", T0));
    tr.add(ev("a", "view", T0));
    tr.add(ev("b", "click", T0 + H));
    tr.add(ev("c", "purchase", T0 + H)); // not a trending signal
    expect(tr.top(T0 + H, 10).map((x) => [x.item, x.score])).toEqual([
      ["b", 2],
      ["a", 1],
    ]);
    expect(tr.top(T0 + 2 * H, 1, (i) => i !== "b").map((x) => [x.item, x.score])).toEqual([
      ["a", 0.5],
    ]);
  });

  it("keeps precision over years of event time (the anchor moves on)", () => {
    const tr = createTrending({ halfLifeMs: H });
    tr.add(ev("old", "view", T0));
    const later = T0 + 2000 * H;
    tr.add(ev("new", "view", later));
    expect(tr.score("new", later)).toBeCloseTo(1, 12);
    expect(tr.score("old", later)).toBe(0);
  });

  it("popular: target events only, plain counts by default", () => {
    const pop = createPopular((e) => e.t === "purchase");
    pop.add(ev("a", "purchase", T0));
    pop.add(ev("a", "purchase", T0 + 1000 * H));
    pop.add(ev("b", "view", T0));
    expect(pop.top(T0 + 5000 * H, 10).map((x) => [x.item, x.score, x.why])).toEqual([
      ["a", 2, "popular overall"],
    ]);
  });
});
