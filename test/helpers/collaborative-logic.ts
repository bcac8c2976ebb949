import { expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../../runtime/index.js";
import { createStageState } from "../../state/store.js";
import type { StageStateInternal } from "../../state/index.js";
import { map, type Observable } from "rxjs";
import type { InputBatch, StateMaps } from "../../runtime/index.js";
import {
  collaborativeStage,
  collaborativeTrainerStage,
  type CollaborativePartView,
  type CollaborativeView,
  type ModelShelf,
  type RowsRecord,
} from "../../actors/stages/index.js";
import type { TrainFn } from "../../actors/stages/index.js";
import type { ParsedRecord } from "../../actors/contract/index.js";
import { ECOMMERCE, IMPLICIT_DEFAULTS, trainAls } from "../../actors/sources/index.js";
import { batchMaker, stageContext } from "./stage.js";
import type { recordMaker } from "./source-stages.js";

/**
 * The collaborative stages' logic on a given state, outside any host (the stage tests of
 * test/collaborative-*.test.ts): one partition and the trainer, a small seeded ALS, a training at
 * most every hour of event time.
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
  shelf?: ModelShelf,
) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  // One partition and the trainer, in one state (the trainer's maps under a prefix), the
  // partition's changes handed to the trainer as the hop between them would.
  const { ctx } = stageContext({ preset: ECOMMERCE, retrainMs: H, partition: 0 }, ts, state);
  const part = createStageLogic(collaborativeStage, ctx);
  const partView = part.view as CollaborativePartView;
  if (part.restore) while (!part.restore.next().done);
  const trainerState: StateMaps = {
    map: (name, options) => state.map(`trainer.${name}`, options),
    value: (name) => state.value(`trainer.${name}`),
  };
  const settings = {
    preset: ECOMMERCE,
    sources: { implicit: als },
    train,
    restoreTrainDelayMs,
    partitions: 1,
    part: () => partView.part(),
    ...(shelf ? { shelf } : {}),
  };
  const trainer = createStageLogic(
    collaborativeTrainerStage,
    stageContext(settings, ts, trainerState).ctx,
  );
  const view = trainer.view as CollaborativeView;
  if (trainer.restore) while (!trainer.restore.next().done);
  const toTrainer = batchMaker<RowsRecord>();
  const logic = {
    operator: (batches$: Observable<InputBatch<ParsedRecord>>) =>
      batches$.pipe(
        part.operator,
        map((o) => toTrainer(-1, [...((o as { rows?: RowsRecord[] }).rows ?? [])])),
        trainer.operator,
      ),
  };
  return { ts, state, logic, view, part: partView, settings };
}

/** Where the helper's trainer keeps its served model's bytes, in the one state. */
export const MODEL_MAP = "trainer.trained-model";

export type CollaborativeLogic = ReturnType<typeof collaborativeLogic>;

/** Runs one batch of records through the partition and the trainer. */
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
