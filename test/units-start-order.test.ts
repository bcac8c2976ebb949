import { describe, expect, it } from "vitest";
import { createUnits, tierOf } from "../bin/pipeline/units.js";
import type { Supervisor } from "../runtime/index.js";

/**
 * After a crash, snapshot loads run one at a time in start order. The blend's sources (history,
 * covisit, collaborative) used to start partition by partition among the other stages, so right
 * answers waited for every snapshot (15.8 s after the gRPC bind with 1M users, bench step 6).
 */
describe("start order of stage instances at process start", () => {
  it("puts serving first, the blend's sources next, the rest last", () => {
    expect(tierOf("popularity-join/3")).toBe("serving");
    expect(tierOf("fallback/0")).toBe("serving");
    expect(tierOf("history/7")).toBe("sources");
    expect(tierOf("covisit/0")).toBe("sources");
    expect(tierOf("collaborative/0")).toBe("sources");
    for (const id of ["parse/0", "window/1", "interest-ranking/2", "prequential/0", "drift/4"])
      expect(tierOf(id)).toBe("rest");
  });

  it("starts each tier over every unit before the next tier, in the order pipeline.ts calls", () => {
    const units = createUnits({} as Supervisor, new Map());
    const started: string[] = [];
    const reg = (stage: string, p: number) =>
      units.register(units.unitOf(stage, p), `${stage}/${p}`, () => started.push(`${stage}/${p}`));
    for (const p of [0, 1])
      for (const stage of ["window", "interest-ranking", "popularity-join", "history", "covisit"])
        if (stage !== "covisit" || p === 0) reg(stage, p);
    reg("parse", 0);
    for (const tier of ["serving", "sources", "rest"] as const)
      for (const unit of units.names()) units.start(unit, tier);
    expect(started).toEqual([
      "popularity-join/0",
      "popularity-join/1",
      "history/0",
      "covisit/0",
      "history/1",
      "window/0",
      "interest-ranking/0",
      "window/1",
      "interest-ranking/1",
      "parse/0",
    ]);
  });
});
