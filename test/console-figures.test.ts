import { describe, expect, it } from "vitest";
import { ECOMMERCE, defaultSourceSettings } from "../actors/sources/index.js";
import { priceOf } from "../actors/serving/index.js";
import { similarJson } from "../connectors/http/api-views.js";
import { MIN_CASES, reaches, readQuality } from "../connectors/http/api-quality.js";
import { recordMaker, reloaded, sourceStages } from "./helpers/source-stages.js";

/**
 * The figures behind the console (docs/CONSOLE.md): the minimums /v1/quality serves and whether
 * each figure reaches its own, and an item's average price from any event of it that carried one.
 */
const T0 = Date.UTC(2019, 9, 1);
const M = 60_000;

describe("quality figures and their cases", () => {
  it("serves the minimums and marks each figure below its own as not enough", async () => {
    const text = [
      'reco_prequential_hit_rate{method="blend",window="all"} 0.25',
      'reco_prequential_cases{method="blend",window="all"} 400',
      'reco_prequential_hit_rate{method="design",window="1h"} 1',
      'reco_prequential_cases{method="design",window="1h"} 3',
      'reco_arm_hit_rate{arm="a",window="all"} 0.5',
      'reco_arm_cases{arm="a",window="all"} 99',
      'reco_arm_hit_rate{arm="b",window="all"} 0.4',
      'reco_arm_cases{arm="b",window="all"} 100',
      'reco_drift_psi{dimension="category"} 0.3',
      'reco_drift_events{window="recent"} 40',
      'reco_drift_events{window="reference"} 5000',
      'reco_model_history{kind="implicit",version="1",data_position="100"} 1700000000',
      'reco_model_history{kind="implicit",version="2",data_position="900"} 1700000100',
      'reco_model_offline{kind="implicit",version="1",metric="hit_rate"} 1',
      'reco_model_offline{kind="implicit",version="1",metric="users"} 7',
      'reco_model_offline{kind="implicit",version="2",metric="hit_rate"} 0.421',
      'reco_model_offline{kind="implicit",version="2",metric="users"} 318',
      "",
    ].join("\n");
    const q = await readQuality({ metrics: () => Promise.resolve(text) });
    expect(q.minimums).toEqual({ heldOutUsers: 30, scoredEvents: 100, driftEvents: 100 });
    expect(q.prequential.map((p) => [p.method, p.cases, p.enough])).toEqual([
      ["blend", 400, true],
      ["design", 3, false],
    ]);
    expect(q.arms.map((a) => [a.arm, a.enough])).toEqual([
      ["a", false],
      ["b", true],
    ]);
    // The last hour held 40 events: too few for a PSI, however many the reference had.
    expect(q.drift.enough).toBe(false);
    expect(q.models.map((m) => [m.version, m.offline?.users, m.offline?.enough])).toEqual([
      [2, 318, true],
      [1, 7, false],
    ]);
  });

  it("reaches a minimum at exactly the minimum, never with a count that is not a number", () => {
    expect(reaches(MIN_CASES.heldOutUsers, MIN_CASES.heldOutUsers)).toBe(true);
    expect(reaches(MIN_CASES.heldOutUsers - 1, MIN_CASES.heldOutUsers)).toBe(false);
    expect(reaches(Number.NaN, 1)).toBe(false);
  });
});

describe("an item's average price", () => {
  const sources = defaultSourceSettings(ECOMMERCE);

  it("averages the prices of every event of the item (views too), across a restart", () => {
    const s = sourceStages({ partitions: 2, preset: ECOMMERCE, sources });
    const rec = recordMaker();
    const priced = (u: string, i: string, at: number, pr: number) => ({ ...rec(u, i, at), pr });
    s.feed([
      priced("u1", "viewed", T0, 10),
      priced("u2", "viewed", T0 + M, 20),
      rec("u3", "viewed", T0 + 2 * M), // no price: not counted
      rec("u1", "unpriced", T0 + 3 * M),
    ]);
    const v = s.view();
    expect(v.priceOf("viewed")).toBe(15);
    expect(v.priceOf("unpriced")).toBeUndefined();
    expect(v.priceOf("never-seen")).toBeUndefined();
    const states = new Map([...s.history, ...s.covisit].map((x) => [x.id, x.state]));
    const again = sourceStages({
      partitions: 2,
      preset: ECOMMERCE,
      sources,
      state: (id) => reloaded(states.get(id)!),
    });
    expect(again.view().priceOf("viewed")).toBe(15);
  });

  it("prefers the price from every event, then the purchases' average, else 0 (a dash)", () => {
    const of = (p: number | undefined) => ({ priceOf: () => p });
    expect(priceOf(of(12.5), { avgPrice: 9 }, "x")).toBe(12.5);
    expect(priceOf(of(undefined), { avgPrice: 9 }, "x")).toBe(9);
    expect(priceOf(of(undefined), undefined, "x")).toBe(0);
    expect(priceOf({}, { avgPrice: 0 }, "x")).toBe(0);
  });

  it("answers similar items' prices to the cent", () => {
    const item = {
      itemId: "1004748",
      score: 1,
      rank: 1,
      category: "electronics",
      brand: "samsung",
      averagePrice: 130.95000000000002,
      purchases: 0,
      explanation: "",
    };
    const json = similarJson({
      itemId: "1004856",
      basis: "CO_VISITATION",
      items: [item],
      watermark: null,
      statusMessage: "",
    });
    expect(json.items[0]!.averagePrice).toBe(130.95);
  });
});
