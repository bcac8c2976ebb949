import { describe, expect, it } from "vitest";
import { createUnits, START_TIERS, tierOf } from "../bin/pipeline/units.js";
import type { Supervisor } from "../runtime/index.js";

/**
 * After a crash, snapshot loads run one at a time in start order. The blend's sources (history,
 * covisit, collaborative) used to start partition by partition among the other stages, so right
 * answers waited for every snapshot (15.8 s after the gRPC bind with 1M users, bench step 6).
 */
describe("start order of stage instances at process start", () => {
  it("puts serving first, the blend's sources next, then the rest, the user path and the trainer", () => {
    expect(START_TIERS).toEqual([
      "serving",
      "history",
      "covisit",
      "collaborative",
      "rest",
      "user-path",
      "trainer",
    ]);
    expect(tierOf("popularity-join/3")).toBe("serving");
    expect(tierOf("fallback/0")).toBe("serving");
    expect(tierOf("history/7")).toBe("history");
    expect(tierOf("covisit/0")).toBe("covisit");
    expect(tierOf("collaborative/0")).toBe("collaborative");
    for (const id of ["parse/0", "trending/2", "popularity/1", "drift/4"])
      expect(tierOf(id)).toBe("rest");
    // Its handlers rebuild every user's interests from the cells: after trending and popularity
    // (popularity-join serves the profiles from its own snapshot meanwhile).
    for (const id of ["watermark/0", "window/1", "interest-ranking/2"])
      expect(tierOf(id)).toBe("user-path");
    // Its served models are shelved apart from its snapshot (bin/pipeline/model-shelf.ts).
    expect(tierOf("collaborative-trainer/0")).toBe("trainer");
  });

  it("starts each tier over every unit before the next tier, in the order pipeline.ts calls", () => {
    const units = createUnits({} as Supervisor, new Map());
    const started: string[] = [];
    const reg = (stage: string, p: number) =>
      units.register(units.unitOf(stage, p), `${stage}/${p}`, () => started.push(`${stage}/${p}`));
    for (const p of [0, 1])
      for (const stage of ["window", "interest-ranking", "popularity-join", "history", "covisit"])
        if (stage !== "covisit" || p === 0) reg(stage, p);
    reg("collaborative", 0);
    reg("collaborative", 1);
    reg("collaborative-trainer", 0);
    reg("trending", 0);
    reg("trending", 1);
    reg("parse", 0);
    for (const tier of START_TIERS) for (const unit of units.names()) units.start(unit, tier);
    // Every history instance before covisit/0 and the collaborative stages: history/1 used to
    // wait behind them, collaborative's 1M rows before covisit's. Every trending instance before
    // the user path's: trending/1 used to wait behind window/0's and interest-ranking/0's
    // rebuild. The trainer (unit p0) last: its copies of every partition's rows are the largest
    // snapshot, and its training took the core the user path's rebuilds needed.
    expect(started).toEqual([
      "popularity-join/0",
      "popularity-join/1",
      "history/0",
      "history/1",
      "covisit/0",
      "collaborative/0",
      "collaborative/1",
      "trending/0",
      "trending/1",
      "parse/0",
      "window/0",
      "interest-ranking/0",
      "window/1",
      "interest-ranking/1",
      "collaborative-trainer/0",
    ]);
  });
});
