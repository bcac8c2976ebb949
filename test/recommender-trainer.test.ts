import { describe, expect, it } from "vitest";
import { createTrainer, type TrainFn } from "../actors/recommender-trainer.js";
import type { AlsModel, AlsSettings } from "../actors/sources/als.js";
import type { Ratings } from "../actors/sources/als-matrix.js";

const settings = {} as AlsSettings;
const matrix = (at: number) => ({ users: [`at${at}`] }) as unknown as Ratings;

/** A training function that keeps each job until `finish(x)` resolves it. */
function held() {
  const jobs: { ratings: Ratings; done: (m: AlsModel) => void }[] = [];
  const train: TrainFn = (ratings) =>
    new Promise((resolve) => jobs.push({ ratings, done: resolve }));
  return { jobs, train };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("ALS trainer", () => {
  it("builds the matrix of a point only when its training starts: points superseded while waiting are never built", async () => {
    const { jobs, train } = held();
    const served: number[] = [];
    const trainer = createTrainer({ train, onModel: (_k, at) => served.push(at) });
    const built: number[] = [];
    const submit = (at: number) =>
      trainer.submit("implicit", at, () => (built.push(at), matrix(at)), settings);
    submit(1); // starts at once
    for (let at = 2; at <= 50; at++) submit(at); // each replaces the one waiting
    expect(built).toEqual([1]);
    jobs[0]!.done({} as AlsModel);
    await tick();
    // The newest point, built when its training started; 2..49 never were.
    expect(built).toEqual([1, 50]);
    expect(jobs[1]!.ratings.users).toEqual(["at50"]);
    jobs[1]!.done({} as AlsModel);
    await tick();
    expect(served).toEqual([1, 50]);
    expect(trainer.busy()).toBe(false);
  });

  it("trains nothing for a point whose matrix is lost, and goes on with the next", async () => {
    const { jobs, train } = held();
    const trainer = createTrainer({ train, onModel: () => undefined });
    trainer.submit("implicit", 1, () => undefined, settings);
    expect(jobs).toHaveLength(0);
    expect(trainer.busy()).toBe(false);
    trainer.submit("implicit", 2, () => matrix(2), settings);
    expect(jobs.map((j) => j.ratings.users)).toEqual([["at2"]]);
  });
});
