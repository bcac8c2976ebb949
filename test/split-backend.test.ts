import { describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { createSplitBackend } from "../bin/pipeline/split-backend.js";
import type { RecoBackend, Recommendations } from "../actors/contract/index.js";
import type { BlendReplica } from "../actors/serving/index.js";

/**
 * The serving process's backend (bin/pipeline/split-backend.ts), pure logic: the blend's replica
 * is a fake that is ready or not, the gateway's replicas a fixed design answer.
 */
const answer = (user: string, tag: string): Recommendations => ({
  userId: user,
  items: [{ itemId: tag } as Recommendations["items"][number]],
  topCategories: [],
  watermark: 1,
  statusMessage: "",
});
const design: RecoBackend = {
  isReady: () => true,
  recommendNow: (u) => answer(u, "design"),
  getRecommendations: async (u) => answer(u, "design"),
  trending: () => {
    throw new Error("unused");
  },
  similarItems: () => ({ itemId: "", items: [], basis: "category" }) as never,
};

function setup() {
  let ready = false;
  let staleness = 0;
  const blend = {
    isReady: () => ready,
    stalenessMs: () => staleness,
    answer: (u: string) => answer(u, "blend"),
    recent: () => [],
    similar: () => undefined,
  } as unknown as BlendReplica;
  const registry = new Registry();
  const backend = createSplitBackend({
    replica: design,
    blend,
    blendByDefault: true,
    row: () => undefined,
    rowsVersion: () => 0,
    topCategories: (u) => (u === "known" ? [{ category: "tv", interest: 3 }] : undefined),
    registry,
  });
  const count = async (from: string) =>
    (await registry.getSingleMetric("reco_serving_answers_total")!.get()).values.find(
      (v) => v.labels.from === from,
    )?.value ?? 0;
  return {
    backend,
    count,
    setReady: (r: boolean) => (ready = r),
    setStaleness: (ms: number) => (staleness = ms),
  };
}
const tags = (r: Recommendations | undefined) => r?.items.map((i) => i.itemId);

describe("the split backend", () => {
  it("serves the design ranking, counted as a fallback, until the blend's replica is ready", async () => {
    const t = setup();
    expect(tags(t.backend.recommendNow!("u", 10))).toEqual(["design"]);
    expect(await t.count("replica_fallback")).toBe(1);
    t.setReady(true);
    expect(tags(t.backend.recommendNow!("u", 10))).toEqual(["blend"]);
    expect(await t.count("blend")).toBe(1);
  });

  it("reports the replica's staleness and the profile's top categories with a blended answer", () => {
    const t = setup();
    t.setReady(true);
    expect(t.backend.recommendNow!("known", 10)!.stalenessMs).toBeUndefined();
    t.setStaleness(1_500);
    const r = t.backend.recommendNow!("known", 10)!;
    expect(r.stalenessMs).toBe(1_500);
    expect(r.topCategories).toEqual([{ category: "tv", interest: 3 }]);
    expect(t.backend.recommendNow!("other", 10)!.topCategories).toEqual([]);
  });
});
