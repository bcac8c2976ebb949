import { expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../../runtime/index.js";
import { createStageState } from "../../state/store.js";
import type { StageStateInternal } from "../../state/index.js";
import { collaborativeStage, type CollaborativeView } from "../../actors/stages/index.js";
import type { TrainFn } from "../../actors/stages/index.js";
import type { ParsedRecord } from "../../actors/contract/index.js";
import { ECOMMERCE, IMPLICIT_DEFAULTS, trainAls } from "../../actors/sources/index.js";
import { batchMaker, stageContext } from "./stage.js";
import type { recordMaker } from "./source-stages.js";

/**
 * The collaborative stage's logic on a given state, outside any host (the stage tests of
 * test/collaborative-*.test.ts): a small seeded ALS, a training at most every hour of event time.
 */

export const H = 3_600_000;
export const T0 = Date.UTC(2026, 10, 1);
export const als = { ...IMPLICIT_DEFAULTS, rank: 4, iterations: 5 };
/** Trains at once (seeded), in this thread. */
export const trainNow: TrainFn = (ratings, settings) =>
  Promise.resolve(trainAls(ratings, settings));

export function collaborativeLogic(
  train: TrainFn = trainNow,
  state: StageStateInternal = createStageState(),
  restoreTrainDelayMs = 0,
) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  // One partition: its instance holds the rows and the trainer.
  const self: { view?: CollaborativeView } = {};
  const settings = {
    preset: ECOMMERCE,
    sources: { implicit: als },
    retrainMs: H,
    train,
    restoreTrainDelayMs,
    partition: 0,
    partitions: 1,
    part: () => self.view?.part(),
    changed: () => self.view?.evaluate(),
  };
  const { ctx } = stageContext(settings, ts, state);
  const logic = createStageLogic(collaborativeStage, ctx);
  const view = (self.view = logic.view as CollaborativeView);
  if (logic.restore) while (!logic.restore.next().done);
  return { ts, state, logic, view };
}

export type CollaborativeLogic = ReturnType<typeof collaborativeLogic>;

/** Runs one batch of records through the stage (it emits nothing downstream). */
export function pushBatch(s: CollaborativeLogic, records: ParsedRecord[]): void {
  const batch = batchMaker<ParsedRecord>();
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  ts.run(({ cold, expectObservable }) => {
    expectObservable(cold("a", { a: batch(T0, records) }).pipe(s.logic.operator)).toBe("a", {
      a: {},
    });
  });
}

/** Lets a training's promise settle. */
export const flush = () => new Promise((r) => setTimeout(r, 0));

/** Two tastes: users u0..u5 view a0..a3, users v0..v5 view b0..b3, in the first hour. */
export function tastes(rec: ReturnType<typeof recordMaker>): ParsedRecord[] {
  const out: ParsedRecord[] = [];
  for (let u = 0; u < 6; u++)
    for (let i = 0; i < 4; i++) {
      out.push(rec(`u${u}`, `a${i}`, T0 + (u * 4 + i) * 1000));
      out.push(rec(`v${u}`, `b${i}`, T0 + (u * 4 + i) * 1000));
    }
  return out;
}

/** Four users' collaborative candidates (n = 4): what the model tests compare across forms. */
export const modelAnswers = (v: CollaborativeView) =>
  ["u0", "u3", "v1", "v5"].map((u) => v.collaborative().candidates(u, 4));
