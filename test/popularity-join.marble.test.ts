import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import type { ProfileRecord } from "../actors/stages/index.js";
import { joinStage, createPopularityTable } from "../actors/stages/index.js";
import { HOUR } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const NOW = Date.UTC(2024, 0, 2);

describe("popularity-join stage (marbles)", () => {
  it("should keep the latest profile per user, emptied ones as empty, emit nothing, and join at query time", () => {
    const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    const { ctx } = stageContext({ purchaseExclusionMs: 24 * HOUR }, ts);
    const logic = createStageLogic(joinStage, ctx);
    const batch = batchMaker<ProfileRecord>();
    const p = (
      u: string,
      top: [string, number][],
      pur: [string, number][] = [],
    ): ProfileRecord => ({
      u,
      top,
      pur,
      wm: NOW,
    });
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c|", {
        a: batch(NOW, [p("u1", [["books", 2]]), p("u2", [["toys", 1]])]),
        b: batch(NOW, [p("u1", [["books", 4]], [["b2", NOW + HOUR]])]), // an upsert replaces
        c: batch(NOW, [p("u2", []), p("u3", [])]), // history left the horizon
      });
      // The join runs per query, so no batch produces output.
      expectObservable(input.pipe(logic.operator)).toBe("-----|");
    });
    expect(logic.view.profile("u1")?.top).toEqual([["books", 4]]);
    // Remembered as seen long ago (not "unknown"); a user never seen here is not remembered.
    expect(logic.view.profile("u2")).toEqual(p("u2", []));
    expect(logic.view.profile("u3")).toBeUndefined();
    const table = createPopularityTable();
    for (const [item, purchases] of [
      ["b1", 5],
      ["b2", 9],
    ] as const)
      table.apply({ item, purchases, category: "books", brand: "", avgPrice: 0, wm: NOW });
    // b2 was purchased within 24 h: excluded; b1 scores 4 × 5 / 100.
    expect(logic.view.candidates("u1", table, NOW, 10).map((c) => [c.row.item, c.score])).toEqual([
      ["b1", 0.2],
    ]);
  });
});
