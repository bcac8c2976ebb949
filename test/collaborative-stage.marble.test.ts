import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import type { TrainFn } from "../actors/stages/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import {
  ECOMMERCE,
  trainAls,
  createAlsIndex,
  createCollaborative,
} from "../actors/sources/index.js";
import type { Ratings } from "../actors/sources/index.js";
import { batchMaker } from "./helpers/stage.js";
import { recordMaker, reloaded } from "./helpers/source-stages.js";
import {
  als,
  collaborativeLogic,
  tastes,
  H,
  T0,
  type CollaborativeLogic,
} from "./helpers/collaborative-logic.js";

/** A training function that keeps each job; `finish` trains it (seeded) and hands the model. */
function trainings() {
  const jobs: { ratings: Ratings; finish: () => void }[] = [];
  const train: TrainFn = (ratings, settings) =>
    new Promise((resolve) => {
      jobs.push({ ratings, finish: () => resolve(trainAls(ratings, settings)) });
    });
  return { jobs, train };
}

function push(s: CollaborativeLogic, batches: ParsedRecord[][]) {
  const batch = batchMaker<ParsedRecord>();
  const marbles = batches.map((_, x) => String.fromCharCode(97 + x)).join("");
  const values = Object.fromEntries(
    batches.map((b, x) => [String.fromCharCode(97 + x), batch(T0, b)]),
  );
  const outputs = Object.fromEntries(batches.map((_, x) => [String.fromCharCode(97 + x), {}]));
  // A scheduler per push: each starts at frame 0 (the stage has no timers).
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  ts.run(({ cold, expectObservable }) => {
    expectObservable(cold(marbles, values).pipe(s.logic.operator)).toBe(marbles, outputs);
  });
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("collaborative stage (marbles)", () => {
  it("should train when a record's time enters a new RETRAIN_INTERVAL, on the events up to it", async () => {
    const t = trainings();
    const s = collaborativeLogic(t.train);
    const rec = recordMaker();
    const first = tastes(rec);
    push(s, [first, [rec("u0", "b0", T0 + H + 1)]]);
    expect(t.jobs.length).toBe(1);
    const point = first.length + 1;
    expect(s.view.status()).toMatchObject({ events: point, trainAt: point });
    expect(t.jobs[0]!.ratings.userPtr.at(-1)).toBe(point); // every (user, item) once
    // Records in the same interval do not train again.
    push(s, [[rec("u1", "b0", T0 + H + 2)]]);
    expect(t.jobs.length).toBe(1);
    t.jobs[0]!.finish();
    await flush();
    expect(s.view.status().models.implicit).toBe(point);
    expect(s.view.training()).toBe(false);
  });

  it("should fold a user with events after the model's point in, from the fixed item factors", async () => {
    const t = trainings();
    const s = collaborativeLogic(t.train);
    const rec = recordMaker();
    const first = tastes(rec);
    push(s, [first, [rec("x", "c0", T0 + H + 1)]]);
    t.jobs[0]!.finish();
    await flush();
    const c = s.view.collaborative();
    const before = c.candidates("u0", 4).map((x) => x.item);
    expect(before.slice(0, 4).sort()).toEqual(["a0", "a1", "a2", "a3"]);
    // u0 now views the other taste's items: folded in, their list follows.
    push(s, [
      [rec("u0", "b1", T0 + H + 2), rec("u0", "b2", T0 + H + 3), rec("u0", "b3", T0 + H + 4)],
    ]);
    const after = c.candidates("u0", 4).map((x) => x.item);
    expect(after).not.toEqual(before);
    // Exactly the standard fold-in: the user's whole row solved against the model's V.
    const row = new Map(["a0", "a1", "a2", "a3", "b1", "b2", "b3"].map((i) => [i, 1]));
    const index = createAlsIndex(c.model("implicit")!.model, {
      changedAt: () => 0,
      row: () => row,
    });
    expect(c.candidates("u0", 8)).toEqual(index.candidates("u0", 8));
    // An unknown user with events is folded in too; one without stays without.
    push(s, [[rec("w", "a1", T0 + H + 5)]]);
    expect(c.candidates("w", 2).length).toBe(2);
    expect(c.candidates("nobody", 2)).toEqual([]);
    // Every vector is solved (the model keeps none): u0 before and after their change, w.
    expect(c.folded).toBe(3);
  });

  it("should restore the model it stored, and after a restart train the point's own matrix", async () => {
    const t = trainings();
    const s = collaborativeLogic(t.train);
    const rec = recordMaker();
    const first = tastes(rec);
    push(s, [first, [rec("u0", "b0", T0 + H + 1)]]);
    const point = first.length + 1;
    // Killed while the point's training ran, after more events changed rows and added some.
    push(s, [[rec("u1", "b1", T0 + H + 2), rec("new", "c9", T0 + H + 3)]]);
    const t2 = trainings();
    const s2 = collaborativeLogic(t2.train, reloaded(s.state));
    expect(t2.jobs.length).toBe(1);
    expect(t2.jobs[0]!.ratings).toEqual(t.jobs[0]!.ratings);
    // The source fed only the events up to the point builds the same matrix.
    const ref = createCollaborative(ECOMMERCE, { implicit: als });
    [...first, rec("u0", "b0", T0 + H + 1)].forEach((r, x) =>
      ref.add({ u: r.u, i: r.i, t: r.t, ts: r.ts, c: r.c, r: r.r }, x + 1),
    );
    expect(t2.jobs[0]!.ratings).toEqual(ref.implicitRatings());
    t2.jobs[0]!.finish();
    await flush();
    // Its model is stored: a later restart serves it without training again.
    const s3 = collaborativeLogic(trainings().train, reloaded(s2.state));
    expect(s3.view.status().models.implicit).toBe(point);
    expect(s3.view.training()).toBe(false);
    expect(s3.view.collaborative().candidates("v3", 3)).toEqual(
      s2.view.collaborative().candidates("v3", 3),
    );
  });

  it("should train a restart's untrained point only after its delay, from the point's own matrix", async () => {
    // Building that matrix reads every row: a restarted process answers first.
    const t = trainings();
    const s = collaborativeLogic(t.train);
    const rec = recordMaker();
    const first = tastes(rec);
    push(s, [first, [rec("u0", "b0", T0 + H + 1)]]);
    push(s, [[rec("u1", "b1", T0 + H + 2), rec("new", "c9", T0 + H + 3)]]);
    const t2 = trainings();
    const s2 = collaborativeLogic(t2.train, reloaded(s.state), 200);
    expect(t2.jobs.length).toBe(0);
    expect(s2.view.training()).toBe(true);
    // Events after the restart change rows meanwhile (copied first: the point's matrix stays).
    push(s2, [[rec("u2", "b2", T0 + H + 4)]]);
    await new Promise((r) => setTimeout(r, 250));
    expect(t2.jobs.length).toBe(1);
    expect(t2.jobs[0]!.ratings).toEqual(t.jobs[0]!.ratings);
  });
});
