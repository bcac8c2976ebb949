import { describe, expect, it } from "vitest";
import { concat, NEVER, of } from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import {
  collaborativeStage,
  collaborativeTrainerStage,
  type CollaborativePartView,
  type CollaborativeView,
  type RowsRecord,
  type TrainFn,
} from "../actors/stages/index.js";
import { partitionOf, type ParsedRecord } from "../actors/contract/index.js";
import { createCollaborative, ECOMMERCE, trainAls, type Ratings } from "../actors/sources/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";
import { als, flush, H, T0, tastes } from "./helpers/collaborative-logic.js";

/**
 * The collaborative stages of three partitions and the trainer, as the hops between them carry
 * their records: each partition sends, at its crossing, its rows' changes and the crossing; the
 * trainer, fed them in any order of the partitions (encoded and decoded as a hop's JSON would
 * be), trains the point on the matrix one instance fed every event in input order builds.
 */
describe("the collaborative trainer", () => {
  it("trains a point crossed by every partition on the one-instance matrix, whatever the partitions' order", async () => {
    const P = 3;
    const ts = new TestScheduler((a, b) => expect(a).toEqual(b));
    const parts = Array.from({ length: P }, (_, p) => {
      const { ctx } = stageContext({ preset: ECOMMERCE, retrainMs: H, partition: p }, ts);
      const logic = createStageLogic(collaborativeStage, ctx);
      return { logic, view: logic.view as CollaborativePartView };
    });
    const rec = recordMaker();
    // Two tastes in the first hour (some users late), then an event in the next hour.
    const events = [...tastes(rec), rec("w", "a1", T0 + 10), rec("u0", "b0", T0 + H + 1)];
    const sent: RowsRecord[][] = parts.map((part, p) => {
      const out: RowsRecord[] = [];
      const batch = batchMaker<ParsedRecord>();
      const mine = events.filter((r) => partitionOf(r.u, P) === p);
      // Every partition hears of the progress into the second hour (parse's broadcast).
      part.logic
        .operator(concat(of(batch(T0 + H + 1, mine)), NEVER))
        .subscribe((o) => out.push(...((o as { rows?: RowsRecord[] }).rows ?? [])));
      return JSON.parse(JSON.stringify(out)) as RowsRecord[];
    });
    expect(sent.every((recs) => recs.some((r) => "x" in r))).toBe(true);

    for (const order of [
      [2, 0, 1],
      [0, 1, 2],
    ]) {
      const trained: Ratings[] = [];
      const train: TrainFn = (ratings, settings) => {
        trained.push(ratings);
        return Promise.resolve(trainAls(ratings, settings));
      };
      const settings = {
        preset: ECOMMERCE,
        sources: { implicit: als },
        train,
        partitions: P,
        part: (p: number) => parts[p]?.view.part(),
      };
      const trainer = createStageLogic(
        collaborativeTrainerStage,
        stageContext(settings, ts, createStageState()).ctx,
      );
      const view = trainer.view as CollaborativeView;
      const batch = batchMaker<RowsRecord>();
      // One record per batch, partition by partition in the order given.
      const batches = order.flatMap((p) => sent[p]!.map((r) => batch(-1, [r])));
      trainer.operator(concat(of(...batches), NEVER)).subscribe();
      expect(trained.length).toBe(1);
      const ref = createCollaborative(ECOMMERCE, { implicit: als });
      // The point is after the event that crossed into the second hour.
      events.forEach((r) => ref.add({ ...r }, r.s));
      expect(trained[0]).toEqual(ref.implicitRatings());
      await flush();
      expect(view.status().models.implicit).toBe(events.length);
      expect(view.status().events).toBe(events.length);
      // Served over the partitions' current rows.
      expect(view.collaborative().candidates("u3", 2).length).toBe(2);
    }
  });
});
