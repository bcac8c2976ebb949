import { describe, expect, it } from "vitest";
import { concat, NEVER, of } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import {
  collaborativeStage,
  type CollaborativePartView,
  type CollaborativeView,
  type TrainFn,
} from "../actors/stages/index.js";
import { partitionOf, type ParsedRecord } from "../actors/contract/index.js";
import { ECOMMERCE, trainAls } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";
import { als, H, T0, tastes } from "./helpers/collaborative-logic.js";

/**
 * The collaborative stages of two partitions: the trainer (partition 0) judges what the
 * partitions crossed even when no batch prompts it, as after a restart into a quiet input.
 */
describe("the collaborative trainer", () => {
  it("judges crossings made while it was not told, within a second, and trains the point", async () => {
    const P = 2;
    const views: (CollaborativePartView | undefined)[] = [];
    const trained: number[] = [];
    const train: TrainFn = (ratings, settings) => {
      trained.push(ratings.userCols.length);
      return Promise.resolve(trainAls(ratings, settings));
    };
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const logics = Array.from({ length: P }, (_, p) => {
      const { ctx } = stageContext(
        {
          preset: ECOMMERCE,
          sources: { implicit: als },
          retrainMs: H,
          train,
          restoreTrainDelayMs: 0,
          partition: p,
          partitions: P,
          part: (q: number) => views[q]?.part(),
          // Nothing prompts the trainer: a partition's batch is not followed by a judgement.
          changed: () => undefined,
        },
        ts,
        createStageState(),
      );
      const logic = createStageLogic(collaborativeStage, ctx);
      views[p] = logic.view as CollaborativePartView;
      if (logic.restore) while (!logic.restore.next().done);
      return logic;
    });
    const rec = recordMaker();
    // Two tastes in the first hour, then an event in the next hour: a training point.
    const events = [...tastes(rec), rec("u0", "b0", T0 + H + 1)];
    for (let p = 0; p < P; p++) {
      const batch = batchMaker<ParsedRecord>();
      const mine = events.filter((r) => partitionOf(r.u, P) === p);
      logics[p]!.operator(concat(of(batch(T0 + H + 1, mine)), NEVER)).subscribe();
    }
    const trainer = views[0] as CollaborativeView;
    expect(trainer.status().events).toBe(events.length);
    expect(trained).toEqual([]);
    await new Promise((r) => setTimeout(r, 1_300));
    expect(trained.length).toBe(1);
    await new Promise((r) => setTimeout(r, 0));
    expect(trainer.status().models.implicit).toBe(events.length);
  });
});
