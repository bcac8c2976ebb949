import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";
import type { StageHandler, StageSpec } from "../actors/host/index.js";
import { recommenderWiring } from "../actors/plan/index.js";
import { subjects } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";

/** The blend's wiring with co-visitation per user partition. */
function specsOf(partitions: number) {
  const specs = new Map<string, StageSpec<StageHandler>>();
  recommenderWiring(
    { ranker: "blend", preset: "ecommerce", idleTimeoutMs: 0, partitions },
    {
      stream: "HOPS",
      run: (spec) => void specs.set(`${spec.stage}/${spec.partition}`, spec),
      live: () => undefined,
      train: () => new Promise(() => undefined),
    },
  );
  return specs;
}

describe("co-visitation per user partition", () => {
  it("runs one covisit instance per partition, each reading its own partition's hops", () => {
    const specs = specsOf(3);
    for (let p = 0; p < 3; p++) {
      const spec = specs.get(`covisit/${p}`);
      expect(spec?.subject).toBe(subjects.parse(p));
      expect(spec?.input).toBe("envelope");
    }
    expect(specs.has("covisit/3")).toBe(false);
  });

  it("refuses a snapshot of the single instance that read every partition merged", async () => {
    const spec = specsOf(2).get("covisit/0")!;
    const old = createStageState();
    old.map("positions").set(subjects.parse(1), { upTo: 10, s: 10, wm: 0 });
    await expect(spec.create(old, fakeOutput().out)).rejects.toThrow(
      /single co-visitation instance that read every partition/,
    );
    const fresh = await spec.create(createStageState(), fakeOutput().out);
    expect(typeof fresh.handle).toBe("function");
  });
});
